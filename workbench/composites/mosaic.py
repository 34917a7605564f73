"""Splice partial tiles of one place into one complete tile (paper Fig. 3).

Splitting scenes by geocode leaves *partial* pieces: the part of a geocode cell one scene covers,
padded with fill values. :func:`mosaic` puts pieces that share a CRS, a pixel size and a pixel
lattice onto the union grid (or onto a given extent, e.g. a geocode cell in the data CRS) and
fills every pixel from the first piece, in priority order, that holds a valid value there (all
bands finite and not the integer ``_FillValue``). It reports the pixel coverage of the result.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from workbench.composites._grid import Grid, grid_of, to_numpy, with_grid
from workbench.errors import CompositeError, CRSError, DimensionError

__all__ = ["mosaic", "valid_pixels"]

Priority = Literal["given", "coverage", "latest"]


def valid_pixels(ds: xr.Dataset, ydim: str, xdim: str) -> np.ndarray:
    """Boolean ``(y, x)`` array: pixels valid in every band of every variable.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> valid_pixels(s2_like(time=1, y=3, x=4).isel(time=0), "y", "x").shape
    (3, 4)
    """
    ok = np.ones((ds.sizes[ydim], ds.sizes[xdim]), dtype=bool)
    for var in ds.data_vars.values():
        if ydim not in var.dims or xdim not in var.dims:
            continue
        arr = to_numpy(var.transpose(..., ydim, xdim).data)
        good = (
            np.isfinite(arr) if np.issubdtype(arr.dtype, np.inexact) else np.ones(arr.shape, bool)
        )
        fill = var.attrs.get("_FillValue", var.encoding.get("_FillValue"))
        if fill is not None and not (isinstance(fill, float) and math.isnan(fill)):
            good &= arr != fill
        ok &= good.reshape(-1, *good.shape[-2:]).all(axis=0)
    return ok


def _index_range(origin: float, res: float, lo: float, hi: float) -> tuple[int, int]:
    """Half-open range of lattice indices whose pixel centres lie in ``[lo, hi)``."""
    eps = 1e-9
    a, b = (lo - origin) / res, (hi - origin) / res
    if res > 0:
        return math.ceil(a - eps), math.ceil(b - eps)
    return math.floor(b + eps) + 1, math.floor(a + eps) + 1


def _stamp(when: Any) -> float:
    """Nanoseconds since the epoch, or -inf for an unknown date (sorted last by "latest")."""
    if when is None:
        return -math.inf
    value = np.datetime64(when, "ns")
    return -math.inf if np.isnat(value) else float(value.astype(np.int64))


def _crs_text(ds: xr.Dataset) -> str | None:
    if "spatial_ref" not in ds.coords:
        return None
    attrs = ds.coords["spatial_ref"].attrs
    return attrs.get("crs_wkt") or attrs.get("spatial_ref")


def _prepare(piece: xr.Dataset | xr.DataArray, time_dim: str) -> tuple[xr.Dataset, Any]:
    ds = piece.to_dataset(name=piece.name or "data") if isinstance(piece, xr.DataArray) else piece
    when = None
    if time_dim in ds.dims:
        if ds.sizes[time_dim] != 1:
            raise DimensionError(
                f"a piece has {ds.sizes[time_dim]} steps along {time_dim!r}; mosaic takes one "
                "image per piece: composite or select a date first"
            )
        when = ds[time_dim].values[0] if time_dim in ds.coords else None
        ds = ds.isel({time_dim: 0})
    elif time_dim in ds.coords:
        when = ds[time_dim].values
    if time_dim in ds.coords:
        ds = ds.drop_vars(time_dim)
    return ds, when


def mosaic(
    pieces: Sequence[xr.Dataset | xr.DataArray],
    *,
    priority: Priority | str = "given",
    bounds: tuple[float, float, float, float] | None = None,
    time_dim: str = "time",
) -> xr.Dataset:
    """Combine partial pieces of one place onto their union grid (or ``bounds``).

    Parameters
    ----------
    pieces : sequence of Dataset or DataArray
        Pieces on the same CRS, pixel size and lattice, with the same variables and non-spatial
        dims. Each holds one image (a size-1 or scalar ``time_dim`` is allowed).
    priority : {"given", "coverage", "latest"}
        Which piece wins where several are valid: the earlier in ``pieces``, the one with more
        valid pixels, or the most recent one.
    bounds : tuple, optional
        ``(xmin, ymin, xmax, ymax)`` in the data CRS of the output extent (pixels whose centres
        fall inside); default: the union of the pieces.
    time_dim : str
        Name of the time coordinate of the pieces.

    Returns
    -------
    xarray.Dataset
        The variables (float; NaN where no piece is valid), ``source_piece`` (index into
        ``pieces``, -1 in gaps), ``source_time`` when the pieces have dates, and attrs
        ``pixel_coverage`` (percent of valid output pixels) and ``piece_coverage`` (percent of
        the output each piece could fill).

    Raises
    ------
    DimensionError
        For no pieces, mismatched pixel sizes, lattices, variables or band dims.
    CRSError
        When the pieces' CRSs differ.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> scene = s2_like(time=1, y=8, x=8).isel(time=0)[["reflectance"]]
    >>> left, right = scene.isel(x=slice(0, 5)), scene.isel(x=slice(4, 8))
    >>> out = mosaic([left, right])
    >>> out.attrs["pixel_coverage"], bool((out.reflectance == scene.reflectance).all())
    (100.0, True)
    """
    if not pieces:
        raise DimensionError("mosaic needs at least one piece; got an empty sequence")
    if priority not in ("given", "coverage", "latest"):
        raise CompositeError(f"priority must be 'given', 'coverage' or 'latest', not {priority!r}")
    prepared = [_prepare(p, time_dim) for p in pieces]
    dss = [p[0] for p in prepared]
    times = [p[1] for p in prepared]
    grids = [grid_of(ds) for ds in dss]
    ref, ref_ds = grids[0], dss[0]
    crs0 = _crs_text(ref_ds)
    for i, (g, ds) in enumerate(zip(grids, dss, strict=True)):
        if not (
            math.isclose(g.xres, ref.xres, rel_tol=1e-6)
            and math.isclose(g.yres, ref.yres, rel_tol=1e-6)
        ):
            raise DimensionError(
                f"piece {i} has pixel size ({g.xres}, {g.yres}) but piece 0 has ({ref.xres}, "
                f"{ref.yres}); resample first (workbench.composites.resample.resample_to)"
            )
        for off, axis in (((g.x0 - ref.x0) / ref.xres, "x"), ((g.y0 - ref.y0) / ref.yres, "y")):
            if abs(off - round(off)) > 1e-3:
                raise DimensionError(
                    f"piece {i} is shifted by {off - math.floor(off):.3f} pixel along {axis} from "
                    "piece 0's lattice; resample it onto piece 0's grid first"
                )
        crs = _crs_text(ds)
        if crs0 is not None and crs is not None and crs != crs0:
            raise CRSError(f"piece {i} has a different CRS than piece 0; reproject it first")
        if sorted(map(str, ds.data_vars)) != sorted(map(str, ref_ds.data_vars)):
            raise DimensionError(
                f"piece {i} has variables {sorted(map(str, ds.data_vars))}, piece 0 has "
                f"{sorted(map(str, ref_ds.data_vars))}"
            )
    offs = [(round((g.y0 - ref.y0) / ref.yres), round((g.x0 - ref.x0) / ref.xres)) for g in grids]
    if bounds is None:
        ky0 = min(o[0] for o in offs)
        ky1 = max(o[0] + g.ny for o, g in zip(offs, grids, strict=True))
        kx0 = min(o[1] for o in offs)
        kx1 = max(o[1] + g.nx for o, g in zip(offs, grids, strict=True))
    else:
        xmin, ymin, xmax, ymax = bounds
        ky0, ky1 = _index_range(ref.y0, ref.yres, ymin, ymax)
        kx0, kx1 = _index_range(ref.x0, ref.xres, xmin, xmax)
        if ky1 <= ky0 or kx1 <= kx0:
            raise DimensionError(f"bounds {bounds} hold no pixel centre of the pieces' grid")
    out_grid = Grid(
        ref.ydim, ref.xdim, ref.y0 + ref.yres * ky0, ref.x0 + ref.xres * kx0,
        ref.yres, ref.xres, ky1 - ky0, kx1 - kx0,
    )  # fmt: skip
    ny, nx = out_grid.ny, out_grid.nx

    valids = [valid_pixels(ds, ref.ydim, ref.xdim) for ds in dss]
    windows = []
    for (oy, ox), g, v in zip(offs, grids, valids, strict=True):
        ty0, ty1 = max(oy - ky0, 0), min(oy - ky0 + g.ny, ny)
        tx0, tx1 = max(ox - kx0, 0), min(ox - kx0 + g.nx, nx)
        sy, sx = ty0 - (oy - ky0), tx0 - (ox - kx0)
        win = (slice(ty0, max(ty1, ty0)), slice(tx0, max(tx1, tx0)))
        src = (slice(sy, sy + max(ty1 - ty0, 0)), slice(sx, sx + max(tx1 - tx0, 0)))
        windows.append((win, src, v[src]))
    cover = [100.0 * w[2].sum() / (ny * nx) for w in windows]
    order = list(range(len(dss)))
    if priority == "coverage":
        order.sort(key=lambda i: -cover[i])
    elif priority == "latest":
        stamps = [_stamp(t) for t in times]
        order.sort(key=lambda i: -stamps[i])

    source = np.full((ny, nx), -1, dtype=np.int16)
    for i in order:
        win, _, valid = windows[i]
        take = valid & (source[win] < 0)
        source[win][take] = i

    out_vars: dict[Hashable, xr.DataArray] = {}
    for name, var0 in ref_ds.data_vars.items():
        other = [d for d in var0.dims if d not in (ref.ydim, ref.xdim)]
        shape = tuple(var0.sizes[d] for d in other)
        dtype = np.result_type(var0.dtype, np.float32)
        buf = np.full((*shape, ny, nx), np.nan, dtype=dtype)
        for i, ds in enumerate(dss):
            win, src, _ = windows[i]
            sel = source[win] == i
            if not sel.any():
                continue
            arr = to_numpy(ds[name].transpose(*other, ref.ydim, ref.xdim).data)
            if arr.shape[:-2] != shape:
                raise DimensionError(f"variable {name!r} of piece {i} has shape {arr.shape[:-2]} "
                                     f"along {other}, piece 0 has {shape}")  # fmt: skip
            region = buf[(..., *win)]
            region[..., sel] = arr[(..., *src)][..., sel]
        attrs = {k: v for k, v in var0.attrs.items() if k != "_FillValue"}
        da = xr.DataArray(buf, dims=(*other, ref.ydim, ref.xdim), attrs=attrs)
        out_vars[str(name)] = da.transpose(*var0.dims)
    out_vars["source_piece"] = xr.DataArray(
        source,
        dims=(ref.ydim, ref.xdim),
        attrs={"long_name": "index of the piece each pixel came from (-1: gap)"},
    )
    if any(t is not None for t in times):
        tarr = np.array([np.datetime64(t if t is not None else "NaT", "ns") for t in times])
        src_time = np.where(source >= 0, tarr[np.clip(source, 0, None)], np.datetime64("NaT", "ns"))
        out_vars["source_time"] = xr.DataArray(src_time, dims=(ref.ydim, ref.xdim))
    coords = {
        k: v for k, v in ref_ds.coords.items()
        if ref.ydim not in v.dims and ref.xdim not in v.dims and k != "spatial_ref"
    }  # fmt: skip
    out = xr.Dataset(out_vars, coords=coords, attrs=dict(ref_ds.attrs))
    ys, xs = out_grid.ys, out_grid.xs
    for ds, (win, src, _) in zip(dss, windows, strict=True):  # reuse the pieces' exact floats
        ys[win[0]] = ds[ref.ydim].values[src[0]]
        xs[win[1]] = ds[ref.xdim].values[src[1]]
    result = with_grid(out, ref_ds, out_grid, ys, xs)
    result.attrs.update(
        pixel_coverage=float(100.0 * (source >= 0).mean()),
        piece_coverage=[float(c) for c in cover],
        mosaic_priority=str(priority),
    )
    assert isinstance(result, xr.Dataset)
    return result
