"""Cloud-free temporal composites: one image from temporally close scenes of one place.

Every pixel takes its value from the observations that are *valid* there: not flagged by the
cloud mask, and finite (not NaN, not the integer ``_FillValue``) in every composited band. A pixel
with no valid observation at all is a *gap*: NaN in every variable, ``NaT`` in ``source_time``
and 0 in ``valid_count``; ``attrs["gap_fraction"]`` reports their share.

Methods
-------
``"median"``
    Per-pixel, per-band median of the valid observations (a synthetic spectrum). Its
    ``source_time`` is the valid observation nearest the median spectrum (least sum of squared
    differences over all composited bands; ties go to the earliest date).
``"latest"``
    The most recent valid observation, all bands from that date.
``"best"``
    The valid observation from the clearest scene (lowest share of cloudy pixels over the whole
    scene; ties go to the later date), all bands from that date.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from typing import Any, Literal

import numpy as np
import xarray as xr

from workbench.composites._grid import array_namespace, to_numpy
from workbench.composites.clouds import spectral_cloud_mask
from workbench.composites.qa import provider_masks
from workbench.errors import CompositeError, DimensionError

__all__ = ["composite", "METHODS"]

METHODS = ("median", "best", "latest")
Method = Literal["median", "best", "latest"]


def _check_mask(ds: xr.Dataset, mask: xr.DataArray, dim: str) -> None:
    if dim not in mask.dims:
        raise DimensionError(
            f"the cloud mask has dims {tuple(mask.dims)} but no {dim!r} dimension; "
            f"it needs one mask per date, e.g. dims ({dim!r}, 'y', 'x')"
        )
    for d in mask.dims:
        if d not in ds.dims:
            raise DimensionError(
                f"cloud mask dimension {d!r} is not a dimension of the data {dict(ds.sizes)}; "
                "rename or select it so the mask matches the data"
            )
        if mask.sizes[d] != ds.sizes[d]:
            raise DimensionError(
                f"cloud mask has {mask.sizes[d]} elements along {d!r} but the data has "
                f"{ds.sizes[d]}; select the matching dates, e.g. mask.sel({d}=ds.{d})"
            )
        if d in mask.indexes and d in ds.indexes and not mask.indexes[d].equals(ds.indexes[d]):
            raise DimensionError(
                f"cloud mask coordinate {d!r} differs from the data's "
                f"({mask.indexes[d][:3].tolist()}... vs {ds.indexes[d][:3].tolist()}...); "
                f"align them, e.g. mask.sel({d}=ds.{d})"
            )


def _resolve_mask(
    ds: xr.Dataset,
    cloud_mask: xr.DataArray | str | None,
    dim: str,
    spectral: Mapping[str, Any],
) -> tuple[xr.Dataset, xr.DataArray, str]:
    if isinstance(cloud_mask, str):
        if cloud_mask not in ds.data_vars:
            raise DimensionError(
                f"cloud_mask={cloud_mask!r} is not a variable of the dataset "
                f"(variables: {sorted(map(str, ds.data_vars))}); pass a DataArray or None"
            )
        mask, source = ds[cloud_mask], f"variable {cloud_mask!r}"
        ds = ds.drop_vars(cloud_mask)
    elif isinstance(cloud_mask, xr.DataArray):
        mask, source = cloud_mask, f"DataArray {cloud_mask.name!r}"
    elif cloud_mask is None and (found := provider_masks(ds)) is not None:
        mask = found.cloud | ~found.valid  # the provider's invalid pixels are no observation
        source = f"provider mask {', '.join(found.variables)} (workbench.composites.qa)"
        ds = ds.drop_vars(list(found.variables))
    elif cloud_mask is None:
        mask = spectral_cloud_mask(ds, **spectral)
        source = "spectral test (Fmask potential cloud pixels; workbench.composites.clouds)"
    else:
        raise CompositeError(
            f"cloud_mask must be a DataArray, a variable name or None, not {type(cloud_mask)!r}"
        )
    _check_mask(ds, mask, dim)
    return ds, mask, source


def _float_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    if np.issubdtype(dtype, np.floating):
        return dtype
    if np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def composite(
    stack: xr.Dataset | xr.DataArray,
    cloud_mask: xr.DataArray | str | None = None,
    method: Method | str = "median",
    dim: str = "time",
    **spectral: Any,
) -> xr.Dataset:
    """Build a cloud-free composite along ``dim`` and record where each pixel came from.

    Parameters
    ----------
    stack : Dataset or DataArray
        Scenes of one place stacked along ``dim``. Variables holding ``dim`` and the mask's
        pixel dims are composited; variables without ``dim`` are passed through; others
        (e.g. a per-date scalar) are dropped.
    cloud_mask : DataArray, str or None
        Non-zero (or NaN) = cloud. A DataArray over ``dim`` and the pixel dims (its coords
        must match the data's), the name of a variable of ``stack`` (not composited), or
        ``None``: the provider's mask when ``stack`` has one (SCL, QA_PIXEL, QA60, MSK_CLDPRB,
        ``cloud_mask``; see :func:`~workbench.composites.qa.provider_masks`; not composited),
        else :func:`~workbench.composites.clouds.spectral_cloud_mask`.
    method : {"median", "best", "latest"}
        See the module docstring.
    dim : str
        The dimension to composite over.
    **spectral
        Options of the spectral test (``bands=``, ``band_dim=``, ``scale=``) when
        ``cloud_mask`` is None.

    Returns
    -------
    xarray.Dataset
        The composited variables (float; integers become float32/float64 so that gaps are
        NaN), ``source_time`` (datetime64, NaT in gaps; the position along ``dim`` if it has no
        datetime coordinate), ``valid_count`` (valid observations per pixel), and attrs
        ``composite_method``, ``cloud_mask``, ``gap_fraction``.

    Raises
    ------
    DimensionError
        When ``dim`` is missing, or the mask's dims, sizes or coords do not match the data.
    CompositeError
        For an unknown ``method`` or a ``cloud_mask`` of a type it does not take.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> ds = s2_like(time=4, y=16, x=16, cloud_fraction=0.2)
    >>> out = composite(ds, cloud_mask="cloud_mask", method="best")
    >>> sorted(out.data_vars)
    ['reflectance', 'source_time', 'valid_count']
    >>> bool((out.valid_count > 0).all())
    True
    """
    if method not in METHODS:
        raise CompositeError(f"method must be one of {METHODS}, not {method!r}")
    if isinstance(stack, xr.DataArray):
        ds = stack.to_dataset(name=stack.name if stack.name is not None else "composite")
    else:
        ds = stack
    if dim not in ds.dims:
        raise DimensionError(
            f"dimension {dim!r} not found in dims {dict(ds.sizes)}; pass dim=<the time dimension>"
        )
    ds, mask, source = _resolve_mask(ds, cloud_mask, dim, spectral)
    if dim in ds.indexes:  # sort by date so that ties resolve by time order
        order = np.argsort(ds.indexes[dim].values, kind="stable")
        ds, mask = ds.isel({dim: order}), mask.isel({dim: order})
    pixel_dims = [str(d) for d in mask.dims if d != dim]
    names = [n for n, v in ds.data_vars.items() if dim in v.dims and set(pixel_dims) <= set(v.dims)]
    if not names:
        raise DimensionError(
            f"no variable has both {dim!r} and the mask's pixel dims {pixel_dims}; "
            f"variables: { {str(k): v.dims for k, v in ds.data_vars.items()} }"
        )
    static = [n for n, v in ds.data_vars.items() if dim not in v.dims]
    first = ds[names[0]].data
    xp = array_namespace(first)

    # (T, *pixel, E) float stack of every composited element, plus per-variable layout
    blocks, layout = [], []
    for n in names:
        var = ds[n]
        extra = [str(d) for d in var.dims if d != dim and d not in pixel_dims]
        arr = var.transpose(dim, *pixel_dims, *extra).data
        arr = xp.asarray(arr)
        fdtype = _float_dtype(arr.dtype)
        farr = arr.astype(fdtype)
        fill = var.attrs.get("_FillValue", var.encoding.get("_FillValue"))
        if fill is not None and np.issubdtype(arr.dtype, np.integer):
            farr = xp.where(arr == fill, xp.nan, farr)
        shape_extra = tuple(var.sizes[d] for d in extra)
        blocks.append(farr.reshape(*farr.shape[: 1 + len(pixel_dims)], -1))
        layout.append((n, extra, shape_extra, fdtype))
    dtype = np.result_type(*[b.dtype for b in blocks])
    data = xp.concatenate([b.astype(dtype) for b in blocks], axis=-1)

    cloud = xp.asarray(mask.transpose(dim, *pixel_dims).data)
    cloudy = (cloud != 0) if cloud.dtype != bool else cloud
    valid = ~cloudy & xp.all(xp.isfinite(data), axis=-1)
    has_obs = valid.any(axis=0)
    ntime = data.shape[0]
    rank = xp.arange(ntime).reshape((ntime,) + (1,) * len(pixel_dims))

    if method == "median":
        vals = xp.where(valid[..., None], data, xp.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are the gaps
            values = xp.nanmedian(vals, axis=0)
        dist = xp.where(valid, xp.nansum((vals - values[None]) ** 2, axis=-1), xp.inf)
        idx = xp.argmin(dist, axis=0)
    else:
        if method == "latest":
            pref = rank
        else:
            scene_cloud = cloudy.reshape(ntime, -1).mean(axis=1) if pixel_dims else cloudy * 1.0
            # clearest first; among equals the later date wins
            key = np.lexsort((-np.arange(ntime), to_numpy(scene_cloud)))
            pref_np = np.empty(ntime, dtype=np.int64)
            pref_np[key] = np.arange(ntime)[::-1]
            pref = xp.asarray(pref_np).reshape(rank.shape)
        idx = xp.argmax(xp.where(valid, pref, -1), axis=0)
        values = xp.take_along_axis(data, idx[None, ..., None], axis=0)[0]
        values = xp.where(has_obs[..., None], values, xp.nan)

    out_vars: dict[Hashable, Any] = {}
    start = 0
    for n, extra, shape_extra, fdtype in layout:
        size = int(np.prod(shape_extra)) if shape_extra else 1
        part = values[..., start : start + size].reshape(*values.shape[:-1], *shape_extra)
        start += size
        var = ds[n]
        da = xr.DataArray(part.astype(fdtype), dims=(*pixel_dims, *extra), attrs=dict(var.attrs))
        da.attrs.pop("_FillValue", None)
        out_vars[n] = da.transpose(*[d for d in var.dims if d != dim])
    for n in static:
        out_vars[n] = ds[n]

    if dim in ds.indexes and np.issubdtype(ds.indexes[dim].dtype, np.datetime64):
        times = np.asarray(ds.indexes[dim].values)
        src = np.where(to_numpy(has_obs), times[to_numpy(idx)], np.array("NaT", dtype=times.dtype))
    else:
        src = np.where(to_numpy(has_obs), to_numpy(idx), -1)
    out_vars["source_time"] = xr.DataArray(
        src, dims=pixel_dims, attrs={"long_name": f"{dim} each pixel was taken from ({method})"}
    )
    out_vars["valid_count"] = xr.DataArray(
        valid.sum(axis=0).astype(np.int32),
        dims=pixel_dims,
        attrs={"long_name": f"number of valid (cloud-free, finite) observations along {dim}"},
    )
    coords = {k: v for k, v in ds.coords.items() if dim not in v.dims}
    out = xr.Dataset(out_vars, coords=coords, attrs=dict(ds.attrs))
    out.attrs.update(
        composite_method=method,
        cloud_mask=source,
        gap_fraction=float(1.0 - to_numpy(has_obs).mean()),
    )
    return out
