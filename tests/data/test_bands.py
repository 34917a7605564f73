"""Band-per-file scenes through open_datacube, checked against rasterio / xarray reads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
import xarray as xr

import workbench
from workbench import open_datacube
from workbench.data import examples
from workbench.data.naming import parse_name
from workbench.errors import CRSError, DataReadError, DimensionError


def _file(folder: Path, band: str) -> Path:
    return next(p for p in folder.iterdir() if parse_name(p).band == band)


def _lazy(var: xr.DataArray) -> bool:
    return not var.variable._in_memory


def test_bands_on_different_grids_are_never_outer_joined(band_files):
    with pytest.raises(DimensionError) as err:
        open_datacube(band_files["s2"])
    text = str(err.value)
    expected = (
        "B02, B03, B04, B08 (100 x 101 px",
        "B05, B06, B07, B11, B12, B8A (50 x 51 px",
        "B01, B09, B10 (17 x 17 px",
        "resolution=<metres>",
        "resolution='<band>'",
    )
    for line in expected:
        assert line in text
    assert "9.996 m" in text
    assert "19.992 m" in text
    assert "59.977 m" in text


def test_ten_metre_grid_matches_rasterio(band_files):
    folder = band_files["s2"]
    ds = open_datacube(folder, resolution=10)
    assert list(ds.data_vars) == list(examples.S2_BANDS)  # B01 .. B08, B8A, B09 .. B12
    assert dict(ds.sizes) == {"y": 101, "x": 100}
    assert str(ds.time.values)[:19] == "2015-07-11T10:00:08"  # date AND time from the name
    assert ds.wb.crs.to_epsg() == 32633
    assert "spatial_ref" in ds.coords
    with rasterio.open(_file(folder, "B04")) as src:
        b04, transform = src.read(1), src.transform
        nodata = src.nodata
    assert _lazy(ds.B04)  # on the target grid already: not read
    np.testing.assert_array_equal(np.nan_to_num(ds.B04.values, nan=nodata), b04)
    np.testing.assert_allclose(ds.x.values, transform.c + transform.a * (np.arange(100) + 0.5))
    np.testing.assert_allclose(ds.y.values, transform.f + transform.e * (np.arange(101) + 0.5))
    assert ds.B11.attrs["resampling"] == "bilinear"
    assert ds.B11.attrs["common_name"] == "swir16"
    # the 20 m band, bilinear onto the 10 m grid, agrees with GDAL's bilinear warp inside
    with rasterio.open(_file(folder, "B11")) as src:
        warped = np.zeros((101, 100), np.float32)
        rasterio.warp.reproject(
            src.read(1).astype(np.float32), warped, src_transform=src.transform,
            src_crs=src.crs, dst_transform=transform, dst_crs=src.crs,
            resampling=rasterio.warp.Resampling.bilinear,
        )  # fmt: skip
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(ds.B11.values[inner], warped[inner], rtol=0.02)


def test_band_name_grid_averages_finer_bands(band_files):
    folder = band_files["s2"]
    ds = open_datacube(folder, resolution="B11", bands=["B04", "B11"])
    assert list(ds.data_vars) == ["B04", "B11"]
    with rasterio.open(_file(folder, "B11")) as src:
        np.testing.assert_array_equal(np.nan_to_num(ds.B11.values), src.read(1)[:50])
    with rasterio.open(_file(folder, "B04")) as src:
        b04 = src.read(1).astype(np.float64)
    expected = b04[:100].reshape(50, 2, 50, 2).mean(axis=(1, 3))  # 2 x 2 blocks, exact lattice
    np.testing.assert_allclose(ds.B04.values, expected, rtol=1e-6)
    assert ds.B04.attrs["resampling"] == "average"


def test_masks_use_nearest_and_overrides(band_files):
    folder = band_files["s2_34"]
    ds = open_datacube(folder, resolution=10, bands=["B04", "SCL", "MSK_CLDPRB"])
    assert ds.wb.crs.to_epsg() == 32634
    assert ds.SCL.attrs["resampling"] == "nearest"
    assert set(np.unique(ds.SCL.values[np.isfinite(ds.SCL.values)])) <= {4.0, 9.0}
    over = open_datacube(folder, resolution=10, bands=["B04", "MSK_CLDPRB"],
                         resampling={"MSK_CLDPRB": "bilinear"})  # fmt: skip
    assert over.MSK_CLDPRB.attrs["resampling"] == "bilinear"
    with pytest.raises(DimensionError, match="unknown resampling 'cubicspline'"):
        open_datacube(folder, resolution=20, resampling="cubicspline")


def test_several_dates_stack_on_time(band_files):
    files = sorted(band_files["s2_root"].glob("*/*_B0[48].tif"))
    ds = open_datacube(files)
    assert list(ds.data_vars) == ["B04", "B08"]
    assert ds.sizes["time"] == 2
    assert [str(t)[:19] for t in ds.time.values] == ["2015-07-11T10:00:08", "2015-07-31T10:00:09"]
    assert _lazy(ds.B08)
    assert ds.B08.encoding["preferred_chunks"]["time"] == 1
    with rasterio.open(files[-1]) as src:  # B08 of the second date
        np.testing.assert_array_equal(np.nan_to_num(ds.B08.isel(time=1).values), src.read(1))


def test_mapping_names_bands_and_mismatched_grids(band_files):
    folder = band_files["s2"]
    bands = {"red": _file(folder, "B04"), "swir": _file(folder, "B11")}
    with pytest.raises(DimensionError, match=r"different grids.*red.*swir.*resolution="):
        open_datacube(bands)
    ds = open_datacube(bands, resolution="red")
    assert list(ds.data_vars) == ["red", "swir"]
    assert dict(ds.sizes) == {"y": 101, "x": 100}


def test_netcdf_per_band_with_a_proj4_attribute(band_files):
    folder = band_files["nc"]
    with xr.open_dataset(folder / "B04_band.nc") as raw:
        assert raw["__xarray_dataarray_variable__"].attrs["crs"] == "+init=epsg:32633"
        assert "spatial_ref" not in raw.variables
        b04 = raw["__xarray_dataarray_variable__"].values
    ds = open_datacube(folder, resolution=10)
    assert list(ds.data_vars) == ["B02", "B03", "B04", "B08", "B11"]
    assert ds.wb.crs.to_epsg() == 32633
    assert ds.spatial_ref.attrs["crs_wkt"]
    assert str(ds.time.values)[:19] == "2015-07-11T10:00:08"
    np.testing.assert_array_equal(ds.B04.values, b04)
    assert ds.wb.bounds == pytest.approx((14.551, 45.866, 14.564, 45.875), abs=1e-3)


def test_landsat_collection2_names(band_files):
    ds = open_datacube(band_files["landsat"])
    assert list(ds.data_vars) == ["QA_PIXEL", "SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"]
    assert ds.SR_B3.attrs["common_name"] == "red"  # ETM+ band 3
    assert ds.SR_B4.attrs["common_name"] == "nir08"
    assert str(ds.time.values)[:10] == "2001-06-23"
    assert ds.wb.crs.to_epsg() == 31985
    with rasterio.open(workbench.data.samples.sample_path("landsat7_olinda")) as src:
        np.testing.assert_array_equal(ds.SR_B4.values, src.read(4))


def test_stac_item_assets_are_bands(band_files):
    folder = band_files["s2"]
    item = examples.stac_item(folder, {"labels": ["Forest"], "tile": "33TVL"})
    for source in (item, folder / f"{folder.name}.json"):
        ds = open_datacube(source, resolution=20, bands=["B04", "B8A"])
        assert list(ds.data_vars) == ["B04", "B8A"]
        assert ds.B04.shape == (50, 50)
        assert json.loads(ds.attrs["properties"]) == {"labels": ["Forest"], "tile": "33TVL"}
        assert ds.attrs["scene_id"] == folder.name


def test_a_band_twice_on_one_date_is_loud(band_files, tmp_path):
    other = tmp_path / "copy"
    other.mkdir()
    b04 = _file(band_files["s2"], "B04")
    shutil.copy(b04, other / b04.name)
    with pytest.raises(DimensionError, match=r"both band 'B04' of 2015-07-11 10:00:08.*mosaic"):
        open_datacube([b04, other / b04.name])


def test_bands_not_asked_for_are_never_opened(band_files, tmp_path):
    folder = tmp_path / "scene"
    shutil.copytree(band_files["s2"], folder)
    _file(folder, "B01").write_bytes(b"II*\x00broken")
    ds = open_datacube(folder, bands=["B08", "B04"])
    assert list(ds.data_vars) == ["B08", "B04"]
    with pytest.raises(DimensionError, match=r"\['B13'\] are not among.*'B8A'"):
        open_datacube(folder, bands=["B13"])
    with pytest.raises(DataReadError, match="B01"):
        open_datacube(folder, resolution=10)


def test_folder_of_scenes_points_to_open_collection(band_files):
    with pytest.raises(DataReadError, match="open_collection"):
        open_datacube(band_files["s2_root"])


def test_zones_differ_but_places_agree(band_files):
    a = open_datacube(band_files["s2"], bands=["B04"])
    b = open_datacube(band_files["s2_34"], bands=["B04"])
    assert (a.wb.crs.to_epsg(), b.wb.crs.to_epsg()) == (32633, 32634)
    wa, sa, ea, na = a.wb.bounds
    wb_, sb, eb, nb = b.wb.bounds
    assert max(wa, wb_) < min(ea, eb)  # the same place
    assert max(sa, sb) < min(na, nb)
    with pytest.raises(CRSError, match=r"different CRSs.*open_collection"):
        open_datacube([_file(band_files["s2"], "B04"), _file(band_files["s2_34"], "B08")])


def test_opening_a_geotiff_does_not_load_the_grib_engine(band_files):
    code = textwrap.dedent(f"""
        import sys, workbench
        ds = workbench.open_datacube({str(_file(band_files["s2"], "B04"))!r})
        ds = workbench.open_datacube({str(band_files["nc"] / "B04_band.nc")!r})
        print(sorted(m for m in sys.modules if "grib" in m or "eccodes" in m))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "ecCodes" not in out.stderr


def test_same_date_multiband_files_say_what_to_do(s2_geotiffs, tmp_path):
    folder = s2_geotiffs[0].parent
    l1c, clm = folder / "S2_L1C_2015-07-11.tif", folder / "S2_CLM_2015-07-11.tif"
    other = tmp_path / "tile2_2015-07-11.tif"
    shutil.copy(l1c, other)
    with pytest.raises(DimensionError, match=r"same date .*\{name: path\} mapping.*mosaic"):
        open_datacube([l1c, other])
    with pytest.raises(DimensionError, match=r"S2_CLM_2015-07-11.tif is the cloud mask of S2_L1C"):
        open_datacube([l1c, clm])
    ds = open_datacube({"L1C": l1c, "CLM": clm})
    assert list(ds.data_vars) == ["L1C", "CLM"]
    assert ds.L1C.dims == ("L1C_band", "y", "x")
    assert ds.L1C_band.values.tolist()[:2] == ["B01", "B02"]


def test_a_folder_of_images_and_their_cloud_masks(s2_geotiffs):
    folder = s2_geotiffs[0].parent
    with pytest.raises(
        DimensionError, match=r"S2_CLM_\S+ is the cloud mask of S2_L1C_.*'S2_L1C_\*\.tif'"
    ):
        open_datacube(folder)
    scenes = workbench.open_collection(folder)  # the masks are not scenes of their own
    assert [s.id for s in scenes.scenes] == [p.stem for p in s2_geotiffs]


def test_plain_names_and_band_descriptions(band_files, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for band in ("B04", "B08"):
        shutil.copy(_file(band_files["s2"], band), plain / f"{band}.tif")
    ds = open_datacube(plain)  # {band}.tif: the name is the band; the date from the tags
    assert list(ds.data_vars) == ["B04", "B08"]
    assert str(ds.time.values)[:19] == "2015-07-11T10:00:08"
    # names that say nothing (scene_1, scene_2): the GeoTIFF band descriptions do
    described = tmp_path / "described"
    described.mkdir()
    for k, band in enumerate(("B04", "B08"), start=1):
        shutil.copy(_file(band_files["s2"], band), described / f"scene_{k}.tif")
    assert list(open_datacube(described).data_vars) == ["B04", "B08"]
    # one band file in a list is still a named band (a single path stays rioxarray's band_data)
    one = open_datacube([plain / "B08.tif"])
    assert list(one.data_vars) == ["B08"]
    assert list(open_datacube(plain / "B08.tif").data_vars) == ["band_data"]


def test_a_band_at_several_resolutions_keeps_the_finest(band_files, tmp_path):
    """Sentinel-2 L2A holds B04 in R10m, R20m and R60m: a glob over all of them."""
    from workbench.errors import BandFilesWarning

    scene = band_files["s2_34"]  # L2A names: ..._B04_10m.tif, ..._SCL_20m.tif
    copy = tmp_path / "R20m"
    copy.mkdir()
    b04 = next(scene.glob("*_B04_10m.tif"))
    shutil.copy(next(scene.glob("*_B11_20m.tif")), copy / b04.name.replace("_10m", "_20m"))
    with pytest.warns(BandFilesWarning, match=r"band B04 is given at \[10.0, 20.0\] m"):
        ds = open_datacube([b04, copy / b04.name.replace("_10m", "_20m")])
    with rasterio.open(b04) as src:
        np.testing.assert_array_equal(np.nan_to_num(ds.B04.values), src.read(1))


def test_jpeg2000_band_files_as_in_safe_products(band_files, tmp_path):
    import rasterio.shutil

    granule = tmp_path / "IMG_DATA"
    granule.mkdir()
    for band in ("B04", "B08"):
        src = _file(band_files["s2"], band)
        rasterio.shutil.copy(src, granule / src.name.replace(".tif", ".jp2"), driver="JP2OpenJPEG",
                             QUALITY=100, REVERSIBLE=True)  # fmt: skip
    ds = open_datacube(granule)
    assert list(ds.data_vars) == ["B04", "B08"]
    with rasterio.open(_file(band_files["s2"], "B08")) as src:
        np.testing.assert_array_equal(np.nan_to_num(ds.B08.values), src.read(1))
