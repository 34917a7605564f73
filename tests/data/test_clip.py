"""ds.wb.clip on real data: lon/lat and UTM grids, polygons, frames, laziness and errors."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio
import shapely
import xarray as xr
import zarr
import zarr.storage
from shapely.geometry import Point, box, mapping

import workbench  # noqa: F401  (registers .wb)
from workbench import open_datacube
from workbench.data.aoi import clip
from workbench.data.synthetic import era5_like
from workbench.errors import AOIError, CRSError

TRIANGLE = [[-6.0, 51.0], [-1.0, 51.0], [-6.0, 56.0], [-6.0, 51.0]]


@pytest.fixture(scope="module")
def era5(era5_nc):
    return open_datacube(era5_nc)


@pytest.fixture(scope="module")
def s2(s2_geotiffs):
    return open_datacube(s2_geotiffs)


def test_era5_bbox_by_hand(era5):
    sub = era5.wb.clip((-5.1, 52.1, -2.9, 54.9))
    # 0.25 deg cells overlapping the box: centres 52.0..55.0 (13) and -5.0..-3.0 (9)
    assert sub.latitude.values.tolist() == [55.0 - 0.25 * i for i in range(13)]  # still descending
    assert sub.longitude.values.tolist() == [-5.0 + 0.25 * i for i in range(9)]
    assert "aoi_mask" not in sub.coords  # a box is not masked
    expected = era5.t2m.sel(latitude=slice(55.0, 52.0), longitude=slice(-5.0, -3.0))
    np.testing.assert_array_equal(
        sub.t2m.isel(time=[0, 500]).values, expected.isel(time=[0, 500]).values
    )
    assert not sub.t2m.variable._in_memory


def _inside(lon, lat, polygon):
    return np.array([[polygon.intersects(Point(x, y)) for x in lon] for y in lat])


@pytest.mark.parametrize("form", ["feature", "shapely", "collection"])
def test_era5_polygon_is_masked_outside(era5, form):
    polygon = shapely.Polygon(TRIANGLE)
    feature = {"type": "Feature", "properties": {}, "geometry": mapping(polygon)}
    aoi = {
        "feature": feature,
        "shapely": polygon,
        "collection": {"type": "FeatureCollection", "features": [feature]},
    }[form]
    sub = era5.wb.clip(aoi)
    assert sub.latitude.values.tolist() == [56.0 - 0.25 * i for i in range(21)]
    assert sub.longitude.values.tolist() == [-6.0 + 0.25 * i for i in range(21)]
    inside = _inside(sub.longitude.values, sub.latitude.values, polygon)
    np.testing.assert_array_equal(sub.aoi_mask.values, inside)
    assert 0 < inside.sum() < inside.size
    values = sub.t2m.isel(time=3).values
    original = era5.t2m.isel(time=3).sel(latitude=sub.latitude, longitude=sub.longitude).values
    np.testing.assert_array_equal(np.isnan(values), ~inside)
    np.testing.assert_array_equal(values[inside], original[inside])
    assert not sub.t2m.variable._in_memory  # masked lazily


def test_mask_option_and_integer_variables(era5):
    ds = era5.isel(time=slice(0, 2)).load()
    ds["warm"] = (ds.t2m > 280).astype("int8")
    polygon = shapely.Polygon(TRIANGLE)
    masked = clip(ds, polygon)
    assert masked.warm.dtype == np.int8  # integers cannot hold NaN: unchanged ...
    np.testing.assert_array_equal(
        masked.warm.values, ds.warm.sel(latitude=masked.latitude, longitude=masked.longitude).values
    )
    assert masked.aoi_mask.dtype == bool  # ... and the mask is there to apply
    assert np.isnan(masked.t2m.values).any()  # in-memory floats masked directly
    unmasked = clip(ds, polygon, mask=False)
    assert not np.isnan(unmasked.t2m.values).any()
    boxed = clip(ds, box(-6, 51, -1, 56), mask=True)  # every centre inside: nothing masked
    assert bool(boxed.aoi_mask.all())
    assert not np.isnan(boxed.t2m.values).any()


def test_dataarray_and_dask_inputs(era5, era5_nc):
    polygon = shapely.Polygon(TRIANGLE)
    da = clip(era5.t2m, polygon)
    assert isinstance(da, xr.DataArray)
    assert da.name == "t2m"
    dasked = open_datacube(era5_nc, chunks={})
    sub = dasked.wb.clip(polygon)
    assert sub.t2m.chunks is not None
    np.testing.assert_array_equal(sub.t2m.isel(time=0).values, da.isel(time=0).values)


def test_s2_utm_with_lonlat_bbox(s2, s2_geotiffs):
    aoi = (14.5545, 45.8680, 14.5600, 45.8725)
    sub = s2.wb.clip(aoi)
    # by hand: the lon/lat box in UTM 33N (edges densified), then the cells it overlaps,
    # with the grid from rasterio's affine transform
    to_utm = pyproj.Transformer.from_crs(4326, 32633, always_xy=True)
    t = np.linspace(0, 1, 201)
    west, south, east, north = aoi
    lon = np.concatenate(
        [
            west + (east - west) * t,
            np.full_like(t, east),
            west + (east - west) * t,
            np.full_like(t, west),
        ]
    )
    lat = np.concatenate(
        [
            np.full_like(t, south),
            south + (north - south) * t,
            np.full_like(t, north),
            south + (north - south) * t,
        ]
    )
    x, y = to_utm.transform(lon, lat)
    with rasterio.open(s2_geotiffs[0]) as src:
        tr = src.transform
    col0, col1 = int(np.floor((x.min() - tr.c) / tr.a)), int(np.ceil((x.max() - tr.c) / tr.a))
    row0, row1 = int(np.floor((y.max() - tr.f) / tr.e)), int(np.ceil((y.min() - tr.f) / tr.e))
    assert sub.sizes["x"] == col1 - col0
    assert sub.sizes["y"] == row1 - row0
    np.testing.assert_allclose(sub.x.values, tr.c + tr.a * (np.arange(col0, col1) + 0.5))
    np.testing.assert_allclose(sub.y.values, tr.f + tr.e * (np.arange(row0, row1) + 0.5))
    assert dict(sub.sizes) == {"time": 5, "band": 13, "y": row1 - row0, "x": col1 - col0}
    # the GeoTransform follows the new origin (rioxarray reads it back)
    pytest.importorskip("rioxarray")
    assert sub.rio.transform() == pytest.approx(
        (tr.a, 0, tr.c + col0 * tr.a, 0, tr.e, tr.f + row0 * tr.e, 0, 0, 1)
    )
    np.testing.assert_array_equal(
        sub.band_data.isel(time=0, band=3).values,
        s2.band_data.isel(time=0, band=3, y=slice(row0, row1), x=slice(col0, col1)).values,
    )


def test_s2_geojson_in_utm_via_crs(s2):
    utm_box = box(465300.0, 5079500.0, 465600.0, 5079800.0)
    sub = s2.wb.clip(mapping(utm_box), crs="EPSG:32633")
    x0 = 465181.0522318204
    dx = 9.99479222007154
    expected_cols = [i for i in range(100) if x0 + i * dx < 465600 and x0 + (i + 1) * dx > 465300]
    assert sub.sizes["x"] == len(expected_cols)
    assert float(sub.x[0]) == pytest.approx(x0 + (expected_cols[0] + 0.5) * dx)
    legacy = dict(mapping(utm_box), crs={"type": "name", "properties": {"name": "EPSG:32633"}})
    xr.testing.assert_identical(s2.wb.clip(legacy).x, sub.x)
    # a UTM triangle is masked in the UTM grid
    tri = shapely.Polygon([(465300, 5079500), (465600, 5079500), (465300, 5079800)])
    masked = s2.wb.clip(tri, crs=32633)
    inside = _inside(masked.x.values, masked.y.values, tri)
    np.testing.assert_array_equal(masked.aoi_mask.values, inside)
    np.testing.assert_array_equal(np.isnan(masked.band_data.isel(time=0, band=0).values), ~inside)


def test_aoi_outside_names_both_extents(s2, era5):
    with pytest.raises(
        AOIError, match=r"AOI \(0, 0, 1, 1\) \(lon/lat\) does not overlap.*\(14\.55.*EPSG:32633"
    ):
        s2.wb.clip((0, 0, 1, 1))
    with pytest.raises(
        AOIError, match=r"AOI \(20, 40, 21, 41\).*extent is \(-10\.125, 49\.875, 2\.125, 58\.125\)"
    ):
        era5.wb.clip((20, 40, 21, 41))


def test_data_without_crs(era5):
    bare = xr.Dataset({"v": (("row", "col"), np.zeros((3, 3)))})
    with pytest.raises(CRSError, match=r"clipping to an AOI.*write_crs"):
        clip(bare, (0, 0, 1, 1))
    projected_no_crs = xr.Dataset(
        {"v": (("y", "x"), np.zeros((2, 2)))}, coords={"y": [1.0, 0.0], "x": [0.0, 1.0]}
    )
    with pytest.raises(CRSError, match="write_crs"):
        projected_no_crs.wb.clip((0, 0, 1, 1))


@pytest.mark.parametrize(
    ("aoi", "message"),
    [
        ({"type": "Polygon", "coordinates": "x"}, "malformed GeoJSON"),
        ({"type": "Feature"}, "no 'geometry'"),
        ((1, 2, 3), "cannot use tuple"),
    ],
)
def test_malformed_geojson(era5, aoi, message):
    with pytest.raises(AOIError, match=message):
        era5.wb.clip(aoi)


def test_longitudes_0_360_and_prime_meridian():
    ds = era5_like(time=1, lat=18, lon=36, bbox=(0, -90, 360, 90))  # 10-degree cells, 0..360
    sub = ds.wb.clip((-25, 0, 15, 20))  # crosses 0: columns from both ends, lon rewritten
    assert sub.lon.values.tolist() == [-25.0, -15.0, -5.0, 5.0, 15.0]
    assert sub.lat.values.tolist() == [15.0, 5.0]
    np.testing.assert_array_equal(
        sub.t2m.isel(lon=0).values, ds.t2m.sel(lon=335.0, lat=[15.0, 5.0]).values
    )
    west = ds.wb.clip((-60, 0, -40, 10))  # one side only: the data's own frame is kept
    assert west.lon.values.tolist() == [305.0, 315.0]


def test_antimeridian_on_180_data():
    ds = era5_like(time=1, lat=18, lon=36, bbox=(-180, -90, 180, 90))
    sub = ds.wb.clip((165, 0, -165, 20))
    assert sub.lon.values.tolist() == [165.0, 175.0, 185.0, 195.0]
    np.testing.assert_array_equal(
        sub.t2m.isel(lon=2).values, ds.t2m.sel(lon=-175.0, lat=[15.0, 5.0]).values
    )
    # the same as a GeoJSON polygon written past 180
    polygon = box(165, 0, 195, 20)
    np.testing.assert_array_equal(ds.wb.clip(polygon).t2m.values, sub.t2m.values)


def test_ascending_and_descending_latitude_agree():
    desc = era5_like(time=1, lat=8, lon=8)
    asc = desc.isel(lat=slice(None, None, -1))
    a = clip(asc, (-7, 51.5, -2, 55.5))
    d = clip(desc, (-7, 51.5, -2, 55.5))
    assert a.lat.values.tolist() == sorted(d.lat.values.tolist())
    np.testing.assert_array_equal(a.t2m.values[:, ::-1], d.t2m.values)


def test_point_aoi_selects_its_pixel(era5):
    sub = era5.wb.clip({"type": "Point", "coordinates": [-3.02, 54.01]})
    assert sub.longitude.values.tolist() == [-3.0]
    assert sub.latitude.values.tolist() == [54.0]


def test_clip_on_lazy_zarr_reads_only_needed_chunks(xcube_zarr):
    class Recording(zarr.storage.WrapperStore):  # type: ignore[misc]
        def __init__(self, store):
            super().__init__(store)
            self.keys = []

        async def get(self, key, prototype=None, byte_range=None):
            self.keys.append(key)
            return await self._store.get(key, prototype, byte_range)

    store = Recording(zarr.storage.LocalStore(xcube_zarr, read_only=True))
    ds = open_datacube(store, variables=["conc_chl"])
    tri = shapely.Polygon([(0.1, 52.4), (0.5, 52.4), (0.1, 52.0)])  # inside chunk (0, 0)
    sub = ds.wb.clip(tri)
    assert not [k for k in store.keys if k.startswith("conc_chl/") and k[-1].isdigit()]
    values = sub.conc_chl.isel(time=0).values
    chunks = sorted(k for k in store.keys if k.startswith("conc_chl/") and k[-1].isdigit())
    assert chunks == ["conc_chl/0.0.0"]
    assert np.isnan(values[~sub.aoi_mask.values]).all()


def test_accessor_properties(era5, s2):
    assert era5.wb.crs.to_epsg() == 4326
    assert era5.wb.bounds == pytest.approx((-10.125, 49.875, 2.125, 58.125))
    assert s2.wb.bounds == pytest.approx((14.5513, 45.8659, 14.5643, 45.8750), abs=1e-4)
    assert s2.wb.engine == "rasterio"
