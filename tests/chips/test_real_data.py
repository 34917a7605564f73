"""Chips over the real sample data: ERA5 2 m temperature (NetCDF) and Sentinel-2 over Slovenia."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import xbatcher

import workbench
from workbench.testing import shared_data


@pytest.fixture(scope="module")
def era5_nc():
    path = shared_data("era5_reanalysis/era5_t2m_uk_2019-03.nc")
    ds = workbench.open_datacube(path)
    yield ds
    ds.close()


@pytest.fixture(scope="module")
def s2():
    path = shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")
    ds = workbench.open_datacube(path)
    yield ds
    ds.close()


def test_era5_chips_match_xbatcher_and_memory(era5_nc) -> None:
    dims = {"time": 24, "latitude": 16, "longitude": 16}
    overlap = {"latitude": 8, "longitude": 8}
    chips = era5_nc.wb.chips(dims, overlap)
    gen = xbatcher.BatchGenerator(era5_nc, input_dims=dims, input_overlap=overlap)
    assert len(chips) == len(gen) == 31 * 3 * 5
    xr.testing.assert_identical(chips[100], gen[100])
    eager = era5_nc.compute()
    expected = eager.wb.chips(dims, overlap).to_numpy()
    loader = chips.batches(32, shuffle=True, seed=0)
    got = np.concatenate(list(loader))
    np.testing.assert_array_equal(got, expected[np.concatenate(loader.batch_indices(0))])
    assert np.isfinite(got).all()  # Kelvin, UK in March
    assert 230 < got.mean() < 290
    assert loader.last_stats["loads"] == 1  # the file is one chunk: decoded once
    west, _, _, north = chips.bounds(0)
    assert (west, north) == pytest.approx((-10.125, 58.125))
    assert chips.time(len(chips) - 1)[1] == era5_nc.time.values[-1 - 744 % 24]


def test_s2_reflectance_channels(s2) -> None:
    """reflectance (ref_time, y, x, band): ref_time x band become 65 channels, variable-major."""
    chips = s2.wb.chips({"y": 32, "x": 32}, {"y": 16, "x": 16}, variables=["reflectance"])
    assert len(chips) == 5 * 5
    batch = chips.to_numpy([0, 7])
    assert batch.shape == (2, 5 * 13, 32, 32)
    names = chips.channel_names
    assert len(names) == 65
    assert names[3].endswith(",B04")
    assert names[13].startswith("reflectance:")
    sel = chips.selector(7)
    expected = (
        s2.reflectance.isel(sel).transpose("ref_time", "band", "y", "x").values.reshape(65, 32, 32)
    )
    np.testing.assert_array_equal(batch[1], expected)
    lon, lat = chips.centers()
    assert ((lon > 14.55) & (lon < 14.57)).all()
    assert ((lat > 45.86) & (lat < 45.88)).all()
    assert all(code.startswith("u2") for code in chips.geocodes("geohash", 5))


def test_ndvi_regression_pairs_from_rgb(s2) -> None:
    """x = RGB chips, y = NDVI from B04/B08: the pairs a small regression CNN trains on."""
    refl = s2.reflectance
    red, nir = refl.sel(band="B04"), refl.sel(band="B08")
    ds = xr.Dataset(
        {
            "rgb": refl.sel(band=["B04", "B03", "B02"]),
            "ndvi": (nir - red) / (nir + red),
        }
    )
    chips = ds.wb.chips({"ref_time": 1, "y": 32, "x": 32}, variables=["rgb", "ndvi"])
    loader = chips.batches(8, shuffle=True, seed=1, targets=["ndvi"])
    batches = list(loader)
    assert len(batches) == len(loader) == 6  # 5 dates x 3 x 3 chips = 45: 6 batches of 8
    x, y = batches[0]
    assert tuple(x.shape[1:]) == (3, 1, 32, 32)
    assert tuple(y.shape[1:]) == (1, 1, 32, 32)
    idx = loader.batch_indices(0)[0]
    sel = chips.selector(int(idx[0]))
    np.testing.assert_allclose(y[0, 0], ds.ndvi.isel(sel).values, rtol=1e-6)
    assert float(y.min()) >= -1
    assert float(y.max()) <= 1


def test_xcube_zarr_clip_streams_through_the_sync_route() -> None:
    """The real OLCI cube (Zarr v2), opened and clipped as a user would: sync reads, same chips."""
    ds = workbench.open_datacube(shared_data("xcube_olci_northsea/cube-1-250-250.zarr"))
    sub = ds.wb.clip((1.0, 51.0, 3.0, 52.0))  # crosses the store's 250-pixel chunks
    names = ["conc_chl", "kd489"]
    chips = sub.wb.chips({"lat": 64, "lon": 64}, variables=names)
    loader = chips.batches(16, order="index")
    got = np.concatenate(list(loader))
    assert loader.reader.stats()["read_routes"] == {n: "zarr-sync" for n in names}
    want = sub[names].compute().wb.chips({"lat": 64, "lon": 64}).to_numpy()
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(got).any()
