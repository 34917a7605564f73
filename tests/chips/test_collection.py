"""Collections across UTM zones: chips on each scene's grid, through the one chip stream."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import workbench
from workbench.data import examples
from workbench.errors import ChipSpecError, DataReadError, DimensionError
from workbench.training.data import is_chipset, sample_geocodes

BANDS = ["B02", "B03", "B04", "B08"]
CHIP = {"y": 24, "x": 24}


@pytest.fixture(scope="module")
def zones(tmp_path_factory) -> Path:
    """A folder of scene folders: two dates in UTM 33N, two in UTM 34N (the same place)."""
    root = tmp_path_factory.mktemp("zones")
    examples.sentinel2_scenes(root, dates=[0, 1], bands=(*BANDS, "B11"))
    examples.sentinel2_scenes(root, dates=[3, 4], bands=(*BANDS, "B11"), crs="EPSG:32634")
    return root


@pytest.fixture(scope="module")
def collection(zones):
    return workbench.open_collection(zones, resolution=10, bands=BANDS)


def _per_scene(collection):
    return [ds.wb.chips(CHIP, variables=BANDS) for ds in collection]


def test_scenes_keep_their_own_crs(collection) -> None:
    assert len(collection) == 4
    assert [c.to_epsg() for c in collection.crs] == [32633, 32633, 32634, 32634]
    assert collection.ids[0] == "T33TVL_20150711T100008"
    assert str(collection[0].time.values)[:19] == "2015-07-11T10:00:08"
    summary = collection.summary()
    assert summary.crs.tolist() == ["EPSG:32633"] * 2 + ["EPSG:32634"] * 2


def test_chips_are_each_scenes_own_chips(collection) -> None:
    chips = collection.chips(CHIP)
    singles = _per_scene(collection)
    assert len(chips) == sum(len(c) for c in singles)
    expected = np.concatenate([c.to_numpy() for c in singles])
    np.testing.assert_array_equal(chips.to_numpy(), expected)
    assert chips.scene_ids.tolist() == [
        s for s, c in zip(collection.ids, singles, strict=True) for _ in range(len(c))
    ]
    # the same chips, the same places: geocodes from each scene's lon/lat centres
    codes = np.concatenate([c.geocodes("geohash", 7) for c in singles])
    assert chips.geocodes("geohash", 7).tolist() == codes.tolist()


def test_a_chip_carries_its_crs_and_bounds(collection) -> None:
    chips = collection.chips(CHIP)
    last = chips[len(chips) - 1]
    assert last.wb.crs.to_epsg() == 32634
    assert last.attrs["scene_id"] == collection.ids[-1]
    assert last.attrs["bounds"] == pytest.approx(last.wb.bounds)
    scene, sel = chips.locate(len(chips) - 1)
    xr.testing.assert_identical(last.drop_attrs(), collection[scene][BANDS].isel(sel).drop_attrs())
    assert chips.time(0)[0] == np.datetime64("2015-07-11T10:00:08")


def test_stream_decodes_each_tile_once_per_epoch(collection) -> None:
    chips = collection.chips(CHIP)
    stream = chips.batches(5, shuffle=True, seed=3)
    seen = np.concatenate([b.reshape(len(b), -1)[:, :1] for b in stream])
    assert len(seen) == len(chips)
    stats = stream.last_stats
    tiles = len(np.unique(stream.reader.tile_of(chips.grid.origins(chips.ids))))
    assert stats["loads"] <= tiles + len(collection)  # a chip may reach into the next tile
    assert set(stats["read_routes"].values()) == {"xarray"}


def test_ddp_shards_cover_every_chip_once(collection) -> None:
    chips = collection.chips(CHIP, {"y": 8})
    world = 3
    streams = [chips.batches(4, shuffle=True, seed=0, rank=r, world_size=world) for r in range(3)]
    sizes = {len(s) for s in streams}
    assert len(sizes) == 1  # the same number of batches on every rank
    positions = np.concatenate([np.concatenate(s.batch_indices(0)) for s in streams])
    assert set(positions.tolist()) == set(range(len(chips)))


def test_partitioned_training_helpers_see_a_chipset(collection) -> None:
    chips = collection.chips(CHIP)
    assert is_chipset(chips)
    codes = sample_geocodes(chips, scheme="geohash", precision=6)
    assert len(codes) == len(chips)
    view = chips.select(np.flatnonzero(codes == codes[0]))
    assert set(view.scene_ids.tolist()) <= set(collection.ids)
    np.testing.assert_array_equal(view.to_numpy(), chips.to_numpy()[codes == codes[0]])
    clone = pickle.loads(pickle.dumps(view))  # as engines receive it
    np.testing.assert_array_equal(clone.to_numpy(), view.to_numpy())


def test_warp_to_one_crs(zones) -> None:
    warped = workbench.open_collection(zones, crs="EPSG:32633", resolution=20, bands=["B04"])
    assert {c.to_epsg() for c in warped.crs} == {32633}
    first, moved = warped[0], warped[2]
    assert float(first.x[1] - first.x[0]) == 20.0
    # one lattice: pixel edges on multiples of 20 m in both
    for ds in (first, moved):
        assert float((ds.x[0] - 10) % 20) == pytest.approx(0.0, abs=1e-6)
    chips = warped.chips({"y": 16, "x": 16})
    assert chips.to_numpy().shape[1:] == (1, 16, 16)


def test_datasets_stac_items_and_globs_are_scenes(zones, tmp_path) -> None:
    folders = sorted(p for p in zones.iterdir() if p.is_dir())
    item = examples.stac_item(folders[0], {"labels": ["Forest"]})
    ds = workbench.open_datacube(folders[1], bands=BANDS)
    col = workbench.open_collection([item, ds, str(folders[2] / "*_B0[2348].tif")], bands=BANDS)
    assert len(col) == 3
    assert col.scenes[0].properties == {"labels": ["Forest"]}
    assert col.scenes[0].location["assets"]["B04"].endswith("_B04.tif")
    assert col.crs[2].to_epsg() == 32634
    assert len(col.chips(CHIP, variables=BANDS)) > 0


def test_scenes_with_other_bands_and_small_scenes_are_loud(zones) -> None:
    folders = sorted(p for p in zones.iterdir() if p.is_dir())
    a = workbench.open_datacube(folders[0], bands=["B02", "B04"])
    b = workbench.open_datacube(folders[1], bands=["B04", "B08"])
    col = workbench.open_collection([a, b])
    with pytest.warns(UserWarning, match=r"\['B02', 'B08'\] are not in every scene"):
        chips = col.chips(CHIP)
    assert chips.variables == ["B04"]
    with pytest.raises(ChipSpecError, match=r"has no variable\(s\) \['B02'\]"):
        col.chips(CHIP, variables=["B02"])
    small = workbench.open_collection([a.isel(y=slice(0, 10)), a])
    with pytest.warns(UserWarning, match="smaller than one chip"):
        assert len(small.chips(CHIP)) == len(a.wb.chips(CHIP))
    with pytest.raises(ChipSpecError, match="no scene is as large as one chip"):
        small.select([0]).chips(CHIP)


def test_a_lost_band_file_is_a_read_error_naming_the_scene(zones, tmp_path) -> None:
    import shutil

    folder = tmp_path / "scene"
    shutil.copytree(sorted(p for p in zones.iterdir() if p.is_dir())[0], folder)
    col = workbench.open_collection(folder, bands=["B04"])
    chips = col.chips(CHIP)
    next(folder.glob("*_B04.tif")).write_bytes(b"II*\x00damaged")
    xr.backends.file_manager.FILE_CACHE.clear()  # the file is opened again, as it is damaged
    with pytest.raises(DataReadError, match=r"variable 'B04' of scene 'T33TVL_20150711T100008'"):
        chips.to_numpy()


def test_scenes_of_other_dim_names_need_one_crs(zones) -> None:
    a = workbench.open_datacube(sorted(p for p in zones.iterdir() if p.is_dir())[0], bands=["B04"])
    lonlat = workbench.open_datacube(workbench.data.samples.sample_path("era5_t2m")).isel(time=0)
    with pytest.raises(DimensionError, match="crs="):
        workbench.open_collection([a, lonlat]).chips({"y": 8, "x": 8})


@pytest.mark.torch
def test_to_torch_over_zones(collection) -> None:
    pytest.importorskip("torch")
    chips = collection.chips(CHIP)
    x = next(iter(chips.to_torch(len(chips), device="cpu", order="index")))
    assert tuple(x.shape) == (len(chips), 4, 24, 24)
    assert str(x.dtype) == "torch.float32"
    np.testing.assert_array_equal(x.numpy(), chips.to_numpy())


def test_preview_across_zones(collection) -> None:
    pytest.importorskip("anywidget")
    chips = collection.chips(CHIP)
    gallery = chips.preview(n=6)
    assert len(gallery.images) == 6
    assert {m["geocode"][:4] for m in gallery.meta} == {"u24k"}  # one place, two zones
    assert gallery.details(len(chips) - 1)["time"][0].startswith("2015-09-09")
