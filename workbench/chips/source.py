"""The pixel side of a chip set: which variables, how they stack into channels, how to read them.

Every variable is seen in a *chip layout*: its chipped dims first (in ``input_dims``
order), then its other dims in their own order. A box of the chipped dims read from a
variable is returned in that layout, so cutting a chip is a plain window of the
leading axes and the trailing axes flatten into channels (variable-major).

Three backings are told apart, per variable: ``"memory"`` (a NumPy or CuPy array: a
box is a view, nothing is read), ``"dask"`` (a box is computed) and ``"lazy"`` (xarray's
lazily indexed backend arrays, e.g. Zarr opened without dask: a box decodes the chunks
it touches). The chunk shape along the chipped dims comes from dask's chunks or the
``preferred_chunks``/``chunks``/``chunksizes`` encoding.

A lazy Zarr variable is decoded chunk by chunk in the calling thread with Zarr's
synchronous codecs where it can be (:mod:`workbench.data.zarr_sync`; read route
``"zarr-sync"``, option ``zarr_sync_reads``), else through xarray (``"xarray"``): the
same values either way.

Examples
--------
>>> from workbench.data.synthetic import era5_like
>>> ds = era5_like(time=2, lat=8, lon=8)
>>> src = ArraySource(ds, ("lat", "lon"), ["t2m", "u10"])
>>> src.channels, src.kind, src.read(0, (0, 0), (4, 4)).shape
(4, 'memory', (4, 4, 2))
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from workbench.errors import DataReadError, DimensionError, WorkbenchError
from workbench.options import OPTIONS

__all__ = ["VariableLayout", "ArraySource", "as_names"]


@dataclass(frozen=True)
class VariableLayout:
    """How one variable maps onto chips and channels.

    Attributes
    ----------
    name : hashable
        Variable name.
    perm : tuple of int
        Axes of the variable in chip layout (chipped dims first, then the others).
    other_dims : tuple of hashable
        The non-chipped dims, in the variable's order; flattened into channels.
    channels : int
        Product of the sizes of ``other_dims`` (1 when there are none).
    kind : {"memory", "dask", "lazy"}
        How the variable's values are held.
    chunks : tuple of int or None
        Chunk length along each chipped dim (``None``: unknown or not chunked).
    """

    name: Hashable
    perm: tuple[int, ...]
    other_dims: tuple[Hashable, ...]
    other_shape: tuple[int, ...]
    channels: int
    dtype: np.dtype[Any]
    kind: str
    chunks: tuple[int | None, ...]


def as_names(value: Any) -> list[Hashable]:
    """Return a variable name or a sequence of names as a list.

    Examples
    --------
    >>> as_names("t2m"), as_names(("t2m", "u10"))
    (['t2m'], ['t2m', 'u10'])
    """
    if isinstance(value, str) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _describe_box(var: xr.Variable, key: Sequence[slice]) -> str:
    """``{dim: [start, stop)}`` of a read, plus the storage chunks it touches when known."""
    box = {d: [k.start or 0, n if k.stop is None else k.stop]
           for d, k, n in zip(var.dims, key, var.shape, strict=True)}  # fmt: skip
    text = ", ".join(f"{d} {a}:{b}" for d, (a, b) in box.items())
    chunks = _chunks(var, var.dims, "lazy") if var.chunks is None else None
    if chunks and all(c for c in chunks):
        spans = [
            f"{a // c}" if (b - 1) // c == a // c else f"{a // c}..{(b - 1) // c}"
            for (a, b), c in zip(box.values(), chunks, strict=True)
            if c is not None
        ]
        text += f" (chunk {'.'.join(spans)})"
    return text


def _kind(var: xr.Variable) -> str:
    if var.chunks is not None:
        return "dask"
    return "memory" if var._in_memory else "lazy"


def _chunks(var: xr.Variable, dims: Sequence[Hashable], kind: str) -> tuple[int | None, ...]:
    if kind == "memory":
        return (None,) * len(dims)
    if kind == "dask":
        assert var.chunksizes is not None
        return tuple(max(var.chunksizes[d]) for d in dims)
    enc = var.encoding
    preferred = enc.get("preferred_chunks") or {}
    by_dim: dict[Hashable, int] = {}
    for key in ("chunks", "chunksizes"):
        raw = enc.get(key)
        if isinstance(raw, tuple | list) and len(raw) == var.ndim:
            by_dim = {d: int(c) for d, c in zip(var.dims, raw, strict=True)}
            break
    by_dim.update({d: int(c) for d, c in preferred.items() if d in var.dims})
    return tuple(by_dim.get(d) for d in dims)


class ArraySource:
    """Variables of an xarray object seen as chip-layout arrays, with channel bookkeeping.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The data.
    dims : sequence of hashable
        The chipped dimensions, in ``input_dims`` order.
    names : sequence of hashable
        Variables to stack into channels (ignored for a DataArray).

    Raises
    ------
    DimensionError
        A variable lacks one of the chipped dims, so it cannot be stacked into channels.
    """

    def __init__(
        self, obj: xr.Dataset | xr.DataArray, dims: Sequence[Hashable], names: Sequence[Hashable]
    ):
        self.dims = tuple(dims)
        if isinstance(obj, xr.DataArray):
            pairs = [(obj.name if obj.name is not None else "data", obj.variable)]
        else:
            pairs = [(n, obj[n].variable) for n in names]
        missing = {n: [d for d in self.dims if d not in v.dims] for n, v in pairs}
        missing = {n: m for n, m in missing.items() if m}
        if missing:
            ok = (
                [n for n, _ in pairs if n not in missing]
                if not isinstance(obj, xr.DataArray)
                else []
            )
            name, lack = next(iter(missing.items()))
            raise DimensionError(
                f"variable {name!r} has dims {pairs[[p[0] for p in pairs].index(name)][1].dims} "
                f"and lacks the chipped dim(s) {lack}, so it cannot be stacked into channels; "
                f"choose variables that have all of {list(self.dims)}, e.g. variables={ok}"
            )
        self.variables: list[xr.Variable] = [v for _, v in pairs]
        layouts = []
        for name, var in pairs:
            chip_axes = [var.dims.index(d) for d in self.dims]
            other = [i for i in range(var.ndim) if i not in chip_axes]
            other_shape = tuple(var.shape[i] for i in other)
            kind = _kind(var)
            layouts.append(
                VariableLayout(
                    name=name,
                    perm=tuple(chip_axes + other),
                    other_dims=tuple(var.dims[i] for i in other),
                    other_shape=other_shape,
                    channels=math.prod(other_shape),
                    dtype=np.dtype(var.dtype),
                    kind=kind,
                    chunks=_chunks(var, self.dims, kind),
                )
            )
        self.layouts: list[VariableLayout] = layouts
        first = self.variables[0]
        self.extent = tuple(int(first.sizes[d]) for d in self.dims)
        self._boxes: dict[int, Any] = {}  # variable index -> BoxReader or None

    def __getstate__(self) -> dict[str, Any]:
        # readers hold decoder state: a copy (e.g. in a worker process) builds its own
        return {**self.__dict__, "_boxes": {}}

    # -- summary ----------------------------------------------------------------------------
    @property
    def names(self) -> list[Hashable]:
        """Variable names, in channel order."""
        return [lay.name for lay in self.layouts]

    @property
    def channels(self) -> int:
        """Total number of channels (variables x their non-chipped dims)."""
        return sum(lay.channels for lay in self.layouts)

    @property
    def kind(self) -> str:
        """``"memory"`` when every variable is in memory, else ``"dask"`` or ``"lazy"``."""
        kinds = {lay.kind for lay in self.layouts}
        if kinds == {"memory"}:
            return "memory"
        return "dask" if "dask" in kinds else "lazy"

    def dtype(self, indices: Sequence[int] | None = None) -> np.dtype[Any]:
        """Return the common dtype of the given variables (all by default)."""
        chosen = self.layouts if indices is None else [self.layouts[i] for i in indices]
        return np.dtype(np.result_type(*[lay.dtype for lay in chosen]))

    def chunk_shape(self) -> tuple[int | None, ...]:
        """Chunk length along each chipped dim, the largest over the variables (None: unknown)."""
        out: list[int | None] = []
        for axis in range(len(self.dims)):
            values = [lay.chunks[axis] for lay in self.layouts if lay.chunks[axis] is not None]
            out.append(max(values) if values else None)  # type: ignore[type-var]
        return tuple(out)

    def bytes_per_cell(self) -> int:
        """Bytes of all variables for one position of the chipped dims."""
        return sum(lay.channels * lay.dtype.itemsize for lay in self.layouts)

    def is_gpu(self) -> bool:
        """Whether the in-memory variables hold CuPy arrays."""
        from workbench._array import is_cupy

        return any(
            lay.kind == "memory" and is_cupy(v.data)
            for lay, v in zip(self.layouts, self.variables, strict=True)
        )

    # -- reading ----------------------------------------------------------------------------
    def read(self, index: int, lo: Sequence[int], hi: Sequence[int]) -> Any:
        """Return the box ``[lo, hi)`` of the chipped dims of variable ``index``, chip layout.

        In-memory variables give a view; dask variables are computed; lazy backend
        arrays decode the chunks the box touches (through xarray, so CF decoding such
        as masking and scaling applies exactly as in ``obj.values``).
        """
        lay, var = self.layouts[index], self.variables[index]
        key: list[slice] = [slice(None)] * var.ndim
        for axis, (a, b) in enumerate(zip(lo, hi, strict=True)):
            key[lay.perm[axis]] = slice(int(a), int(b))
        if lay.kind == "memory":
            data = var.data[tuple(key)]
        else:
            try:
                data = self._read_stored(index, lay, var, key)
            except WorkbenchError:
                raise
            except Exception as exc:  # every store and codec raises its own errors
                raise DataReadError(
                    f"could not read variable {lay.name!r} at {_describe_box(var, key)}: "
                    f"{type(exc).__name__}: {exc}. The store may be damaged or truncated "
                    "(re-copy it), or a file it points to is gone"
                ) from exc
        return data.transpose(lay.perm)

    def _read_stored(
        self, index: int, lay: VariableLayout, var: xr.Variable, key: list[slice]
    ) -> Any:
        if lay.kind == "dask":
            return var.data[tuple(key)].compute()
        box = self._box_reader(index)
        if box is not None:
            lo_v = [k.start or 0 for k in key]
            hi_v = [n if k.stop is None else k.stop for k, n in zip(key, var.shape, strict=True)]
            return box.read(lo_v, hi_v)
        # indexing first makes a new lazy wrapper: loading it never caches the whole
        # variable inside the user's object (as ``var.values`` would)
        return var[tuple(key)].load().data

    def _box_reader(self, index: int) -> Any:
        """Return the synchronous Zarr reader of a lazy variable, or None (read via xarray)."""
        if not OPTIONS["zarr_sync_reads"]:
            return None
        if index not in self._boxes:
            from workbench.data.zarr_sync import box_reader

            self._boxes[index] = box_reader(self.variables[index], self.layouts[index].name)
        return self._boxes[index]

    def read_route(self, index: int) -> str:
        """Return how variable ``index`` is read: memory, dask, zarr-sync or xarray.

        Examples
        --------
        >>> from workbench.data.synthetic import era5_like
        >>> ArraySource(era5_like(time=2, lat=4, lon=4), ("lat",), ["t2m"]).read_route(0)
        'memory'
        """
        kind = self.layouts[index].kind
        if kind != "lazy":
            return kind
        return "zarr-sync" if self._box_reader(index) is not None else "xarray"
