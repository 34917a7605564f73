from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import workbench
from workbench.composites import composite, spectral_cloud_mask
from workbench.data.synthetic import s2_like
from workbench.errors import CompositeError, DimensionError

CLOUDY = (np.datetime64("2015-07-31", "D"), np.datetime64("2015-08-20", "D"))


def _day(values: np.ndarray) -> np.ndarray:
    return values.astype("datetime64[D]")


@pytest.mark.parametrize("method", ["median", "best", "latest"])
def test_real_series_has_no_cloud_and_no_gap(s2_stack, method):
    stack, mask = s2_stack
    out = composite(stack, cloud_mask=mask, method=method)
    assert out.attrs["gap_fraction"] == 0.0
    assert int(out.reflectance.isnull().sum()) == 0
    assert not out.source_time.isnull().any()
    assert not np.isin(_day(out.source_time.values), CLOUDY).any()
    # every pixel's source date is cloud-free at that pixel in the s2cloudless mask
    at_source = mask.sel(time=out.source_time)
    assert int(at_source.sum()) == 0
    assert (out.valid_count == 3).all()
    assert out.reflectance.dims == ("y", "x", "band")


@pytest.mark.parametrize("method", ["best", "latest"])
def test_single_date_methods_copy_the_source_scene(s2_stack, method):
    stack, mask = s2_stack
    out = composite(stack, cloud_mask=mask, method=method)
    picked = stack.reflectance.sel(time=out.source_time)
    np.testing.assert_array_equal(out.reflectance.values, picked.transpose("y", "x", "band").values)


def test_latest_takes_last_clear_and_best_takes_clearest(s2_stack):
    stack, mask = s2_stack
    latest = composite(stack, cloud_mask=mask, method="latest")
    assert set(_day(latest.source_time.values).ravel()) == {np.datetime64("2015-09-09")}
    # mask one region of the last date: latest falls back to 2015-08-30 there only
    holed = mask.copy()
    holed[-1, :20, :30] = 1
    out = composite(stack, cloud_mask=holed, method="latest")
    days = _day(out.source_time.values)
    assert (days[:20, :30] == np.datetime64("2015-08-30")).all()
    assert (days[20:] == np.datetime64("2015-09-09")).all()
    # best prefers the clearest scene even when it is older: cloud 30% of 09-09 and 5% of 08-30
    cl = mask.copy()
    cl[-1, :30] = 1
    cl[-2, :5] = 1
    best = composite(stack, cloud_mask=cl, method="best")
    days = _day(best.source_time.values)
    assert (days[5:] == np.datetime64("2015-07-11")).all()


def test_median_values_and_source_time_definition(s2_stack):
    stack, mask = s2_stack
    out = composite(stack, cloud_mask=mask, method="median")
    clear = stack.reflectance.where(mask == 0)
    expected = clear.median("time").transpose("y", "x", "band")
    np.testing.assert_allclose(out.reflectance.values, expected.values, rtol=1e-6)
    # source_time = the clear observation with the least squared distance to the median spectrum
    dist = ((clear - out.reflectance) ** 2).sum("band").where(mask == 0)
    nearest = dist.idxmin("time")
    np.testing.assert_array_equal(out.source_time.values, nearest.values)


def test_median_tie_and_source_time_on_a_toy_pixel():
    times = pd.date_range("2020-01-01", periods=3, freq="D")
    data = xr.DataArray(
        np.array([1.0, 5.0, 2.0]).reshape(3, 1, 1),
        dims=("time", "y", "x"),
        coords={"time": times, "y": [0.5], "x": [0.5]},
        name="v",
    )
    out = composite(data, cloud_mask=xr.zeros_like(data), method="median")
    assert float(out.v[0, 0]) == 2.0
    assert out.source_time.values[0, 0] == times[2]


def test_geotiff_series_with_clm_files(s2_tif_series, s2_stack):
    series, clm = s2_tif_series
    out = composite(series.to_dataset(name="dn"), cloud_mask=clm, method="median")
    assert out.attrs["gap_fraction"] == 0.0
    assert not out.dn.isnull().any()
    assert not np.isin(_day(out.source_time.values), CLOUDY).any()
    assert out.dn.dtype == np.float32  # uint16 DN -> float so that gaps can be NaN
    # same composite as from the NetCDF reflectances (DN = reflectance x 10000)
    ref = composite(s2_stack[0], cloud_mask=s2_stack[1], method="median")
    np.testing.assert_allclose(
        out.dn.transpose("y", "x", "band").values / 1e4, ref.reflectance.values, atol=1e-4
    )
    assert "spatial_ref" in out.coords


def test_mask_by_variable_name_and_accessor():
    ds = s2_like(time=4, y=16, x=16, cloud_fraction=0.3, seed=3)
    out = composite(ds, cloud_mask="cloud_mask", method="latest")
    assert "cloud_mask" not in out
    via = ds.wb.composite(cloud_mask="cloud_mask", method="latest")
    xr.testing.assert_identical(out, via)
    top = workbench.composite(ds, cloud_mask=ds.cloud_mask, method="latest")
    np.testing.assert_array_equal(top.reflectance.values, out.reflectance.values)


def test_all_cloudy_pixel_is_nan_nat_and_counted():
    ds = s2_like(time=3, y=8, x=8, cloud_fraction=0.0)
    mask = xr.zeros_like(ds.cloud_mask)
    mask[:, 2, 3] = 1  # cloudy on every date
    for method in ("median", "best", "latest"):
        out = composite(ds, cloud_mask=mask, method=method)
        assert out.reflectance.isel(y=2, x=3).isnull().all()
        assert np.isnat(out.source_time.values[2, 3])
        assert int(out.valid_count[2, 3]) == 0
        assert out.attrs["gap_fraction"] == pytest.approx(1 / 64)
        assert int(out.reflectance.isnull().sum()) == ds.sizes["band"]


def test_nan_band_makes_observation_invalid():
    ds = s2_like(time=2, y=4, x=4, cloud_fraction=0.0)
    refl = ds.reflectance.copy()
    refl[1, 0, 0, 0] = np.nan  # one band missing on the latest date at pixel (0, 0)
    out = composite(ds.assign(reflectance=refl), cloud_mask="cloud_mask", method="latest")
    assert out.source_time.values[0, 0] == ds.time.values[0]
    assert out.source_time.values[1, 1] == ds.time.values[1]


def test_single_date_equals_input_where_clear():
    ds = s2_like(time=1, y=8, x=8, cloud_fraction=0.2, seed=1)
    out = composite(ds, cloud_mask="cloud_mask", method="median")
    clear = ds.cloud_mask.isel(time=0) == 0
    expect = ds.reflectance.isel(time=0).where(clear)
    xr.testing.assert_allclose(out.reflectance, expect.drop_vars("time"))
    assert int(out.valid_count.sum()) == int(clear.sum())


def test_unsorted_time_latest_is_truly_latest():
    ds = s2_like(time=3, y=4, x=4, cloud_fraction=0.0)
    shuffled = ds.isel(time=[2, 0, 1])
    out = composite(shuffled, cloud_mask="cloud_mask", method="latest")
    assert (out.source_time == ds.time[-1]).all()


def test_integer_fill_value_is_invalid():
    ds = s2_like(time=2, y=4, x=4, cloud_fraction=0.0)
    dn = (ds.reflectance * 10000).astype(np.uint16)
    dn.attrs["_FillValue"] = 0
    dn[1, :, 0, 0] = 0
    out = composite(
        dn.to_dataset(name="dn").assign(m=ds.cloud_mask), cloud_mask="m", method="latest"
    )
    assert out.source_time.values[0, 0] == ds.time.values[0]
    assert out.dn.dtype == np.float32


def test_passthrough_and_dropped_variables():
    ds = s2_like(time=2, y=4, x=4).assign(
        dem=(("y", "x"), np.ones((4, 4))), scene_cc=("time", [0.1, 0.2])
    )
    out = composite(ds, cloud_mask="cloud_mask")
    assert "dem" in out
    assert "scene_cc" not in out


@pytest.mark.parametrize(
    "bad_mask",
    [
        lambda ds: ds.cloud_mask.isel(y=slice(0, 7)),  # wrong size
        lambda ds: ds.cloud_mask.isel(time=0),  # no time dim
        lambda ds: ds.cloud_mask.rename(y="row"),  # unknown dim
        lambda ds: ds.cloud_mask.assign_coords(
            time=ds.time + np.timedelta64(1, "D")
        ),  # other dates
    ],
)
def test_mismatched_mask_raises_dimension_error(bad_mask):
    ds = s2_like(time=3, y=8, x=8)
    with pytest.raises(DimensionError):
        composite(ds.drop_vars("cloud_mask"), cloud_mask=bad_mask(ds))


def test_bad_arguments():
    ds = s2_like(time=2, y=4, x=4)
    with pytest.raises(DimensionError, match="'date' not found"):
        composite(ds, cloud_mask="cloud_mask", dim="date")
    with pytest.raises(CompositeError, match="method must be one of"):
        composite(ds, cloud_mask="cloud_mask", method="mean")
    with pytest.raises(DimensionError, match="not a variable"):
        composite(ds, cloud_mask="clouds")
    with pytest.raises(CompositeError, match="cloud_mask must be"):
        composite(ds, cloud_mask=3)  # type: ignore[arg-type]


def test_spectral_test_agrees_with_s2cloudless(s2_stack):
    stack, _mask = s2_stack
    flags = spectral_cloud_mask(stack)
    share = flags.mean(("y", "x")).values
    cloudy = np.isin(_day(stack.time.values), CLOUDY)
    assert (share[cloudy] > 0.85).all()
    assert (share[~cloudy] < 0.001).all()
    # with no mask, best and latest never use the cloudy dates
    for method in ("best", "latest"):
        out = composite(stack, method=method)
        assert out.attrs["cloud_mask"].startswith("spectral")
        assert not np.isin(_day(out.source_time.values), CLOUDY).any()


def test_spectral_test_on_dn_and_missing_bands(s2_tif_series):
    series, clm = s2_tif_series
    flags = spectral_cloud_mask(series)  # uint16 DN: scaled by 1e-4 automatically
    agree = float((flags.values == clm.values.astype(bool)).mean())
    assert agree > 0.94
    with pytest.raises(DimensionError, match="no 'swir2' band"):
        spectral_cloud_mask(series.sel(band=["B02", "B03", "B04", "B08", "B11"]))
