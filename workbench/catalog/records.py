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
``cloud_source``   string                        ``"mask:<file or variable>"`` or ``"spectral"``
``location``       string (JSON)                 where the pixels are: ``href``, ``format``,
                                                 ``variables``, ``isel`` ({dim: [start, stop]})
``geometry``       binary (WKB)                  lon/lat footprint of the piece in its cell
=================  ============================  ===============================================

Percentages everywhere (cloud cover, pixel coverage, query thresholds), as STAC does.
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

__all__ = ["COLUMNS", "Location", "PartitionRecord", "record_id", "records_frame", "check_frame"]

#: Column names, in the order they are stored.
COLUMNS: tuple[str, ...] = (
    "id", "geocode", "scheme", "datetime", "dataset", "bands", "bbox", "crs", "resolution",
    "width", "height", "cloud_cover", "pixel_coverage", "cloud_source", "location", "geometry",
)  # fmt: skip


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

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal locations give equal strings."""
        doc = {
            "href": self.href,
            "format": self.format,
            "isel": {k: [int(a), int(b)] for k, (a, b) in sorted(self.isel.items())},
            "variables": list(self.variables),
        }
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
        }


def _utc(values: pd.Series) -> pd.Series:
    """Datetimes as ``datetime64[us, UTC]``; naive values are taken as UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        out = values.dt.tz_convert("UTC")
    elif np.issubdtype(values.dtype, np.datetime64):
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
    dicts = [r.to_row() if isinstance(r, PartitionRecord) else dict(r) for r in rows]
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
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise CatalogError(f"catalog records lack columns {missing}; expected {list(COLUMNS)}")
    df = df.loc[:, list(COLUMNS)].copy()
    df["datetime"] = (
        _utc(df["datetime"]) if len(df) else df["datetime"].astype("datetime64[us, UTC]")
    )
    for col in ("resolution", "cloud_cover", "pixel_coverage"):
        df[col] = df[col].astype(np.float64)
    for col in ("width", "height"):
        df[col] = df[col].astype(np.int32)
    for col in ("cloud_cover", "pixel_coverage"):
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
