"""Where and when chips are: centres, lon/lat bounds and time ranges, from coordinates only.

Everything is computed from the chip origins and the coordinate variables, never from
pixels, so it is cheap on any store.

Examples
--------
>>> from workbench.data.synthetic import era5_like
>>> from workbench.chips.grid import ChipGrid
>>> ds = era5_like(time=2, lat=8, lon=12)
>>> grid = ChipGrid.from_sizes(ds.sizes, {"lat": 4, "lon": 4})
>>> lon, lat = chip_centers(ds, grid, grid.origins([0, 5]))
>>> lon.tolist(), lat.tolist()
([-8.0, 0.0], [56.0, 52.0])
>>> chip_bounds(ds, grid, grid.origins([0])[0])
(-10.0, 54.0, -6.0, 58.0)
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from workbench.chips.grid import ChipGrid
from workbench.errors import DimensionError

__all__ = ["chip_centers", "chip_bounds", "chip_time", "time_dim"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def _span(
    obj: xr.Dataset | xr.DataArray,
    grid: ChipGrid,
    dim: Hashable,
    values: FloatArray,
    origins: np.ndarray[Any, Any],
) -> tuple[FloatArray, FloatArray]:
    """First and last pixel-centre coordinate of each chip along ``dim``."""
    if dim in grid.dims:
        axis = grid.dims.index(dim)
        start = origins[:, axis]
        return values[start], values[start + grid.sizes[axis] - 1]
    n = len(origins)
    return np.full(n, values[0]), np.full(n, values[-1])


def chip_centers(
    obj: xr.Dataset | xr.DataArray, grid: ChipGrid, origins: np.ndarray[Any, Any]
) -> tuple[FloatArray, FloatArray]:
    """``(lon, lat)`` in degrees of the centre of each chip (rows of ``origins``).

    Raises
    ------
    DimensionError
        No spatial dims (see :func:`workbench.geo.crs.spatial_dims`).
    CRSError
        A projected grid without a CRS.
    """
    from workbench.geo.crs import pixel_centers, require_crs, spatial_dims, xy_to_lonlat

    ydim, xdim = spatial_dims(obj)
    x, y = pixel_centers(obj)
    x0, x1 = _span(obj, grid, xdim, x, origins)
    y0, y1 = _span(obj, grid, ydim, y, origins)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    crs = require_crs(obj, "chip centres in lon/lat")
    lon, lat = xy_to_lonlat(cx, cy, crs)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def chip_bounds(
    obj: xr.Dataset | xr.DataArray, grid: ChipGrid, origin: np.ndarray[Any, Any]
) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` of one chip's pixel edges, in lon/lat degrees."""
    from workbench.geo.crs import (
        LONLAT,
        normalize_lonlat_bounds,
        pixel_centers,
        pixel_size,
        require_crs,
        spatial_dims,
        transform_bounds,
    )

    ydim, xdim = spatial_dims(obj)
    x, y = pixel_centers(obj)
    dx, dy = pixel_size(obj)
    origins = np.asarray(origin, dtype=np.int64).reshape(1, -1)
    x0, x1 = (float(v[0]) for v in _span(obj, grid, xdim, x, origins))
    y0, y1 = (float(v[0]) for v in _span(obj, grid, ydim, y, origins))
    hx, hy = abs(dx) / 2.0, abs(dy) / 2.0
    native = (min(x0, x1) - hx, min(y0, y1) - hy, max(x0, x1) + hx, max(y0, y1) + hy)
    crs = require_crs(obj, "chip bounds in lon/lat")
    if crs.is_geographic:
        return normalize_lonlat_bounds(native)
    return transform_bounds(native, crs, LONLAT)


def time_dim(obj: xr.Dataset | xr.DataArray) -> Hashable | None:
    """Return the time-like dim: named ``time``, else the first dim with a datetime coordinate."""
    if "time" in obj.sizes:
        return "time"
    for dim in obj.sizes:
        if dim in obj.coords and np.issubdtype(obj.coords[dim].dtype, np.datetime64):
            return dim
    return None


def chip_time(
    obj: xr.Dataset | xr.DataArray, grid: ChipGrid, origin: np.ndarray[Any, Any]
) -> tuple[np.datetime64, np.datetime64] | None:
    """``(first, last)`` time of one chip, or None when the data has no time dim.

    A time dim that is not chipped is kept whole in every chip, so the range is the
    data's.
    """
    dim = time_dim(obj)
    if dim is None:
        return None
    if dim not in obj.coords:
        raise DimensionError(
            f"time dim {dim!r} has no coordinate values; assign them, e.g. "
            f"`ds.assign_coords({dim}=...)`"
        )
    values = obj.coords[dim].values
    origins = np.asarray(origin, dtype=np.int64).reshape(1, -1)
    first, last = _span(obj, grid, dim, values, origins)
    return first[0], last[0]
