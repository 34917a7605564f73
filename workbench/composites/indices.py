"""Spectral indices by band name: NDVI and NDMI.

Bands are found by Sentinel-2 id or STAC common name (see
:data:`workbench.composites.clouds.BAND_ALIASES`), either as labels of a ``band`` dimension
or as variables (or mapping keys) named after the band; pass ``red=``/``nir=``/``swir=`` to
name them explicitly (e.g. Landsat 7 ETM+: ``red="3", nir="4", swir="5"``). Both bands must be
on the same grid: reconcile resolutions first with
:func:`workbench.composites.resample.reconcile`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from workbench.composites.clouds import find_bands
from workbench.errors import DimensionError

__all__ = ["normalized_difference", "ndvi", "ndmi"]


def _clean(arr: xr.DataArray) -> xr.DataArray:
    fill = arr.attrs.get("_FillValue", arr.encoding.get("_FillValue"))
    out = arr.astype(np.float32)
    if fill is not None and np.issubdtype(arr.dtype, np.integer):
        out = out.where(arr != fill)
    return out


def normalized_difference(a: xr.DataArray, b: xr.DataArray, name: str = "nd") -> xr.DataArray:
    """Compute ``(a - b) / (a + b)`` in float32; NaN where the sum is 0 or a band is missing.

    Raises
    ------
    DimensionError
        When ``a`` and ``b`` are on different grids.

    Examples
    --------
    >>> a = xr.DataArray(np.array([3.0, 1.0, 0.0]), dims="x")
    >>> normalized_difference(a, a * 0 + 1).values.round(2).tolist()
    [0.5, 0.0, -1.0]
    """
    if set(a.dims) != set(b.dims):
        raise DimensionError(
            f"the two bands have different dims {a.dims} and {b.dims}; put them on one grid "
            "first with workbench.composites.resample.reconcile"
        )
    for dim in a.dims:
        if a.sizes[dim] != b.sizes[dim] or (
            dim in a.indexes and dim in b.indexes and not a.indexes[dim].equals(b.indexes[dim])
        ):
            raise DimensionError(
                f"the two bands differ along {dim!r} ({a.sizes[dim]} vs {b.sizes[dim]} pixels or "
                "other coordinates); put them on one grid first with "
                "workbench.composites.resample.reconcile"
            )
    a, b = _clean(a), _clean(b)
    total = a + b
    out = ((a - b) / total.where(total != 0)).astype(np.float32)
    out.name = name
    return out


def ndvi(
    obj: xr.Dataset | xr.DataArray | Mapping[str, xr.DataArray],
    *,
    red: str | None = None,
    nir: str | None = None,
    band_dim: str = "band",
) -> xr.DataArray:
    """Compute the Normalized Difference Vegetation Index ``(nir - red) / (nir + red)``.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> v = ndvi(s2_like(time=1, y=4, x=4))
    >>> v.name, v.dims
    ('ndvi', ('time', 'y', 'x'))
    """
    chosen = {k: v for k, v in {"red": red, "nir": nir}.items() if v is not None}
    bands = find_bands(obj, ("red", "nir"), chosen, band_dim)
    out = normalized_difference(bands["nir"], bands["red"], "ndvi")
    out.attrs = {"long_name": "Normalized Difference Vegetation Index", "units": "1"}
    return out


def ndmi(
    obj: xr.Dataset | xr.DataArray | Mapping[str, xr.DataArray],
    *,
    nir: str | None = None,
    swir: str | None = None,
    band_dim: str = "band",
) -> xr.DataArray:
    """Compute the Normalized Difference Moisture Index ``(nir - swir1) / (nir + swir1)``.

    Gao (1996); with Sentinel-2, B08 and B11.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> ndmi(s2_like(time=1, y=4, x=4)).name
    'ndmi'
    """
    chosen = {k: v for k, v in {"nir": nir, "swir1": swir}.items() if v is not None}
    bands = find_bands(obj, ("nir", "swir1"), chosen, band_dim)
    out = normalized_difference(bands["nir"], bands["swir1"], "ndmi")
    out.attrs = {"long_name": "Normalized Difference Moisture Index", "units": "1"}
    return out
