"""Index-first chip planning: where every chip starts, without reading a pixel.

A :class:`ChipGrid` holds, per chipped dimension, the chip size, the overlap and the
data's extent. Chip ``i`` is the ``i``-th element of the Cartesian product of the
per-dimension start positions, the last dimension varying fastest, which is exactly
the order of :class:`xbatcher.BatchGenerator` (``itertools.product`` over
``range(0, size, stride)`` keeping only whole chips: the remainder is dropped).

Examples
--------
>>> grid = ChipGrid.from_sizes({"lat": 10, "lon": 7}, {"lat": 4, "lon": 3}, {"lat": 1})
>>> grid.counts, len(grid)
((3, 2), 6)
>>> grid.origins([0, 1, 5]).tolist()
[[0, 0], [0, 3], [6, 3]]
>>> grid.selector(5)
{'lat': slice(6, 10, None), 'lon': slice(3, 6, None)}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import ChipSpecError, DimensionError

__all__ = ["ChipGrid", "normalize_positions"]


def _as_size(dim: Hashable, value: Any, what: str, *, allow_zero: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ChipSpecError(
            f"{what} along {dim!r} must be an integer, got {value!r} ({type(value).__name__})"
        )
    size = int(value)
    if size < 0 or (size == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ChipSpecError(f"{what} along {dim!r} must be {bound}, got {size}")
    return size


@dataclass(frozen=True)
class ChipGrid:
    """Chip start positions along the chipped dimensions (xbatcher's ``input_dims`` order).

    Parameters
    ----------
    dims : tuple of hashable
        Chipped dimensions, in the order of ``input_dims``.
    sizes : tuple of int
        Chip size per dimension.
    overlap : tuple of int
        Overlap between neighbouring chips per dimension (``0 <= overlap < size``).
    extent : tuple of int
        Size of the data along each chipped dimension.
    """

    dims: tuple[Hashable, ...]
    sizes: tuple[int, ...]
    overlap: tuple[int, ...]
    extent: tuple[int, ...]

    @classmethod
    def from_sizes(
        cls,
        data_sizes: Mapping[Hashable, int],
        input_dims: Mapping[Hashable, Any],
        input_overlap: Mapping[Hashable, Any] | None = None,
    ) -> ChipGrid:
        """Validate a chip spec against the data's sizes and build the grid.

        Parameters
        ----------
        data_sizes : mapping
            Size of every dimension of the data (``obj.sizes``).
        input_dims : mapping
            Chip size per dimension, e.g. ``{"lat": 32, "lon": 32}``.
        input_overlap : mapping, optional
            Overlap per chipped dimension (default 0).

        Returns
        -------
        ChipGrid

        Raises
        ------
        DimensionError
            A dimension of ``input_dims`` or ``input_overlap`` is not a dimension of the
            data (or, for the overlap, not chipped).
        ChipSpecError
            Sizes that are not positive integers, chips larger than the data, or an
            overlap that is negative or not smaller than the chip.

        Examples
        --------
        >>> ChipGrid.from_sizes({"x": 8}, {"y": 2})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        workbench.errors.DimensionError: unknown dimension(s) ['y'] in input_dims; ... are ['x']
        """
        if not isinstance(input_dims, Mapping) or not input_dims:
            raise ChipSpecError(
                f"input_dims must be a non-empty mapping of dimension to chip size, e.g. "
                f"{{'lat': 32, 'lon': 32}}; got {input_dims!r}"
            )
        if input_overlap is not None and not isinstance(input_overlap, Mapping):
            raise ChipSpecError(
                f"input_overlap must be a mapping of dimension to overlap, got {input_overlap!r}"
            )
        overlap_in = dict(input_overlap or {})
        known = list(data_sizes)
        unknown = [d for d in input_dims if d not in data_sizes]
        if unknown:
            raise DimensionError(
                f"unknown dimension(s) {unknown} in input_dims; the data's dimensions are {known}"
            )
        stray = [d for d in overlap_in if d not in input_dims]
        if stray:
            raise DimensionError(
                f"input_overlap names dimension(s) {stray} that are not chipped; "
                f"the chipped dimensions (input_dims) are {list(input_dims)}"
            )
        sizes, overlaps, extent = [], [], []
        for dim, raw in input_dims.items():
            size = _as_size(dim, raw, "chip size", allow_zero=False)
            over = _as_size(dim, overlap_in.get(dim, 0), "overlap", allow_zero=True)
            total = int(data_sizes[dim])
            if size > total:
                raise ChipSpecError(
                    f"chip size {size} along {dim!r} is larger than the data ({total}); "
                    f"use a chip size <= {total} or pad the data"
                )
            if over >= size:
                raise ChipSpecError(
                    f"overlap {over} along {dim!r} must be smaller than the chip size {size}; "
                    f"use an overlap <= {size - 1}"
                )
            sizes.append(size)
            overlaps.append(over)
            extent.append(total)
        return cls(tuple(input_dims), tuple(sizes), tuple(overlaps), tuple(extent))

    # -- shape of the grid ----------------------------------------------------------------
    @property
    def strides(self) -> tuple[int, ...]:
        """Distance between the starts of neighbouring chips (``size - overlap``)."""
        return tuple(s - o for s, o in zip(self.sizes, self.overlap, strict=True))

    @property
    def counts(self) -> tuple[int, ...]:
        """Number of chips along each dimension (the remainder is dropped)."""
        return tuple(
            (n - s) // st + 1
            for n, s, st in zip(self.extent, self.sizes, self.strides, strict=True)
        )

    def __len__(self) -> int:
        return math.prod(self.counts)

    @property
    def input_dims(self) -> dict[Hashable, int]:
        """The chip sizes as an ``input_dims`` mapping."""
        return dict(zip(self.dims, self.sizes, strict=True))

    @property
    def input_overlap(self) -> dict[Hashable, int]:
        """The overlaps as an ``input_overlap`` mapping (zeros included)."""
        return dict(zip(self.dims, self.overlap, strict=True))

    # -- positions ------------------------------------------------------------------------
    def origins(self, ids: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Start index of chips along each chipped dim, shaped ``(len(ids), ndim)``.

        Parameters
        ----------
        ids : array-like of int
            Chip numbers in ``[0, len(grid))``.
        """
        flat = np.asarray(ids, dtype=np.int64).reshape(-1)
        if flat.size == 0:
            return np.zeros((0, len(self.dims)), dtype=np.int64)
        multi = np.unravel_index(flat, self.counts)
        strides = np.asarray(self.strides, dtype=np.int64)
        return np.stack(multi, axis=1).astype(np.int64) * strides

    def selector(self, chip: int) -> dict[Hashable, slice]:
        """Positional slices of chip ``chip`` (an ``isel`` selector, as xbatcher's)."""
        origin = self.origins([chip])[0]
        return {
            d: slice(int(o), int(o) + s)
            for d, o, s in zip(self.dims, origin, self.sizes, strict=True)
        }


def normalize_positions(key: Any, length: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Turn an int, slice, boolean mask or integer sequence into positions in ``[0, length)``.

    Negative positions count from the end, as for lists.

    Raises
    ------
    IndexError
        A position outside ``[-length, length)``.
    ChipSpecError
        A boolean mask of the wrong length, or a non-integer key.

    Examples
    --------
    >>> normalize_positions(slice(1, None, 2), 6).tolist()
    [1, 3, 5]
    >>> normalize_positions([-1, 0], 6).tolist()
    [5, 0]
    """
    if isinstance(key, slice):
        return np.arange(length, dtype=np.int64)[key]
    arr = np.asarray(key)
    if arr.dtype == bool:
        if arr.shape != (length,):
            raise ChipSpecError(
                f"a boolean mask must have one entry per chip ({length}), got shape {arr.shape}"
            )
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ChipSpecError(f"chip positions must be integers, got {key!r}")
    pos = arr.astype(np.int64).reshape(-1)
    bad = (pos < -length) | (pos >= length)
    if bad.any():
        raise IndexError(
            f"chip position {int(pos[bad][0])} is out of range for {length} chips "
            f"(valid: {-length} .. {length - 1})"
        )
    return np.where(pos < 0, pos + length, pos)
