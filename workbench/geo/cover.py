"""List the geocodes (geohashes or quadkeys) whose cells intersect a lon/lat bounding box.

Examples
--------
>>> from workbench.geo import cover
>>> cover((10.40, 57.64, 10.41, 57.65), "geohash", 5)
['u4pru']
>>> cover((179.9, -0.1, -179.9, 0.1), "quadkey", 2)  # across the antimeridian
['02', '13', '20', '31']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.errors import GeocodeError
from workbench.geo import geohash, quadkey
from workbench.geo.bbox import check_bbox
from workbench.geo.schemes import SCHEMES, get_scheme

__all__ = ["cover", "SCHEMES"]
#: mercantile's ``LL_EPSILON``: :func:`mercantile.tiles` pulls the east and south edges in by it.
_LL_EPSILON = 1e-11
#: mercantile's latitude clamp in :func:`mercantile.tiles`.
_TILES_MAX_LAT = 85.051129


def _check_scheme(scheme: str) -> str:
    return get_scheme(scheme).name


def _range_half_open(
    lo_idx: int, hi_idx: int, hi_value: float, hi_edge: float, degenerate: bool
) -> range:
    """Cells ``lo_idx..hi_idx``, without ``hi_idx`` when the box only touches its lower edge."""
    if not degenerate and hi_value == hi_edge and hi_idx > lo_idx:
        hi_idx -= 1
    return range(lo_idx, hi_idx + 1)


def _geohash_cells(
    west: float, south: float, east: float, north: float, precision: int
) -> tuple[range, range]:
    lat_bits, lon_bits = geohash._bits(precision)
    pts_lat = np.array([south, north])
    pts_lon = np.array([west, east])
    rows = geohash._axis_index(pts_lat, -90.0, 90.0, lat_bits)
    cols = geohash._axis_index(pts_lon, -180.0, 180.0, lon_bits)
    dlat, dlon = 180.0 / (1 << lat_bits), 360.0 / (1 << lon_bits)
    row_range = _range_half_open(
        int(rows[0]), int(rows[1]), north, -90.0 + int(rows[1]) * dlat, south == north
    )
    col_range = _range_half_open(
        int(cols[0]), int(cols[1]), east, -180.0 + int(cols[1]) * dlon, west == east
    )
    return row_range, col_range


def _quadkey_cells(
    west: float, south: float, east: float, north: float, zoom: int
) -> tuple[range, range]:
    # Same rule as mercantile.tiles: clamp, then pull the east and south edges in by LL_EPSILON.
    south, north = max(-_TILES_MAX_LAT, south), min(_TILES_MAX_LAT, north)
    west, east = max(-180.0, west), min(180.0, east)
    ys, xs = quadkey._tile_index(
        np.array([north, south + _LL_EPSILON]), np.array([west, east - _LL_EPSILON]), zoom
    )
    # Unlike mercantile, never return nothing: a degenerate box on a tile edge gets its tile.
    return range(int(ys[0]), max(int(ys[1]), int(ys[0])) + 1), range(
        int(xs[0]), max(int(xs[1]), int(xs[0])) + 1
    )


def cover(
    bbox: Sequence[float],
    scheme: str = "geohash",
    precision: int = 5,
    *,
    max_cells: int = 1_000_000,
) -> list[str]:
    """Geocodes of the cells that intersect a bounding box, sorted.

    Parameters
    ----------
    bbox : sequence of 4 floats
        ``(west, south, east, north)`` in degrees. ``west > east`` means the box crosses the
        antimeridian (it is split at 180 degrees).
    scheme : {"geohash", "quadkey"}
        Geocode scheme.
    precision : int, default 5
        Geohash length (1..12) or quadkey zoom (1..45).
    max_cells : int, default 1_000_000
        Refuse to list more cells than this (a world-wide box at high precision has trillions).

    Returns
    -------
    list of str
        Sorted geocodes, without duplicates.

    Raises
    ------
    GeocodeError
        For a malformed box, an unknown scheme, a bad precision or too many cells.

    Notes
    -----
    Geohash: a cell is listed when it shares a positive area with the box, so a box equal to a
    cell's bounds gives that cell only, and cells that merely touch the east or north edge are
    left out. A degenerate box (a point or a line) lists the cells :func:`geohash.encode` puts its
    points in. Every point of the box encodes to a listed cell.

    Quadkey: the tiles :func:`mercantile.tiles` lists (latitudes clamped to +-85.051129, east
    and south edges pulled in by 1e-11 degrees), except that a degenerate box lying on a tile
    edge gets that tile instead of nothing.

    Examples
    --------
    >>> cover((0.0, 0.0, 45.0, 45.0), "geohash", 1)
    ['s']
    >>> len(cover((-180, -90, 180, 90), "quadkey", 3))
    64
    """
    scheme = _check_scheme(scheme)
    maximum = get_scheme(scheme).max_precision
    precision = geohash._check_precision(precision, maximum)
    west, south, east, north = check_bbox(bbox, error=GeocodeError)
    parts = [(west, south, east, north)]
    if west > east:
        parts = [(-180.0, south, east, north), (west, south, 180.0, north)]
    cells = _geohash_cells if scheme == "geohash" else _quadkey_cells
    blocks = [cells(*part, precision) for part in parts]
    total = sum(len(rows) * len(cols) for rows, cols in blocks)
    if total > max_cells:
        raise GeocodeError(
            f"bbox {tuple(bbox)!r} covers {total:,} {scheme} cells at precision {precision}, "
            f"more than max_cells={max_cells:,}; use a lower precision or a smaller box, "
            "or raise max_cells"
        )
    found: set[str] = set()
    for rows, cols in blocks:
        r, c = np.meshgrid(
            np.arange(rows.start, rows.stop), np.arange(cols.start, cols.stop), indexing="ij"
        )
        fmt = geohash._format if scheme == "geohash" else quadkey._format
        found.update(
            fmt(r.ravel().astype(np.int64), c.ravel().astype(np.int64), precision).tolist()
        )
    return sorted(found)
