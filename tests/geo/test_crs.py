"""workbench.geo.crs on real files (checked against rasterio / pyproj) and synthetic cubes."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio
import rasterio.warp
import xarray as xr

from workbench.data.synthetic import era5_like, s2_like
from workbench.errors import CRSError, DimensionError
from workbench.geo import crs as wcrs
from workbench.testing import shared_data

TIFFS = [
    "eolearn_s2_slovenia/geotiff/S2_L1C_2015-07-11.tif",
    "xcube_olci_northsea/S2_L2A_TCI_sample-cog.tif",
    "stars_landsat7_olinda/L7_ETMs.tif",
    "nlcd_puerto_rico/lc.tif",
    "rasterio_landsat7_rgb/RGB.byte.tif",
]


def test_lonlat_data_is_epsg4326():
    ds = xr.open_dataset(shared_data("era5_reanalysis/era5_t2m_uk_2019-03.nc"))
    assert wcrs.spatial_dims(ds) == ("latitude", "longitude")
    assert wcrs.get_crs(ds) == wcrs.LONLAT
    assert wcrs.is_lonlat(ds.t2m)
    # 0.25 degree cells, centres -10..2 and 50..58 (descending)
    assert wcrs.native_bounds(ds) == pytest.approx((-10.125, 49.875, 2.125, 58.125))
    assert wcrs.pixel_size(ds) == pytest.approx((0.25, -0.25))


def test_crs_from_grid_mapping_variable():
    path = shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")
    ds = xr.open_dataset(path, decode_coords="all")
    assert wcrs.get_crs(ds).to_epsg() == 32633
    assert wcrs.get_crs(ds.ndvi).to_epsg() == 32633  # spatial_ref travels as a coordinate
    assert wcrs.grid_mapping_name(ds) == "spatial_ref"
    # without decode_coords the file-level attribute "crs" still says it
    plain = xr.open_dataset(path)
    assert wcrs.get_crs(plain).to_epsg() == 32633
    assert wcrs.get_crs(plain.ndvi) is None


@pytest.mark.parametrize("relative", TIFFS)
def test_bounds_match_rasterio(relative):
    path = shared_data(relative)
    ds = xr.open_dataset(path, engine="rasterio")
    with rasterio.open(path) as src:
        expected_crs = pyproj.CRS.from_wkt(src.crs.to_wkt())
        native = tuple(src.bounds)
        lonlat = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    assert wcrs.get_crs(ds) == expected_crs
    assert not wcrs.is_lonlat(ds)
    assert wcrs.native_bounds(ds) == pytest.approx(native, abs=1e-6)
    assert wcrs.lonlat_bounds(ds) == pytest.approx(lonlat, abs=1e-6)


def test_crs_sources_in_order():
    base = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 3)))}, coords={"y": [1.0, 0.0], "x": [0.0, 1, 2]}
    )
    assert wcrs.get_crs(base) is None
    assert wcrs.get_crs(base.assign_attrs(crs="EPSG:3035")).to_epsg() == 3035
    cf = pyproj.CRS.from_epsg(32633).to_cf()
    cf.pop("crs_wkt"), cf.pop("spatial_ref", None)  # only CF grid-mapping parameters left
    with_cf = base.assign_coords(spatial_ref=xr.DataArray(0, attrs=cf))
    with_cf["v"].attrs["grid_mapping"] = "spatial_ref"
    from_cf = wcrs.get_crs(with_cf)
    assert from_cf.is_projected
    np.testing.assert_allclose(
        wcrs.lonlat_to_xy(14.0, 45.0, from_cf), wcrs.lonlat_to_xy(14.0, 45.0, 32633)
    )
    named = base.assign_coords(
        crs_var=xr.DataArray(0, attrs={"crs_wkt": pyproj.CRS.from_epsg(2056).to_wkt()})
    )
    named["v"].attrs["grid_mapping"] = "crs_var"
    assert wcrs.get_crs(named).to_epsg() == 2056


def test_require_crs_says_how_to_set_one():
    ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 2)))})
    with pytest.raises(CRSError, match=r"write_crs\('EPSG:32633'\)"):
        wcrs.require_crs(ds, "testing")
    with pytest.raises(CRSError, match="needed for testing"):
        wcrs.require_crs(ds, "testing")


def test_bad_crs_string_is_a_crs_error():
    ds = era5_like(time=1, lat=2, lon=2).rename(lat="y", lon="x").assign_attrs(crs="EPSG:99999999")
    with pytest.raises(CRSError, match="EPSG:99999999"):
        wcrs.get_crs(ds)


def test_spatial_dims_by_standard_name_and_errors():
    ds = xr.Dataset(
        {"v": (("row", "col"), np.zeros((2, 2)))},
        coords={
            "row": ("row", [1.0, 0.0], {"standard_name": "projection_y_coordinate"}),
            "col": ("col", [0.0, 1.0], {"axis": "X"}),
        },
    )
    assert wcrs.spatial_dims(ds) == ("row", "col")
    with pytest.raises(DimensionError, match=r"\['a', 'b'\].*rename"):
        wcrs.spatial_dims(xr.DataArray(np.zeros((2, 2)), dims=("a", "b")))


def test_lonlat_from_units_only():
    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 2)))},
        coords={
            "y": ("y", [1.0, 0.0], {"units": "degrees_north"}),
            "x": ("x", [0.0, 1.0], {"units": "degrees_east"}),
        },
    )
    assert wcrs.is_lonlat(ds)


def test_pixel_centers_from_geotransform_without_coords():
    ds = s2_like(time=1, y=3, x=4).drop_vars(["x", "y"])
    x, y = wcrs.pixel_centers(ds)
    assert x.tolist() == [465185.0, 465195.0, 465205.0, 465215.0]
    assert y.tolist() == [5080255.0, 5080245.0, 5080235.0]
    with pytest.raises(DimensionError, match="no coordinate"):
        wcrs.pixel_centers(ds.drop_vars("spatial_ref"))


def test_normalize_lonlat_bounds():
    assert wcrs.normalize_lonlat_bounds((-0.125, -90.125, 359.875, 90.125)) == (-180, -90, 180, 90)
    assert wcrs.normalize_lonlat_bounds((190.0, 0.0, 200.0, 1.0)) == (-170.0, 0.0, -160.0, 1.0)
    assert wcrs.normalize_lonlat_bounds((170.0, 0.0, 190.0, 1.0)) == (170.0, 0.0, -170.0, 1.0)
    assert wcrs.normalize_lonlat_bounds((170.0, 0.0, -170.0, 1.0)) == (170.0, 0.0, -170.0, 1.0)
    global_0_360 = era5_like(time=1, lat=4, lon=8, bbox=(0, -90, 360, 90))
    assert wcrs.lonlat_bounds(global_0_360) == (-180.0, -90.0, 180.0, 90.0)
    east = era5_like(time=1, lat=4, lon=8, bbox=(200, 0, 210, 10))
    assert wcrs.lonlat_bounds(east) == pytest.approx((-160.0, 0.0, -150.0, 10.0))


def test_pixel_lonlat_matches_pyproj():
    ds = xr.open_dataset(
        shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc"), decode_coords="all"
    )
    lon, lat = wcrs.pixel_lonlat(ds)
    assert lon.shape == lat.shape == (ds.sizes["y"], ds.sizes["x"])
    to_ll = pyproj.Transformer.from_crs(32633, 4326, always_xy=True)
    for i, j in [(0, 0), (50, 17), (100, 99)]:
        elon, elat = to_ll.transform(float(ds.x[j]), float(ds.y[i]))
        assert (lon[i, j], lat[i, j]) == pytest.approx((elon, elat), abs=1e-12)
    assert 14.55 < lon.min() < lon.max() < 14.57


def test_pixel_lonlat_wraps_longitudes():
    lon, lat = wcrs.pixel_lonlat(era5_like(time=1, lat=2, lon=4, bbox=(170, 0, 210, 2)))
    assert lon[0].tolist() == [175.0, -175.0, -165.0, -155.0]
    assert lat[:, 0].tolist() == [1.5, 0.5]


def test_point_transforms_round_trip():
    lon = np.array([14.5, 15.0, 15.5])
    lat = np.array([45.0, 46.0, 47.0])
    x, y = wcrs.lonlat_to_xy(lon, lat, "EPSG:32633")
    assert x[1] == pytest.approx(500000.0)
    lon2, lat2 = wcrs.xy_to_lonlat(x, y, 32633)
    np.testing.assert_allclose(lon2, lon, atol=1e-9)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)


def test_transform_bounds_errors_and_identity():
    assert wcrs.transform_bounds((1, 2, 3, 4), "EPSG:4326", 4326) == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(CRSError, match=r"cannot transform bounds \(0, 95, 1, 96\)"):
        wcrs.transform_bounds((0, 95, 1, 96), "EPSG:4326", "EPSG:32633")
    with pytest.raises(CRSError, match="not-a-crs"):
        wcrs.as_crs("not-a-crs")


# -- CRS found wherever it is, written once, kept by every step --------------------------------
@pytest.mark.parametrize(
    ("attrs", "epsg"),
    [
        ({"crs": "+init=epsg:32719"}, 32719),
        ({"crs": "+init=EPSG:32633 +no_defs"}, 32633),
        ({"crs": "EPSG:3035"}, 3035),
        ({"crs_wkt": pyproj.CRS.from_epsg(2056).to_wkt()}, 2056),
        ({"proj4": "+proj=utm +zone=34 +datum=WGS84 +units=m +no_defs"}, None),
        ({"epsg": 32634}, 32634),
    ],
)
def test_per_variable_and_global_crs_attributes(attrs, epsg):
    coords = {"y": [5.0e6, 4.99e6], "x": [4.0e5, 4.1e5]}
    per_var = xr.Dataset({"B04": (("y", "x"), np.zeros((2, 2)), attrs)}, coords=coords)
    glob = xr.Dataset({"B04": (("y", "x"), np.zeros((2, 2)))}, coords=coords, attrs=attrs)
    for ds in (per_var, glob):
        crs, where = wcrs.find_crs(ds)
        assert crs is not None
        assert epsg is None or crs.to_epsg() == epsg
        assert where.startswith("variable:B04:" if ds is per_var else "attrs:")
        if epsg is None:  # a PROJ string: the same projection as UTM 34N
            assert crs.equals(pyproj.CRS.from_epsg(32634), ignore_axis_order=True)


def test_conflicting_variable_crs_is_loud():
    ds = xr.Dataset(
        {
            "a": (("y", "x"), np.zeros((2, 2)), {"crs": "EPSG:32633"}),
            "b": (("y", "x"), np.zeros((2, 2)), {"crs": "EPSG:32634"}),
        }
    )
    with pytest.raises(CRSError, match=r"different CRSs: variable:a:crs is EPSG:32633"):
        wcrs.get_crs(ds)


def test_write_crs_is_read_by_rioxarray():
    rioxarray = pytest.importorskip("rioxarray")
    assert rioxarray
    ds = xr.Dataset(
        {"B04": (("y", "x"), np.zeros((3, 2)), {"crs": "+init=epsg:32633"})},
        coords={"y": [25.0, 15.0, 5.0], "x": [5.0, 15.0]},
    )
    out = wcrs.write_crs(ds)
    assert out.rio.crs.to_epsg() == 32633
    assert tuple(out.rio.transform())[:6] == (10.0, 0.0, 0.0, 0.0, -10.0, 30.0)
    assert wcrs.find_crs(out)[1] == "grid_mapping:spatial_ref"
    assert wcrs.find_crs(out.B04.isel(x=0))[1] == "grid_mapping:spatial_ref"  # travels along


def test_crs_kept_by_every_step(tmp_path):
    """A CRS given only as a per-variable PROJ attribute, found once, kept all the way."""
    from workbench.composites import coarsen, composite, reconcile, resample_to
    from workbench.data import examples
    from workbench.data.open import open_datacube

    folder = examples.sentinel2_netcdf_bands(tmp_path / "nc")
    ds = open_datacube(folder, resolution=10)
    assert ds.wb.crs.to_epsg() == 32633
    assert wcrs.find_crs(ds)[1] == "grid_mapping:spatial_ref"
    clipped = ds.wb.clip((14.553, 45.867, 14.560, 45.873))
    assert clipped.wb.crs.to_epsg() == 32633
    parts = ds.wb.partition("geohash", 6)
    assert all(parts[c].wb.crs.to_epsg() == 32633 for c in parts.codes)
    bands = {n: xr.open_dataset(folder / f"{n}_band.nc")["__xarray_dataarray_variable__"]
             for n in ("B04", "B11")}  # fmt: skip
    rec = reconcile(bands, "B04")  # raw NetCDF reads: CRS only in the attribute
    assert "spatial_ref" in rec.coords
    assert rec.wb.crs.to_epsg() == 32633
    assert coarsen(ds, 2).wb.crs.to_epsg() == 32633
    assert resample_to(ds.B11, coarsen(ds, 2)).wb.crs.to_epsg() == 32633
    series = xr.concat([ds.expand_dims(time=[np.datetime64("2015-07-11", "ns")])] * 2, "time")
    series["time"] = series.time + np.array([0, 1], "timedelta64[D]")
    clear = xr.zeros_like(series.B04, dtype=bool)
    comp = composite(series, cloud_mask=clear, method="median")
    assert comp.wb.crs.to_epsg() == 32633
