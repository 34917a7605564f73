"""ChipSet: chips of a datacube along named dims, index first, pixels last.

A :class:`ChipSet` is a plan, not a copy: building one reads no pixel. ``len(chips)``
and ``chips[i]`` give the chips of :class:`xbatcher.BatchGenerator` with the same
``input_dims``/``input_overlap``, in the same order, with the same values and
coordinates. Pixels are read in bulk by :meth:`ChipSet.to_numpy`,
:meth:`ChipSet.to_torch` and :meth:`ChipSet.torch_dataset`, which decode every storage
chunk once and cut all of its chips from it.

Policies
--------
Order
    ``chips[i]``, ``to_numpy`` and ``to_torch(order="index")`` follow the chip index
    (xbatcher's order). ``to_torch(shuffle=False)`` defaults to *storage order*: chips
    grouped by the storage tile holding their first pixel, so each tile is decoded once
    per epoch (for in-memory data this is the index order). See :mod:`workbench.chips.plan`.
Shuffle
    In memory: a full permutation per epoch. From a store: tiles in random order, a
    window of tiles (as many as fit in a quarter of the budget) open at once with their
    chips interleaved; every tile is still decoded once per epoch.
Memory
    A stream from a store holds at most ``workbench.options`` ``chunk_cache_bytes`` (256 MiB
    by default) of decoded tiles and staged chips together, whatever the store size: tiles
    make room for the chips staged from them (:meth:`TileCache.reserve
    <workbench.chips.cache.TileCache.reserve>`). On top of it come the reads in flight (each
    reader thread one run of tiles, at most an eighth of the budget), a few chunks being
    decompressed, and the batches the consumer holds: measured peak RSS over a 1.6 GB store
    with the default budget, +307 to +357 MB. A region whose chips cross tile edges needs
    its tiles at once (at most ``2**ndim``), which is the bound if that is more.
NaN
    All-NaN chips are kept (as xbatcher keeps them): deciding needs the pixels, and
    planning never reads any. :meth:`ChipSet.drop_empty` reads the chips once and returns
    the view without all-NaN (or any-NaN) chips.
Devices
    Data held as CuPy arrays (or read by a GPU route) is cut on the GPU and handed to torch
    through DLPack without a copy; ``device="auto"`` picks CUDA when the data is on the GPU
    or :func:`workbench.has_gpu` says one is usable.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from workbench._array import to_numpy
from workbench.chips.grid import ChipGrid, normalize_positions
from workbench.chips.locate import chip_bounds, chip_centers, chip_time
from workbench.chips.plan import epoch_order, split_batches
from workbench.chips.reader import TileReader
from workbench.chips.source import ArraySource, as_names
from workbench.chips.stream import ChipStream
from workbench.errors import (
    ChipSpecError,
    DataReadError,
    DimensionError,
    EmptyChipError,
    WorkbenchError,
)
from workbench.geo.schemes import get_scheme

if TYPE_CHECKING:
    from workbench.chips.batches import ChipBatches
    from workbench.chips.torch import ChipDataset, ChipLoader

__all__ = ["ChipSet"]


def _resolve_variables(
    obj: xr.Dataset | xr.DataArray, variables: Sequence[Hashable] | Hashable | None
) -> list[Hashable]:
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else "data"
        if variables is not None:
            given = as_names(variables)
            if given != [name]:
                raise ChipSpecError(
                    f"variables={given!r} cannot be chosen on a DataArray (it holds {name!r} "
                    "only); pass a Dataset, or leave variables=None"
                )
        return [name]
    if variables is None:
        names = list(obj.data_vars)
        if not names:
            raise ChipSpecError("the Dataset has no data variables to cut chips from")
        return names
    names = as_names(variables)
    unknown = [n for n in names if n not in obj.data_vars]
    if unknown or not names:
        raise ChipSpecError(
            f"unknown variable(s) {unknown or names}; the data variables are {list(obj.data_vars)}"
        )
    if len(set(names)) != len(names):
        raise ChipSpecError(f"variables are listed more than once: {names}")
    return names


def _check_not_empty(data: xr.Dataset | xr.DataArray, names: Sequence[Hashable]) -> None:
    """Refuse variables with a zero-length dimension: their chips would hold no channel."""
    arrays = [data[n] for n in names] if isinstance(data, xr.Dataset) else [data]
    for name, arr in zip(names, arrays, strict=True):
        empty = [d for d in arr.dims if arr.sizes[d] == 0]
        if empty:
            raise DimensionError(
                f"variable {name!r} has the zero-length dimension(s) {empty} (sizes "
                f"{dict(arr.sizes)}), so its chips would hold no value; select a non-empty "
                f"range (e.g. check the labels given to .sel({empty[0]}=...)) or leave the "
                "variable out with variables=[...]"
            )


def _load(chip: Any, what: str) -> Any:
    """Load a chip's values; a failing read becomes a DataReadError saying which chip."""
    try:
        return chip.load()
    except WorkbenchError:
        raise
    except Exception as exc:  # each store and codec fails in its own way
        raise DataReadError(
            f"could not read {what}: {type(exc).__name__}: {exc}. The store may be damaged or "
            "truncated (re-copy it), or a file it points to is gone"
        ) from exc


def _stack_like_xbatcher(chip: Any, input_dims: Sequence[Hashable]) -> Any:
    other = [d for d in chip.sizes if d not in input_dims]
    if len(other) < 2:
        return chip
    return chip.stack(sample=other).transpose("sample", *input_dims)


class ChipSet:
    """Chips of ``obj`` along ``input_dims``, with xbatcher's order and edge semantics.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The datacube: in memory (NumPy/CuPy), dask-backed, or lazily opened (Zarr,
        NetCDF, ...) without dask.
    input_dims : mapping of str to int
        Chip size per chipped dim, e.g. ``{"time": 1, "lat": 32, "lon": 32}``; the
        order is the order of the chip axes. Other dims are kept whole in every chip.
    input_overlap : mapping of str to int, optional
        Overlap of neighbouring chips per chipped dim (stride = size - overlap). Chips
        that would run past the end are dropped.
    variables : sequence of str, optional
        Data variables to use (default: all of a Dataset), stacked into channels in
        this order.

    Raises
    ------
    DimensionError
        Unknown dims (named, with the data's dims listed), overlap on a dim that is not
        chipped, or explicitly chosen variables that lack a chipped dim.
    ChipSpecError
        Non-positive sizes, chips larger than the data, ``overlap >= size``, unknown variables.

    Examples
    --------
    >>> import workbench
    >>> from workbench.data.synthetic import era5_like
    >>> chips = era5_like(time=4, lat=16, lon=32).wb.chips({"time": 1, "lat": 8, "lon": 8})
    >>> len(chips), chips.dims
    (32, {'time': 1, 'lat': 8, 'lon': 8})
    >>> chips.selector(5)
    {'time': slice(0, 1, None), 'lat': slice(8, 16, None), 'lon': slice(8, 16, None)}
    >>> chips.to_numpy([0, 5]).shape
    (2, 4, 1, 8, 8)
    >>> dict(chips[5].sizes)
    {'time': 1, 'lat': 8, 'lon': 8}
    """

    def __init__(
        self,
        obj: xr.Dataset | xr.DataArray,
        input_dims: Mapping[Hashable, int],
        input_overlap: Mapping[Hashable, int] | None = None,
        variables: Sequence[Hashable] | None = None,
    ) -> None:
        if not isinstance(obj, xr.Dataset | xr.DataArray):
            raise ChipSpecError(
                f"chips are cut from an xarray Dataset or DataArray, got {type(obj).__name__}"
            )
        names = _resolve_variables(obj, variables)
        data = obj[names] if isinstance(obj, xr.Dataset) else obj
        if isinstance(obj, xr.Dataset):
            # coordinates on dims no chosen variable uses (CF bounds: lat_bnds(lat, bnds),
            # time_bnds(time, bnds)) stay in every chip, as xbatcher keeps them
            dropped = {k: v for k, v in obj.coords.items() if k not in data.coords}
            if dropped:
                data = data.assign_coords(dropped)
        _check_not_empty(data, names)
        self._obj = obj
        self._data = data
        self._names = names
        self._grid = ChipGrid.from_sizes(data.sizes, input_dims, input_overlap)
        self._ids: np.ndarray[Any, np.dtype[np.int64]] | None = None
        self._stream: ChipStream | None = None
        self._pid = -1
        if variables is not None:
            ArraySource(data, self._grid.dims, names)  # fail fast on unstackable variables

    # -- plan -------------------------------------------------------------------------------
    @property
    def obj(self) -> xr.Dataset | xr.DataArray:
        """The object the chips were made from."""
        return self._obj

    @property
    def data(self) -> xr.Dataset | xr.DataArray:
        """The chipped data: ``obj`` restricted to :attr:`variables`."""
        return self._data

    @property
    def grid(self) -> ChipGrid:
        """Chip origins per dim (see :class:`~workbench.chips.grid.ChipGrid`)."""
        return self._grid

    @property
    def dims(self) -> dict[Hashable, int]:
        """Chip size per chipped dim, in ``input_dims`` order."""
        return self._grid.input_dims

    @property
    def overlap(self) -> dict[Hashable, int]:
        """Overlap per chipped dim."""
        return self._grid.input_overlap

    @property
    def variables(self) -> list[Hashable]:
        """The variables stacked into channels, in order."""
        return list(self._names)

    @property
    def ids(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Chip numbers in the full grid of each chip of this set (``arange`` unless selected)."""
        if self._ids is None:
            return np.arange(len(self._grid), dtype=np.int64)
        return self._ids

    @property
    def channel_names(self) -> list[str]:
        """One label per channel: ``var`` or ``var:coord,coord`` for the non-chipped dims."""
        names: list[str] = []
        for name in self._names:
            var = self._data[name] if isinstance(self._data, xr.Dataset) else self._data
            labels = [""]
            for dim in [d for d in var.dims if d not in self._grid.dims]:
                values = var[dim].values if dim in var.coords else np.arange(var.sizes[dim])
                labels = [f"{a}{',' if a else ''}{v}" for a in labels for v in values]
            names.extend(f"{name}:{lab}" if lab else str(name) for lab in labels)
        return names

    def __len__(self) -> int:
        return len(self._grid) if self._ids is None else int(self._ids.size)

    def _id(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"chip index {i} out of range for {n} chips")
        i = i + n if i < 0 else i
        return i if self._ids is None else int(self._ids[i])

    def selector(self, i: int) -> dict[Hashable, slice]:
        """Positional ``isel`` slices of chip ``i`` (no pixel read)."""
        return self._grid.selector(self._id(int(i)))

    def select(self, indices: Any) -> ChipSet:
        """Return a view on a subset of the chips, in the order given.

        Parameters
        ----------
        indices : int sequence, slice or boolean mask
            Positions in this chip set.
        """
        pos = normalize_positions(indices, len(self))
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._ids = self.ids[pos]
        view._stream = None
        view._pid = -1
        return view

    def __getitem__(self, key: Any) -> Any:
        """Chip ``key`` as an xarray object (xbatcher's), or a :meth:`select` view of several."""
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            sel = self.selector(int(key))
            chip = _load(self._data.isel(sel), f"chip {int(key)} ({sel})")
            return _stack_like_xbatcher(chip, list(self._grid.dims))
        return self.select(key)

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        over = {d: o for d, o in self.overlap.items() if o}
        return (
            f"<ChipSet: {len(self)} chips of {self.dims}"
            + (f" overlap {over}" if over else "")
            + f" from {type(self._obj).__name__} variables {self.variables}>"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stream"] = None
        return state

    # -- where and when -----------------------------------------------------------------------
    def centers(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """``(lon, lat)`` chip centres in degrees, one per chip."""
        return chip_centers(self._obj, self._grid, self._grid.origins(self.ids))

    def bounds(self, i: int) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` of chip ``i``'s pixel edges, lon/lat degrees."""
        return chip_bounds(self._obj, self._grid, self._grid.origins([self._id(int(i))])[0])

    def time(self, i: int) -> tuple[np.datetime64, np.datetime64] | None:
        """``(first, last)`` time of chip ``i``, or None when the data has no time dim."""
        return chip_time(self._data, self._grid, self._grid.origins([self._id(int(i))])[0])

    def geocodes(self, scheme: str = "geohash", precision: int = 5) -> np.ndarray[Any, Any]:
        """One geocode per chip, of its centre.

        Parameters
        ----------
        scheme : {"geohash", "quadkey"}
            Geocoding scheme (:mod:`workbench.geo.geohash`, :mod:`workbench.geo.quadkey`).
        precision : int
            Code length (geohash characters, quadkey zoom level).
        """
        codes = get_scheme(scheme)
        lon, lat = self.centers()
        return np.asarray(codes.encode(lat, lon, precision)).reshape(-1)

    # -- pixels -----------------------------------------------------------------------------
    def _chip_stream(self) -> ChipStream:
        if self._stream is None or self._pid != os.getpid():
            source = ArraySource(self._data, self._grid.dims, self._names)
            self._stream = ChipStream(TileReader(source, self._grid), self.ids)
            self._pid = os.getpid()
        return self._stream

    def to_numpy(self, indices: Any = None) -> Any:
        """Chips as one array ``(B, C, *input_dims)`` in the data's namespace (NumPy or CuPy).

        ``C`` is the variables times the product of their non-chipped dims, flattened
        variable-major (see :attr:`channel_names`); dtypes are promoted to a common one.

        Parameters
        ----------
        indices : int sequence, slice or boolean mask, optional
            Chips to read (default: all).

        Raises
        ------
        DimensionError
            A variable lacks a chipped dim, so it cannot be stacked into channels.
        """
        pos = normalize_positions(slice(None) if indices is None else indices, len(self))
        stream = self._chip_stream()
        if pos.size == 0:
            source = stream.reader.source
            return np.empty((0, source.channels, *self._grid.sizes), dtype=source.dtype())
        return stream.read(pos)[0]

    def drop_empty(self, how: str = "all", batch_size: int = 256) -> ChipSet:
        """Return a view without the chips that are all NaN (``how="all"``) or hold any NaN.

        Reads every chip once (tile by tile). Integer data has no NaN: nothing is dropped.

        Raises
        ------
        EmptyChipError
            Every chip is empty.
        """
        if how not in ("all", "any"):
            raise ChipSpecError(f"how must be 'all' or 'any', got {how!r}")
        stream = self._chip_stream()
        tiles = stream.reader.tile_of(self._grid.origins(self.ids))
        batches = split_batches(epoch_order(tiles, shuffle=False), batch_size)
        keep = np.ones(len(self), dtype=bool)
        if stream.reader.source.dtype().kind not in "fc":
            return self.select(keep)
        for batch, (arr,) in zip(batches, stream.iterate(batches), strict=True):
            flat = (arr != arr).reshape(len(batch), -1)  # NaN != NaN, in NumPy and CuPy
            empty = flat.all(axis=1) if how == "all" else flat.any(axis=1)
            keep[batch] = ~to_numpy(empty)
        if not keep.any():
            raise EmptyChipError(
                f"all {len(self)} chips are {'all-NaN' if how == 'all' else 'partly NaN'}; "
                "check the data's fill values or choose other variables"
            )
        return self.select(keep)

    def batches(self, batch_size: int, **kwargs: Any) -> ChipBatches:
        """Iterate over batches of chips as NumPy/CuPy arrays ``(B, C, *input_dims)``.

        The same stream as :meth:`to_torch` (same plan, order and shuffle), without a
        framework: for NumPy, JAX or anything that takes arrays. See
        :class:`workbench.chips.batches.ChipBatches` for the keywords (``shuffle``,
        ``seed``, ``rank``, ``world_size``, ``drop_last``, ``targets``, ``order``,
        ``window``, ``cache_bytes``, ``dtype``, ``transform``).
        """
        from workbench.chips.batches import ChipBatches

        return ChipBatches(self, batch_size, **kwargs)

    def to_torch(
        self,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        device: Any = "auto",
        drop_last: bool = False,
        targets: Sequence[Hashable] | None = None,
        **kwargs: Any,
    ) -> ChipLoader:
        """Iterate over batches of chips as torch tensors ``(B, C, *input_dims)``.

        With ``targets``, batches are ``(x, y)`` pairs. Floating data arrives as
        ``float32`` (``dtype=None`` keeps the data's dtype); ``transform=fn`` is applied to
        every whole batch on its device (``fn(x)`` or ``fn(x, y)``) before it is yielded.

        See :class:`workbench.chips.torch.ChipLoader` for the parameters (``order=``,
        ``window=``, ``cache_bytes=``, ``dtype=``, ``transform=`` as keywords) and
        :mod:`workbench.chips.plan` for the order, shuffle and DDP shard/pad policy.
        """
        from workbench.chips.torch import ChipLoader

        return ChipLoader(
            self,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            rank=rank,
            world_size=world_size,
            device=device,
            drop_last=drop_last,
            targets=targets,
            **kwargs,
        )

    def torch_dataset(
        self, targets: Sequence[Hashable] | None = None, dtype: Any = "auto"
    ) -> ChipDataset:
        """Return a map-style :class:`torch.utils.data.Dataset` of chips ``(C, *input_dims)``.

        Items are ``(x, y)`` pairs when ``targets`` are given; floating data is
        ``float32`` unless ``dtype`` says otherwise.
        """
        from workbench.chips.torch import ChipDataset

        return ChipDataset(self, targets=targets, dtype=dtype)

    def preview(
        self, n: int = 64, bands: Any = None, stretch: str = "percentile", **kwargs: Any
    ) -> Any:
        """Show ``n`` chips in a gallery widget (:class:`workbench.widgets.gallery.ChipGallery`)."""
        from workbench.widgets.gallery import ChipGallery

        return ChipGallery.from_chips(self, n=n, bands=bands, stretch=stretch, **kwargs)
