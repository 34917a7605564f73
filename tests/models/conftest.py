"""Real Sentinel-2 chips for the model tests (eo-learn TestEOPatch, Slovenia).

The 5 full-band scenes of ``eolearn_s2_slovenia.nc`` are 101 x 100 px; dates 0, 3 and 4 of
``ref_time`` are cloud-free (see the folder's PROVENANCE.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from workbench.testing import shared_data

CLEAR_DATES = (0, 3, 4)


@dataclass(frozen=True)
class S2Scene:
    """Cloud-free reflectance ``(date, band, y, x)`` float32, band names, and LULC ``(y, x)``."""

    reflectance: np.ndarray
    bands: tuple[str, ...]
    lulc: np.ndarray

    def band(self, *names: str) -> np.ndarray:
        """Select bands by name: ``(date, len(names), y, x)``."""
        idx = [self.bands.index(n) for n in names]
        return self.reflectance[:, idx]

    def chips(self, size: int, *names: str) -> np.ndarray:
        """``(date * cells, C, size, size)`` chips of the named bands (all bands if none)."""
        return chip(self.band(*names) if names else self.reflectance, size)

    def chip_labels(self, size: int) -> np.ndarray:
        """Majority land-cover class per chip, aligned with :meth:`chips` (``date * cells``)."""
        labels = majority_labels(self.lulc, size)
        return np.tile(labels, self.reflectance.shape[0])


def chip(array: np.ndarray, size: int) -> np.ndarray:
    """Cut ``(..., y, x)`` into non-overlapping ``size`` chips: ``(n_chips, ..., size, size)``.

    Chips are ordered date-major (when a leading date axis exists), then row, then column.
    """
    *lead, h, w = array.shape
    ny, nx = h // size, w // size
    a = array[..., : ny * size, : nx * size].reshape(*lead, ny, size, nx, size)
    a = np.moveaxis(a, (-4, -2), (0, 1))  # (ny, nx, *lead, size, size)
    a = a.reshape(ny * nx, *lead, size, size)
    if lead:  # (cells, date, C, s, s) -> (date, cells, C, s, s) -> flat
        a = np.swapaxes(a, 0, 1).reshape(-1, *lead[1:], size, size)
    return np.ascontiguousarray(a)


def majority_labels(lulc: np.ndarray, size: int) -> np.ndarray:
    """Majority land-cover class of each ``size`` chip of ``lulc`` (row-major cells)."""
    cells = chip(lulc, size).reshape(-1, size * size).astype(np.int64)
    return np.array([np.bincount(c).argmax() for c in cells], dtype=np.int64)


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """Run a test with one intra-op torch thread, restoring the setting afterwards.

    Tiny models gain nothing from threads, and on a shared 2-core machine two spinning OpenMP
    threads per process made these tests ~10x slower under load. Not autouse: the other tests
    of this folder keep torch's default.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def s2_scene() -> S2Scene:
    """The cloud-free Sentinel-2 L1C scenes and land cover, read once per session."""
    import xarray as xr

    path = shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        refl = ds["reflectance"].isel(ref_time=list(CLEAR_DATES))
        refl = refl.transpose("ref_time", "band", "y", "x").values.astype(np.float32)
        bands = tuple(str(b) for b in ds["band"].values)
        lulc = ds["lulc"].values.astype(np.int64)
    return S2Scene(reflectance=refl, bands=bands, lulc=lulc)
