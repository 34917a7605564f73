"""A persistent, queryable catalog of geocode pieces (paper section II-B).

Sources are partitioned by geocode, each piece gets a record (time, dataset, bands, footprint,
pixel and cloud coverage, where its pixels are), and records are stored as GeoParquet with
STAC-like columns. Queries by time range, bounding box, geocode prefix, cloud cover, pixel
coverage and dataset run on in-memory sorted indexes.

Examples
--------
>>> import tempfile, workbench
>>> from workbench.data.synthetic import s2_like
>>> cat = workbench.Catalog(tempfile.mkdtemp())
>>> _ = cat.ingest(s2_like(time=3, y=32, x=32), dataset="demo", precision=6)
>>> res = cat.query(time=("2015-07-11", "2015-07-21"), max_cloud=100)
>>> sorted(res.datetime.dt.day.unique().tolist())
[11, 21]
"""

from __future__ import annotations

from workbench.catalog.catalog import Catalog
from workbench.catalog.index import CatalogIndex
from workbench.catalog.query import Query, build_query, scan
from workbench.catalog.records import COLUMNS, Location, PartitionRecord

__all__ = [
    "Catalog",
    "CatalogIndex",
    "Query",
    "build_query",
    "scan",
    "COLUMNS",
    "Location",
    "PartitionRecord",
]
