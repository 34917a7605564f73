"""Band-per-file scenes in the catalog: one record per scene and cell, properties, STAC, masks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import workbench
from workbench.catalog import Catalog, Location
from workbench.data import examples
from workbench.errors import BandFilesWarning, CatalogError, QueryError


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> Path:
    """2 x 2 labelled patches of two dates in UTM 33N and one date reprojected into UTM 34N."""
    root = tmp_path_factory.mktemp("patches")
    examples.sentinel2_scenes(root, dates=[0, 1], patches=(2, 2))
    examples.sentinel2_scenes(root, dates=[3], patches=(2, 2), crs="EPSG:32634")
    return root


@pytest.fixture(scope="module")
def patch_catalog(tmp_path_factory, patches) -> Catalog:
    cat = Catalog(tmp_path_factory.mktemp("cat"))
    with workbench.set_options(progress=False):
        cat.ingest(patches, properties={"source": "eo-learn", "level": "L1C"}, precision=6)
    return cat


def test_one_record_per_scene_and_cell(patch_catalog, patches) -> None:
    df = patch_catalog.records
    assert df.scene.nunique() == 12  # 4 patches x 3 dates, each its 13 bands together
    assert patch_catalog.datasets == ["sentinel-2-l1c"]  # never one dataset per band
    assert sorted(df.crs.unique()) == ["EPSG:32633", "EPSG:32634"]
    assert df.bands.map(len).eq(13).all()
    res = dict(zip(df.bands.iloc[0], df.band_resolutions.iloc[0], strict=True))
    assert res["B04"] == pytest.approx(9.996, abs=1e-3)
    assert res["B11"] == pytest.approx(19.992, abs=1e-3)
    assert res["B01"] == pytest.approx(59.977, abs=1e-3)
    # acquisition date AND time from the Sentinel-2 names
    times = sorted(df.datetime.dt.strftime("%Y-%m-%dT%H:%M:%S").unique())
    assert times == ["2015-07-11T10:00:08", "2015-07-31T10:00:09", "2015-08-30T10:05:47"]
    # every (scene, cell) once
    assert not df.duplicated(["scene", "geocode"]).any()
    assert df.cloud_source.eq("spectral").all()  # no provider mask in these folders


def test_properties_are_stored_and_queried(patch_catalog, patches) -> None:
    df = patch_catalog.records
    props = df.properties.map(json.loads)
    assert props.map(lambda p: p["source"] == "eo-learn" and p["level"] == "L1C").all()
    labels = json.loads((patches / "S2A_MSIL1C_20150711T100008_0_0" / "labels.json").read_text())
    assert labels["labels"] == ["Forest", "Grassland", "Shrubland"]  # from the LULC map
    shrub = patch_catalog.query(properties={"labels": "Shrubland"})  # membership in the list
    assert set(shrub.scene.str[-3:]) == {"0_0"}
    assert len(shrub) == len(patch_catalog.query(properties={"labels": "Shrubland"}, method="scan"))
    both = patch_catalog.query(properties={"labels": ["Shrubland", "Artificial surface"]})
    assert set(both.scene.str[-3:]) == {"0_0", "0_1"}
    equal = patch_catalog.query(properties={"patch": "S2A_MSIL1C_20150711T100008_0_1"})
    assert set(equal.scene) == {"S2A_MSIL1C_20150711T100008_0_1"}
    assert patch_catalog.query(properties={"labels": "Glacier"}).empty
    summer = patch_catalog.query(time=("2015-07-31", "2015-07-31"), properties={"level": "L1C"})
    assert set(summer.datetime.dt.day) == {31}
    with pytest.raises(QueryError, match="non-empty mapping"):
        patch_catalog.query(properties=["labels"])


def test_geoparquet_stays_readable(patch_catalog) -> None:
    geopandas = pytest.importorskip("geopandas")
    duckdb = pytest.importorskip("duckdb")
    gdf = geopandas.read_parquet(patch_catalog.path)
    assert len(gdf) == len(patch_catalog)
    assert gdf.geometry.is_valid.all()
    con = duckdb.connect()
    n = con.execute(
        "SELECT count(*) FROM read_parquet(?) "
        "WHERE list_contains(CAST(json_extract(properties, '$.labels') AS VARCHAR[]), 'Shrubland')",
        [str(patch_catalog.path)],
    ).fetchone()[0]
    assert n == len(patch_catalog.query(properties={"labels": "Shrubland"}))
    cols = con.execute("SELECT * FROM read_parquet(?) LIMIT 1", [str(patch_catalog.path)]).df()
    assert {"scene", "band_resolutions", "snow_cover", "properties"} <= set(cols.columns)


def test_pieces_read_back_from_the_band_files(patch_catalog) -> None:
    row = patch_catalog.records.iloc[5]
    piece = patch_catalog.open(row)
    loc = Location.from_json(row.location)
    assert loc.format == "bands"
    assert set(loc.assets) == set(row.bands)
    ds = workbench.open_datacube(dict(loc.assets), **loc.options)
    assert list(piece.data_vars) == list(row.bands)
    np.testing.assert_array_equal(piece.B04.isel(time=0).values, ds.B04.isel(loc.slices()).values)
    assert piece.wb.crs.to_string() == row.crs
    assert json.loads(piece.attrs["properties"]) == json.loads(row.properties)


def test_stac_round_trip_offline(patch_catalog, tmp_path) -> None:
    pystac = pytest.importorskip("pystac")
    items = patch_catalog.to_stac(tmp_path / "items.json")
    assert isinstance(items, pystac.ItemCollection)
    first = items.items[0]
    assert first.collection_id == "sentinel-2-l1c"
    assert first.properties["proj:epsg"] in (32633, 32634)
    assert "labels" in first.properties  # what the user knows, at the top level
    assert set(first.assets) == set(patch_catalog.records.bands.iloc[0])
    again = Catalog.from_stac(tmp_path / "items.json", path=tmp_path / "again")
    pd.testing.assert_frame_equal(again.records, patch_catalog.records)
    reread = Catalog.from_stac([pystac.Item.from_dict(i.to_dict()) for i in items.items[:3]])
    assert len(reread) == 3


def test_foreign_stac_items_are_ingested(patches, tmp_path) -> None:
    folder = next(p for p in sorted(patches.iterdir()) if p.name.endswith("20150711T100008_0_1"))
    item = examples.stac_item(folder, {"labels": ["Forest"], "tile": "33TVL"})
    with workbench.set_options(progress=False):
        cat = Catalog.from_stac([item], path=tmp_path / "c", precision=6)
    df = cat.records
    assert df.scene.unique().tolist() == [folder.name]
    assert json.loads(df.properties.iloc[0]) == {"labels": ["Forest"], "tile": "33TVL"}
    assert cat.query(properties={"tile": "33TVL"}).shape[0] == len(df)


def test_a_lone_band_file_is_a_loud_warning(patches, tmp_path) -> None:
    folder = next(iter(sorted(patches.iterdir())))
    band = next(folder.glob("*_B04.tif"))
    cat = Catalog(tmp_path)
    with pytest.warns(BandFilesWarning, match=r"band B04 of scene .* Ingest the scene's folder"):
        cat.ingest(band, precision=6)
    with pytest.warns(BandFilesWarning):
        cat.ingest([band], precision=6)


def test_bad_properties_are_refused(patches, tmp_path) -> None:
    folder = next(iter(sorted(patches.iterdir())))
    with pytest.raises(CatalogError, match="JSON-able"):
        Catalog(tmp_path).ingest(folder, properties={"when": object()})
    with pytest.raises(CatalogError, match="mapping"):
        Catalog(tmp_path).ingest(folder, properties=["labels"])


def test_interrupted_ingest_leftovers_are_cleaned(tmp_path) -> None:
    from workbench.data.synthetic import s2_like

    cat = Catalog(tmp_path)
    assets = tmp_path / "assets"
    dead = assets / f".0123.zarr.{2**22 + 12345}.deadbeef.tmp"  # a pid that is not running
    (dead / "reflectance").mkdir(parents=True)
    live = assets / f".4567.zarr.{os.getpid()}.cafe.tmp"  # being written right now
    live.mkdir()
    half = assets / "89ab.zarr"  # renamed but never given its metadata (an older writer)
    (half / "reflectance").mkdir(parents=True)
    with workbench.set_options(progress=False):
        cat.ingest(s2_like(time=1, y=16, x=16), dataset="demo", precision=6)
    assert not dead.exists()
    assert not half.exists()
    assert live.exists()
    stores = [p for p in assets.iterdir() if p.suffix == ".zarr"]
    assert len(stores) == 1
    assert (stores[0] / ".zmetadata").is_file()


def test_catalog_across_zones_feeds_a_collection(patch_catalog) -> None:
    rows = patch_catalog.query(properties={"labels": "Shrubland"})
    pieces = patch_catalog.open(rows, stack=False)
    assert {p.wb.crs.to_epsg() for p in pieces} == {32633, 32634}
    col = workbench.open_collection(pieces)
    with pytest.warns(UserWarning, match="smaller than one chip"):  # cells cut at scene edges
        chips = col.chips({"y": 8, "x": 8}, variables=["B04", "B08"])
    assert len(chips) > 0
    assert set(np.unique([c[:4] for c in chips.geocodes("geohash", 6)])) == {"u24k"}
    assert json.loads(col.scenes[0].data.attrs["properties"])["labels"][-1] == "Shrubland"


def test_old_catalog_files_read_with_defaults(patch_catalog, tmp_path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(patch_catalog.path)
    old = table.drop(["scene", "band_resolutions", "snow_cover", "properties"])
    pq.write_table(old, tmp_path / "old.parquet")
    cat = Catalog(tmp_path / "old.parquet")
    assert len(cat) == len(patch_catalog)
    assert cat.records.properties.eq("{}").all()
    assert cat.records.snow_cover.isna().all()
    assert cat.query(properties={"labels": "Forest"}).empty
