"""Chunk-aware reads of chip regions: decode each tile once, cut every chip from it.

The chipped dims are cut into *tiles*: boxes of whole storage chunks (at least one
chip long), spanning the full extent of the other dims. A tile is the unit of
decoding: :class:`TileReader` decodes it once through a :class:`~.cache.TileCache`
bounded by ``workbench.options`` ``chunk_cache_bytes``, and a background thread pool
decodes the next tiles while chips are cut from the current ones (Zarr decompression
releases the GIL). Chips are grouped into *blocks* by the tile that holds their first
pixel; a block's *region* (the union of its chips) may reach into neighbouring tiles by
up to a chip length, in which case it is assembled from the cached tiles.

In-memory data is one tile covering everything: regions are views, nothing is cached.

Memory: decoded tiles held by the cache stay within ``chunk_cache_bytes``, except that
the newest tile and the tiles prefetched but not used yet are never evicted (so no
decode is wasted); callers prefetch only while that fits (see
:class:`~workbench.chips.stream.ChipStream`). A region crossing tile edges needs its
tiles (at most ``2**ndim``) at once.

Examples
--------
>>> from workbench.data.synthetic import era5_like
>>> from workbench.chips.grid import ChipGrid
>>> from workbench.chips.source import ArraySource
>>> ds = era5_like(time=4, lat=8, lon=8).chunk({"time": 2, "lat": 4, "lon": 4})
>>> grid = ChipGrid.from_sizes(ds.sizes, {"time": 1, "lat": 4, "lon": 4})
>>> reader = TileReader(ArraySource(ds, grid.dims, ["t2m"]), grid)
>>> reader.tile_shape, reader.tile_counts
((2, 4, 4), (2, 2, 2))
>>> [a.shape for a in reader.region((1, 2, 2), (3, 6, 6))], reader.cache.loads
([(2, 4, 4)], 8)
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from workbench.chips.cache import TileCache
from workbench.chips.grid import ChipGrid
from workbench.chips.source import ArraySource
from workbench.options import OPTIONS

__all__ = ["TileReader", "plan_tile_shape"]

#: A tile of unknown chunking is shrunk until it is at most this share of the cache.
_UNCHUNKED_SHARE = 8


def plan_tile_shape(source: ArraySource, grid: ChipGrid, cache_bytes: int) -> tuple[int, ...]:
    """Tile length along each chipped dim.

    Whole chunks, and at least one chip long (so a chip spans at most two tiles per
    dim); the whole extent for in-memory data. Dims of unknown chunking start whole
    and are halved (not below a chip) until a tile fits in ``cache_bytes / 8``.

    Examples
    --------
    >>> from workbench.data.synthetic import era5_like
    >>> ds = era5_like(time=4, lat=16, lon=16).chunk({"time": 1, "lat": 3, "lon": 16})
    >>> grid = ChipGrid.from_sizes(ds.sizes, {"time": 2, "lat": 4, "lon": 4})
    >>> plan_tile_shape(ArraySource(ds, grid.dims, ["t2m"]), grid, 2**20)
    (2, 6, 16)
    """
    if source.kind == "memory":
        return source.extent
    chunks = source.chunk_shape()
    tile = []
    for extent, size, chunk in zip(source.extent, grid.sizes, chunks, strict=True):
        if chunk is None:
            tile.append(extent)
        else:
            tile.append(min(extent, chunk * max(1, math.ceil(size / chunk))))
    per_cell = source.bytes_per_cell()
    target = max(1, cache_bytes // _UNCHUNKED_SHARE)
    free = [i for i, c in enumerate(chunks) if c is None]
    while free and math.prod(tile) * per_cell > target:
        axis = max(free, key=lambda i: tile[i] / grid.sizes[i])
        half = max(grid.sizes[axis], math.ceil(tile[axis] / 2))
        if half >= tile[axis]:
            free.remove(axis)
            continue
        tile[axis] = half
    return tuple(tile)


class TileReader:
    """Read chip regions of an :class:`ArraySource` tile by tile, through a bounded cache.

    Parameters
    ----------
    source : ArraySource
        Variables in chip layout.
    grid : ChipGrid
        The chip grid (for chip sizes).
    cache_bytes : int, optional
        Bound of the decoded-tile cache; ``workbench.options`` ``chunk_cache_bytes`` by default.
    workers : int, optional
        Threads decoding tiles ahead of use (prefetch); default: the CPU count, between 2 and 8.
    """

    def __init__(
        self,
        source: ArraySource,
        grid: ChipGrid,
        cache_bytes: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.source = source
        self.grid = grid
        self.cache_bytes = int(cache_bytes or OPTIONS["chunk_cache_bytes"])
        self.tile_shape = plan_tile_shape(source, grid, self.cache_bytes)
        self.tile_counts = tuple(
            math.ceil(n / t) for n, t in zip(source.extent, self.tile_shape, strict=True)
        )
        self.in_memory = source.kind == "memory"
        self.cache = TileCache(self._load, self.cache_bytes)
        self.workers = int(workers) if workers else max(2, min(8, os.cpu_count() or 2))
        #: Most tiles read by one call (neighbours along the last dim decode concurrently
        #: inside one Zarr read, and per-call overhead is paid once).
        self.max_run = 8
        self._executor: ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    # -- tiles ------------------------------------------------------------------------------
    @property
    def tile_bytes(self) -> int:
        """Bytes of one full tile (all variables)."""
        return math.prod(self.tile_shape) * self.source.bytes_per_cell()

    @property
    def n_tiles(self) -> int:
        """Number of tiles of the data."""
        return math.prod(self.tile_counts)

    def tile_of(self, origins: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Tile number holding each chip origin (rows of ``origins``)."""
        if self.in_memory or len(origins) == 0:
            return np.zeros(len(origins), dtype=np.int64)
        multi = origins // np.asarray(self.tile_shape, dtype=np.int64)
        flat = np.ravel_multi_index(tuple(multi.T), self.tile_counts)
        return np.asarray(flat, dtype=np.int64)

    def tile_box(self, key: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(lo, hi)`` of tile ``key`` along the chipped dims."""
        multi = np.unravel_index(int(key), self.tile_counts)
        lo = tuple(int(m) * t for m, t in zip(multi, self.tile_shape, strict=True))
        hi = tuple(
            min(a + t, n) for a, t, n in zip(lo, self.tile_shape, self.source.extent, strict=True)
        )
        return lo, hi

    def tiles_for(self, lo: Sequence[int], hi: Sequence[int]) -> list[int]:
        """Tiles that the box ``[lo, hi)`` touches, in storage order."""
        if self.in_memory:
            return [0]
        ranges = [
            range(int(a) // t, (int(b) - 1) // t + 1)
            for a, b, t in zip(lo, hi, self.tile_shape, strict=True)
        ]
        return [int(np.ravel_multi_index(m, self.tile_counts)) for m in itertools.product(*ranges)]

    def _load(self, key: Any) -> list[Any]:
        lo, hi = self.tile_box(int(key))
        return [self.source.read(i, lo, hi) for i in range(len(self.source.layouts))]

    def _load_run(self, keys: list[Any]) -> list[list[Any]]:
        """Read consecutive tiles along the last chipped dim with one read per variable."""
        lo, _ = self.tile_box(int(keys[0]))
        _, hi = self.tile_box(int(keys[-1]))
        whole = [self.source.read(i, lo, hi) for i in range(len(self.source.layouts))]
        axis = len(self.tile_shape) - 1
        out = []
        for key in keys:
            tlo, thi = self.tile_box(int(key))
            cut = (slice(None),) * axis + (slice(tlo[axis] - lo[axis], thi[axis] - lo[axis]),)
            # a tile owns its memory, so evicting it frees it (a view would pin the whole run)
            out.append([a[cut] for a in whole])
        return out

    @property
    def run_length(self) -> int:
        """Tiles read together in storage order (neighbours along the last dim).

        At most ``max_run``, and a run fits in an eighth of the cache (a run is read whole
        by a reader thread before its tiles go into the cache).
        """
        fit = int(self.cache_bytes // 8 // max(self.tile_bytes, 1))
        return max(1, min(self.max_run, self.tile_counts[-1], fit))

    def run_of(self, tiles: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Run number of each tile (runs of :attr:`run_length` neighbours along the last dim)."""
        last = self.tile_counts[-1]
        per_row = -(-last // self.run_length)
        flat = np.asarray(tiles, dtype=np.int64)
        runs: np.ndarray[Any, np.dtype[np.int64]] = (flat // last) * per_row + (
            flat % last
        ) // self.run_length
        return runs

    def load_run(self, keys: list[int]) -> bool:
        """Decode a run of neighbouring tiles with one read per variable, in this thread.

        Returns False (and reads nothing) unless ``keys`` is one run and none is cached.
        """
        runs = self._runs(keys)
        if self.in_memory or len(keys) < 2 or len(runs) != 1:
            return False
        return self.cache.load_group(list(keys), self._load_run)

    def _runs(self, keys: list[int]) -> list[list[int]]:
        """Split keys into runs of neighbouring tiles along the last dim (in storage order)."""
        runs: list[list[int]] = []
        last_axis = self.tile_counts[-1]
        for key in keys:
            if (
                runs
                and key == runs[-1][-1] + 1
                and key % last_axis != 0
                and len(runs[-1]) < self.max_run
            ):
                runs[-1].append(key)
            else:
                runs.append([key])
        return runs

    # -- regions ----------------------------------------------------------------------------
    def region(self, lo: Sequence[int], hi: Sequence[int]) -> list[Any]:
        """Arrays (one per variable, chip layout) of the box ``[lo, hi)`` of the chipped dims.

        A view when the box lies in one tile (or the data is in memory); otherwise
        assembled from the cached tiles.
        """
        if self.in_memory:
            return [self.source.read(i, lo, hi) for i in range(len(self.source.layouts))]
        keys = self.tiles_for(lo, hi)
        if len(keys) == 1:
            tlo, _ = self.tile_box(keys[0])
            sl = tuple(slice(a - t, b - t) for a, b, t in zip(lo, hi, tlo, strict=True))
            return [a[sl] for a in self.cache.get(keys[0])]
        shape = tuple(int(b) - int(a) for a, b in zip(lo, hi, strict=True))
        tiles = {k: self.cache.get(k) for k in keys}
        first = tiles[keys[0]]
        out = []
        for i, lay in enumerate(self.source.layouts):
            xp = _namespace(first[i])
            buf = xp.empty(shape + lay.other_shape, dtype=first[i].dtype)
            for key in keys:
                tlo, thi = self.tile_box(key)
                a = [max(x, t) for x, t in zip(lo, tlo, strict=True)]
                b = [min(x, t) for x, t in zip(hi, thi, strict=True)]
                dst = tuple(slice(p - x, q - x) for p, q, x in zip(a, b, lo, strict=True))
                src = tuple(slice(p - t, q - t) for p, q, t in zip(a, b, tlo, strict=True))
                buf[dst] = tiles[key][i][src]
            out.append(buf)
        return out

    # -- prefetch ---------------------------------------------------------------------------
    def prefetch(self, keys: Iterable[int]) -> int:
        """Start decoding ``keys`` in the background; returns how many loads started.

        Runs of neighbouring tiles along the last chipped dim are read with one call.
        """
        if self.in_memory:
            return 0
        pool = self._pool()
        started = 0
        for run in self._runs([int(k) for k in keys if k not in self.cache]):
            if len(run) == 1:
                started += self.cache.prefetch(run[0], pool)
            else:
                started += self.cache.prefetch_group(run, pool, self._load_run)  # type: ignore[arg-type]
        return started

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None or self._pid != os.getpid():
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="wb-chips")
            self._pid = os.getpid()
        return self._executor

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the reader's worker threads (e.g. staging a segment)."""
        return self._pool().submit(fn, *args)

    def close(self) -> None:
        """Stop the prefetch threads (pending loads finish first)."""
        if self._executor is not None and self._pid == os.getpid():
            self._executor.shutdown(wait=True)
        self._executor = None

    def stats(self) -> dict[str, Any]:
        """Tile geometry, cache counters (``loads``: tiles decoded), each variable's read route."""
        source = self.source
        return {
            "tile_shape": list(self.tile_shape),
            "n_tiles": self.n_tiles,
            "tile_bytes": self.tile_bytes,
            **self.cache.stats(),
            "read_routes": {
                str(lay.name): source.read_route(i) for i, lay in enumerate(source.layouts)
            },
        }


def _namespace(array: Any) -> Any:
    from workbench._array import array_namespace

    return array_namespace(array)
