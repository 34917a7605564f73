"""GeoParquet storage of catalog records, written atomically.

The file is GeoParquet 1.1: a WKB ``geometry`` column (lon/lat, OGC:CRS84) described by the
``geo`` key of the Parquet metadata, with the ``bbox`` struct column declared as its bbox
*covering*; ``geopandas.read_parquet(path)`` reads it as a GeoDataFrame.

A write goes through :func:`workbench._files.atomic_write` (a temporary in the same folder,
fsynced, moved over the catalog with :func:`os.replace`, the folder fsynced): a reader sees the
old catalog or the new one, never a torn file, and a crash mid-write leaves the previous
catalog readable (and at worst a stray ``.*.tmp`` file, removed by a later write once its
writer is gone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench._files import atomic_write
from workbench.catalog.records import COLUMNS, OPTIONAL_COLUMNS, check_frame
from workbench.errors import CatalogError

__all__ = ["SCHEMA", "read_catalog", "write_catalog", "geo_metadata"]

_BBOX = pa.struct([(k, pa.float64()) for k in ("xmin", "ymin", "xmax", "ymax")])

#: Arrow schema of the catalog file.
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("geocode", pa.string()),
        ("scheme", pa.string()),
        ("datetime", pa.timestamp("us", tz="UTC")),
        ("dataset", pa.string()),
        ("bands", pa.list_(pa.string())),
        ("bbox", _BBOX),
        ("crs", pa.string()),
        ("resolution", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("cloud_cover", pa.float64()),
        ("pixel_coverage", pa.float64()),
        ("cloud_source", pa.string()),
        ("location", pa.string()),
        ("geometry", pa.binary()),
        ("scene", pa.string()),
        ("band_resolutions", pa.list_(pa.float64())),
        ("snow_cover", pa.float64()),
        ("properties", pa.string()),
    ]
)


def geo_metadata(bboxes: np.ndarray, geometry_types: list[str]) -> dict[str, Any]:
    """Build the GeoParquet 1.1 ``geo`` metadata of the catalog's geometry column."""
    from pyproj import CRS

    column: dict[str, Any] = {
        "encoding": "WKB",
        "geometry_types": geometry_types,
        "crs": CRS.from_user_input("OGC:CRS84").to_json_dict(),
        "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
    }
    if len(bboxes):
        column["bbox"] = [
            float(bboxes[:, 0].min()), float(bboxes[:, 1].min()),
            float(bboxes[:, 2].max()), float(bboxes[:, 3].max()),
        ]  # fmt: skip
    return {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": column}}


def _bbox_array(df: pd.DataFrame) -> np.ndarray:
    if not len(df):
        return np.empty((0, 4))
    return np.asarray(df["bbox"].tolist(), dtype=np.float64).reshape(len(df), 4)


def _geometry_types(geoms: pd.Series) -> list[str]:
    import shapely

    if not len(geoms):
        return []
    kinds = shapely.get_type_id(shapely.from_wkb(geoms.to_numpy()))
    names = {3: "Polygon", 6: "MultiPolygon", 0: "Point", 1: "LineString", 7: "GeometryCollection"}
    return sorted({names.get(int(k), "Unknown") for k in np.unique(kinds)} - {"Unknown"})


def to_table(df: pd.DataFrame) -> pa.Table:
    """Arrow table of a catalog frame, with the GeoParquet metadata attached."""
    bbox = _bbox_array(df)
    columns: list[Any] = []
    for f in SCHEMA:
        if f.name == "bbox":
            parts = [pa.array(bbox[:, i], pa.float64()) for i in range(4)]
            columns.append(pa.StructArray.from_arrays(parts, fields=list(_BBOX)))
        elif f.name in ("bands", "band_resolutions"):
            columns.append(pa.array([list(v) for v in df[f.name]], f.type))
        else:  # zero-copy for Arrow-backed pandas columns
            columns.append(pa.Array.from_pandas(df[f.name], type=f.type))
    table = pa.Table.from_arrays(columns, schema=SCHEMA)
    geo = geo_metadata(bbox, _geometry_types(df["geometry"]))
    return table.replace_schema_metadata({b"geo": json.dumps(geo).encode()})


def write_catalog(df: pd.DataFrame, path: Path, *, checked: bool = False) -> None:
    """Write ``df`` to ``path`` atomically (temp file in the same directory, fsync, replace).

    Raises
    ------
    CatalogError
        When the directory is not writable or the write fails; the old file is untouched.
    """
    path = Path(path)
    table = to_table(df if checked else check_frame(df))
    try:
        with atomic_write(path) as fh:
            pq.write_table(table, fh, compression="zstd")
    except OSError as exc:
        raise CatalogError(f"could not write the catalog {path}: {exc}") from exc


def read_catalog(path: Path) -> pd.DataFrame:
    """Read a catalog file into a frame (``bbox`` as tuples, ``bands`` as lists).

    Raises
    ------
    CatalogError
        When the file is not a catalog (missing columns) or cannot be read.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise CatalogError(f"could not read the catalog {path}: {exc}") from exc
    missing = [c for c in COLUMNS if c not in table.column_names and c not in OPTIONAL_COLUMNS]
    if missing:
        raise CatalogError(f"{path} is not a workbench catalog: columns {missing} are missing")
    bbox = table.column("bbox").combine_chunks()
    parts = [bbox.field(k).to_numpy(zero_copy_only=False) for k in ("xmin", "ymin", "xmax", "ymax")]
    lists = {
        c: table.column(c).to_pylist()
        for c in ("bands", "band_resolutions")
        if c in table.column_names
    }
    df = table.drop(["bbox", *lists]).to_pandas()
    df.insert(COLUMNS.index("bbox"), "bbox", list(zip(*parts, strict=True)))
    for name, values in lists.items():
        df[name] = values
    if any(c not in df.columns for c in OPTIONAL_COLUMNS):  # written before those columns
        return check_frame(df)
    return df.loc[:, list(COLUMNS)]
