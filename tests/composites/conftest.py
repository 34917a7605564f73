"""Real Sentinel-2 fixtures (eo-learn series, Slovenia 2015) for the composite tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from workbench.testing import shared_data

DATES = ("2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30", "2015-09-09")


@pytest.fixture(scope="session")
def s2_nc() -> xr.Dataset:
    path = shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")
    with xr.open_dataset(path) as ds:
        return ds.load()


@pytest.fixture(scope="session")
def s2_stack(s2_nc: xr.Dataset) -> tuple[xr.Dataset, xr.DataArray]:
    """``reflectance(time, y, x, band)`` of the 5 full-band dates and their s2cloudless masks."""
    stack = s2_nc[["reflectance"]].rename(ref_time="time")
    mask = s2_nc.cloud_mask.sel(time=stack.time.values)
    return stack, mask


def open_tif(path: Path) -> xr.DataArray:
    rioxarray = pytest.importorskip("rioxarray")
    da = rioxarray.open_rasterio(path).load()
    if da.sizes["band"] == 13:
        da = da.assign_coords(band=list(da.attrs["long_name"]))
    return da


@pytest.fixture(scope="session")
def s2_tif_series() -> tuple[xr.DataArray, xr.DataArray]:
    """The 5 GeoTIFF scenes (uint16 DN, nodata 0) stacked on time, and their CLM masks."""
    folder = shared_data("eolearn_s2_slovenia/geotiff")
    scenes, masks = [], []
    for day in DATES:
        scene = open_tif(folder / f"S2_L1C_{day}.tif")
        when = np.datetime64(scene.attrs["DATETIME"], "ns")
        scenes.append(scene.expand_dims(time=[when]))
        clm = open_tif(folder / f"S2_CLM_{day}.tif").sel(band=1, drop=True)
        masks.append(clm.expand_dims(time=[when]))
    return xr.concat(scenes, "time"), xr.concat(masks, "time")


@pytest.fixture(scope="session")
def s2_scene() -> xr.DataArray:
    """One clear real scene (2015-08-30), 13 bands, uint16 DN with _FillValue 0."""
    return open_tif(shared_data("eolearn_s2_slovenia/geotiff/S2_L1C_2015-08-30.tif"))
