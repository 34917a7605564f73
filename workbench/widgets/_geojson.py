"""GeoJSON helpers of the AOI map: boxes, bounds and chip outlines in lon/lat."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from workbench.errors import AOIError
from workbench.geo.bbox import check_bbox
from workbench.geo.crs import normalize_lonlat_bounds

__all__ = ["bbox_feature", "feature_bounds", "chip_polygons"]


def bbox_feature(bbox: Sequence[float]) -> dict[str, Any]:
    """Return a GeoJSON Polygon Feature for ``(west, south, east, north)``.

    Examples
    --------
    >>> bbox_feature((0, 1, 2, 3))["geometry"]["coordinates"][0][:2]
    [[0.0, 1.0], [2.0, 1.0]]
    """
    west, south, east, north = check_bbox(bbox, require_area=True)
    if west > east:  # across the antimeridian: the ring runs on past 180 degrees east
        east += 360.0
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def feature_bounds(feature: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` of a GeoJSON Feature or geometry.

    Raises
    ------
    AOIError
        If it holds no coordinates.

    Examples
    --------
    >>> feature_bounds({"type": "Polygon", "coordinates": [[[0, 0], [2, 1], [1, 3], [0, 0]]]})
    (0.0, 0.0, 2.0, 3.0)
    """
    geometry = feature.get("geometry", feature) if feature.get("type") == "Feature" else feature
    coords = np.asarray(_flatten(geometry.get("coordinates") if geometry else None), dtype=float)
    if coords.size == 0:
        raise AOIError(f"the GeoJSON {dict(feature)!r} has no coordinates: draw or give a polygon")
    coords = coords.reshape(-1, 2)
    west, south = coords.min(axis=0)
    east, north = coords.max(axis=0)
    # a shape drawn across the antimeridian (or on a wrapped copy of the world): west > east
    return normalize_lonlat_bounds((west, south, east, north))


def _flatten(coords: Any) -> list[float]:
    if coords is None:
        return []
    if isinstance(coords, int | float):
        return [float(coords)]
    return [v for c in coords for v in _flatten(c)]


def _windows(chips: Any, indices: np.ndarray, ydim: Hashable, xdim: Hashable) -> np.ndarray:
    """Distinct ``(y0, y1, x0, x1)`` pixel windows of the chips, in first-seen order."""
    ny, nx = chips.obj.sizes[ydim], chips.obj.sizes[xdim]
    grid, ids = getattr(chips, "grid", None), getattr(chips, "ids", None)
    if grid is not None and ids is not None:  # vectorised over the chip grid
        origins = grid.origins(np.asarray(ids)[indices])
        spans = []
        for dim, n in ((ydim, ny), (xdim, nx)):
            if dim in grid.dims:
                k = list(grid.dims).index(dim)
                start = origins[:, k]
                spans += [start, start + grid.sizes[k]]
            else:
                spans += [np.zeros(len(indices), np.int64), np.full(len(indices), n, np.int64)]
        rows = np.stack(spans, axis=1)
    else:
        rows = np.array(
            [
                [*chips.selector(int(i)).get(d, slice(None)).indices(n)[:2]]
                for i in indices
                for d, n in ((ydim, ny), (xdim, nx))
            ],
            dtype=np.int64,
        ).reshape(-1, 4)
    if rows.size == 0:
        return rows
    _, first = np.unique(rows, axis=0, return_index=True)
    return rows[np.sort(first)]


def chip_polygons(chips: Any, indices: Iterable[int]) -> list[list[list[list[float]]]]:
    """Lon/lat outlines (MultiPolygon coordinates) of the chips' distinct spatial windows.

    Vectorised: the windows come from ``chips.selector(i)`` (no pixel read), their pixel
    edges from the coordinates, and one pyproj call transforms all the corners, so a
    projected (UTM) grid is drawn as the quadrilaterals it really is in lon/lat. Chips
    without ``obj``/``selector`` fall back to ``chips.bounds(i)`` boxes.
    """
    from workbench.geo.crs import pixel_centers, pixel_size, require_crs, spatial_dims, xy_to_lonlat

    obj, selector = getattr(chips, "obj", None), getattr(chips, "selector", None)
    if obj is None or selector is None:
        boxes = dict.fromkeys(tuple(float(v) for v in chips.bounds(int(i))) for i in indices)
        return [bbox_feature(b)["geometry"]["coordinates"] for b in boxes]
    ydim, xdim = spatial_dims(obj)
    w = _windows(chips, np.fromiter(indices, dtype=np.int64), ydim, xdim)
    if w.size == 0:
        return []
    x, y = pixel_centers(obj)
    dx, dy = (abs(v) / 2 for v in pixel_size(obj))
    xa, xb, ya, yb = x[w[:, 2]], x[w[:, 3] - 1], y[w[:, 0]], y[w[:, 1] - 1]
    x0, x1 = np.minimum(xa, xb) - dx, np.maximum(xa, xb) + dx
    y0, y1 = np.minimum(ya, yb) - dy, np.maximum(ya, yb) + dy
    cx = np.stack([x0, x1, x1, x0, x0], axis=-1)
    cy = np.stack([y0, y0, y1, y1, y0], axis=-1)
    crs = require_crs(obj, "chip outlines on a map")
    if not crs.is_geographic:
        cx, cy = xy_to_lonlat(cx, cy, crs)
    rings = np.round(np.stack([cx, cy], axis=-1), 7)
    return [[ring.tolist()] for ring in rings]
