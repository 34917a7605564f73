"""STAC Items as scenes: their raster assets are band files, their properties what users know.

:func:`read_item` takes a STAC Item (a dict, a ``pystac.Item`` or a local JSON file; offline,
through pystac) and returns its raster assets as a ``{band: href}`` mapping (asset keys are
the band names; relative hrefs are resolved against the item's file), its acquisition time
and its properties. Assets that are not rasters (thumbnails, overviews, metadata) are left
out; so is the ``visual`` (true-colour) asset unless asked for by name.

Examples
--------
>>> item = {"type": "Feature", "stac_version": "1.0.0", "id": "s1", "geometry": None,
...         "properties": {"datetime": "2015-07-11T10:00:08Z", "labels": ["Forest"]},
...         "links": [], "assets": {"B04": {"href": "/data/B04.tif", "roles": ["data"]},
...                                 "thumbnail": {"href": "t.png", "roles": ["thumbnail"]}}}
>>> s = read_item(item)
>>> s.id, s.assets, str(s.when), s.properties
('s1', {'B04': '/data/B04.tif'}, '2015-07-11 10:00:08', {'labels': ['Forest']})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench._optional import lazy_import
from workbench.errors import DataReadError

__all__ = ["StacScene", "read_item", "is_item", "load_items"]

_RASTER_TYPES = ("image/tiff", "image/jp2", "application/x-netcdf", "application/netcdf",
                 "application/x-hdf", "application/x-zarr")  # fmt: skip
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".nc", ".nc4", ".h5", ".zarr")
_NOT_BANDS = {"thumbnail", "overview", "metadata", "visual", "rendered_preview", "snapshot"}


@dataclass(frozen=True)
class StacScene:
    """What a STAC Item says about a scene."""

    id: str
    when: pd.Timestamp | None
    assets: dict[str, str]
    properties: dict[str, Any] = field(default_factory=dict)
    bbox: tuple[float, ...] | None = None
    href: str | None = None


def is_item(value: Any) -> bool:
    """Whether ``value`` is a STAC Item (dict with ``type: Feature`` and assets, or pystac)."""
    if type(value).__name__ == "Item" and hasattr(value, "assets"):
        return True
    return isinstance(value, Mapping) and value.get("type") == "Feature" and "assets" in value


def load_items(path: str | Path) -> list[dict[str, Any]]:
    """Return the Items of a local JSON file: one Item, a FeatureCollection or ItemCollection.

    Raises
    ------
    DataReadError
        If the file is not JSON or holds no STAC Item.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataReadError(f"cannot read the STAC JSON {str(path)!r}: {exc}") from exc
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        items = [dict(f) for f in doc.get("features", [])]
    else:
        items = [doc]
    for item in items:
        if not is_item(item):
            raise DataReadError(
                f"{str(path)!r} is not a STAC Item (a GeoJSON Feature with 'assets'), got keys "
                f"{sorted(item)[:8] if isinstance(item, dict) else type(item).__name__}"
            )
        item.setdefault("__href__", str(path.resolve()))
    return items


def _is_raster(key: str, asset: Any) -> bool:
    roles = set(asset.roles or [])
    if key in _NOT_BANDS or (roles & (_NOT_BANDS - {"visual"}) and "data" not in roles):
        return False
    media = str(asset.media_type or "")
    if any(media.startswith(t) for t in _RASTER_TYPES):
        return True
    return Path(str(asset.href).split("?")[0]).suffix.lower() in _RASTER_SUFFIXES


def read_item(item: Any, href: str | None = None) -> StacScene:
    """Band assets, time and properties of a STAC Item (dict, ``pystac.Item`` or JSON path).

    Raises
    ------
    DataReadError
        If the item has no raster asset or cannot be parsed.
    """
    pystac = lazy_import("pystac", extra="io", purpose="reading STAC Items")
    if isinstance(item, str | Path):
        items = load_items(item)
        if len(items) != 1:
            raise DataReadError(
                f"{str(item)!r} holds {len(items)} Items; open them as a collection"
            )
        item = items[0]
    if isinstance(item, Mapping):
        doc = dict(item)
        href = href or doc.pop("__href__", None)
        try:
            parsed = pystac.Item.from_dict(doc, href=href, migrate=True, preserve_dict=False)
        except Exception as exc:  # pystac raises its own and KeyError/TypeError alike
            raise DataReadError(f"not a valid STAC Item ({type(exc).__name__}: {exc})") from exc
    else:
        parsed = item
    base = Path(href).parent if href else None
    assets: dict[str, str] = {}
    for key, asset in parsed.assets.items():
        if not _is_raster(key, asset):
            continue
        target = str(asset.get_absolute_href() or asset.href)
        if "://" not in target and not Path(target).is_absolute() and base is not None:
            target = str((base / target).resolve())
        assets[str(key)] = target
    if not assets:
        raise DataReadError(
            f"STAC Item {parsed.id!r} has no raster asset (assets: {sorted(parsed.assets)}); a "
            "band asset has a GeoTIFF/JP2/NetCDF href or media type, or the role 'data'"
        )
    when = parsed.datetime or parsed.common_metadata.start_datetime
    stamp = None if when is None else pd.Timestamp(when)
    if stamp is not None and stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    skip = {"datetime", "start_datetime", "end_datetime", "created", "updated"}
    props = {k: v for k, v in parsed.properties.items() if k not in skip}
    bbox = tuple(float(v) for v in parsed.bbox) if parsed.bbox else None
    return StacScene(str(parsed.id), stamp, assets, props, bbox, href)
