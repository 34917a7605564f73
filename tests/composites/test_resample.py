from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from workbench.composites import coarsen, ndmi, ndvi, reconcile, refine, resample_to
from workbench.composites.resample import DOWN_METHODS
from workbench.errors import CompositeError, DimensionError
from workbench.testing import shared_data


@pytest.fixture(scope="module")
def bands_10m(s2_nc: xr.Dataset) -> xr.Dataset:
    """Real 10 m B04/B08/B11 of the clear 2015-08-30 scene (B11 resampled to 10 m by eo-learn)."""
    scene = s2_nc.reflectance.isel(ref_time=3).drop_vars("ref_time")  # 2015-08-30
    bands = {b: scene.sel(band=b, drop=True) for b in ("B04", "B08", "B11")}
    return xr.Dataset(bands).assign_coords(spatial_ref=s2_nc.spatial_ref)


def test_coarsen_grid_keeps_upper_left_corner_and_crs(bands_10m):
    rio = pytest.importorskip("rioxarray")
    del rio
    b11 = bands_10m.B11
    c = coarsen(b11, 2, "average")
    assert c.sizes == {"y": 50, "x": 50}  # 101 x 100 -> trailing row trimmed
    assert c.rio.crs.to_epsg() == 32633
    np.testing.assert_allclose(c.rio.resolution(), np.array(b11.rio.resolution()) * 2)
    ft, ct = b11.rio.transform(), c.rio.transform()
    assert (ct.c, ct.f) == pytest.approx((ft.c, ft.f))
    np.testing.assert_allclose(c.values[0, 0], b11.values[:2, :2].mean(), rtol=1e-6)
    padded = coarsen(b11, 2, "average", boundary="pad")
    assert padded.sizes == {"y": 51, "x": 50}
    np.testing.assert_allclose(padded.values[-1, 0], b11.values[-1, :2].mean(), rtol=1e-6)


@pytest.mark.parametrize("method", DOWN_METHODS)
def test_down_then_up_nearest_is_exact(bands_10m, method):
    coarse = coarsen(bands_10m.B11, 2, "average")  # a real 20 m band, as L1C delivers it
    fine = refine(coarse, 2, "nearest")
    assert fine.sizes == {"y": 100, "x": 100}
    back = coarsen(fine, 2, method)
    np.testing.assert_array_equal(back.values, coarse.values)
    np.testing.assert_allclose(back.x.values, coarse.x.values)
    np.testing.assert_allclose(back.y.values, coarse.y.values)
    # the general entry point takes the same exact path on aligned grids
    np.testing.assert_array_equal(resample_to(fine, coarse, method).values, coarse.values)


def test_resample_to_matches_coarsen_and_rasterio(bands_10m):
    pytest.importorskip("rasterio")
    from workbench.composites._grid import grid_of
    from workbench.composites.resample import _reproject

    b08 = bands_10m.B08.isel(y=slice(0, 100))
    coarse = coarsen(b08, 2, "average")
    fast = resample_to(b08, coarse, "average")
    xr.testing.assert_allclose(fast, coarse)
    src, dst = grid_of(b08), grid_of(coarse)
    crs = b08.rio.crs if hasattr(b08, "rio") else None
    slow = _reproject(b08, src, dst, crs, crs, "average")
    np.testing.assert_allclose(slow.values, fast.values, rtol=1e-5)


def _real_20m(band_10m: xr.DataArray) -> xr.DataArray:
    """The native 20 m band: the eo-learn 10 m B11 is 2x2 blocks from row 1, column 0."""
    fine = band_10m.isel(y=slice(1, None))
    v = fine.values
    assert (v[0::2, 0::2] == v[1::2, 1::2]).all()  # really 20 m pixels repeated
    return coarsen(fine, 2, "average")


def test_reconciling_the_real_20m_b11_back_is_exact_with_nearest(bands_10m):
    b08, b11 = bands_10m.B08, bands_10m.B11
    b11_20m = _real_20m(b11)
    assert b11_20m.sizes == {"y": 50, "x": 50}
    ds = reconcile({"B08": b08, "B11": b11_20m}, "B08", up="nearest")
    assert ds.attrs["resampling"] == {"B08": "nearest", "B11": "nearest"}
    np.testing.assert_array_equal(ds.B11.values[1:], b11.values[1:])
    np.testing.assert_array_equal(ds.B08.values, b08.values)  # the target band is untouched
    # row 0 lies outside the 20 m raster: NaN, not extrapolated
    assert ds.B11.isel(y=0).isnull().all()


def test_reconciled_bands_align_with_the_original_cube(bands_10m):
    """The target grid's own coordinate values come back, so xarray arithmetic aligns."""
    b11_20m = _real_20m(bands_10m.B11)
    ds = reconcile({"B08": bands_10m.B08, "B11": b11_20m}, "B08", up="bilinear")
    np.testing.assert_array_equal(ds.y.values, bands_10m.y.values)
    np.testing.assert_array_equal(ds.x.values, bands_10m.x.values)
    mixed = bands_10m.B04 + ds.B11  # would be all-NaN (or empty) if the grids differed by 1 ulp
    assert mixed.sizes == bands_10m.B04.sizes
    assert mixed.isel(y=slice(1, None)).notnull().all()


def test_ndmi_from_reconciled_20m_b11(bands_10m):
    b08, b11 = bands_10m.B08, bands_10m.B11
    b11_20m = _real_20m(b11)
    ds = reconcile({"B08": b08, "B11": b11_20m}, "B08", up="bilinear")
    assert ds.attrs["resampling"] == {"B08": "nearest", "B11": "bilinear"}
    assert ds.B11.sizes == b08.sizes
    np.testing.assert_array_equal(ds.x.values, b08.x.values)
    np.testing.assert_array_equal(ds.y.values, b08.y.values)
    assert ds.spatial_ref.attrs["crs_wkt"] == bands_10m.spatial_ref.attrs["crs_wkt"]
    assert not ds.B11.isel(y=slice(1, None)).isnull().any()
    ref = ndmi(bands_10m).isel(y=slice(1, None))  # NDMI with B11 at 10 m by nearest (eo-learn)
    # interpolated against nearest-neighbour B11: close, not equal (median |diff| ~0.013)
    for method, max_median in (("bilinear", 0.02), ("cubic", 0.02)):
        got = ndmi(reconcile({"B08": b08, "B11": b11_20m}, b08, up=method)).isel(y=slice(1, None))
        assert np.corrcoef(got.values.ravel(), ref.values.ravel())[0, 1] > 0.95
        assert float(np.median(np.abs(got - ref))) < max_median
        assert float(got.min()) >= -1
        assert float(got.max()) <= 1


def test_linear_ramp_is_reproduced_by_bilinear_and_cubic():
    y = 100.0 - 10 * (np.arange(8) + 0.5)
    x = 10 * (np.arange(8) + 0.5)
    ramp = xr.DataArray(2 * x[None, :] + 3 * y[:, None], dims=("y", "x"), coords={"y": y, "x": x})
    for method in ("bilinear", "cubic"):
        up = refine(ramp, 4, method)
        inner = up.isel(y=slice(6, -6), x=slice(6, -6))
        expect = 2 * inner.x + 3 * inner.y
        np.testing.assert_allclose(inner.values, expect.transpose("y", "x").values, rtol=1e-9)


def test_mode_on_real_land_cover(s2_nc):
    lulc = s2_nc.lulc.assign_coords(spatial_ref=s2_nc.spatial_ref)
    classes = set(np.unique(lulc.values))
    mode = coarsen(lulc, 3, "mode")
    assert set(np.unique(mode.values)) <= classes
    block = lulc.values[:3, :3].ravel()
    values, counts = np.unique(block, return_counts=True)
    assert mode.values[0, 0] == values[np.argmax(counts)]
    up = refine(mode, 3, "nearest")
    np.testing.assert_array_equal(coarsen(up, 3, "mode").values, mode.values)


def test_landsat_across_crs_and_non_integer_ratio():
    rioxarray = pytest.importorskip("rioxarray")
    l7 = rioxarray.open_rasterio(shared_data("stars_landsat7_olinda/L7_ETMs.tif")).load()
    # 28.5 m -> a 30 m grid in WGS 84 / UTM 25S (EPSG:32725; Landsat is SIRGAS 2000 / UTM 25S)
    target = l7.rio.reproject("EPSG:32725", resolution=30.0)
    out = resample_to(l7, target, "average")
    assert out.rio.crs.to_epsg() == 32725
    assert out.sizes["x"] == target.sizes["x"]
    assert out.sizes["y"] == target.sizes["y"]
    valid = out.sel(band=4).values
    src_mean = float(l7.sel(band=4).mean())
    assert abs(np.nanmean(valid) - src_mean) / src_mean < 0.02
    # same CRS, non-integer ratio: rasterio route as well
    same = l7.rio.reproject(l7.rio.crs, resolution=40.0)
    out2 = resample_to(l7.astype(np.float32), same, "average")
    assert abs(float(out2.sel(band=4).mean()) - src_mean) / src_mean < 0.02
    # Landsat NDMI / NDVI by band number
    v = ndvi(l7, red="3", nir="4")
    m = ndmi(l7, nir="4", swir="5")
    assert float(v.min()) >= -1
    assert float(v.max()) <= 1
    assert float(m.max()) <= 1


def test_ndvi_matches_stored_eolearn_ndvi(s2_nc):
    refl = s2_nc.reflectance.rename(ref_time="time")
    got = ndvi(refl)
    stored = s2_nc.ndvi.sel(time=refl.time.values)
    np.testing.assert_allclose(got.transpose("time", "y", "x").values, stored.values, atol=1e-6)


def test_indices_need_one_grid(bands_10m):
    b11_20m = _real_20m(bands_10m.B11)
    with pytest.raises(DimensionError, match="reconcile"):
        ndmi({"B08": bands_10m.B08, "B11": b11_20m})
    with pytest.raises(DimensionError, match="reconcile"):
        ndmi({"B08": bands_10m.B08, "B11": b11_20m.rename(y="y20", x="x20")})
    ok = ndmi(reconcile({"B08": bands_10m.B08, "B11": b11_20m}, "B08"))
    assert ok.sizes == bands_10m.B08.sizes
    assert ok.isel(y=0).isnull().all()


def test_bad_arguments(bands_10m):
    b = bands_10m.B08
    with pytest.raises(CompositeError, match="down-sampling method"):
        coarsen(b, 2, "bilinear")
    with pytest.raises(CompositeError, match="up-sampling method"):
        refine(b, 2, "average")
    with pytest.raises(CompositeError, match="positive integer"):
        coarsen(b, 1.5)  # type: ignore[arg-type]
    with pytest.raises(DimensionError, match="not a regular grid"):
        coarsen(b.isel(x=[0, 1, 3, 4]), 2)
    with pytest.raises(DimensionError, match="larger than the raster"):
        coarsen(b.isel(x=slice(0, 1)), 2)
    with pytest.raises(DimensionError, match="spatial dimensions"):
        coarsen(b.rename(x="col"), 2)


def test_lazy_bands_stay_lazy_and_match_the_loaded_result():
    """A series opened lazily is resampled one (y, x) plane at a time, when the result is read."""
    import workbench

    files = sorted(shared_data("eolearn_s2_slovenia/geotiff").glob("S2_L1C_*.tif"))
    refl = workbench.open_datacube(files).band_data  # (time, band, y, x), nothing read
    bands = {
        "B08": refl.sel(band="B08", drop=True),
        "B11": refl.sel(band="B11", drop=True).isel(y=slice(0, None, 2), x=slice(0, None, 2)),
    }
    lazy = reconcile(bands, "B08")
    for name in ("B08", "B11"):
        assert lazy[name].chunks == ((1,) * 5, (101,), (100,)), name  # one date's plane a block
    eager = reconcile({k: v.compute() for k, v in bands.items()}, "B08")
    xr.testing.assert_identical(lazy.compute(), eager)
    # across CRSs too (rasterio's warp, one plane at a time)
    l7 = workbench.open_datacube(shared_data("stars_landsat7_olinda/L7_ETMs.tif")).band_data
    target = l7.compute().rio.reproject("EPSG:32725", resolution=30.0)
    out = resample_to(l7, target, "average")
    assert out.chunks is not None
    expected = resample_to(l7.compute(), target, "average")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(30):  # dask warps the planes from its threads
            xr.testing.assert_identical(out.compute(), expected)
    assert not [w for w in seen if "geotransform" in str(w.message)]
