"""The paper's NDVI task on real Sentinel-2 data, as file-backed ChipSets.

*Small is Beautiful* (Sec. II-D.1) predicts the mean NDVI of a chip from its RGB bands. Here the
data is the eo-learn Sentinel-2 L1C cube of southern Slovenia (``eolearn_s2_slovenia.nc``):
inputs ``reflectance`` bands B04, B03, B02 at the 5 full-band dates, target the cube's own
``ndvi`` at the same dates (computed by eo-learn from B04/B08; see the folder's PROVENANCE.md).

The ChipSet is built on the lazily opened NetCDF (``cache=False``), so pickling it (or a
``select`` view of it) ships the file path and chip selectors, not pixels: an engine that
receives the view of its partitions reads only those pixels ("data-local").

Examples
--------
>>> from workbench.testing import DATA_DIR
>>> chips = s2_ndvi_chips(DATA_DIR / "eolearn_s2_slovenia" / "eolearn_s2_slovenia.nc", chip=8)
>>> len(chips), chips.channel_names
(720, ['rgb:B04', 'rgb:B03', 'rgb:B02', 'ndvi'])
>>> len(set(chips.geocodes("geohash", 7)))
54
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench._typing import PathLike
from workbench.errors import DataReadError
from workbench.training.data import group_by_code

__all__ = ["RGB", "s2_ndvi_chips", "holdout_split"]

#: Input bands, in the order of the channels (red, green, blue).
RGB = ("B04", "B03", "B02")


def s2_ndvi_chips(path: PathLike, *, chip: int = 8, dates: Sequence[int] | None = None) -> Any:
    """RGB -> NDVI chips ``{"ref_time": 1, "y": chip, "x": chip}`` of the eo-learn S2 cube.

    Parameters
    ----------
    path : str or path-like
        ``eolearn_s2_slovenia.nc`` (``workbench.testing.shared_data(...)`` finds it).
    chip : int
        Chip size in pixels (10 m); non-overlapping chips, so held-out chips share no pixel
        with training chips.
    dates : sequence of int, optional
        Indices of the 5 full-band dates to use (default all; 0, 3, 4 are cloud-free).

    Returns
    -------
    workbench.chips.ChipSet
        Variables ``rgb`` (inputs, 3 channels) and ``ndvi`` (target): use
        ``targets=["ndvi"]`` and :func:`workbench.models.cnn.chip_mean_mse` as the loss.

    Raises
    ------
    DataReadError
        If the file is missing or lacks the expected variables.
    """
    import xarray as xr

    from workbench.chips import ChipSet

    try:
        ds = xr.open_dataset(path, cache=False)
        refl = ds["reflectance"].sel(band=list(RGB))
        ndvi = ds["ndvi"].sel(time=ds["ref_time"].values).rename(time="ref_time")
    except (OSError, KeyError, ValueError) as exc:
        raise DataReadError(
            f"{str(path)!r} is not the eo-learn Sentinel-2 cube "
            f"(reflectance, ndvi, ref_time): {exc}"
        ) from exc
    cube = xr.Dataset({"rgb": refl, "ndvi": ndvi, "spatial_ref": ds["spatial_ref"]}, attrs=ds.attrs)
    cube = cube.transpose("ref_time", "band", "y", "x")
    if dates is not None:
        cube = cube.isel(ref_time=list(dates))
    return ChipSet(cube, {"ref_time": 1, "y": chip, "x": chip}, variables=["rgb", "ndvi"])


def holdout_split(
    codes: Sequence[str] | np.ndarray[Any, Any], fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Split indices ``(train, held_out)``, holding out ``fraction`` of every partition.

    Stratifying by partition keeps every partition in both sets (when it has 2+ samples), so a
    partitioned ensemble and a single model are scored on the same chips.

    Examples
    --------
    >>> tr, te = holdout_split(["a"] * 5 + ["b"] * 5, fraction=0.2)
    >>> len(tr), len(te), sorted(set(tr) | set(te)) == list(range(10))
    (8, 2, True)
    """
    rng = np.random.default_rng(seed)
    train, held = [], []
    for idx in group_by_code(codes).values():
        idx = rng.permutation(idx)
        k = round(fraction * len(idx)) if len(idx) > 1 else 0
        held.extend(idx[:k].tolist())
        train.extend(idx[k:].tolist())
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(held, dtype=np.int64))
