"""Chips from lazily opened stores: equal to memory, chunks decoded once, bounded cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import workbench  # noqa: F401
from workbench.chips.reader import TileReader
from workbench.chips.source import ArraySource
from workbench.options import set_options

VARS = ["t2m", "u10", "v10", "msl"]
SPECS = [
    ({"time": 1, "lat": 8, "lon": 8}, None),  # aligned with the 12 x 16 x 16 chunks
    ({"time": 3, "lat": 10, "lon": 12}, {"lat": 3, "lon": 5}),  # chips cross chunk edges
]


def test_source_kinds(era5, era5_lazy) -> None:
    assert ArraySource(era5, ("lat", "lon"), VARS).kind == "memory"
    lazy = ArraySource(era5_lazy, ("time", "lat", "lon"), VARS)
    assert lazy.kind == "lazy"
    assert lazy.chunk_shape() == (12, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dask = ArraySource(era5.chunk({"time": 5}), ("time", "lat"), VARS)
    assert dask.kind == "dask"
    assert dask.chunk_shape() == (5, 40)


@pytest.mark.parametrize(("dims", "overlap"), SPECS)
def test_store_equals_memory_exactly(era5, era5_lazy, dims, overlap) -> None:
    mem = era5.wb.chips(dims, overlap, variables=VARS)
    lazy = era5_lazy.wb.chips(dims, overlap, variables=VARS)
    assert len(mem) == len(lazy)
    np.testing.assert_array_equal(lazy.to_numpy(), mem.to_numpy())
    pick = np.random.default_rng(0).permutation(len(mem))[:17]
    np.testing.assert_array_equal(lazy.to_numpy(pick), mem.to_numpy(pick))
    xr.testing.assert_allclose(lazy[5].load(), mem[5])
    # the user's object is not turned into an in-memory one by reading chips
    assert not era5_lazy["t2m"].variable._in_memory


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(("dims", "overlap"), SPECS)
def test_store_batches_equal_memory_batches(era5, era5_lazy, dims, overlap, shuffle) -> None:
    mem = era5.wb.chips(dims, overlap, variables=VARS)
    lazy = era5_lazy.wb.chips(dims, overlap, variables=VARS)
    reference = mem.to_numpy()
    loader = lazy.batches(24, shuffle=shuffle, seed=3)
    batches = loader.batch_indices()
    got = list(loader)
    assert len(got) == len(batches) == len(loader)
    for tensor, idx in zip(got, batches, strict=True):
        np.testing.assert_array_equal(tensor, reference[idx])
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(mem)))


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(("dims", "overlap"), SPECS)
def test_each_tile_decoded_once_per_epoch(era5_lazy, dims, overlap, shuffle) -> None:
    """Sequential and shuffled epochs decode every needed tile exactly once (cache big enough)."""
    chips = era5_lazy.wb.chips(dims, overlap, variables=VARS)
    loader = chips.batches(16, shuffle=shuffle, seed=0, window=2)
    for _ in loader:
        pass
    stats = loader.last_stats
    reader = loader.reader
    needed = {
        k
        for o in chips.grid.origins(chips.ids)
        for k in reader.tiles_for(o, o + np.asarray(chips.grid.sizes))
    }
    assert stats["loads"] == len(needed)
    assert stats["max_loads_per_tile"] == 1


def test_cache_stays_bounded_on_a_store_larger_than_the_cache(era5_lazy) -> None:
    """A cache of 3 tiles over a 48-tile store: bytes held stay within the bound."""
    chips = era5_lazy.wb.chips({"time": 1, "lat": 8, "lon": 8}, variables=VARS)
    tile_bytes = 12 * 16 * 16 * 4 * len(VARS)
    total = era5_lazy[VARS].nbytes
    with set_options(chunk_cache_bytes=3 * tile_bytes):
        for shuffle in (False, True):
            loader = chips.batches(32, shuffle=shuffle, seed=1)
            assert loader.reader.tile_bytes == tile_bytes
            n = sum(len(x) for x in loader)
            assert n == len(chips)
            stats = loader.last_stats
            assert (
                stats["peak_bytes"] <= 3 * tile_bytes + tile_bytes
            )  # bound + the tile being added
            assert stats["max_loads_per_tile"] == 1
            assert total > 10 * stats["max_bytes"]


def test_small_cache_costs_redecodes_not_memory(era5_lazy) -> None:
    """Chips crossing tile edges and a one-tile cache: halos decode again, memory stays bounded."""
    chips = era5_lazy.wb.chips({"time": 3, "lat": 10, "lon": 12}, {"lat": 3}, variables=VARS)
    reference = chips.to_numpy()
    one_tile = 12 * 16 * 16 * 4 * len(VARS)
    loader = chips.batches(40, cache_bytes=one_tile)
    got = np.concatenate(list(loader))
    np.testing.assert_array_equal(got, reference[np.concatenate(loader.batch_indices(0))])
    # a region crossing tile edges needs its (at most 2**3) tiles at once: that is the bound
    assert loader.last_stats["peak_bytes"] <= 8 * one_tile
    assert loader.reader.n_tiles == 48
    assert loader.last_stats["max_loads_per_tile"] > 1


def test_unchunked_lazy_netcdf_is_tiled_by_the_cache(era5, tmp_path: Path) -> None:
    """A contiguous NetCDF has no chunks: tiles are cut to fit the cache, values unchanged."""
    path = tmp_path / "era5.nc"
    era5[VARS].to_netcdf(path)
    with xr.open_dataset(path) as lazy:
        assert lazy["t2m"].encoding.get("chunksizes") is None
        chips = lazy.wb.chips({"time": 2, "lat": 8, "lon": 8}, variables=VARS)
        with set_options(chunk_cache_bytes=200_000):
            loader = chips.batches(10)
            reader = loader.reader
            assert reader.n_tiles > 1
            assert (
                reader.tile_bytes <= 200_000 // 8
                or min(t // s for t, s in zip(reader.tile_shape, chips.grid.sizes, strict=True))
                == 1
            )
            got = np.concatenate(list(loader))
        expected = era5.wb.chips({"time": 2, "lat": 8, "lon": 8}, variables=VARS).to_numpy()
        np.testing.assert_array_equal(got, expected[np.concatenate(loader.batch_indices(0))])


def test_dask_backed_data(era5) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunked = era5.chunk({"time": 7, "lat": 13, "lon": 9})
    dims = {"time": 2, "lat": 8, "lon": 8}
    chips = chunked.wb.chips(dims, {"lon": 3}, variables=VARS)
    expected = era5.wb.chips(dims, {"lon": 3}, variables=VARS).to_numpy()
    np.testing.assert_array_equal(chips.to_numpy(), expected)
    loader = chips.batches(50, shuffle=True, seed=2)
    got = np.concatenate(list(loader))
    np.testing.assert_array_equal(got, expected[np.concatenate(loader.batch_indices(0))])


def test_reader_region_spanning_tiles(era5_lazy) -> None:
    source = ArraySource(era5_lazy, ("time", "lat", "lon"), ["t2m"])
    from workbench.chips.grid import ChipGrid

    grid = ChipGrid.from_sizes(era5_lazy.sizes, {"time": 1, "lat": 4, "lon": 4})
    reader = TileReader(source, grid)
    region = reader.region((10, 14, 30), (14, 20, 35))[0]
    np.testing.assert_array_equal(region, era5_lazy.t2m.values[10:14, 14:20, 30:35])
    assert reader.cache.loads == 2 * 2 * 2


def test_ddp_shards_from_a_store_with_padding(era5, era5_lazy) -> None:
    """1680 chips over 11 ranks in batches of 8: ranks are padded to equal batch counts."""
    dims = {"time": 1, "lat": 8, "lon": 8}
    chips = era5_lazy.wb.chips(dims, variables=VARS)
    reference = era5.wb.chips(dims, variables=VARS).to_numpy()
    assert len(chips) == 1680
    loaders = [chips.batches(8, shuffle=True, seed=4, rank=r, world_size=11) for r in range(11)]
    assert len({len(ld) for ld in loaders}) == 1
    seen = []
    for ld in loaders[:3] + loaders[-1:]:
        idx = np.concatenate(ld.batch_indices(0))
        got = np.concatenate(list(ld))
        np.testing.assert_array_equal(got, reference[idx])
    for ld in loaders:
        seen.extend(np.concatenate(ld.batch_indices(0)).tolist())
    assert set(seen) == set(range(1680))
    assert len(seen) - 1680 < 11


def test_sequential_epoch_reads_neighbouring_tiles_together(era5_lazy, monkeypatch) -> None:
    """Storage order reads runs of tiles along the last dim with one call per variable."""
    calls = []
    original = ArraySource.read

    def counting(self, index, lo, hi):
        calls.append((index, tuple(lo), tuple(hi)))
        return original(self, index, lo, hi)

    monkeypatch.setattr(ArraySource, "read", counting)
    chips = era5_lazy.wb.chips({"time": 1, "lat": 8, "lon": 8}, variables=VARS)
    loader = chips.batches(64)
    got = np.concatenate(list(loader))
    reader = loader.reader
    assert reader.run_length == min(reader.max_run, reader.tile_counts[-1])
    assert loader.last_stats["loads"] == reader.n_tiles
    assert len(calls) < reader.n_tiles * len(VARS)  # fewer reads than tiles x variables
    monkeypatch.setattr(ArraySource, "read", original)
    np.testing.assert_array_equal(got, chips.to_numpy(np.concatenate(loader.batch_indices(0))))


@pytest.mark.parametrize("shuffle", [False, True])
def test_tiles_and_staged_chips_share_one_budget(era5_lazy, shuffle) -> None:
    """Decoded tiles plus the chips staged from them stay within chunk_cache_bytes.

    (A stream used to hold the staged chips on top of a full tile cache: twice its budget.)
    """
    chips = era5_lazy.wb.chips({"time": 1, "lat": 8, "lon": 8}, variables=VARS)
    tile_bytes = 12 * 16 * 16 * 4 * len(VARS)
    budget = 8 * tile_bytes
    with set_options(chunk_cache_bytes=budget):
        loader = chips.batches(32, shuffle=shuffle, seed=1)
        reference = chips.to_numpy()
        got = np.concatenate(list(loader))
    np.testing.assert_array_equal(got, reference[np.concatenate(loader.batch_indices(0))])
    stats = loader.last_stats
    assert stats["peak_total_bytes"] > stats["peak_bytes"]  # staged chips were counted
    assert stats["peak_total_bytes"] <= budget + tile_bytes  # + the tile being stored
    assert stats["max_loads_per_tile"] == 1
    assert loader.reader.cache.reserved == 0  # every reservation returned at the end
