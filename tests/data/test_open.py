"""open_datacube on the real sample data: every format, the routes, laziness, and the errors."""

from __future__ import annotations

import shutil
import sys
import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
import zarr.storage

import workbench
from workbench import open_datacube, set_options
from workbench.data.open import choose_engine, detect_format
from workbench.data.synthetic import era5_like, write_zarr
from workbench.errors import (
    CRSError,
    DataReadError,
    DimensionError,
    GPUUnavailableError,
    MissingDependencyError,
)
from workbench.testing import has_gpu, requires, shared_data


def _lazy(ds: xr.Dataset) -> bool:
    return not any(ds[v].variable._in_memory for v in ds.data_vars)


class RecordingStore(zarr.storage.WrapperStore):  # type: ignore[misc]
    """A real LocalStore that records the keys it is asked for."""

    def __init__(self, store):
        super().__init__(store)
        self.keys: list[str] = []

    async def get(self, key, prototype=None, byte_range=None):
        self.keys.append(key)
        return await self._store.get(key, prototype, byte_range)


# -- NetCDF and GRIB ----------------------------------------------------------------------
def test_netcdf_era5(era5_nc):
    ds = open_datacube(era5_nc)
    assert ds.attrs["workbench_engine"] == "netcdf"
    assert dict(ds.sizes) == {"time": 744, "latitude": 33, "longitude": 49}
    assert ds.wb.crs.to_epsg() == 4326
    assert ds.latitude[0] > ds.latitude[-1]  # ERA5 latitude descends
    assert _lazy(ds)
    assert ds.t2m.encoding["preferred_chunks"] == {"time": 744, "latitude": 33, "longitude": 49}
    t2m = ds.t2m.isel(time=0).values
    assert 265.0 < np.nanmin(t2m) < np.nanmax(t2m) < 292.0  # K, per PROVENANCE


def test_netcdf_keeps_grid_mapping_as_coordinate(s2_nc):
    ds = open_datacube(s2_nc, variables=["reflectance", "ndvi"])
    assert "spatial_ref" in ds.coords
    assert ds.wb.crs.to_epsg() == 32633
    assert ds.reflectance.wb.crs.to_epsg() == 32633
    assert list(ds.data_vars) == ["reflectance", "ndvi"]


def test_netcdf3_falls_back_to_other_readers(tmp_path):
    ds = era5_like(time=2, lat=4, lon=4)
    path = tmp_path / "classic.nc"
    ds.to_netcdf(path, format="NETCDF3_CLASSIC", engine="scipy")
    out = open_datacube(path)
    np.testing.assert_allclose(out.t2m.values, ds.t2m.values)
    assert out.attrs["workbench_engine"] == "netcdf"


@requires("cfgrib")
def test_grib_equals_netcdf(era5_grib, era5_nc):
    before = set(era5_grib.parent.iterdir())
    grib = open_datacube(era5_grib)
    assert grib.attrs["workbench_engine"] == "cfgrib"
    assert set(era5_grib.parent.iterdir()) == before  # no .idx written next to the data
    nc = open_datacube(era5_nc)
    np.testing.assert_array_equal(grib.t2m.values, nc.t2m.values)
    np.testing.assert_array_equal(grib.time.values, nc.time.values)
    assert grib.wb.bounds == pytest.approx(nc.wb.bounds)


def test_missing_reader_names_the_install(monkeypatch, era5_grib):
    monkeypatch.setitem(sys.modules, "cfgrib", None)
    with pytest.raises(MissingDependencyError, match=r"cfgrib is not installed.*libeccodes"):
        open_datacube(era5_grib)
    monkeypatch.setitem(sys.modules, "rioxarray", None)
    with pytest.raises(MissingDependencyError, match=r"rioxarray.*workbench\[io\]"):
        open_datacube(shared_data("stars_landsat7_olinda/L7_ETMs.tif"))


# -- Zarr ---------------------------------------------------------------------------------
def test_zarr_v2_xcube_is_lazy_and_selects(xcube_zarr):
    store = RecordingStore(zarr.storage.LocalStore(xcube_zarr, read_only=True))
    ds = open_datacube(store, variables=["conc_chl", "kd489"])
    assert ds.attrs["workbench_engine"] == "zarr"
    assert list(ds.data_vars) == ["conc_chl", "kd489"]
    assert dict(ds.sizes) == {"time": 5, "lat": 1000, "lon": 2000}
    assert _lazy(ds)
    data_keys = [k for k in store.keys if k.split("/")[0] in ("conc_chl", "kd489")]
    assert all(k.endswith((".zarray", ".zattrs", "zarr.json")) for k in data_keys), data_keys
    # a chunk-aligned window reads exactly one chunk
    window = ds.conc_chl.isel(time=0, lat=slice(250, 500), lon=slice(0, 250)).values
    assert window.shape == (250, 250)
    assert [k for k in store.keys if k.startswith("conc_chl/") and k[-1].isdigit()] == [
        "conc_chl/0.1.0"
    ]
    assert ds.conc_chl.encoding["chunks"] == (1, 250, 250)
    assert ds.conc_chl.encoding["preferred_chunks"] == {"time": 1, "lat": 250, "lon": 250}


def test_zarr_v2_path_opens_without_warnings(xcube_zarr, recwarn):
    ds = open_datacube(xcube_zarr, variables="conc_tsm")
    assert ds.attrs["workbench_engine"] == "zarr"
    assert ds.wb.bounds == pytest.approx((0.0, 50.0, 5.0, 52.5))
    assert not [w for w in recwarn if "onsolidated" in str(w.message)]


def test_zarr_v3_round_trip(zarr_v3, recwarn):
    expected = era5_like(time=4, lat=16, lon=32)
    ds = open_datacube(zarr_v3)
    assert ds.attrs["workbench_engine"] == "zarr"  # the auto route on a CPU machine
    assert _lazy(ds)
    for name in expected.data_vars:
        np.testing.assert_array_equal(ds[name].values, expected[name].values)
    xr.testing.assert_equal(ds.lat, expected.lat)
    assert ds.t2m.encoding["preferred_chunks"] == {"time": 1, "lat": 8, "lon": 16}
    assert not [w for w in recwarn if "onsolidated" in str(w.message)]


def test_zarr_v3_unconsolidated(tmp_path):
    path = tmp_path / "plain.zarr"
    era5_like(time=2, lat=4, lon=4).to_zarr(path, zarr_format=3, consolidated=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*onsolidated.*")
        ds = open_datacube(path)
    assert dict(ds.sizes) == {"time": 2, "lat": 4, "lon": 4}


def test_dask_on_request(zarr_v3):
    pytest.importorskip("dask")
    ds = open_datacube(zarr_v3, chunks={})
    assert ds.t2m.chunks is not None
    assert ds.t2m.data.chunksize == (1, 8, 16)


# -- GeoTIFF / COG ------------------------------------------------------------------------
def test_geotiff_series_stacked_on_time(s2_geotiffs, s2_nc):
    ds = open_datacube(s2_geotiffs[::-1])  # order of the list does not matter
    assert ds.attrs["workbench_engine"] == "rasterio"
    assert dict(ds.sizes) == {"time": 5, "band": 13, "y": 101, "x": 100}
    assert ds.band.values.tolist() == [
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
    ]  # fmt: skip
    assert ds.wb.crs.to_epsg() == 32633
    assert "spatial_ref" in ds.coords
    assert _lazy(ds)
    assert ds.band_data.encoding["preferred_chunks"]["time"] == 1
    ref = xr.open_dataset(s2_nc)
    np.testing.assert_array_equal(ds.time.values, ref.ref_time.values)
    np.testing.assert_allclose(ds.x.values, ref.x.values)
    np.testing.assert_allclose(ds.y.values, ref.y.values)
    dn = ds.band_data.values  # nodata (DN 0) masked to NaN
    expected = np.round(ref.reflectance.transpose("ref_time", "band", "y", "x").values * 10000)
    np.testing.assert_array_equal(np.nan_to_num(dn, nan=0.0), expected)
    # a window of the lazy stack reads the same values as the full read
    window = ds.band_data.isel(time=[1, 3], band=3, y=slice(10, 20), x=5).values
    np.testing.assert_array_equal(window, dn[[1, 3], 3, 10:20, 5])


def test_geotiff_glob_and_dask(s2_geotiffs):
    pattern = str(s2_geotiffs[0].parent / "S2_L1C_*.tif")
    lazy = open_datacube(pattern)
    dasked = open_datacube(pattern, chunks={})
    assert dasked.band_data.chunks is not None
    np.testing.assert_array_equal(lazy.band_data.values, dasked.band_data.values)
    np.testing.assert_array_equal(lazy.time.values, dasked.time.values)


def test_cog_single_file():
    path = shared_data("xcube_olci_northsea/S2_L2A_TCI_sample-cog.tif")
    ds = open_datacube(path)
    assert ds.attrs["workbench_engine"] == "rasterio"
    assert dict(ds.sizes) == {"band": 3, "y": 343, "x": 343}
    assert ds.band.values.tolist() == [1, 2, 3]  # no descriptions: band numbers
    assert ds.wb.crs.to_epsg() == 32613
    west, south, east, north = ds.wb.bounds
    assert (west, south, east, north) == pytest.approx((-106.11, 35.15, -104.89, 36.14), abs=0.01)
    assert ds.band_data.encoding["preferred_chunks"] == {"band": 1, "y": 128, "x": 128}
    with rasterio.open(path) as src:
        block = src.read(2, window=rasterio.windows.Window(128, 0, 128, 128))
    got = ds.band_data.isel(band=1, y=slice(0, 128), x=slice(128, 256)).values
    np.testing.assert_array_equal(np.nan_to_num(got, nan=0), block)


def test_landsat_bands_and_raw_integers():
    path = shared_data("stars_landsat7_olinda/L7_ETMs.tif")
    ds = open_datacube(path, mask_and_scale=False)
    assert ds.band_data.dtype == np.uint8
    assert dict(ds.sizes) == {"band": 6, "y": 352, "x": 349}
    assert ds.wb.crs.to_epsg() == 31985
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(ds.band_data.values, src.read())


def test_stack_needs_dates(tmp_path, s2_geotiffs):
    undated = tmp_path / "scene_a.tif"
    with rasterio.open(s2_geotiffs[0]) as src:
        profile, data, names = src.profile, src.read(), src.descriptions
    with rasterio.open(undated, "w", **profile) as dst:
        dst.write(data)
    with pytest.raises(DimensionError, match=r"different bands: .*'B01'.*\[1, 2, 3"):
        open_datacube([s2_geotiffs[0], undated], times=["2015-07-11", "2016-01-01"])
    with rasterio.open(undated, "r+") as dst:
        dst.descriptions = names
    with pytest.raises(DataReadError, match=r"cannot find the date of .*scene_a\.tif.*times="):
        open_datacube([s2_geotiffs[0], undated])
    ds = open_datacube([s2_geotiffs[0], undated], times=["2015-07-11", "2016-01-01"])
    assert ds.time.dt.year.values.tolist() == [2015, 2016]
    with pytest.raises(DimensionError, match="same date"):
        open_datacube([s2_geotiffs[0], undated], times=["2015-07-11", "2015-07-11"])


def test_stack_dates_from_file_names(tmp_path, s2_geotiffs):
    with rasterio.open(s2_geotiffs[0]) as src:
        profile, data = src.profile, src.read()
    for name in ("tile_20200102.tif", "tile_20191231T101500.tif"):
        with rasterio.open(tmp_path / name, "w", **profile) as dst:
            dst.write(data)
    ds = open_datacube(str(tmp_path / "tile_*.tif"))
    assert [str(t)[:19] for t in ds.time.values] == ["2019-12-31T10:15:00", "2020-01-02T00:00:00"]


def test_stack_rejects_different_grids(tmp_path, s2_geotiffs):
    with rasterio.open(s2_geotiffs[0]) as src:
        profile, data = src.profile, src.read()
    profile.update(width=50, height=50)
    path = tmp_path / "small_2016-01-01.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:, :50, :50])
    with pytest.raises(DimensionError, match=r"different grids.*small_2016-01-01\.tif"):
        open_datacube([s2_geotiffs[0], path])
    landsat = tmp_path / "landsat_2016-02-01.tif"
    shutil.copy(shared_data("stars_landsat7_olinda/L7_ETMs.tif"), landsat)
    with pytest.raises(CRSError, match=r"different CRSs.*EPSG:32633.*EPSG:31985"):
        open_datacube([s2_geotiffs[0], landsat])


# -- routes -------------------------------------------------------------------------------
def test_choose_engine_both_branches(zarr_v3, era5_nc, s2_geotiffs):
    assert choose_engine(zarr_v3, "auto", gpu_available=False) == "zarr"
    assert choose_engine(zarr_v3, "auto", gpu_available=True) == "kvikio"
    assert choose_engine(zarr_v3, "kvikio", gpu_available=True) == "kvikio"
    assert choose_engine(zarr_v3, "workbench_kvikio", gpu_available=True) == "kvikio"
    assert choose_engine(era5_nc, "auto", gpu_available=True) == "netcdf"
    assert choose_engine(s2_geotiffs, "auto", gpu_available=True) == "rasterio"
    assert choose_engine(zarr_v3, "zarr", gpu_available=True) == "zarr"
    with pytest.raises(GPUUnavailableError, match=r"pip install 'workbench\[gpu\]'"):
        choose_engine(zarr_v3, "kvikio", gpu_available=False)
    with pytest.raises(DataReadError, match="reads Zarr stores only"):
        choose_engine(era5_nc, "kvikio", gpu_available=True)


@pytest.mark.skipif(has_gpu(), reason="checks the CPU fallback")
def test_explicit_kvikio_without_gpu_names_the_fix(zarr_v3):
    with pytest.raises(
        GPUUnavailableError, match=r"engine='kvikio'.*pip install 'workbench\[gpu\]'"
    ):
        open_datacube(zarr_v3, engine="kvikio")
    with set_options(device="cuda"), pytest.raises(GPUUnavailableError, match="engine='zarr'"):
        open_datacube(zarr_v3)
    with set_options(device="cpu"):
        assert open_datacube(zarr_v3).attrs["workbench_engine"] == "zarr"


def test_detect_format(tmp_path, era5_nc, era5_grib, zarr_v3):
    assert detect_format(zarr_v3) == "zarr"
    assert detect_format(era5_grib) == "cfgrib"
    renamed = tmp_path / "t2m.data"  # no known suffix: sniffed from the first bytes
    shutil.copy(era5_nc, renamed)
    assert detect_format(renamed) == "netcdf"
    assert open_datacube(renamed).attrs["workbench_engine"] == "netcdf"


# -- errors -------------------------------------------------------------------------------
def test_nonexistent_path(tmp_path):
    missing = tmp_path / "nope.nc"
    with pytest.raises(DataReadError, match=r"no such file or directory: .*nope\.nc"):
        open_datacube(missing)
    with pytest.raises(DataReadError, match="no file matches the pattern"):
        open_datacube(str(tmp_path / "*.tif"))


def test_unreadable_file_names_path_and_readers(tmp_path):
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"this is not a netcdf file")
    with pytest.raises(DataReadError, match=r"broken\.nc.*tried h5netcdf: .*netcdf4.*scipy"):
        open_datacube(bad)
    bad_tif = tmp_path / "broken.tif"
    bad_tif.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataReadError, match=r"broken\.tif.*engine='rasterio'"):
        open_datacube(bad_tif)


def test_unknown_format_and_directories(tmp_path):
    odd = tmp_path / "data.xyz"
    odd.write_bytes(b"\x00\x01\x02\x03")
    with pytest.raises(DataReadError, match=r"cannot tell the format of .*data\.xyz.*engine="):
        open_datacube(odd)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(DataReadError, match="not a Zarr store"):
        open_datacube(folder)
    with pytest.raises(DataReadError, match="empty list"):
        open_datacube([])
    with pytest.raises(DataReadError, match="cannot open a int"):
        open_datacube(3)


def test_unknown_engine_lists_valid(era5_nc):
    with pytest.raises(DataReadError, match=r"unknown engine 'h5py'.*'auto', 'kvikio', 'zarr'"):
        open_datacube(era5_nc, engine="h5py")


def test_unknown_variables_list_available(era5_nc):
    with pytest.raises(
        DimensionError, match=r"\['t2', 'u10'\].*available data variables: \['t2m'\]"
    ):
        open_datacube(era5_nc, variables=["t2", "u10"])


def test_bad_keyword_is_a_type_error(era5_nc):
    with pytest.raises(TypeError, match="unexpected keyword"):
        open_datacube(era5_nc, not_an_option=1)


def test_mixed_list_is_refused(s2_geotiffs, era5_nc):
    """A GeoTIFF and an ERA5 NetCDF are no scene: a loud CRS error, not a silent join."""
    with pytest.raises(CRSError, match=r"different CRSs.*EPSG:32633.*EPSG:4326"):
        open_datacube([s2_geotiffs[0], era5_nc])


def test_top_level_export():
    assert workbench.open_datacube is open_datacube


@pytest.mark.parametrize("fmt", [2, 3])
def test_write_zarr_formats_open(tmp_path, fmt):
    ds = era5_like(time=1, lat=4, lon=4, variables=("t2m",))
    path = write_zarr(ds, tmp_path / f"v{fmt}.zarr", zarr_format=fmt)
    assert open_datacube(path).t2m.shape == (1, 4, 4)


def test_projected_zarr_keeps_spatial_ref(tmp_path):
    pytest.importorskip("rioxarray")
    from workbench.data.synthetic import s2_like

    cube = s2_like(time=2, y=32, x=32)
    path = write_zarr(cube, tmp_path / "s2.zarr", chunks={"time": 1, "y": 16, "x": 16})
    ds = open_datacube(path)
    assert "spatial_ref" in ds.coords
    assert ds.wb.crs.to_epsg() == 32633
    assert ds.rio.crs.to_epsg() == 32633  # rioxarray reads it back too
    assert ds.wb.bounds == pytest.approx(cube.wb.bounds)
    np.testing.assert_array_equal(ds.reflectance.values, cube.reflectance.values)
    sub = ds.wb.clip((465200.0, 5080000.0, 465300.0, 5080100.0), crs="EPSG:32633")
    assert dict(sub.sizes) == {"time": 2, "band": 5, "y": 10, "x": 10}
