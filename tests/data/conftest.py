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


@pytest.fixture(scope="session")
def band_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Band-per-file products written once from the real Sentinel-2 / Landsat pixels.

    ``s2``: two dates of 13 single-band GeoTIFFs (10/20/60 m on their own grids);
    ``s2_34``: the first date reprojected into EPSG:32634 with SCL and MSK_CLDPRB (L2A names);
    ``nc``: one NetCDF per band, CRS only as a per-variable PROJ attribute;
    ``landsat``: Landsat 7 Collection 2 names with a QA_PIXEL band.
    """
    from workbench.data import examples

    root = tmp_path_factory.mktemp("band_files")
    s2 = examples.sentinel2_scenes(root / "s2", dates=[0, 1])
    s2_34 = examples.sentinel2_scenes(
        root / "s2_34", dates=[0], crs="EPSG:32634", provider_masks=True, level="L2A"
    )
    return {
        "s2": s2[0],
        "s2_second": s2[1],
        "s2_root": root / "s2",
        "s2_34": s2_34[0],
        "nc": examples.sentinel2_netcdf_bands(root / "nc"),
        "landsat": examples.landsat_scene(root / "landsat"),
    }
