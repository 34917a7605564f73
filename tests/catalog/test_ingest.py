from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import workbench
from workbench.catalog import Catalog, Location
from workbench.data.synthetic import s2_like
from workbench.errors import CatalogError, DataReadError
from workbench.geo import geohash
from workbench.geo.partition import partition
from workbench.testing import shared_data

CLOUDY = ("2015-07-31", "2015-08-20")


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_real_series_records(s2_catalog, s2_tifs):
    df = s2_catalog.records
    parts = partition(workbench.open_datacube(s2_tifs[0]), "geohash", 6)
    assert len(df) == 5 * len(parts) == 30
    assert s2_catalog.datasets == ["S2_L1C"]
    assert set(df.geocode) == set(parts.codes)
    days = df.datetime.dt.strftime("%Y-%m-%d")
    cloudy = days.isin(CLOUDY)
    # cloud cover from the S2_CLM_<date>.tif masks: the two cloudy dates are fully cloudy
    assert (df.cloud_cover[cloudy] == 100).all()
    assert (df.cloud_cover[~cloudy] == 0).all()
    assert df.cloud_source.str.startswith("mask:S2_CLM_").all()
    # every pixel is valid, so pixel coverage is the share of the cell the scene covers
    for _, row in df[days == "2015-08-30"].iterrows():
        assert row.pixel_coverage == pytest.approx(100 * parts.coverage(row.geocode))
        loc = Location.from_json(row.location)
        assert loc.slices() == {k: v for k, v in parts.slices(row.geocode).items()}
        w, s, e, n = geohash.bounds(row.geocode)
        bx = row.bbox
        assert w - 1e-9 <= bx[0] <= bx[2] <= e + 1e-9
        assert s - 1e-9 <= bx[1] <= bx[3] <= n + 1e-9
    assert df.crs.eq("EPSG:32633").all()
    assert df.resolution.round(3).eq(9.995).all()
    assert df.bands.map(len).eq(13).all()
    assert df.bands[0][:2] == ["B01", "B02"]
    assert (df.scheme == "geohash").all()


def test_geoparquet_readable_by_geopandas(s2_catalog):
    geopandas = pytest.importorskip("geopandas")
    import pyarrow.parquet as pq

    gdf = geopandas.read_parquet(s2_catalog.path)
    assert gdf.crs.to_epsg() == 4326 or gdf.crs.to_string() == "OGC:CRS84"
    assert len(gdf) == len(s2_catalog)
    assert gdf.geometry.is_valid.all()
    assert (~gdf.geometry.is_empty).all()
    bounds = gdf.geometry.bounds.to_numpy()
    np.testing.assert_allclose(bounds, np.array(s2_catalog.records.bbox.tolist()), atol=1e-12)
    geo = json.loads(pq.read_schema(s2_catalog.path).metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB"
    assert col["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    assert col["geometry_types"] == ["Polygon"]


def test_ingest_is_idempotent(tmp_path, s2_tifs):
    cat = Catalog(tmp_path / "c.parquet")
    with workbench.set_options(progress=False):
        first = cat.ingest(s2_tifs[:2], precision=6)
        before, digest = cat.records, _sha(cat.path)
        again = cat.ingest(s2_tifs[:2], precision=6)
    assert again.id.tolist() == first.id.tolist()
    pd.testing.assert_frame_equal(cat.records, before)
    assert _sha(cat.path) == digest
    pd.testing.assert_frame_equal(Catalog(cat.path).records, before)


def test_crash_mid_ingest_keeps_previous_catalog(tmp_path, s2_tifs, monkeypatch):
    import workbench.catalog.catalog as catalog_module

    cat = Catalog(tmp_path / "c.parquet")
    with workbench.set_options(progress=False):
        cat.ingest(s2_tifs[:2], precision=6)
    before, digest = cat.records, _sha(cat.path)

    calls = {"n": 0}
    real = catalog_module.scene_records

    def flaky(scene, options):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        return real(scene, options)

    monkeypatch.setattr(catalog_module, "scene_records", flaky)
    with pytest.raises(RuntimeError, match="power cut"), workbench.set_options(progress=False):
        cat.ingest(s2_tifs, precision=7)
    assert calls["n"] == 3
    assert _sha(cat.path) == digest
    pd.testing.assert_frame_equal(Catalog(cat.path).records, before)
    # a missing file in the list: same guarantee
    with pytest.raises(DataReadError), workbench.set_options(progress=False):
        Catalog(cat.path).ingest([s2_tifs[2], tmp_path / "gone.tif"], precision=6)
    assert _sha(cat.path) == digest


def test_crash_during_write_keeps_previous_catalog(tmp_path, s2_tifs, monkeypatch):
    import workbench._files as files

    cat = Catalog(tmp_path / "c.parquet")
    with workbench.set_options(progress=False):
        cat.ingest(s2_tifs[:1], precision=6)
    digest = _sha(cat.path)

    def boom(src, dst):
        assert src.exists()
        assert src.stat().st_size > 0
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt), workbench.set_options(progress=False):
        cat.ingest(s2_tifs[1:3], precision=6)
    monkeypatch.undo()
    assert _sha(cat.path) == digest
    assert len(Catalog(cat.path)) == 6
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_folder_of_images_and_their_masks_is_ingested_as_the_images(
    tmp_path, s2_catalog, s2_tifs
):
    """A provider's folder (S2_L1C_<date>.tif beside S2_CLM_<date>.tif): masks are cloud cover."""
    folder = s2_tifs[0].parent
    assert len(list(folder.glob("S2_CLM_*.tif"))) == 5
    cat = Catalog(tmp_path / "c.parquet")
    with workbench.set_options(progress=False):
        df = cat.ingest(folder, precision=6)
    assert cat.datasets == ["S2_L1C"]  # no dataset of masks
    got = df.set_index("id").sort_index()
    want = s2_catalog.records.set_index("id").sort_index()
    assert got.index.tolist() == want.index.tolist()  # 5 dates x 6 cells, same ids
    pd.testing.assert_series_equal(got.cloud_cover, want.cloud_cover)
    assert got.cloud_source.str.startswith("mask:S2_CLM_").all()


def test_spectral_cloud_cover_without_masks(tmp_path, s2_tifs):
    cat = Catalog(tmp_path / "c.parquet")
    with workbench.set_options(progress=False):
        df = cat.ingest(s2_tifs, precision=6, cloud_mask=None)
    assert (df.cloud_source == "spectral").all()
    cloudy = df.datetime.dt.strftime("%Y-%m-%d").isin(CLOUDY)
    assert (df.cloud_cover[cloudy] > 60).all()
    assert df.cloud_cover[cloudy].mean() > 85
    assert (df.cloud_cover[~cloudy] < 1).all()


def test_cube_with_mask_variable_and_assets(tmp_path, s2_nc_stack):
    cat = Catalog(tmp_path)
    with workbench.set_options(progress=False):
        df = cat.ingest(s2_nc_stack, dataset="eolearn", precision=6)
    assert cat.path == tmp_path / "catalog.parquet"
    assert len(df) == 5 * df.geocode.nunique()
    assert (df.cloud_source == "mask:cloud_mask").all()
    assert df.bands[0] == [str(b) for b in s2_nc_stack.band.values]
    stores = list((tmp_path / "assets").glob("*.zarr"))
    assert len(stores) == 1
    assert all(json.loads(loc)["href"].startswith("assets/") for loc in df.location)
    cloudy = df.datetime.dt.strftime("%Y-%m-%d").isin(CLOUDY)
    assert (df.cloud_cover[cloudy] == 100).all()
    assert (df.cloud_cover[~cloudy] == 0).all()
    with workbench.set_options(progress=False):
        again = cat.ingest(s2_nc_stack, dataset="eolearn", precision=6)
    assert again.id.tolist() == df.id.tolist()
    assert len(cat) == len(df)
    assert list((tmp_path / "assets").glob("*.zarr")) == stores
    # the catalog opens the piece back with the cube's values
    row = df.iloc[7]
    piece = cat.open(row)
    loc = Location.from_json(row.location)
    expect = s2_nc_stack.reflectance.isel(loc.slices())
    np.testing.assert_array_equal(piece.reflectance.values, expect.values)
    with pytest.raises(CatalogError, match="dataset name"):
        cat.ingest(s2_nc_stack)


def test_netcdf_file_variables_and_time_dim(tmp_path):
    path = shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")
    cat = Catalog(tmp_path / "nc.parquet")
    with workbench.set_options(progress=False):
        df = cat.ingest(
            path, variables=["ndvi"], cloud_mask="cloud_mask", precision=6, dataset="ndvi"
        )
    assert df.datetime.nunique() == 68
    assert df.bands.map(lambda b: list(b) == ["ndvi"]).all()
    with xr.open_dataset(path) as ds:
        scene_cc = ds.cloud_coverage.values
        row = df[df.datetime == df.datetime.iloc[0]].iloc[0]
        loc = Location.from_json(row.location)
        assert loc.href == str(path.resolve())
        assert loc.isel["time"][1] - loc.isel["time"][0] == 1
        expect = ds.ndvi.isel(loc.slices()).values
    np.testing.assert_array_equal(cat.open(row).ndvi.values, expect)
    # per-date mean of the piece cloud covers follows the scene cloud coverage eo-learn stored
    per_date = df.groupby("datetime").cloud_cover.mean().to_numpy() / 100
    assert np.corrcoef(per_date, scene_cc)[0, 1] > 0.95


def test_pixel_coverage_counts_nodata_and_partial_cells(tmp_path):
    ds = s2_like(time=1, y=60, x=60, cloud_fraction=0.0)
    holes = ds.reflectance.copy()
    holes[:, :, :, 30:] = np.nan  # the east half has no data in any band
    holes[:, 0, :30, :] = np.nan  # one band missing in the north-west quarter
    cat = Catalog(tmp_path)
    with workbench.set_options(progress=False):
        full = cat.ingest(ds, dataset="full", precision=6)
        part = cat.ingest(ds.assign(reflectance=holes), dataset="holes", precision=6)
    parts = partition(ds, "geohash", 6)
    for _, row in full.iterrows():
        assert row.pixel_coverage == pytest.approx(100 * parts.coverage(row.geocode))
    labels = parts.labels().values
    valid = np.isfinite(holes.isel(time=0).values).sum(0)  # valid bands per pixel
    for _, row in part.iterrows():
        own = labels == row.geocode
        share = valid[own].sum() / (own.sum() * ds.sizes["band"])
        assert row.pixel_coverage == pytest.approx(100 * parts.coverage(row.geocode) * share)
    assert part.pixel_coverage.sum() < full.pixel_coverage.sum()


def test_undated_landsat_and_datetime_override(tmp_path):
    path = shared_data("stars_landsat7_olinda/L7_ETMs.tif")
    cat = Catalog(tmp_path)
    with workbench.set_options(progress=False):
        df = cat.ingest(path, precision=5)
    assert cat.datasets == ["L7_ETMs"]
    assert df.datetime.isna().all()
    assert (df.cloud_source == "none").all()
    assert df.cloud_cover.isna().all()
    assert cat.query(time=(None, "2030-01-01")).empty
    assert len(cat.query(max_cloud=100)) == 0
    assert len(cat.query(min_pixel_coverage=0)) == len(df)
    with workbench.set_options(progress=False):
        dated = cat.ingest(path, precision=5, datetime="2001-06-01", dataset="L7")
    assert (dated.datetime == pd.Timestamp("2001-06-01", tz="UTC")).all()
    assert len(cat.query(time=("2001-06-01", "2001-06-01"), dataset="L7")) == len(dated)


def test_glob_and_quadkey(tmp_path, s2_tifs):
    cat = Catalog(tmp_path)
    pattern = str(s2_tifs[0].parent / "S2_L1C_2015-08-*.tif")
    with workbench.set_options(progress=False):
        df = cat.ingest(pattern, scheme="quadkey", precision=16)
    assert df.datetime.dt.month.eq(8).all()
    assert df.datetime.nunique() == 2
    assert df.geocode.str.fullmatch("[0-3]{16}").all()
    assert (df.scheme == "quadkey").all()
    with pytest.raises(DataReadError, match="matches no file"):
        cat.ingest(str(tmp_path / "*.tif"))


def test_progress_bar_follows_options(tmp_path, s2_tifs, capsys):
    cat = Catalog(tmp_path)
    with workbench.set_options(progress=True):
        cat.ingest(s2_tifs[:2], precision=5)
    assert "ingest" in capsys.readouterr().err
    with workbench.set_options(progress=False):
        cat.ingest(s2_tifs[:2], precision=5)
    assert "ingest" not in capsys.readouterr().err


def test_bad_ingest_options(tmp_path, s2_tifs, s2_nc_stack):
    cat = Catalog(tmp_path)
    with pytest.raises(CatalogError, match="does not apply to the GeoTIFF"):
        cat.ingest(s2_tifs[0], cloud_mask="clouds")
    with pytest.raises(CatalogError, match="time_dim='ref_time'"):
        cat.ingest(s2_nc_stack.rename(time="ref_time"), dataset="x", cloud_mask=False)
    with pytest.raises(CatalogError, match="not a variable of the cube"):
        cat.ingest(s2_nc_stack, dataset="x", cloud_mask="clouds")
    assert len(cat) == 0
    assert not cat.path.exists()
