"""Fixtures of the chips tests: small synthetic cubes, real Zarr stores written per session."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import xarray as xr

import workbench  # noqa: F401  (registers .wb)
from workbench.data.synthetic import era5_like, write_zarr

VARS = ["t2m", "u10", "v10", "msl"]


@pytest.fixture(scope="session")
def era5() -> xr.Dataset:
    """An in-memory ERA5-like cube, 48 x 40 x 56, 4 float32 variables."""
    return era5_like(time=48, lat=40, lon=56)


@pytest.fixture(scope="session")
def era5_store(tmp_path_factory: pytest.TempPathFactory, era5: xr.Dataset) -> Path:
    """The same cube in a zstd Zarr v3 store, chunks 12 x 16 x 16 (edge chunks partial)."""
    path = tmp_path_factory.mktemp("chips") / "era5.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_zarr(era5, path, chunks={"time": 12, "lat": 16, "lon": 16})
    return path


def open_store(path: Path) -> xr.Dataset:
    """Open a store lazily without dask (as ``workbench.open_datacube`` does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(path, chunks=None)


@pytest.fixture
def era5_lazy(era5_store: Path) -> xr.Dataset:
    """The store opened lazily (a fresh object per test: no values cached)."""
    return open_store(era5_store)


def position_cube(time: int = 3, lat: int = 8, lon: int = 8) -> xr.Dataset:
    """A lon/lat/time cube whose values encode their position: ``t*10000 + i*100 + j``.

    (``workbench.testing.tiny_cube`` does the same but cannot build its time axis yet.)
    """
    import numpy as np

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


@pytest.fixture(scope="session")
def cube_factory():
    """``position_cube`` as a fixture (test modules cannot import conftest)."""
    return position_cube
