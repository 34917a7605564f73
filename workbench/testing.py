"""Public helpers for testing code built on workbench (and workbench itself).

Examples
--------
>>> from workbench.testing import has_torch
>>> isinstance(has_torch, bool)
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from workbench._optional import has_gpu, has_module
from workbench.data.samples import data_dir

__all__ = [
    "DATA_DIR",
    "shared_data",
    "has_torch",
    "has_cupy",
    "has_gpu",
    "requires",
    "requires_gpu",
    "assert_chip_dims",
    "tiny_cube",
]


def _find_data_dir() -> Path:
    found = data_dir()
    return found if found is not None else Path.cwd().parent / "shared" / "data"


#: Where the real sample data lives (``../shared/data`` beside the repository, or
#: ``$WORKBENCH_DATA_DIR``).
DATA_DIR: Path = _find_data_dir()

has_torch: bool = has_module("torch")
has_cupy: bool = has_module("cupy")


def shared_data(relative: str) -> Path:
    """Path of a file of the real sample data; skips the calling test if it is absent.

    Parameters
    ----------
    relative : str
        Path inside the data folder, e.g. ``"era5_reanalysis/era5_t2m_uk_2019-03.nc"``.
    """
    path = DATA_DIR / relative
    if not path.exists():
        import pytest

        pytest.skip(f"sample data {relative!r} not found under {DATA_DIR} (set WORKBENCH_DATA_DIR)")
    return path


def requires(module: str) -> Any:
    """Return a ``pytest.mark.skipif`` that skips when ``module`` cannot be imported."""
    import pytest

    return pytest.mark.skipif(not has_module(module), reason=f"{module} is not installed")


def requires_gpu() -> Any:
    """Return a ``pytest.mark.skipif`` that skips without a usable CUDA device."""
    import pytest

    return pytest.mark.skipif(not has_gpu(), reason="no CUDA device (and cupy) available")


def assert_chip_dims(chip: Any, dims: dict[str, int]) -> None:
    """Assert that an xarray chip has exactly the given sizes along ``dims``."""
    got = {d: chip.sizes[d] for d in dims}
    assert got == dims, f"chip sizes {got} != expected {dims}"


def tiny_cube(time: int = 3, lat: int = 8, lon: int = 8, seed: int = 0) -> xr.Dataset:
    """Build a tiny lon/lat/time cube whose values encode their position (for indexing tests).

    ``t2m[t, i, j] == t * 10_000 + i * 100 + j``, so any chip tells where it came from.
    """
    del seed
    t, i, j = np.meshgrid(np.arange(time), np.arange(lat), np.arange(lon), indexing="ij")
    values = (t * 10_000 + i * 100 + j).astype(np.float32)
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), values), "u10": (("time", "lat", "lon"), -values)},
        coords={
            "time": np.datetime64("2019-03-01", "ns") + np.arange(time).astype("timedelta64[D]"),
            "lat": 58.0 - 0.25 * np.arange(lat),
            "lon": -10.0 + 0.25 * np.arange(lon),
        },
    )
