"""Fixtures for the data tests: paths of the real sample files and small synthetic stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.data.synthetic import era5_like, write_zarr
from workbench.testing import shared_data


@pytest.fixture(scope="session")
def era5_nc() -> Path:
    return shared_data("era5_reanalysis/era5_t2m_uk_2019-03.nc")


@pytest.fixture(scope="session")
def era5_grib() -> Path:
    return shared_data("era5_reanalysis/era5-2mt-2019-03-uk.grib")


@pytest.fixture(scope="session")
def xcube_zarr() -> Path:
    return shared_data("xcube_olci_northsea/cube-1-250-250.zarr")


@pytest.fixture(scope="session")
def s2_geotiffs() -> list[Path]:
    folder = shared_data("eolearn_s2_slovenia/geotiff")
    files = sorted(folder.glob("S2_L1C_*.tif"))
    assert len(files) == 5
    return files


@pytest.fixture(scope="session")
def s2_nc() -> Path:
    return shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")


@pytest.fixture(scope="session")
def zarr_v3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ERA5-like Zarr v3 store (consolidated, chunked 1 x 8 x 16)."""
    path = tmp_path_factory.mktemp("zarr") / "era5_like_v3.zarr"
    ds = era5_like(time=4, lat=16, lon=32)
    return write_zarr(ds, path, chunks={"time": 1, "lat": 8, "lon": 16}, zarr_format=3)
