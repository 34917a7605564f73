"""Turn a plan of chip positions into batches of arrays, decoding ahead in the background.

:class:`ChipStream` knows, before the first batch, every chip it will cut: so it knows
which blocks (chips grouped by the tile of their first pixel) each batch needs, when a
block is first and last used, and which tiles to decode next. It opens a block's
region when its first batch comes, keeps it open until its last batch, and keeps the
prefetch threads busy on the tiles of the blocks that come next, within a byte budget.

Examples
--------
>>> from workbench.data.synthetic import era5_like
>>> from workbench.chips.grid import ChipGrid
>>> from workbench.chips.source import ArraySource
>>> from workbench.chips.reader import TileReader
>>> ds = era5_like(time=2, lat=8, lon=8)
>>> grid = ChipGrid.from_sizes(ds.sizes, {"lat": 4, "lon": 4})
>>> source = ArraySource(ds, grid.dims, ["t2m", "u10"])
>>> stream = ChipStream(TileReader(source, grid), np.arange(len(grid)))
>>> [x.shape for x, in stream.iterate([np.array([0, 1]), np.array([3])])]
[(2, 4, 4, 4), (1, 4, 4, 4)]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from workbench._array import array_namespace
from workbench.chips.gather import OpenBlock, cut
from workbench.chips.reader import TileReader

__all__ = ["ChipStream", "BlockPlan"]

_ZERO = np.zeros(1, dtype=np.int64)


class BlockPlan:
    """Blocks of a sequence of chips: regions and first/last use per block.

    Parameters
    ----------
    reader : TileReader
        Gives the tile of each chip origin.
    origins : array, shape (n, ndim)
        Chip origins in emission order.
    batch_of : array of int, shape (n,)
        Batch number of each chip (non-decreasing).
    chip : tuple of int
        Chip size.
    """

    def __init__(
        self,
        reader: TileReader,
        origins: np.ndarray[Any, Any],
        batch_of: np.ndarray[Any, Any],
        chip: Sequence[int],
    ) -> None:
        tile = reader.tile_of(origins)
        keys, block_of = np.unique(tile, return_inverse=True)
        order = np.argsort(block_of, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(block_of[order]) != 0])
        sorted_origins = origins[order]
        self.lo = np.minimum.reduceat(sorted_origins, starts, axis=0)
        self.hi = np.maximum.reduceat(sorted_origins, starts, axis=0) + np.asarray(chip)
        self.first = np.minimum.reduceat(batch_of[order], starts)
        self.last = np.maximum.reduceat(batch_of[order], starts)
        self.tile = keys
        self.block_of = block_of.astype(np.int64)
        # blocks in the order they are opened
        self.opening = np.lexsort((np.arange(keys.size), self.first))


class ChipStream:
    """Cut chips, batch after batch, from a :class:`TileReader`.

    Parameters
    ----------
    reader : TileReader
        Where regions come from.
    ids : array of int
        Grid chip number of every position of the chip set (a view's selection).
    groups : sequence of sequences of int, optional
        Variable indices of each output array (default: one output with all variables).
    lookahead_bytes : int, optional
        Bytes of tiles decoded ahead of use (default: a quarter of the reader's cache).
    """

    def __init__(
        self,
        reader: TileReader,
        ids: np.ndarray[Any, Any],
        groups: Sequence[Sequence[int]] | None = None,
        lookahead_bytes: int | None = None,
    ) -> None:
        self.reader = reader
        self.ids = np.asarray(ids, dtype=np.int64)
        source = reader.source
        self.groups = [list(g) for g in (groups or [range(len(source.layouts))])]
        self.dtypes = [source.dtype(g) for g in self.groups]
        self.channels = [lay.channels for lay in source.layouts]
        self.chip = reader.grid.sizes
        self.stride = reader.grid.strides
        self.lookahead_bytes = int(
            lookahead_bytes if lookahead_bytes is not None else reader.cache_bytes // 4
        )

    def _cut(
        self,
        blocks: list[OpenBlock],
        block_of: np.ndarray[Any, Any],
        origins: np.ndarray[Any, Any],
        dest: np.ndarray[Any, Any] | None = None,
    ) -> list[Any]:
        return cut(
            blocks,
            block_of,
            origins,
            self.groups,
            self.channels,
            self.dtypes,
            self.chip,
            dest=dest,
            stride=self.stride,
        )

    def _open(self, plan: BlockPlan, b: int) -> OpenBlock:
        arrays = self.reader.region(plan.lo[b], plan.hi[b])
        return OpenBlock(arrays, plan.lo[b], self.chip)

    def read(self, positions: Any) -> list[Any]:
        """Chips at ``positions`` (of the chip set), as one array per group."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        origins = self.reader.grid.origins(self.ids[pos])
        plan = BlockPlan(self.reader, origins, np.zeros(pos.size, np.int64), self.chip)
        if plan.tile.size > 1:
            self.reader.prefetch(
                k
                for b in range(plan.tile.size)
                for k in self.reader.tiles_for(plan.lo[b], plan.hi[b])
            )
        blocks = [self._open(plan, b) for b in range(plan.tile.size)]
        return self._cut(blocks, plan.block_of, origins)

    def iterate(self, batches: Sequence[np.ndarray[Any, Any]]) -> Iterator[list[Any]]:
        """Yield one list of arrays (per group) for each batch of positions."""
        if not batches:
            return
        sizes = np.fromiter((len(b) for b in batches), dtype=np.int64, count=len(batches))
        pos = np.concatenate(batches).astype(np.int64)
        origins = self.reader.grid.origins(self.ids[pos])
        batch_of = np.repeat(np.arange(len(batches)), sizes)
        plan = BlockPlan(self.reader, origins, batch_of, self.chip)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        opening = plan.opening.tolist()
        tile_bytes = self.reader.tile_bytes
        opened = 0  # blocks of `opening` already opened
        ahead = 0  # blocks of `opening` whose tiles were handed to the prefetch threads
        open_blocks: dict[int, OpenBlock] = {}
        single = plan.tile.size == 1
        for k in range(len(batches)):
            # keep the decode threads busy on what comes next, within the byte budget
            budget = self.lookahead_bytes
            while ahead < len(opening) and (
                ahead <= opened or (ahead - opened + 1) * tile_bytes <= budget
            ):
                b = opening[ahead]
                self.reader.prefetch(self.reader.tiles_for(plan.lo[b], plan.hi[b]))
                ahead += 1
            while opened < len(opening) and plan.first[opening[opened]] == k:
                b = opening[opened]
                open_blocks[b] = self._open(plan, b)
                opened += 1
            lo, hi = bounds[k], bounds[k + 1]
            if single:
                used, local = _ZERO, plan.block_of[lo:hi]
            else:
                used, local = np.unique(plan.block_of[lo:hi], return_inverse=True)
            blocks = [open_blocks[int(b)] for b in used]
            yield self._cut(blocks, local, origins[lo:hi])
            for b in used.tolist():
                if plan.last[b] == k:
                    del open_blocks[b]

    def iterate_staged(
        self,
        order: np.ndarray[Any, Any],
        segment_of: np.ndarray[Any, Any],
        batch_size: int,
    ) -> Iterator[list[Any]]:
        """Yield batches of ``order``, cutting a *segment* (run of equal ``segment_of``) at a time.

        Segments are staged ahead by the reader's worker threads (as many as fit in the
        lookahead and the cache): a worker decodes a tile and at once cuts its chips into
        the segment's staging array, at their emission rows. Batches are views of the
        staging arrays (a batch that straddles two segments is concatenated).
        """
        order = np.asarray(order, dtype=np.int64)
        if order.size == 0:
            return
        seg = np.asarray(segment_of)
        cuts = np.flatnonzero(np.diff(seg) != 0) + 1
        spans = list(zip(np.r_[0, cuts].tolist(), np.r_[cuts, order.size].tolist(), strict=True))
        grid, reader = self.reader.grid, self.reader
        plans: dict[
            int, tuple[BlockPlan, np.ndarray[Any, Any], np.ndarray[Any, Any] | None, list[int]]
        ] = {}

        def plan_for(
            i: int,
        ) -> tuple[BlockPlan, np.ndarray[Any, Any], np.ndarray[Any, Any] | None, list[int]]:
            if i not in plans:
                a, b = spans[i]
                origins = grid.origins(self.ids[order[a:b]])
                tile = reader.tile_of(origins)
                sigma = np.lexsort((order[a:b], tile))
                dest = None  # emission row of each chip cut in storage order
                if (sigma != np.arange(sigma.size)).any():
                    dest = sigma
                    origins = origins[sigma]
                plan = BlockPlan(reader, origins, np.zeros(len(origins), np.int64), self.chip)
                keys = sorted(
                    {
                        k
                        for blk in range(plan.tile.size)
                        for k in reader.tiles_for(plan.lo[blk], plan.hi[blk])
                    }
                )
                plans[i] = (plan, origins, dest, keys)
            return plans[i]

        pending: list[list[Any]] = []
        held: list[int] = []  # bytes of each pending segment, reserved in the tile cache
        offset = 0  # rows of pending[0] already emitted
        queued = 0  # rows staged and not yet emitted
        ahead = 0
        tile_bytes = reader.tile_bytes
        futures: dict[int, tuple[list[Any], list[Future[None]]]] = {}
        first_tile = reader.cache.get(plan_for(0)[3][0])  # tells NumPy from CuPy
        xp = array_namespace(first_tile[0])

        tiles_upto = [0]  # tiles_upto[j]: tiles of segments before j (planned ones)

        def fits(start: int, stop: int, budget: float) -> bool:
            while len(tiles_upto) <= stop + 1:
                tiles_upto.append(tiles_upto[-1] + len(plan_for(len(tiles_upto) - 1)[3]))
            return (tiles_upto[stop + 1] - tiles_upto[start]) * tile_bytes <= budget

        try:
            for i in range(len(spans)):
                # stage ahead while the segments not yet emitted fit in the lookahead and cache
                # (staged arrays are reserved in the cache: with the tiles being decoded for
                # them, at most the cache's bound; see the memory note of ChipSet)
                while ahead < len(spans) and (
                    ahead <= i
                    or (
                        fits(i + 1, ahead, self.lookahead_bytes)
                        and fits(i, ahead, reader.cache_bytes // 2)
                    )
                ):
                    futures[ahead] = self._stage(xp, *plan_for(ahead)[:3])
                    ahead += 1
                staged, jobs = futures.pop(i)
                for job in jobs:
                    job.result()
                plans.pop(i)
                pending.append(staged)
                held.append(_staged_bytes(staged))
                queued += len(staged[0])
                while queued >= batch_size:
                    batch, offset = _take(pending, offset, batch_size)
                    self._release(held, len(pending))
                    queued -= batch_size
                    yield batch
            if queued:
                batch, offset = _take(pending, offset, queued)
                self._release(held, len(pending))
                yield batch
        finally:
            for staged, jobs in futures.values():
                for job in jobs:
                    job.cancel()
                reader.cache.release(_staged_bytes(staged))
            self._release(held, 0)

    def _release(self, held: list[int], still_pending: int) -> None:
        """Release the reservations of the segments no longer pending (fully handed out)."""
        while len(held) > still_pending:
            self.reader.cache.release(held.pop(0))

    def _stage(
        self,
        xp: Any,
        plan: BlockPlan,
        origins: np.ndarray[Any, Any],
        dest: np.ndarray[Any, Any] | None,
    ) -> tuple[list[Any], list[Future[None]]]:
        """Allocate a segment's staging arrays and hand each of its blocks to a worker."""
        n = len(origins)
        outs = [
            xp.empty((n, sum(self.channels[v] for v in g), *self.chip), dtype=dt)
            for g, dt in zip(self.groups, self.dtypes, strict=True)
        ]
        self.reader.cache.reserve(_staged_bytes(outs))  # counted in the stream's budget
        parts = []
        for b in range(plan.tile.size):
            rows = np.flatnonzero(plan.block_of == b)  # contiguous: sorted by tile
            target: Any = slice(int(rows[0]), int(rows[-1]) + 1) if dest is None else dest[rows]
            parts.append((b, origins[rows], target))
        keys = sorted(plan.tile.tolist())
        if len(keys) > 1 and len(self.reader._runs(keys)) == 1:
            # a run of neighbouring tiles: one job reads them together, then cuts each
            return outs, [self.reader.submit(self._stage_run, plan, keys, parts, outs)]
        jobs = [self.reader.submit(self._stage_block, plan, *part, outs) for part in parts]
        return outs, jobs

    def _stage_run(
        self,
        plan: BlockPlan,
        keys: list[int],
        parts: list[tuple[int, np.ndarray[Any, Any], Any]],
        outs: list[Any],
    ) -> None:
        """Read a run of tiles with one call per variable, then cut each of its blocks."""
        self.reader.load_run(keys)
        for b, origins, target in parts:
            self._stage_block(plan, b, origins, target, outs)

    def _stage_block(
        self,
        plan: BlockPlan,
        b: int,
        origins: np.ndarray[Any, Any],
        target: Any,
        outs: list[Any],
    ) -> None:
        """Decode a block's tiles and at once cut its chips into the staging arrays.

        Runs on a worker thread: the cut happens while the decoded tile is still in the
        CPU cache, off the consumer's thread (NumPy copies release the GIL).
        """
        block = self._open(plan, b)
        cut(
            [block],
            np.zeros(len(origins), np.int64),
            origins,
            self.groups,
            self.channels,
            self.dtypes,
            self.chip,
            dest=target,
            stride=self.stride,
            out=outs,
        )


def _staged_bytes(arrays: list[Any]) -> int:
    return int(sum(a.nbytes for a in arrays))


def _take(pending: list[list[Any]], offset: int, count: int) -> tuple[list[Any], int]:
    """Pop ``count`` rows off the front of the staged arrays (a view when they lie in one)."""
    first = pending[0]
    if len(first[0]) - offset >= count:
        batch = [a[offset : offset + count] for a in first]
        offset += count
        if offset == len(first[0]):
            pending.pop(0)
            offset = 0
        return batch, offset
    pieces: list[list[Any]] = []
    need = count
    while need:
        head = pending[0]
        take = min(need, len(head[0]) - offset)
        pieces.append([a[offset : offset + take] for a in head])
        need -= take
        offset += take
        if offset == len(head[0]):
            pending.pop(0)
            offset = 0
    from workbench._array import array_namespace

    xp = array_namespace(pieces[0][0])
    batch = [xp.concatenate([p[g] for p in pieces], axis=0) for g in range(len(pieces[0]))]
    return batch, offset
