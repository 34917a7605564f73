"""Clip a datacube to an area of interest (``ds.wb.clip(aoi)``).

Rules
-----
* The AOI (bounds tuple, GeoJSON, shapely geometry, ``__geo_interface__``; see
  :mod:`workbench.geo.aoi`) is in lon/lat unless ``crs=`` (or a GeoJSON ``crs`` member)
  says otherwise, and is reprojected to the data's CRS with densified edges.
* The result keeps every pixel whose cell (centre +- half a pixel) overlaps the AOI's
  bounding box in the data's CRS, so the AOI is fully covered. Selection is by position,
  so descending latitudes (ERA5) and any axis order work, and the data stays lazy.
* Lon/lat data in 0..360 or -180..180 are both handled. When the AOI crosses the edge of
  the data's longitude frame (the antimeridian of -180..180 data, or 0 degrees of
  0..360 data) the columns are taken from both sides, ordered west to east, and the
  longitude coordinate is rewritten in the AOI's frame so it stays monotonic
  (e.g. 350..359.75 followed by 0..2 becomes -10..2).
* ``mask=True`` (the default for non-rectangular polygons) sets pixels whose centre lies
  outside the polygon to NaN in floating-point variables, lazily (reads are masked as
  they happen; NumPy or CuPy alike). Integer and boolean variables cannot hold NaN and
  are left unchanged: use the boolean ``aoi_mask (y, x)`` coordinate added to the result,
  e.g. ``ds.lulc.where(ds.aoi_mask)``.
* The ``GeoTransform`` of a rioxarray ``spatial_ref`` is updated to the new origin.

Examples
--------
>>> from workbench.data.synthetic import era5_like
>>> ds = era5_like(time=1, lat=8, lon=12)             # 1-degree cells, lon -10..2, lat 50..58
>>> sub = clip(ds, (-5.5, 52.2, -2.5, 54.9))
>>> sub.sizes["lat"], sub.sizes["lon"], float(sub.lon[0]), float(sub.lat[0])
(3, 4, -5.5, 54.5)
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, TypeVar

import numpy as np
import shapely
import xarray as xr
from shapely.affinity import translate
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from xarray.backends import BackendArray
from xarray.core import indexing

from workbench._array import array_namespace
from workbench._typing import AOILike
from workbench.errors import AOIError
from workbench.geo.aoi import describe_bounds, is_rectangle, parse_aoi, reproject_geometry
from workbench.geo.crs import (
    LONLAT,
    grid_mapping_name,
    lonlat_bounds,
    native_bounds,
    normalize_lonlat_bounds,
    pixel_centers,
    pixel_size,
    require_crs,
    spatial_dims,
)

__all__ = ["clip", "MaskedArray"]

T = TypeVar("T", xr.Dataset, xr.DataArray)


def _cells(
    centres: np.ndarray[Any, Any], half: float, lo: float, hi: float
) -> np.ndarray[Any, Any]:
    """Return the indices of cells ``c +- half`` overlapping ``[lo, hi]`` (touching excluded)."""
    if hi > lo and half > 0:
        hit = (centres + half > lo) & (centres - half < hi)
    else:  # a point or a line along this axis, or zero-size cells
        hit = (centres + half >= lo) & (centres - half <= hi)
    return np.flatnonzero(hit)


def _frame_pieces(geom: BaseGeometry, lo: float, hi: float) -> list[tuple[float, BaseGeometry]]:
    """Parts of a lon/lat geometry inside the data's longitude frame ``[lo, hi]``, with shifts."""
    frame = box(lo, -90.0, hi, 90.0)
    pieces = []
    for shift in (-720.0, -360.0, 0.0, 360.0, 720.0):
        part = translate(geom, xoff=shift)
        if part.bounds[2] < lo or part.bounds[0] > hi:
            continue
        part = part.intersection(frame)
        if not part.is_empty:
            pieces.append((shift, part))
    return pieces


def _positions(indices: list[np.ndarray[Any, Any]]) -> slice | np.ndarray[Any, Any]:
    """Return a slice when the (ordered) indices are one ascending run, else an index array."""
    order = np.concatenate(indices)
    _, first = np.unique(order, return_index=True)
    order = order[np.sort(first)]  # drop repeats, keep order
    if order.size and np.array_equal(order, np.arange(order[0], order[0] + order.size)):
        return slice(int(order[0]), int(order[-1]) + 1)
    return order


def _no_overlap(
    obj: xr.Dataset | xr.DataArray, geom: BaseGeometry, aoi_crs: Any, data_crs: Any
) -> AOIError:
    if aoi_crs.is_geographic:
        aoi_text = f"{describe_bounds(normalize_lonlat_bounds(geom.bounds))} (lon/lat)"
    else:
        aoi_text = f"{describe_bounds(geom.bounds)} ({aoi_crs.to_string()})"
    data_text = f"{describe_bounds(lonlat_bounds(obj))} (lon/lat)"
    if not data_crs.is_geographic:
        data_text += f", {describe_bounds(native_bounds(obj))} ({data_crs.to_string()})"
    return AOIError(
        f"the AOI {aoi_text} does not overlap the data, whose extent is {data_text}. "
        "Check the AOI's coordinate order (west, south, east, north) and its CRS (crs=...)"
    )


class MaskedArray(BackendArray):
    """Lazy ``where(mask, source, NaN)`` for a variable with spatial dims at ``axes``.

    Reads only what is indexed; works for NumPy and CuPy results (array namespace).
    """

    def __init__(self, source: xr.Variable, mask: np.ndarray[Any, Any], axes: tuple[int, int]):
        self.source = source
        self.mask = mask
        self.axes = axes
        self.shape = source.shape
        self.dtype = source.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_indexing_method
        )

    def _raw_indexing_method(self, key: tuple[Any, ...]) -> Any:
        data = self.source[key].data
        iy, ix = self.axes
        sub = self.mask[key[iy], :]
        sub = sub[key[ix]] if sub.ndim == 1 else sub[:, key[ix]]
        kept = [d for d, k in enumerate(key) if not isinstance(k, int | np.integer)]
        if iy in kept and ix in kept and iy > ix:
            sub = sub.T
        shape = [data.shape[j] if d in (iy, ix) else 1 for j, d in enumerate(kept)]
        xp = array_namespace(data)
        keep = xp.asarray(np.ascontiguousarray(sub).reshape(shape))
        return xp.where(keep, data, xp.asarray(np.nan, dtype=data.dtype))


def _mask_variable(
    var: xr.Variable, inside: np.ndarray[Any, Any], dims: tuple[Hashable, Hashable]
) -> xr.Variable:
    """``var`` with NaN where ``inside`` is False: lazily, or directly if in memory / dask."""
    axes = (var.dims.index(dims[0]), var.dims.index(dims[1]))
    shape = [var.shape[i] if i in axes else 1 for i in range(var.ndim)]
    keep = (inside if axes[0] < axes[1] else inside.T).reshape(shape)
    if var.chunks is not None:  # dask: stay lazy with dask
        import dask.array

        return var.copy(data=dask.array.where(keep, var.data, np.nan).astype(var.dtype))
    if var._in_memory:
        xp = array_namespace(var.data)
        nan = xp.asarray(np.nan, dtype=var.dtype)
        return var.copy(data=xp.where(xp.asarray(keep), var.data, nan))
    array = MaskedArray(var, inside, axes)
    return xr.Variable(var.dims, indexing.LazilyIndexedArray(array), var.attrs, var.encoding)


def _update_geotransform(out: T, dims: tuple[Hashable, Hashable], wrapped: bool) -> T:
    name = grid_mapping_name(out)
    if name is None or name not in out.coords or "GeoTransform" not in out.coords[name].attrs:
        return out
    ref = out.coords[name].copy()
    if wrapped:
        del ref.attrs["GeoTransform"]
    else:
        x, y = pixel_centers(out)
        dx, dy = pixel_size(out)
        parts = ref.attrs["GeoTransform"].split()
        parts[0], parts[3] = repr(float(x[0] - dx / 2)), repr(float(y[0] - dy / 2))
        ref.attrs["GeoTransform"] = " ".join(parts)
    return out.assign_coords({name: ref})


def clip(obj: T, aoi: AOILike, *, crs: Any = None, mask: bool | None = None) -> T:
    """Subset ``obj`` to an area of interest, reprojecting the AOI to the data's CRS.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A georeferenced cube (see :func:`workbench.geo.crs.get_crs`).
    aoi : tuple, GeoJSON mapping or str, shapely geometry, or ``__geo_interface__``
        ``(west, south, east, north)``, a Feature, FeatureCollection or geometry.
    crs : pyproj.CRS, str or int, optional
        The AOI's CRS when it is not lon/lat (EPSG:4326).
    mask : bool, optional
        Set float pixels whose centre is outside the AOI polygon to NaN. Default: True for
        non-rectangular polygons, False otherwise (boxes, points, lines).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        The same type, lazily subset; with an ``aoi_mask (y, x)`` coordinate when masked.

    Raises
    ------
    CRSError
        If ``obj`` has no CRS (the message says how to set one).
    AOIError
        If the AOI is malformed or does not overlap the data (both extents are named).

    Examples
    --------
    >>> from workbench.data.synthetic import era5_like
    >>> ds = era5_like(time=1, lat=8, lon=12)
    >>> tri = {"type": "Polygon", "coordinates": [[[-6, 51], [-2, 51], [-6, 55], [-6, 51]]]}
    >>> sub = clip(ds, tri)
    >>> dict(sub.sizes), int(sub.aoi_mask.sum()), bool(sub.t2m.isnull().any())
    ({'time': 1, 'lat': 4, 'lon': 4}, 10, True)
    """
    data_crs = require_crs(obj, "clipping to an AOI")
    geom, declared = parse_aoi(aoi, crs)
    aoi_crs = declared or LONLAT
    if mask is None:
        mask = geom.geom_type in ("Polygon", "MultiPolygon") and not is_rectangle(geom)
    ydim, xdim = spatial_dims(obj)
    x, y = pixel_centers(obj)
    dx, dy = pixel_size(obj)
    hx, hy = abs(dx) / 2, abs(dy) / 2

    if data_crs.is_geographic:
        if not aoi_crs.equals(data_crs, ignore_axis_order=True):
            geom = reproject_geometry(geom, aoi_crs, data_crs)
        pieces = _frame_pieces(geom, float(x.min() - hx), float(x.max() + hx))
    else:
        pieces = [(0.0, reproject_geometry(geom, aoi_crs, data_crs))]

    xs, ys, used = [], [], []
    for shift, part in pieces:
        west, south, east, north = part.bounds
        xi, yi = _cells(x, hx, west, east), _cells(y, hy, south, north)
        if xi.size and yi.size:
            xs.append((west - shift, shift, xi))
            ys.append(yi)
            used.append(part)
    if not used:
        raise _no_overlap(obj, parse_aoi(aoi, crs)[0], aoi_crs, data_crs)

    xs.sort(key=lambda item: item[0])  # west to east in the AOI's frame
    ysel = slice(int(min(i.min() for i in ys)), int(max(i.max() for i in ys)) + 1)
    xsel = _positions([item[2] for item in xs])
    out = obj.isel({ydim: ysel, xdim: xsel})
    wrapped = len(xs) > 1 and any(item[1] != xs[0][1] for item in xs)
    if wrapped:  # rewrite lon in the AOI's frame so it stays monotonic
        new_x = np.concatenate([x[item[2]] - item[1] for item in xs])
        _, first = np.unique(np.concatenate([item[2] for item in xs]), return_index=True)
        out = out.assign_coords({xdim: (xdim, new_x[np.sort(first)], obj[xdim].attrs)})
    out = _update_geotransform(out, (ydim, xdim), wrapped)

    if mask and geom.geom_type in ("Polygon", "MultiPolygon"):
        region = shapely.union_all(used)
        shapely.prepare(region)
        data_x = x[xsel]  # centres in the data's frame (before any rewrite)
        xx, yy = np.meshgrid(data_x, y[ysel])
        inside = np.asarray(shapely.intersects_xy(region, xx, yy))
        out = out.assign_coords(aoi_mask=((ydim, xdim), inside))
        if not inside.all():
            out = _apply_mask(out, inside, (ydim, xdim))
    return out


def _apply_mask(out: T, inside: np.ndarray[Any, Any], dims: tuple[Hashable, Hashable]) -> T:
    """Mask the floating-point variables that have both spatial dims."""
    if isinstance(out, xr.DataArray):
        if out.dtype.kind not in "fc":
            return out
        tmp = out.to_dataset(name="__workbench__")
        tmp["__workbench__"] = _mask_variable(out.variable, inside, dims)
        masked = tmp["__workbench__"]
        masked.name = out.name
        return masked
    for name, arr in list(out.data_vars.items()):
        if arr.dtype.kind in "fc" and set(dims) <= set(arr.dims):
            out[name] = _mask_variable(arr.variable, inside, dims)
    return out
