"""Resolution reconciliation: bring bands of different pixel sizes onto one grid.

Sentinel-2 delivers bands at 10, 20 and 60 m; two sensors differ more (Landsat 30 m vs
Sentinel-2 10 m). Models need one grid, so every band is *up-sampled* (to a finer grid:
``"nearest"``, ``"bilinear"``, ``"cubic"``) or *down-sampled* (to a coarser one: ``"average"``,
``"mode"``, ``"nearest"``, ``"min"``, ``"max"``) onto a target grid. Coordinates, attributes and
the CRS (``spatial_ref`` with a rewritten GeoTransform) are kept.

Same-CRS grids are resampled with array code that runs on NumPy or CuPy alike: separable
sampling for nearest / bilinear / cubic convolution (Keys, a = -0.5, as GDAL's ``cubic``), and
block reductions for the down-sampling methods when the target pixel is a whole number of source
pixels on the same lattice. Other cases (a CRS change, non-integer ratios for the block methods)
go through :func:`rasterio.warp.reproject` on the CPU.

Lazy in, lazy out: a variable opened lazily (``open_datacube``'s default) or held by dask comes
back as a dask array of one ``(y, x)`` plane per block, read and resampled only when the result
is computed or chipped, so a series of full tiles never has to fit in memory. Arrays in memory
(NumPy, CuPy) are resampled at once.

Exactness: on aligned grids, nearest up-sampling by ``f`` repeats each pixel ``f x f`` times, and
any down-sampling of that back by ``f`` returns the original exactly.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import xarray as xr
from xarray.core import indexing

from workbench._optional import lazy_import
from workbench.composites._grid import Grid, array_namespace, grid_of, with_grid
from workbench.errors import CompositeError, DimensionError

__all__ = ["UP_METHODS", "DOWN_METHODS", "coarsen", "refine", "resample_to", "reconcile"]

UP_METHODS = ("nearest", "bilinear", "cubic")
DOWN_METHODS = ("average", "mode", "nearest", "min", "max")

T = TypeVar("T", xr.Dataset, xr.DataArray)
#: rasterio's warp of in-memory arrays from several threads at once (dask's, on lazy inputs)
#: warns of a missing geotransform now and then (odc-geo#131); warps run one at a time.
_WARP_LOCK = threading.Lock()


# -- array kernels (NumPy or CuPy) ---------------------------------------------------------------
def _keys(t: Any, xp: Any) -> list[Any]:
    """Cubic-convolution weights (Keys 1981, a = -0.5) for taps at -1, 0, 1, 2."""
    a = -0.5

    def near(s: Any) -> Any:
        return (a + 2) * s**3 - (a + 3) * s**2 + 1

    def far(s: Any) -> Any:
        return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a

    return [far(1 + t), near(t), near(1 - t), far(2 - t)]


def _sample_axis(arr: Any, axis: int, u: np.ndarray, method: str) -> Any:
    """Sample ``arr`` along ``axis`` at fractional pixel indices ``u`` (NaN outside)."""
    xp = array_namespace(arr)
    n = arr.shape[axis]
    uu = xp.asarray(u)
    inside = xp.asarray((u >= -0.5 - 1e-9) & (u <= n - 0.5 + 1e-9))
    taps: list[tuple[Any, Any]]
    if method == "nearest":
        taps = [(xp.clip(xp.floor(uu + 0.5).astype(np.int64), 0, n - 1), None)]
    else:
        base = xp.floor(uu)
        t = uu - base
        offsets: tuple[int, ...]
        if method == "bilinear":
            offsets, weights = (0, 1), [1 - t, t]
        else:
            offsets, weights = (-1, 0, 1, 2), _keys(t, xp)
        taps = [
            (xp.clip(base.astype(np.int64) + o, 0, n - 1), w)
            for o, w in zip(offsets, weights, strict=True)
        ]
    shape = [1] * arr.ndim
    shape[axis] = len(u)
    out: Any = None
    for idx, w in taps:
        val = xp.take(arr, idx, axis=axis)
        if w is not None:
            wb = w.reshape(shape).astype(arr.dtype)
            val = xp.where(wb != 0, wb * val, 0)
        out = val if out is None else out + val
    return xp.where(inside.reshape(shape), out, xp.nan)


def _block_reduce(arr: Any, fy: int, fx: int, method: str) -> Any:
    """Reduce non-overlapping ``fy x fx`` blocks of the last two axes (shape must divide)."""
    xp = array_namespace(arr)
    *lead, ny, nx = arr.shape
    blocks = arr.reshape(*lead, ny // fy, fy, nx // fx, fx)
    blocks = xp.moveaxis(blocks, -3, -2).reshape(*lead, ny // fy, nx // fx, fy * fx)
    if method == "nearest":
        return blocks[..., (fy // 2) * fx + fx // 2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks give NaN
        if method == "average":
            return xp.nanmean(blocks, axis=-1)
        if method == "min":
            return xp.nanmin(blocks, axis=-1)
        if method == "max":
            return xp.nanmax(blocks, axis=-1)
    # mode: the most frequent non-NaN value; ties go to the smallest value
    ordered = xp.sort(blocks, axis=-1)
    counts = xp.stack(
        [(ordered == ordered[..., j : j + 1]).sum(axis=-1) for j in range(fy * fx)], -1
    )
    best = xp.argmax(counts, axis=-1)[..., None]
    return xp.take_along_axis(ordered, best, axis=-1)[..., 0]


def _as_float(arr: Any) -> Any:
    if np.issubdtype(arr.dtype, np.floating):
        return arr
    return arr.astype(np.float32 if arr.dtype.itemsize <= 2 else np.float64)


# -- grid plumbing ---------------------------------------------------------------------------------
def _plane_by_plane(moved: xr.DataArray, fn: Any, dst: Grid) -> Any:
    """``fn`` over a lazy ``(..., y, x)`` array as a dask array of one ``(y, x)`` plane a block.

    A file opened lazily (or a dask array) is not read here: each plane (a band of one date) is
    read and resampled when the result is computed or chipped, so a series of full tiles never
    has to fit in memory at once.
    """
    from dask.array.utils import meta_from_array

    lead = {d: 1 for d in moved.dims[:-2]}
    planes = moved.chunk({**lead, moved.dims[-2]: -1, moved.dims[-1]: -1}).data
    dtype = _as_float(np.empty(0, dtype=moved.dtype)).dtype

    def block(plane: Any) -> Any:
        return fn(_as_float(plane))

    return planes.map_blocks(
        block,
        chunks=(*planes.chunks[:-2], (dst.ny,), (dst.nx,)),
        dtype=dtype,
        meta=meta_from_array(planes, ndim=planes.ndim, dtype=dtype),  # type: ignore[no-untyped-call]
    )


def _is_lazy(var: xr.Variable) -> bool:
    """Whether ``var`` is dask or a lazily indexed file (xarray's backend arrays), not in memory."""
    if var.chunks is not None:
        return True
    return isinstance(var._data, indexing.ExplicitlyIndexed) and not var._in_memory


def _apply(obj: T, src: Grid, dst: Grid, fn: Any) -> T:
    """Run ``fn(array(..., y, x)) -> array(..., ny', nx')`` on every spatial variable."""

    def one(da: xr.DataArray) -> xr.DataArray:
        if src.ydim not in da.dims or src.xdim not in da.dims:
            return da
        order = [d for d in da.dims if d not in (src.ydim, src.xdim)] + [src.ydim, src.xdim]
        moved = da.transpose(*order)
        if _is_lazy(moved.variable):  # lazy in, lazy out: nothing is read until the result is
            data = _plane_by_plane(moved, fn, dst)
        else:  # NumPy or CuPy in memory
            data = fn(_as_float(moved.data))
        coords = {
            k: v for k, v in da.coords.items() if src.ydim not in v.dims and src.xdim not in v.dims
        }
        out = xr.DataArray(data, dims=order, coords=coords, attrs=dict(da.attrs), name=da.name)
        out.attrs.pop("_FillValue", None)
        return out.transpose(*da.dims)

    if isinstance(obj, xr.DataArray):
        res: Any = one(obj)
    else:
        res = xr.Dataset({k: one(v) for k, v in obj.data_vars.items()}, attrs=dict(obj.attrs))
        keep = {
            k: v for k, v in obj.coords.items() if src.ydim not in v.dims and src.xdim not in v.dims
        }
        res = res.assign_coords(keep)
    return with_grid(res, obj, dst)  # type: ignore[return-value]


def _factors(factor: int | Mapping[str, int], grid: Grid) -> tuple[int, int]:
    if isinstance(factor, Mapping):
        fy, fx = int(factor.get(grid.ydim, 1)), int(factor.get(grid.xdim, 1))
    else:
        fy = fx = int(factor)
    if fy < 1 or fx < 1 or (not isinstance(factor, Mapping) and fy != factor):
        raise CompositeError(
            f"factor must be a positive integer (or a dim -> int mapping), got {factor!r}"
        )
    return fy, fx


def coarsen(
    obj: T, factor: int | Mapping[str, int], method: str = "average", boundary: str = "trim"
) -> T:
    """Down-sample by an integer factor with a block reduction.

    Parameters
    ----------
    obj : Dataset or DataArray
        Raster with regular spatial coordinates.
    factor : int or mapping
        Block size, the same for y and x, or per spatial dim name.
    method : {"average", "mode", "nearest", "min", "max"}
        NaN-aware reduction of each block; ``"nearest"`` takes the pixel at ``(f//2, f//2)`` of
        the block (the one GDAL picks), ``"mode"`` the most frequent value (ties: the smallest).
    boundary : {"trim", "pad"}
        Drop the trailing rows/columns that do not fill a block, or pad them with NaN.

    Returns
    -------
    Same type as ``obj``, float, on the coarser grid with the same upper-left corner.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> ds = s2_like(time=1, y=8, x=8)
    >>> coarsen(ds, 2).sizes["x"], float(coarsen(ds, 2).x[0])
    (4, 465190.0)
    """
    if method not in DOWN_METHODS:
        raise CompositeError(f"down-sampling method must be one of {DOWN_METHODS}, not {method!r}")
    if boundary not in ("trim", "pad"):
        raise CompositeError(f"boundary must be 'trim' or 'pad', not {boundary!r}")
    src = grid_of(obj)
    fy, fx = _factors(factor, src)
    rnd = math.floor if boundary == "trim" else math.ceil
    ny, nx = rnd(src.ny / fy), rnd(src.nx / fx)
    if ny == 0 or nx == 0:
        raise DimensionError(f"factor ({fy}, {fx}) is larger than the raster ({src.ny}, {src.nx})")
    dst = Grid(
        src.ydim, src.xdim, src.y0 + src.yres * (fy - 1) / 2, src.x0 + src.xres * (fx - 1) / 2,
        src.yres * fy, src.xres * fx, ny, nx,
    )  # fmt: skip

    def fn(arr: Any) -> Any:
        xp = array_namespace(arr)
        arr = arr[..., : ny * fy, : nx * fx]
        py, px = ny * fy - arr.shape[-2], nx * fx - arr.shape[-1]
        if py or px:
            pad = [(0, 0)] * (arr.ndim - 2) + [(0, py), (0, px)]
            arr = xp.pad(arr, pad, constant_values=np.nan)
        return _block_reduce(arr, fy, fx, method)

    return _apply(obj, src, dst, fn)


def refine(obj: T, factor: int | Mapping[str, int], method: str = "nearest") -> T:
    """Up-sample by an integer factor onto the finer grid with the same outer edges.

    Parameters
    ----------
    obj : Dataset or DataArray
        Raster with regular spatial coordinates.
    factor : int or mapping
        Pixels per source pixel along y and x (or per spatial dim name).
    method : {"nearest", "bilinear", "cubic"}
        ``"cubic"`` is cubic convolution (Keys, a = -0.5); NaNs spread to their neighbours.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> ds = s2_like(time=1, y=4, x=4)
    >>> bool((coarsen(refine(ds, 3), 3, "nearest").reflectance == ds.reflectance).all())
    True
    """
    if method not in UP_METHODS:
        raise CompositeError(f"up-sampling method must be one of {UP_METHODS}, not {method!r}")
    src = grid_of(obj)
    fy, fx = _factors(factor, src)
    dst = Grid(
        src.ydim, src.xdim, src.y0 - src.yres / 2 + src.yres / fy / 2,
        src.x0 - src.xres / 2 + src.xres / fx / 2, src.yres / fy, src.xres / fx,
        src.ny * fy, src.nx * fx,
    )  # fmt: skip
    return _resample_same_crs(obj, src, dst, method)


def _resample_same_crs(obj: T, src: Grid, dst: Grid, method: str) -> T:
    uy = (dst.ys - src.y0) / src.yres
    ux = (dst.xs - src.x0) / src.xres

    def fn(arr: Any) -> Any:
        return _sample_axis(_sample_axis(arr, arr.ndim - 2, uy, method), arr.ndim - 1, ux, method)

    return _apply(obj, src, dst, fn)


def _block_plan(src: Grid, dst: Grid) -> tuple[int, int, int, int] | None:
    """``(fy, fx, ky, kx)`` when dst pixels are whole source blocks on src's lattice."""
    ry, rx = dst.yres / src.yres, dst.xres / src.xres
    fy, fx = round(ry), round(rx)
    if fy < 1 or fx < 1 or abs(ry - fy) > 1e-6 or abs(rx - fx) > 1e-6:
        return None
    ky = (dst.y0 - dst.yres / 2 - (src.y0 - src.yres / 2)) / src.yres
    kx = (dst.x0 - dst.xres / 2 - (src.x0 - src.xres / 2)) / src.xres
    if abs(ky - round(ky)) > 1e-6 or abs(kx - round(kx)) > 1e-6:
        return None
    return fy, fx, round(ky), round(kx)


def _crs_of(obj: xr.Dataset | xr.DataArray) -> Any:
    from workbench.geo.crs import get_crs

    return get_crs(obj)


def resample_to(obj: T, like: xr.Dataset | xr.DataArray, method: str = "nearest") -> T:
    """Resample ``obj`` onto the grid (and CRS) of ``like``.

    Parameters
    ----------
    obj : Dataset or DataArray
        Source raster.
    like : Dataset or DataArray
        Target grid: its spatial coordinates and ``spatial_ref``.
    method : str
        One of :data:`UP_METHODS` or :data:`DOWN_METHODS`. Target pixels outside the source
        are NaN.

    Returns
    -------
    Same type as ``obj`` on ``like``'s grid, with ``like``'s spatial coordinates and CRS.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> fine = s2_like(time=1, y=8, x=8)
    >>> coarse = coarsen(fine, 2)
    >>> resample_to(fine, coarse, "average").reflectance.equals(coarse.reflectance)
    True
    """
    if method not in UP_METHODS + DOWN_METHODS:
        raise CompositeError(
            f"method must be one of {sorted(set(UP_METHODS + DOWN_METHODS))}, not {method!r}"
        )
    src, target = grid_of(obj), grid_of(like)
    dst = Grid(
        src.ydim, src.xdim, target.y0, target.x0, target.yres, target.xres, target.ny, target.nx
    )
    scrs, dcrs = _crs_of(obj), _crs_of(like)
    same_crs = scrs is None or dcrs is None or scrs == dcrs
    if same_crs and method in UP_METHODS:
        out = _resample_same_crs(obj, src, dst, method)
    elif same_crs and (plan := _block_plan(src, dst)) is not None:
        fy, fx, ky, kx = plan

        def fn(arr: Any) -> Any:
            xp = array_namespace(arr)
            y0, x0 = ky, kx
            y1, x1 = ky + dst.ny * fy, kx + dst.nx * fx
            pad = [(0, 0)] * (arr.ndim - 2)
            pad += [(max(-y0, 0), max(y1 - src.ny, 0)), (max(-x0, 0), max(x1 - src.nx, 0))]
            window = arr[..., max(y0, 0) : min(y1, src.ny), max(x0, 0) : min(x1, src.nx)]
            return _block_reduce(xp.pad(window, pad, constant_values=np.nan), fy, fx, method)

        out = _apply(obj, src, dst, fn)
    else:
        out = _reproject(obj, src, dst, scrs, dcrs if dcrs is not None else scrs, method)
    # ``like``'s own coordinate values, not centres recomputed from its transform: they can
    # differ in the last bits, and xarray would then align the two to all-NaN.
    ys = like[target.ydim].values if target.ydim in like.coords else None
    xs = like[target.xdim].values if target.xdim in like.coords else None
    return with_grid(out, like, dst, ys, xs)  # type: ignore[return-value]


def _reproject(obj: T, src: Grid, dst: Grid, scrs: Any, dcrs: Any, method: str) -> T:
    """CPU fallback through rasterio (GDAL warp) for CRS changes and irregular ratios."""
    warp = lazy_import("rasterio.warp", purpose="resampling across CRSs or by non-integer ratios")
    from affine import Affine

    def transform(g: Grid) -> Any:
        return Affine(g.xres, 0.0, g.x0 - g.xres / 2, 0.0, g.yres, g.y0 - g.yres / 2)

    def fn(arr: Any) -> Any:
        src_arr = np.asarray(arr, dtype=np.float64)
        lead = src_arr.shape[:-2]
        flat = src_arr.reshape(-1, src.ny, src.nx)
        out = np.full((flat.shape[0], dst.ny, dst.nx), np.nan)
        with _WARP_LOCK:  # one warp at a time: dask threads warping together upset GDAL
            for i in range(flat.shape[0]):
                warp.reproject(
                    flat[i], out[i], src_transform=transform(src), dst_transform=transform(dst),
                    src_crs=scrs, dst_crs=dcrs, src_nodata=np.nan, dst_nodata=np.nan,
                    resampling=warp.Resampling[method],
                )  # fmt: skip
        return out.reshape(*lead, dst.ny, dst.nx).astype(arr.dtype)

    return _apply(obj, src, dst, fn)


def reconcile(
    bands: Mapping[str, xr.DataArray],
    target: str | xr.Dataset | xr.DataArray,
    *,
    up: str = "bilinear",
    down: str = "average",
) -> xr.Dataset:
    """Put bands of different resolutions onto one grid, as variables of one Dataset.

    Parameters
    ----------
    bands : mapping of str to DataArray
        The bands, each on its own grid (e.g. ``{"B08": b08_10m, "B11": b11_20m}``).
    target : str or xarray object
        The name of the band whose grid is used, or any object with the target grid.
    up, down : str
        Method for bands coarser than the target (up-sampled) and finer (down-sampled).
        Bands already on the target resolution use ``"nearest"`` (exact on the same lattice).

    Returns
    -------
    xarray.Dataset
        One variable per band on the target grid; ``attrs["resampling"]`` says which method each
        band went through.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> ds = s2_like(time=1, y=8, x=8).reflectance.isel(time=0)
    >>> b08, b11 = ds.sel(band="B08", drop=True), coarsen(ds.sel(band="B11", drop=True), 2)
    >>> out = reconcile({"B08": b08, "B11": b11}, "B08")
    >>> dict(out.sizes), out.attrs["resampling"]["B11"]
    ({'y': 8, 'x': 8}, 'bilinear')
    """
    if up not in UP_METHODS:
        raise CompositeError(f"up must be one of {UP_METHODS}, not {up!r}")
    if down not in DOWN_METHODS:
        raise CompositeError(f"down must be one of {DOWN_METHODS}, not {down!r}")
    if isinstance(target, str):
        if target not in bands:
            raise DimensionError(f"target band {target!r} is not one of {sorted(bands)}")
        like: xr.Dataset | xr.DataArray = bands[target]
    else:
        like = target
    tgrid = grid_of(like)
    out, used = {}, {}
    for name, band in bands.items():
        g = grid_of(band)
        coarser = abs(g.xres) * abs(g.yres) > abs(tgrid.xres) * abs(tgrid.yres) * (1 + 1e-9)
        finer = abs(g.xres) * abs(g.yres) < abs(tgrid.xres) * abs(tgrid.yres) * (1 - 1e-9)
        method = up if coarser else down if finer else "nearest"
        res = resample_to(band, like, method)
        scalars = [c for c, v in res.coords.items() if v.ndim == 0 and c != "spatial_ref"]
        out[name] = res.drop_vars(scalars)
        used[name] = method
    ds = xr.Dataset(out)
    ds.attrs["resampling"] = used
    return ds
