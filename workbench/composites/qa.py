"""Provider cloud and snow masks: what the data's own producer says, before any spectral test.

:func:`provider_masks` looks for the first of these variables in a scene and decodes it into
boolean ``cloud``, ``snow`` and ``valid`` flags:

=====================  =======================================================================
variable               decoding
=====================  =======================================================================
``SCL``                Sentinel-2 L2A scene classification: cloud = 8, 9 (cloud medium / high
                       probability), 10 (thin cirrus); snow = 11; invalid = 0 (no data),
                       1 (saturated or defective). Cloud shadows (3) are not cloud.
``QA_PIXEL``           Landsat Collection 2 pixel quality bits: cloud = bit 1 (dilated cloud),
                       2 (cirrus) or 3 (cloud); snow = bit 5; invalid = bit 0 (fill).
``QA60``               Sentinel-2 L1C quality band: cloud = bit 10 (opaque) or 11 (cirrus).
``MSK_CLDPRB``/``CLD``  Sentinel-2 L2A cloud probability (percent): cloud = ``>= 50``;
                       ``MSK_SNWPRB``/``SNW`` beside it: snow = ``>= 50``.
``cloud_mask``         a user's mask: non-zero = cloud (``snow_mask`` beside it: snow).
=====================  =======================================================================

The source is reported as ``"mask:<variable>"`` (the catalog's ``cloud_source``).

Examples
--------
>>> import numpy as np
>>> scl = xr.DataArray(np.array([[4, 9], [11, 0]], dtype="uint8"), dims=("y", "x"))
>>> m = provider_masks(xr.Dataset({"SCL": scl}))
>>> m.source, m.cloud.values.tolist(), m.snow.values.tolist()
('mask:SCL', [[False, True], [False, False]], [[False, False], [True, False]])
>>> m.valid.values.tolist()
[[True, True], [True, False]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["ProviderMask", "provider_masks", "mask_variables", "PROVIDER_MASKS"]

#: Probability (percent) from which Sentinel-2's MSK_CLDPRB / MSK_SNWPRB flag a pixel.
PROBABILITY_THRESHOLD = 50.0


@dataclass(frozen=True)
class ProviderMask:
    """Decoded provider flags; ``snow`` is None when the provider says nothing about snow."""

    cloud: xr.DataArray
    snow: xr.DataArray | None
    valid: xr.DataArray
    source: str
    variables: tuple[str, ...]


def _ints(arr: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Integer codes of a flag band (read as float with NaN for nodata) and where it has one."""
    known = arr.notnull() if arr.dtype.kind in "fc" else xr.ones_like(arr, dtype=bool)
    return arr.fillna(0).astype(np.int64), known


def _bits(codes: xr.DataArray, *bits: int) -> xr.DataArray:
    mask = sum(1 << b for b in bits)
    return (codes & mask) != 0


def _scl(ds: xr.Dataset, name: str) -> ProviderMask:
    codes, known = _ints(ds[name])
    valid = known & ~codes.isin([0, 1])
    return ProviderMask(codes.isin([8, 9, 10]) & valid, (codes == 11) & valid, valid, "", (name,))


def _qa_pixel(ds: xr.Dataset, name: str) -> ProviderMask:
    codes, known = _ints(ds[name])
    valid = known & ~_bits(codes, 0)
    cloud = _bits(codes, 1, 2, 3) & valid
    return ProviderMask(cloud, _bits(codes, 5) & valid & ~cloud, valid, "", (name,))


def _qa60(ds: xr.Dataset, name: str) -> ProviderMask:
    codes, known = _ints(ds[name])
    return ProviderMask(_bits(codes, 10, 11) & known, None, known, "", (name,))


def _probability(ds: xr.Dataset, name: str) -> ProviderMask:
    prob = ds[name].astype(np.float32)
    valid = prob.notnull()
    snow_name = next((n for n in ("MSK_SNWPRB", "SNW") if n in ds.data_vars), None)
    snow = None
    used: tuple[str, ...] = (name,)
    if snow_name is not None:
        snow = (ds[snow_name] >= PROBABILITY_THRESHOLD) & valid
        used = (name, snow_name)
    return ProviderMask((prob >= PROBABILITY_THRESHOLD) & valid, snow, valid, "", used)


def _user(ds: xr.Dataset, name: str) -> ProviderMask:
    arr = ds[name]
    valid = arr.notnull() if arr.dtype.kind in "fc" else xr.ones_like(arr, dtype=bool)
    snow = None
    used: tuple[str, ...] = (name,)
    if "snow_mask" in ds.data_vars:
        snow = (ds["snow_mask"].fillna(0) != 0) & valid
        used = (name, "snow_mask")
    return ProviderMask((arr.fillna(0) != 0) & valid, snow, valid, "", used)


#: Variables recognised, in order of preference, with their decoders.
PROVIDER_MASKS: tuple[tuple[str, Callable[[xr.Dataset, str], ProviderMask]], ...] = (
    ("SCL", _scl),
    ("QA_PIXEL", _qa_pixel),
    ("QA60", _qa60),
    ("MSK_CLDPRB", _probability),
    ("CLD", _probability),
    ("cloud_mask", _user),
)


_COMPANIONS = {"MSK_CLDPRB": ("MSK_SNWPRB", "SNW"), "CLD": ("MSK_SNWPRB", "SNW"),
               "cloud_mask": ("snow_mask",)}  # fmt: skip


def mask_variables(ds: xr.Dataset, name: str | None = None) -> tuple[str, ...]:
    """Names of the provider mask variables :func:`provider_masks` would use (no pixel read).

    Examples
    --------
    >>> mask_variables(xr.Dataset({"B04": 0, "MSK_CLDPRB": 0, "MSK_SNWPRB": 0}))
    ('MSK_CLDPRB', 'MSK_SNWPRB')
    """
    hit = (
        name
        if name is not None
        else next((n for n, _ in PROVIDER_MASKS if n in ds.data_vars), None)
    )
    if hit is None or hit not in ds.data_vars:
        return ()
    extra = next((c for c in _COMPANIONS.get(hit, ()) if c in ds.data_vars), None)
    return (hit,) if extra is None else (hit, extra)


def provider_masks(ds: xr.Dataset, name: str | None = None) -> ProviderMask | None:
    """Decode the provider's cloud (and snow) mask of ``ds``, or None when it has none.

    Parameters
    ----------
    ds : xarray.Dataset
        A scene (or a stack of scenes) whose variables may include a mask (see the module).
    name : str, optional
        Use this variable; decoded by its kind when its name is a known one, else as a user
        mask (non-zero = cloud).

    Returns
    -------
    ProviderMask or None
        Boolean ``cloud``, ``snow`` (None if the mask does not say), ``valid``; ``source``
        ``"mask:<variable>"``; ``variables`` the mask variables used.
    """
    decoders = dict(PROVIDER_MASKS)
    if name is not None:
        found = decoders.get(name, _user)(ds, name)
    else:
        hit = next((n for n, _ in PROVIDER_MASKS if n in ds.data_vars), None)
        if hit is None:
            return None
        found = decoders[hit](ds, hit)
    return ProviderMask(
        found.cloud, found.snow, found.valid, f"mask:{found.variables[0]}", found.variables
    )
