"""Catalog records as STAC Items and back (pystac, offline), so users' STAC tools can take over.

One Item per record (a geocode piece of a scene): its lon/lat footprint and bbox, datetime,
``collection`` = the dataset, ``eo:cloud_cover``, the projection extension's ``proj:epsg``
(or ``proj:wkt2``), the user's properties at the top level (``labels``...), and every other
column under a ``workbench:`` prefix (geocode, scheme, pixel coverage, snow cover, cloud
source, bands and their resolutions, the pixel window). Its assets are the files the pixels
are in: one per band for band files, else one ``data`` asset.

:func:`rows_from_items` reads such Items back into catalog rows (no pixel read); Items from
elsewhere (a user's own STAC with band assets) are returned apart, to be ingested as scenes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench._optional import lazy_import
from workbench.catalog.records import Location
from workbench.data.stac import is_item, load_items
from workbench.errors import CatalogError

__all__ = ["records_to_items", "rows_from_items", "PREFIX"]

PREFIX = "workbench:"
_PROJ = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
_EO = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
_START, _END = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"  # an unknown acquisition time
_RESERVED = {"datetime", "start_datetime", "end_datetime", "eo:cloud_cover", "proj:epsg"}


def _absolute(href: str, root: Path) -> str:
    return href if "://" in href or Path(href).is_absolute() else str((root / href).resolve())


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def records_to_items(frame: pd.DataFrame, root: Path) -> list[Any]:
    """One ``pystac.Item`` per record of ``frame`` (see the module docs)."""
    pystac = lazy_import("pystac", extra="io", purpose="writing STAC Items")
    import shapely
    from pyproj import CRS
    from shapely.geometry import mapping

    items = []
    for row in frame.itertuples(index=False):
        loc = Location.from_json(row.location)
        props: dict[str, Any] = {
            k: v for k, v in json.loads(row.properties).items() if k not in _RESERVED
        }
        when = None if pd.isna(row.datetime) else pd.Timestamp(row.datetime).to_pydatetime()
        if when is None:
            props.update(start_datetime=_START, end_datetime=_END)
        cloud = _number(row.cloud_cover)
        if cloud is not None:
            props["eo:cloud_cover"] = cloud
        crs = CRS.from_user_input(row.crs)
        epsg = crs.to_epsg()
        if epsg is not None:
            props["proj:epsg"] = int(epsg)
        else:
            props["proj:wkt2"] = crs.to_wkt()
        props.update(
            {
                f"{PREFIX}geocode": row.geocode,
                f"{PREFIX}scheme": row.scheme,
                f"{PREFIX}scene": row.scene,
                f"{PREFIX}bands": list(row.bands),
                f"{PREFIX}band_resolutions": [float(v) for v in row.band_resolutions],
                f"{PREFIX}crs": row.crs,
                f"{PREFIX}resolution": float(row.resolution),
                f"{PREFIX}width": int(row.width),
                f"{PREFIX}height": int(row.height),
                f"{PREFIX}pixel_coverage": float(row.pixel_coverage),
                f"{PREFIX}snow_cover": _number(row.snow_cover),
                f"{PREFIX}cloud_cover": cloud,
                f"{PREFIX}cloud_source": row.cloud_source,
                f"{PREFIX}location": {**json.loads(row.location), "href": _absolute(loc.href, root)}
                if loc.href
                else json.loads(row.location),
                f"{PREFIX}datetime_unknown": when is None,
            }
        )
        geom = shapely.from_wkb(row.geometry)
        item = pystac.Item(
            id=row.id, geometry=mapping(geom), bbox=[float(v) for v in row.bbox],
            datetime=when, properties=props, collection=row.dataset,
            stac_extensions=[_PROJ, _EO],
        )  # fmt: skip
        if loc.assets:
            for band, href in loc.assets.items():
                bands = {"eo:bands": [{"name": band}]}
                asset = pystac.Asset(_absolute(href, root), roles=["data"], extra_fields=bands)
                item.add_asset(band, asset)
        else:
            kind = {"geotiff": pystac.MediaType.GEOTIFF, "netcdf": "application/x-netcdf",
                    "zarr": "application/vnd+zarr"}.get(loc.format)  # fmt: skip
            item.add_asset("data", pystac.Asset(_absolute(loc.href, root), media_type=kind,
                                                 roles=["data"]))  # fmt: skip
        items.append(item)
    return items


def _as_dicts(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str | Path):
        return load_items(items)
    if hasattr(items, "items") and not isinstance(items, dict):  # pystac.ItemCollection
        items = list(items.items)
    if isinstance(items, dict):
        if items.get("type") == "FeatureCollection":
            return [dict(f) for f in items.get("features", [])]
        items = [items]
    out = []
    for item in items if isinstance(items, Iterable) else [items]:
        if isinstance(item, str | Path):
            out += load_items(item)
        elif hasattr(item, "to_dict"):
            doc = item.to_dict(include_self_link=True, transform_hrefs=False)
            href = item.get_self_href()
            if href:
                doc["__href__"] = href
            out.append(doc)
        elif is_item(item):
            out.append(dict(item))
        else:
            raise CatalogError(f"not a STAC Item: {type(item).__name__} {str(item)[:80]}")
    return out


def rows_from_items(items: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split Items into catalog rows (Items this catalog wrote) and foreign Items (to ingest)."""
    import shapely
    from shapely.geometry import shape

    rows, foreign = [], []
    for doc in _as_dicts(items):
        props = dict(doc.get("properties", {}))
        if f"{PREFIX}location" not in props:
            foreign.append(doc)
            continue
        mine = {k[len(PREFIX) :]: props.pop(k) for k in list(props) if k.startswith(PREFIX)}
        for key in ("start_datetime", "end_datetime", "eo:cloud_cover", "proj:epsg", "proj:wkt2"):
            props.pop(key, None)
        when = props.pop("datetime", None)
        geom = shape(doc["geometry"])
        snow = mine.get("snow_cover")
        cloud = mine.get("cloud_cover")
        rows.append(
            {
                "id": doc["id"],
                "geocode": mine["geocode"],
                "scheme": mine["scheme"],
                "datetime": None if mine.get("datetime_unknown") else when,
                "dataset": doc.get("collection") or "stac",
                "bands": list(mine["bands"]),
                "bbox": tuple(float(v) for v in doc["bbox"]),
                "crs": mine["crs"],
                "resolution": float(mine["resolution"]),
                "width": int(mine["width"]),
                "height": int(mine["height"]),
                "cloud_cover": float("nan") if cloud is None else float(cloud),
                "pixel_coverage": float(mine["pixel_coverage"]),
                "cloud_source": mine["cloud_source"],
                "location": Location.from_json(json.dumps(mine["location"])).to_json(),
                "geometry": shapely.to_wkb(geom),
                "scene": mine.get("scene", ""),
                "band_resolutions": list(mine.get("band_resolutions") or []) or None,
                "snow_cover": float("nan") if snow is None else float(snow),
                "properties": json.dumps(props, sort_keys=True, separators=(",", ":")),
            }
        )
    return rows, foreign
