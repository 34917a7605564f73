"""Catalog fixtures: the real Sentinel-2 GeoTIFF series ingested once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

import workbench
from workbench.testing import shared_data


@pytest.fixture(scope="session")
def s2_tifs() -> list[Path]:
    folder = shared_data("eolearn_s2_slovenia/geotiff")
    return sorted(folder.glob("S2_L1C_*.tif"))


@pytest.fixture(scope="session")
def s2_catalog(tmp_path_factory: pytest.TempPathFactory, s2_tifs: list[Path]) -> workbench.Catalog:
    """The 5 real scenes (with their CLM masks) at geohash precision 6; do not modify."""
    cat = workbench.Catalog(tmp_path_factory.mktemp("s2cat") / "s2.parquet")
    with workbench.set_options(progress=False):
        cat.ingest(s2_tifs, precision=6)
    return cat


@pytest.fixture(scope="session")
def s2_nc_stack():
    """The 5 full-band dates of the NetCDF as one cube with its cloud mask (matched by date)."""
    import xarray as xr

    with xr.open_dataset(shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")) as ds:
        ds = ds.load()
    stack = ds[["reflectance"]].rename(ref_time="time")
    stack["cloud_mask"] = ds.cloud_mask.sel(time=stack.time.values)
    return stack.assign_coords(spatial_ref=ds.spatial_ref)
