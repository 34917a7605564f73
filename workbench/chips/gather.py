"""Cut a batch of chips out of open regions with one vectorised gather per variable.

A region array in chip layout ``(*chipped, *other)`` is viewed as a window array
``(*positions, *other, *chip)`` (no copy); fancy-indexing its leading axes with the
chips' origins gives ``(n, *other, *chip)`` in one call, which reshapes for free to
``(n, channels, *chip)``. NumPy and CuPy take the same lines.

Examples
--------
>>> import numpy as np
>>> region = np.arange(6 * 5, dtype=np.float32).reshape(6, 5)
>>> block = OpenBlock([region], lo=(0, 0), chip=(2, 3))
>>> origins = np.array([[0, 0], [4, 2]])
>>> (out,) = cut([block], np.zeros(2, int), origins, [[0]], [1], [np.float32], (2, 3))
>>> out.shape, out[1, 0].tolist()
((2, 1, 2, 3), [[22.0, 23.0, 24.0], [27.0, 28.0, 29.0]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench._array import array_namespace

__all__ = ["OpenBlock", "windows", "cut", "regular_counts"]


def windows(region: Any, chip: Sequence[int]) -> Any:
    """Read-only view ``(*positions, *other, *chip)`` of a chip-layout region (no copy)."""
    k = len(chip)
    xp = array_namespace(region)
    if any(c > n for c, n in zip(chip, region.shape[:k], strict=False)):
        raise ValueError(f"chip {tuple(chip)} is larger than the region {region.shape[:k]}")
    # as_strided with the window shape, as sliding_window_view builds it (without its
    # per-call checks: this runs once per variable per block)
    shape = (
        tuple(n - c + 1 for n, c in zip(region.shape[:k], chip, strict=True))
        + tuple(region.shape[k:])
        + tuple(chip)
    )
    strides = tuple(region.strides[:k]) + tuple(region.strides[k:]) + tuple(region.strides[:k])
    if xp is np:
        return np.lib.stride_tricks.as_strided(
            region, shape=shape, strides=strides, writeable=False
        )
    return xp.lib.stride_tricks.as_strided(region, shape=shape, strides=strides)


class OpenBlock:
    """A region of the chipped dims held open while its chips are cut.

    Parameters
    ----------
    arrays : list of arrays
        One chip-layout array per variable.
    lo : tuple of int
        Start of the region along the chipped dims (chip origins are made local to it).
    chip : tuple of int
        Chip size along the chipped dims.
    """

    __slots__ = ("arrays", "lo", "windows")

    def __init__(self, arrays: list[Any], lo: Sequence[int], chip: Sequence[int]) -> None:
        self.arrays = arrays
        self.lo = np.asarray(lo, dtype=np.int64)
        self.windows = [windows(a, chip) for a in arrays]


#: From this many pixels per chip, NumPy batches are filled chip by chip (one copy) rather
#: than by one fancy-index gather per variable (a temporary, then a second copy).
LOOP_MIN_PIXELS = 2048


def _copy_each(
    out: Any,
    block: OpenBlock,
    rows: Any,
    local: np.ndarray[Any, Any],
    group: Sequence[int],
    channels: Sequence[int],
    chip: tuple[int, ...],
) -> None:
    n = out.shape[0]
    targets = range(n)[rows] if isinstance(rows, slice) else rows.tolist()
    starts = [tuple(o) for o in local.tolist()]
    start = 0
    for v in group:
        win = block.windows[v]
        other = win.shape[len(chip) : win.ndim - len(chip)]
        dst = out[:, start : start + channels[v]].reshape((n, *other, *chip))
        for r, o in zip(targets, starts, strict=True):
            dst[r] = win[o]
        start += channels[v]


def regular_counts(local: np.ndarray[Any, Any], stride: Sequence[int]) -> tuple[int, ...] | None:
    """Grid counts if the origins are a full box of the chip grid in C order, else None.

    Such chips are a strided view of the region: they are copied in one pass, with no
    index arrays and no temporary.

    Examples
    --------
    >>> regular_counts(np.array([[0, 0], [0, 3], [2, 0], [2, 3]]), (2, 3))
    (2, 2)
    >>> regular_counts(np.array([[0, 3], [0, 0]]), (2, 3)) is None
    True
    """
    if len(local) == 0:
        return None
    st = np.asarray(stride, dtype=np.int64)
    span = local.max(axis=0) - local[0]
    if (span < 0).any() or (span % st).any():
        return None
    counts = span // st + 1
    if int(np.prod(counts)) != len(local):
        return None
    steps = np.stack(np.unravel_index(np.arange(len(local)), tuple(counts)), axis=1)
    if not np.array_equal(local, local[0] + steps * st):
        return None
    return tuple(int(c) for c in counts)


def _copy_regular(
    out: Any,
    block: OpenBlock,
    rows: slice,
    first: np.ndarray[Any, Any],
    counts: tuple[int, ...],
    stride: Sequence[int],
    group: Sequence[int],
    channels: Sequence[int],
    chip: tuple[int, ...],
) -> bool:
    """Copy a regular box of chips with one strided assignment per variable."""
    xp = array_namespace(out)
    start = 0
    for v in group:
        win = block.windows[v]
        other = win.shape[len(chip) : win.ndim - len(chip)]
        box = tuple(
            slice(int(o), int(o) + (c - 1) * st + 1, st)
            for o, c, st in zip(first, counts, stride, strict=True)
        )
        dst = out[rows, start : start + channels[v]].reshape((*counts, *other, *chip))
        if not xp.may_share_memory(dst, out):  # the reshape had to copy: not a view
            return False
        dst[...] = win[box]
        start += channels[v]
    return True


def cut(
    blocks: Sequence[OpenBlock],
    block_of: np.ndarray[Any, Any],
    origins: np.ndarray[Any, Any],
    groups: Sequence[Sequence[int]],
    channels: Sequence[int],
    dtypes: Sequence[Any],
    chip: Sequence[int],
    dest: Any = None,
    stride: Sequence[int] | None = None,
    out: list[Any] | None = None,
) -> list[Any]:
    """Gather chips into one ``(n, C_group, *chip)`` array per variable group.

    Parameters
    ----------
    blocks : sequence of OpenBlock
        Open regions.
    block_of : array of int, shape (n,)
        Which of ``blocks`` holds each chip.
    origins : array of int, shape (n, ndim)
        Global chip origins along the chipped dims.
    groups : sequence of sequences of int
        Variable indices per output (e.g. inputs and targets), channel-stacked in order.
    channels : sequence of int
        Channels of every variable.
    dtypes : sequence of dtype
        Output dtype per group.
    chip : sequence of int
        Chip size.
    dest : array of int or slice, optional
        Output row of each chip (a slice only with one block): cutting in storage order
        while writing in another order costs no extra pass.
    stride : sequence of int, optional
        The grid's stride: when given, a block whose chips are a full box of the grid in
        C order is copied in one strided pass (the common case of sequential reads).
    out : list of arrays, optional
        Arrays to write into (one per group), instead of new ones.

    Returns
    -------
    list of arrays
        One per group, in the namespace (NumPy/CuPy) of the regions.
    """
    n = len(origins)
    chip = tuple(int(c) for c in chip)
    first = blocks[0].arrays[0]
    xp = array_namespace(first)
    single = len(blocks) == 1
    picks: list[tuple[OpenBlock, Any, tuple[Any, ...], np.ndarray[Any, Any]]] = []
    for b, block in enumerate(blocks):
        rows: Any = slice(None) if single else np.flatnonzero(block_of == b)
        local = (origins if single else origins[rows]) - block.lo
        if isinstance(dest, slice):
            assert single, "a slice dest needs a single block"
            rows = dest
        elif dest is not None:
            rows = dest[rows]
        elif not single and rows.size and rows[-1] - rows[0] + 1 == rows.size:
            rows = slice(int(rows[0]), int(rows[-1]) + 1)  # contiguous: a slice, not a scatter
        idx = tuple(xp.asarray(local[:, d]) for d in range(local.shape[1]))
        picks.append((block, rows, idx, local))
    outputs = []
    for g, (group, dtype) in enumerate(zip(groups, dtypes, strict=True)):
        total = sum(channels[v] for v in group)
        if single and len(group) == 1 and dest is None and out is None:
            block, _, idx, _ = picks[0]
            got = block.windows[group[0]][idx].reshape((n, total, *chip))
            outputs.append(got if got.dtype == dtype else got.astype(dtype))
            continue
        target = xp.empty((n, total, *chip), dtype=dtype) if out is None else out[g]
        for block, rows, idx, local in picks:
            m = len(idx[0])
            if m == 0:
                continue
            if stride is not None and isinstance(rows, slice):
                counts = regular_counts(local, stride)
                if counts is not None and _copy_regular(
                    target, block, rows, local[0], counts, stride, group, channels, chip
                ):
                    continue
            if xp is np and math.prod(chip) >= LOOP_MIN_PIXELS:
                # big chips: one slice copy per chip straight into the batch (no temporary)
                _copy_each(target, block, rows, local, group, channels, chip)
                continue
            where = rows if isinstance(rows, slice) else xp.asarray(rows)
            start = 0
            for v in group:
                got = block.windows[v][idx].reshape((m, channels[v], *chip))
                target[where, start : start + channels[v]] = got
                start += channels[v]
        outputs.append(target)
    return outputs
