"""Catalog records: one row per (geocode piece, date) of a source raster.

The columns follow STAC item fields where one exists, so the GeoParquet file is readable by
``geopandas.read_parquet``, DuckDB, pandas or any Arrow tool:

=================  ============================  ===============================================
column             type                          meaning
=================  ============================  ===============================================
``id``             string                        ``dataset:geocode:YYYYmmddTHHMMSS:hash8``
                                                 (hash of source path and window: deterministic)
``geocode``        string                        geohash or quadkey of the piece
``scheme``         string                        ``"geohash"`` or ``"quadkey"``
``datetime``       timestamp[us, UTC]            acquisition time (null when unknown)
``dataset``        string                        collection name, e.g. ``"S2_L1C"``
``bands``          list<string>                  band (or variable) names
``bbox``           struct<xmin,ymin,xmax,ymax>   lon/lat bounds (GeoParquet 1.1 bbox covering);
                                                 a ``(xmin, ymin, xmax, ymax)`` tuple in pandas
``crs``            string                        CRS of the pixels, e.g. ``"EPSG:32633"``
``resolution``     double                        pixel size along x in CRS units
``width``          int32                         pixels along x of the window
``height``         int32                         pixels along y of the window
``cloud_cover``    double                        percent [0, 100] of valid pixels that are cloud
                                                 (STAC ``eo:cloud_cover``); NaN when unknown
``pixel_coverage`` double                        percent [0, 100] of the geocode cell holding
                                                 valid pixels (across bands)
``cloud_source``   string                        ``"mask:<file or variable>"`` (the provider's
                                                 SCL, QA_PIXEL... or a mask file), ``"spectral"``
                                                 or ``"none"``
``location``       string (JSON)                 where the pixels are: ``href``, ``format``,
                                                 ``variables``, ``isel`` ({dim: [start, stop]});
                                                 band files: ``assets`` ({band: path}) and the
                                                 ``options`` they are opened with
``geometry``       binary (WKB)                  lon/lat footprint of the piece in its cell
``scene``          string                        id of the scene (Sentinel-2 tile and sensing
                                                 time, Landsat product id, STAC Item id...)
``band_resolutions`` list<double>                native pixel size of each of ``bands``
``snow_cover``     double                        percent [0, 100] of valid pixels that are snow
                                                 or ice; NaN when unknown
``properties``     string (JSON)                 what the user knows: labels, tile id... given at
                                                 ingest or taken from a STAC Item or labels file
=================  ============================  ===============================================

Percentages everywhere (cloud cover, snow cover, pixel coverage, query thresholds), as STAC does.
Catalogs written before the last four columns existed read with their defaults ("", the grid's
resolution per band, NaN, ``{}``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import CatalogError

__all__ = [
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "Location",
    "PartitionRecord",
    "record_id",
    "records_frame",
    "check_frame",
    "properties_json",
]

#: Column names, in the order they are stored.
COLUMNS: tuple[str, ...] = (
    "id", "geocode", "scheme", "datetime", "dataset", "bands", "bbox", "crs", "resolution",
    "width", "height", "cloud_cover", "pixel_coverage", "cloud_source", "location", "geometry",
    "scene", "band_resolutions", "snow_cover", "properties",
)  # fmt: skip
#: Columns added later: a frame or file without them gets these defaults.
OPTIONAL_COLUMNS: dict[str, Any] = {
    "scene": "", "band_resolutions": None, "snow_cover": float("nan"), "properties": "{}",
}  # fmt: skip


@dataclass(frozen=True)
class Location:
    """Where a record's pixels are: a file or store and the positional window inside it.

    Examples
    --------
    >>> loc = Location("/data/S2.tif", "geotiff", isel={"y": (0, 10), "x": (5, 20)})
    >>> Location.from_json(loc.to_json()) == loc
    True
    """

    href: str
    format: str
    isel: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    variables: tuple[str, ...] = ()
    assets: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal locations give equal strings.

        ``assets`` and ``options`` appear only when set, so the locations (and ids) of
        single files and cubes are what they always were.
        """
        doc: dict[str, Any] = {
            "href": self.href,
            "format": self.format,
            "isel": {k: [int(a), int(b)] for k, (a, b) in sorted(self.isel.items())},
            "variables": list(self.variables),
        }
        if self.assets:
            doc["assets"] = dict(self.assets)
        if self.options:
            doc["options"] = dict(self.options)
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Location:
        """Parse :meth:`to_json` output."""
        try:
            doc = json.loads(text)
            return cls(
                href=str(doc["href"]),
                format=str(doc["format"]),
                isel={str(k): (int(v[0]), int(v[1])) for k, v in doc.get("isel", {}).items()},
                variables=tuple(doc.get("variables", ())),
                assets={str(k): str(v) for k, v in doc.get("assets", {}).items()},
                options=dict(doc.get("options", {})),
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise CatalogError(f"malformed location {text!r:.200}: {exc}") from exc

    def slices(self) -> dict[str, slice]:
        """Return the window as ``{dim: slice}`` for :meth:`xarray.Dataset.isel`."""
        return {k: slice(a, b) for k, (a, b) in self.isel.items()}


def record_id(dataset: str, geocode: str, when: Any, location: Location) -> str:
    """Deterministic id: readable parts plus 8 hex digits of SHA-1 of the location.

    Examples
    --------
    >>> loc = Location("/d/a.tif", "geotiff", isel={"y": (0, 4)})
    >>> record_id("S2_L1C", "u21q", "2015-07-11T10:00:08", loc)
    'S2_L1C:u21q:20150711T100008:f37dc151'
    """
    stamp = (
        "nodate" if when is None or pd.isna(when) else pd.Timestamp(when).strftime("%Y%m%dT%H%M%S")
    )
    digest = hashlib.sha1(location.to_json().encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{dataset}:{geocode}:{stamp}:{digest}"


@dataclass(frozen=True)
class PartitionRecord:
    """Metadata of one piece: a geocode cell of one source raster at one date."""

    id: str
    geocode: str
    scheme: str
    datetime: pd.Timestamp | None
    dataset: str
    bands: tuple[str, ...]
    bbox: tuple[float, float, float, float]
    crs: str
    resolution: float
    width: int
    height: int
    cloud_cover: float
    pixel_coverage: float
    cloud_source: str
    location: Location
    geometry: bytes
    scene: str = ""
    band_resolutions: tuple[float, ...] = ()
    snow_cover: float = float("nan")
    properties: str = "{}"  # JSON object

    def to_row(self) -> dict[str, Any]:
        """Return the record as a dict of column values (``location`` as JSON)."""
        return {
            "id": self.id,
            "geocode": self.geocode,
            "scheme": self.scheme,
            "datetime": self.datetime,
            "dataset": self.dataset,
            "bands": list(self.bands),
            "bbox": tuple(float(v) for v in self.bbox),
            "crs": self.crs,
            "resolution": float(self.resolution),
            "width": int(self.width),
            "height": int(self.height),
            "cloud_cover": float(self.cloud_cover),
            "pixel_coverage": float(self.pixel_coverage),
            "cloud_source": self.cloud_source,
            "location": self.location.to_json(),
            "geometry": self.geometry,
            "scene": self.scene,
            "band_resolutions": [float(v) for v in self.band_resolutions]
            or [float(self.resolution)] * len(self.bands),
            "snow_cover": float(self.snow_cover),
            "properties": self.properties,
        }


def _utc(values: pd.Series) -> pd.Series:
    """Datetimes as ``datetime64[us, UTC]``; naive values are taken as UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        out = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        out = values.dt.tz_localize("UTC")
    else:
        out = pd.to_datetime(values, utc=True, format="mixed")
    return out.astype("datetime64[us, UTC]")


def _order(df: pd.DataFrame) -> np.ndarray:
    """Row order by ``(geocode, datetime, id)``, nulls last (Arrow's sort: no Python loop)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.table(
        {
            "geocode": pa.array(df["geocode"], pa.string()),
            "datetime": pa.array(df["datetime"]),
            "id": pa.array(df["id"], pa.string()),
        }
    )
    keys = [("geocode", "ascending"), ("datetime", "ascending"), ("id", "ascending")]
    return np.asarray(pc.sort_indices(table, sort_keys=keys))  # nulls sort last by default


def records_frame(rows: Sequence[PartitionRecord | Mapping[str, Any]]) -> pd.DataFrame:
    """Build a catalog DataFrame (stored column order and dtypes) from records or row dicts.

    Examples
    --------
    >>> records_frame([]).columns.tolist() == list(COLUMNS)
    True
    """
    dicts = [
        r.to_row() if isinstance(r, PartitionRecord) else {**OPTIONAL_COLUMNS, **dict(r)}
        for r in rows
    ]
    df = pd.DataFrame(dicts, columns=list(COLUMNS))
    return check_frame(df)


def check_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Validate and normalise a catalog frame: columns, dtypes, ranges, unique ids, order.

    Returns a new frame sorted by ``(geocode, datetime, id)`` with a fresh RangeIndex.

    Raises
    ------
    CatalogError
        For missing columns, duplicate ids, or coverage values outside [0, 100].
    """
    missing = [c for c in COLUMNS if c not in df.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise CatalogError(f"catalog records lack columns {missing}; expected {list(COLUMNS)}")
    df = df.copy()
    for col, default in OPTIONAL_COLUMNS.items():
        if col not in df.columns:
            df[col] = [default] * len(df)
    df = df.loc[:, list(COLUMNS)]
    df["scene"] = [v if isinstance(v, str) else "" for v in df["scene"]]
    df["properties"] = [properties_json(p) for p in df["properties"]]
    df["band_resolutions"] = [
        [float(r)] * len(b)
        if not isinstance(v, list | tuple | np.ndarray)
        else [float(x) for x in v]
        for v, b, r in zip(df["band_resolutions"], df["bands"], df["resolution"], strict=True)
    ]
    df["datetime"] = (
        _utc(df["datetime"]) if len(df) else df["datetime"].astype("datetime64[us, UTC]")
    )
    for col in ("resolution", "cloud_cover", "pixel_coverage", "snow_cover"):
        df[col] = df[col].astype(np.float64)
    for col in ("width", "height"):
        df[col] = df[col].astype(np.int32)
    for col in ("cloud_cover", "pixel_coverage", "snow_cover"):
        values = df[col].to_numpy()
        bad = ~np.isnan(values) & ((values < 0) | (values > 100))
        if bad.any():
            raise CatalogError(
                f"{col} must be a percentage in [0, 100]; got {values[bad][:3].tolist()} "
                f"(ids {df['id'][bad].head(3).tolist()})"
            )
    dup = df["id"].duplicated()
    if dup.any():
        raise CatalogError(f"duplicate record ids: {df['id'][dup].head(3).tolist()}")
    return df.take(_order(df)).reset_index(drop=True)


def properties_json(value: Any) -> str:
    """Properties as canonical JSON text (an object); a dict is serialised, text is checked.

    Raises
    ------
    CatalogError
        When the value is not a JSON object (or a dict that JSON cannot hold).
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "{}"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise CatalogError(f"properties must be a JSON object, got {value!r:.120}") from exc
    if not isinstance(value, Mapping):
        raise CatalogError(f"properties must be a mapping (a JSON object), got {value!r:.120}")
    try:
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CatalogError(
            f"properties must be JSON-able (strings, numbers, lists, dicts): {exc}"
        ) from exc
