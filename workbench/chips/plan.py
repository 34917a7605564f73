"""Epoch plans: in which order chips are emitted, and which rank gets which.

Everything here is pure index arithmetic on chip positions (no pixels), so the order
of an epoch can be inspected, tested and reproduced before anything is read.

Orders
------
``"storage"`` (the default of ``shuffle=False``)
    Chips grouped by the tile that holds their first pixel, tiles in storage (C)
    order, chips in index order within a tile. Each tile is decoded once per epoch.
    For in-memory data (one tile) this is plain index order.
``"index"``
    Chip index order (xbatcher's), whatever the storage.
shuffled (``shuffle=True``)
    Tiles in a random order, taken ``window`` at a time; the chips of the ``window``
    tiles open together are shuffled among themselves. With in-memory data (one tile)
    this is a full random permutation; from a store it mixes chips of ``window``
    random places of the store into every stretch of batches while each tile is still
    decoded once.

Sharding (``world_size > 1``)
-----------------------------
The epoch order is cut into ``world_size`` contiguous spans (contiguous, so that each
rank decodes its own part of the store). Every rank gets the same number of batches,
so DDP never waits on a rank that ran out:

* ``drop_last=False``: spans of ``N // W`` or ``N // W + 1`` chips, disjoint and
  covering all chips, when that gives every rank the same number of batches; otherwise
  (rarely: when ``N // W`` is a multiple of the batch size and ``N % W != 0``) every
  rank gets ``ceil(N / W)`` chips and the last ``ceil(N / W) * W - N < W`` slots repeat
  the first chips of the epoch, as :class:`torch.utils.data.DistributedSampler` pads.
* ``drop_last=True``: every rank gets ``(N // (W * B)) * B`` chips (full batches only);
  the tail of the epoch order is dropped (a different tail each shuffled epoch).

Examples
--------
>>> import numpy as np
>>> tiles = np.array([1, 1, 0, 0, 1])
>>> epoch_order(tiles, shuffle=False).tolist()
[2, 3, 0, 1, 4]
>>> [s.tolist() for s in shard(np.arange(10), world_size=3, batch_size=2)]
[[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.errors import ChipSpecError, EmptyChipError

__all__ = ["epoch_order", "epoch_segments", "shard", "split_batches", "epoch_rng"]

IntArray = np.ndarray[Any, np.dtype[np.int64]]


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """Return the random generator of one epoch: a pure function of ``(seed, epoch)``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch)]))


def epoch_order(
    tiles: Any,
    *,
    shuffle: bool,
    rng: np.random.Generator | None = None,
    window: int = 1,
    order: str = "storage",
) -> IntArray:
    """Positions ``0 .. len(tiles) - 1`` in emission order.

    Parameters
    ----------
    tiles : array-like of int
        The tile of each chip (its position in this array is the chip's position).
    shuffle : bool
        Shuffle tiles, and chips within each window of ``window`` tiles.
    rng : numpy.random.Generator
        Randomness of the epoch (required when ``shuffle``).
    window : int
        Tiles open at once, whose chips are interleaved, when shuffling.
    order : {"storage", "index"}
        Order without shuffling (see the module docs).

    Examples
    --------
    >>> order = epoch_order([0, 0, 1, 1, 2, 2], shuffle=True, rng=epoch_rng(0, 0), window=2)
    >>> sorted(order.tolist()) == list(range(6))
    True
    """
    return epoch_segments(tiles, shuffle=shuffle, rng=rng, window=window, order=order)[0]


def epoch_segments(
    tiles: Any,
    *,
    shuffle: bool,
    rng: np.random.Generator | None = None,
    window: int = 1,
    order: str = "storage",
) -> tuple[IntArray, IntArray | None]:
    """Like :func:`epoch_order`, plus the *segment* of each emitted chip.

    A segment is a run of the order whose chips come from one set of tiles (one tile in
    storage order, one window of tiles when shuffled), so it can be cut in one pass.
    ``None`` for index order (no such runs).

    Examples
    --------
    >>> order, seg = epoch_segments([1, 1, 0, 0, 1], shuffle=False)
    >>> order.tolist(), seg.tolist()
    ([2, 3, 0, 1, 4], [0, 0, 1, 1, 1])
    """
    tile = np.asarray(tiles, dtype=np.int64).reshape(-1)
    n = tile.size
    if not shuffle:
        if order == "index":
            return np.arange(n, dtype=np.int64), None
        if order != "storage":
            raise ChipSpecError(f"order must be 'storage' or 'index', got {order!r}")
        out = np.argsort(tile, kind="stable").astype(np.int64)
        return out, tile[out]
    if rng is None:
        raise ChipSpecError("a shuffled epoch needs a random generator (rng=)")
    if int(window) < 1:
        raise ChipSpecError(f"window must be >= 1 tile, got {window!r}")
    unique, inverse = np.unique(tile, return_inverse=True)
    rank_of_tile = np.empty(unique.size, dtype=np.int64)
    rank_of_tile[rng.permutation(unique.size)] = np.arange(unique.size)
    group = rank_of_tile[inverse] // int(window)
    noise = rng.random(n)
    out = np.lexsort((noise, group)).astype(np.int64)
    return out, group[out]


def shard(
    order: Any,
    *,
    world_size: int = 1,
    batch_size: int = 1,
    drop_last: bool = False,
) -> list[IntArray]:
    """Cut an epoch order into one span per rank with equal numbers of batches.

    See the module docs for the drop/pad policy.

    Raises
    ------
    EmptyChipError
        With ``drop_last=True``, when there are fewer chips than ``world_size * batch_size``.

    Examples
    --------
    >>> [s.tolist() for s in shard(np.arange(7), world_size=2, batch_size=2)]
    [[0, 1, 2, 3], [4, 5, 6]]
    >>> [s.tolist() for s in shard(np.arange(5), world_size=2, batch_size=2)]
    [[0, 1, 2], [3, 4, 0]]
    >>> [s.tolist() for s in shard(np.arange(9), world_size=2, batch_size=2, drop_last=True)]
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    """
    seq = np.asarray(order, dtype=np.int64).reshape(-1)
    n, w, b = seq.size, int(world_size), int(batch_size)
    if w < 1 or b < 1:
        raise ChipSpecError(f"world_size and batch_size must be >= 1, got {w} and {b}")
    if drop_last:
        per = (n // (w * b)) * b
        if per == 0:
            raise EmptyChipError(
                f"{n} chips are fewer than world_size x batch_size = {w} x {b}, so drop_last=True "
                "leaves no batch; use a smaller batch_size or drop_last=False"
            )
        return [seq[r * per : (r + 1) * per] for r in range(w)]
    base, extra = divmod(n, w)
    sizes = [base + (r < extra) for r in range(w)]
    if len({math.ceil(s / b) for s in sizes}) == 1:
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [seq[bounds[r] : bounds[r + 1]] for r in range(w)]
    per = math.ceil(n / w)
    padded = np.concatenate([seq, seq[: per * w - n]]) if n else seq
    return [padded[r * per : (r + 1) * per] for r in range(w)]


def split_batches(order: Any, batch_size: int, drop_last: bool = False) -> list[IntArray]:
    """Consecutive batches of ``batch_size`` (the last one shorter unless ``drop_last``).

    Examples
    --------
    >>> [b.tolist() for b in split_batches(np.arange(5), 2)]
    [[0, 1], [2, 3], [4]]
    """
    seq = np.asarray(order, dtype=np.int64).reshape(-1)
    stop = (seq.size // batch_size) * batch_size if drop_last else seq.size
    return [seq[i : min(i + batch_size, stop)] for i in range(0, stop, batch_size)]
