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

__all__ = ["RGB", "s2_ndvi_chips", "s2_geotiff_ndvi_chips", "holdout_split", "ndvi_holdout"]

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


def s2_geotiff_ndvi_chips(
    folder: PathLike, *, chip: int = 8, dates: Sequence[int] | None = None
) -> Any:
    """Return the RGB -> NDVI chips of :func:`s2_ndvi_chips`, from the per-date GeoTIFFs.

    ``folder`` holds ``S2_L1C_<date>.tif`` (13 bands, digital numbers = reflectance x 10 000),
    as ``workbench.data.samples.sample_path("s2_geotiff")`` gives it (the shared data, or the
    excerpt shipped with the tutorials). Inputs are bands B04, B03, B02 as reflectance; the
    target is NDVI computed from B08 and B04 (it matches the NetCDF cube's ``ndvi`` to 1e-5).
    The cube is small (5 x 100 x 101 px) and held in memory.

    Returns
    -------
    workbench.chips.ChipSet
        Chips ``{"time": 1, "y": chip, "x": chip}``, variables ``rgb`` and ``ndvi``.

    Raises
    ------
    DataReadError
        If ``folder`` holds no ``S2_L1C_*.tif`` or they lack bands B02, B03, B04, B08.

    Examples
    --------
    >>> from workbench.data.samples import sample_path
    >>> chips = s2_geotiff_ndvi_chips(sample_path("s2_geotiff"), chip=8)
    >>> len(chips), chips.channel_names
    (720, ['rgb:B04', 'rgb:B03', 'rgb:B02', 'ndvi'])
    """
    from pathlib import Path

    import xarray as xr

    from workbench.chips import ChipSet
    from workbench.data import open_datacube

    files = sorted(Path(folder).glob("S2_L1C_*.tif"))
    if not files:
        raise DataReadError(
            f"no S2_L1C_*.tif in {str(folder)!r}; pass sample_path('s2_geotiff') or a folder "
            "of eo-learn Sentinel-2 GeoTIFFs"
        )
    try:
        bands = open_datacube(files)["band_data"].sel(band=[*RGB, "B08"]) / 10_000
    except KeyError as exc:
        raise DataReadError(f"{str(folder)!r}: GeoTIFFs lack bands {[*RGB, 'B08']}: {exc}") from exc
    bands = bands.astype("float32").load()
    red, nir = bands.sel(band="B04", drop=True), bands.sel(band="B08", drop=True)
    cube = xr.Dataset({"rgb": bands.sel(band=list(RGB)), "ndvi": (nir - red) / (nir + red)})
    cube = cube.transpose("time", "band", "y", "x")
    if dates is not None:
        cube = cube.isel(time=list(dates))
    return ChipSet(cube, {"time": 1, "y": chip, "x": chip}, variables=["rgb", "ndvi"])


def ndvi_holdout(
    chips: Any, *, precision: int = 7, fraction: float = 0.2, seed: int = 0
) -> tuple[Any, Any]:
    """``(train, held_out)`` views of ``chips``, holding out ``fraction`` of every geohash cell.

    The split of ``benchmarks/bench_training.py`` and tutorial 04: stratified by the geohash
    cell (of length ``precision``) of each chip, so a partitioned ensemble and a single model
    are scored on the same chips.

    Examples
    --------
    >>> from workbench.data.samples import sample_path
    >>> train, val = ndvi_holdout(s2_geotiff_ndvi_chips(sample_path("s2_geotiff")))
    >>> len(train), len(val)
    (576, 144)
    """
    codes = np.asarray(chips.geocodes("geohash", precision))
    train_idx, val_idx = holdout_split(codes, fraction=fraction, seed=seed)
    return chips.select(train_idx), chips.select(val_idx)


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
