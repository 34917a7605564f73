"""Batches of chips as arrays: the epoch plan and the stream, with no framework attached.

:class:`ChipBatches` (``chips.batches(...)``) plans each epoch up front (order, shuffle,
DDP shard; see :mod:`workbench.chips.plan`), then cuts every batch in one vectorised
gather per variable from regions decoded once and ahead of use. It yields NumPy (or
CuPy) arrays ``(B, C, *chip)``, for JAX, NumPy or any framework;
:class:`~workbench.chips.torch.ChipLoader` (``chips.to_torch(...)``) is the same stream
handing tensors to torch.

Examples
--------
>>> from workbench.data.synthetic import era5_like
>>> from workbench.chips import ChipSet
>>> chips = ChipSet(era5_like(time=4, lat=16, lon=16), {"time": 1, "lat": 8, "lon": 8})
>>> batches = chips.batches(5)
>>> len(batches), [x.shape for x in batches][-1]
(4, (1, 4, 1, 8, 8))
>>> x, y = next(iter(chips.batches(4, targets=["msl"], shuffle=True, seed=0)))
>>> x.shape, y.shape, x.dtype
((4, 3, 1, 8, 8), (4, 1, 1, 8, 8), dtype('float32'))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.chips.plan import epoch_rng, epoch_segments, shard, split_batches
from workbench.chips.reader import TileReader
from workbench.chips.source import ArraySource, as_names
from workbench.chips.stream import ChipStream
from workbench.errors import ChipSpecError, EmptyChipError

if TYPE_CHECKING:
    from workbench.chips.chipset import ChipSet

__all__ = ["ChipBatches", "split_targets", "resolve_dtype"]


def split_targets(
    chips: ChipSet, targets: Sequence[Hashable] | Hashable | None
) -> tuple[ArraySource, list[list[int]]]:
    """Return a source over inputs then targets, and the variable groups ``[inputs, targets]``.

    Targets may be variables outside ``chips.variables``; a target listed there is
    removed from the inputs.

    Raises
    ------
    ChipSpecError
        Unknown targets, targets on a DataArray, or no input variable left.
    """
    dims = chips.grid.dims
    if targets is None:
        source = ArraySource(chips.data, dims, chips.variables)
        return source, [list(range(len(source.layouts)))]
    names = as_names(targets)
    obj = chips.obj
    if not hasattr(obj, "data_vars"):
        raise ChipSpecError("targets= needs a Dataset (a DataArray has a single variable)")
    unknown = [n for n in names if n not in obj.data_vars]
    if unknown or not names:
        raise ChipSpecError(
            f"unknown target variable(s) {unknown or names}; "
            f"the data variables are {list(obj.data_vars)}"
        )
    inputs = [v for v in chips.variables if v not in names]
    if not inputs:
        raise ChipSpecError(
            f"targets {names} leave no input variable among {chips.variables}; "
            "add input variables with ds.wb.chips(..., variables=[...])"
        )
    source = ArraySource(obj, dims, inputs + names)
    return source, [list(range(len(inputs))), list(range(len(inputs), len(inputs) + len(names)))]


def resolve_dtype(dtype: Any, source_dtype: np.dtype[Any]) -> np.dtype[Any] | None:
    """Return the dtype batches are cast to, or None to keep the source's.

    ``"auto"`` (the default of the loaders): real floating sources become ``float32``,
    what models are built for; integer and boolean sources (class labels, masks) and
    complex ones keep their dtype. ``None`` keeps every dtype. Anything else (a NumPy
    dtype, its name, or a ``torch.dtype``) is applied to every batch.

    Examples
    --------
    >>> resolve_dtype("auto", np.dtype("float64")), resolve_dtype("auto", np.dtype("uint8"))
    (dtype('float32'), None)
    >>> resolve_dtype("float16", np.dtype("float64"))
    dtype('float16')
    """
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype == "auto":
        return np.dtype(np.float32) if source_dtype.kind == "f" else None
    if type(dtype).__module__ == "torch":  # a torch.dtype, without importing torch here
        dtype = str(dtype).removeprefix("torch.")
    try:
        resolved: np.dtype[Any] = np.dtype(dtype)
    except TypeError as exc:
        raise ChipSpecError(
            f"dtype must be 'auto', None, a NumPy dtype or a torch dtype, got {dtype!r}"
        ) from exc
    return resolved


class ChipBatches:
    """Batches of chips as NumPy/CuPy arrays; built by :meth:`ChipSet.batches`.

    Parameters
    ----------
    chips : ChipSet
        The chips.
    batch_size : int
        Chips per batch.
    shuffle : bool
        Shuffle every epoch (see :mod:`workbench.chips.plan` for how a store is mixed).
    seed : int, optional
        Seed of the shuffles; epoch ``e`` uses ``(seed, e)``. Default: fresh randomness
        for ``world_size == 1``; ``0`` for ``world_size > 1`` (ranks must agree).
    rank, world_size : int
        This process's shard of the epoch (DDP); every rank gets the same number of batches.
    drop_last : bool
        Drop the tail so that every batch is full (see :func:`~workbench.chips.plan.shard`).
    targets : sequence of str, optional
        Variables yielded apart, as ``(x, y)`` pairs.
    order : {"storage", "index"}
        Order without shuffling: tile by tile (each tile decoded once), or chip index order.
    window : int, optional
        Tiles whose chips are interleaved when shuffling a store; default: as many as fit
        in a quarter of ``chunk_cache_bytes`` (the staged window, the next one, and the
        tiles being decoded all fit in the budget).
    cache_bytes : int, optional
        Bound of decoded tiles held; ``workbench.options`` ``chunk_cache_bytes`` by default.
    dtype : "auto", None or dtype
        ``"auto"``: floating data as ``float32``, integers as they are (see
        :func:`resolve_dtype`).
    transform : callable, optional
        Applied to every whole batch after it is cut (and, for torch, on the batch's
        device): ``transform(x)``, or ``transform(x, y)`` with targets. It returns the
        batch to yield (an array, a tuple, a dict...): normalise, split a time window into
        input and target, derive indices, in one vectorised call per batch.
    """

    def __init__(
        self,
        chips: ChipSet,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        targets: Sequence[Hashable] | None = None,
        order: str = "storage",
        window: int | None = None,
        cache_bytes: int | None = None,
        dtype: Any = "auto",
        transform: Callable[..., Any] | None = None,
    ) -> None:
        for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ChipSpecError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 <= int(rank) < int(world_size):
            raise ChipSpecError(f"rank must be in [0, {world_size}), got {rank!r}")
        if order not in ("storage", "index"):
            raise ChipSpecError(f"order must be 'storage' or 'index', got {order!r}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ChipSpecError(f"window must be an integer >= 1 (tiles), got {window!r}")
        if transform is not None and not callable(transform):
            raise ChipSpecError(f"transform must be a function of the batch, got {transform!r}")
        if len(chips) == 0:
            raise EmptyChipError("this ChipSet holds no chip; nothing to iterate over")
        self.chips = chips
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        if seed is None:
            seed = 0 if world_size > 1 else int(np.random.SeedSequence().generate_state(1)[0])
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.drop_last = bool(drop_last)
        self.order = order
        self.cache_bytes = cache_bytes
        self.transform = transform
        self.source, self.groups = split_targets(chips, targets)
        self.targets = None if targets is None else list(self.source.names[len(self.groups[0]) :])
        self.dtypes = [resolve_dtype(dtype, self.source.dtype(group)) for group in self.groups]
        self._epoch = 0
        self._reader: TileReader | None = None
        self._reader_pid = -1
        reader = self.reader
        self.window = int(window or max(1, (reader.cache_bytes // 4) // max(reader.tile_bytes, 1)))
        self._tiles = reader.tile_of(chips.grid.origins(chips.ids))
        self.last_stats: dict[str, Any] = {}

    # -- state ------------------------------------------------------------------------------
    @property
    def reader(self) -> TileReader:
        """The tile reader of this process (rebuilt after a fork or unpickling)."""
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader = TileReader(self.source, self.chips.grid, self.cache_bytes)
            self._reader_pid = os.getpid()
        return self._reader

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"] = None
        return state

    @property
    def epoch(self) -> int:
        """The epoch the next iteration plays (advanced by each iteration)."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the next iteration, like ``DistributedSampler.set_epoch``.

        Iterating advances the epoch by itself; call this when iterations do not run in
        this object (``DataLoader`` worker processes without ``persistent_workers``), or
        to replay an epoch (a resumed training run).
        """
        self._epoch = int(epoch)

    # -- plan -------------------------------------------------------------------------------
    def _span(self, epoch: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """Return this rank's chip positions for ``epoch`` in emission order, and their segments."""
        order, segments = epoch_segments(
            self._tiles,
            shuffle=self.shuffle,
            rng=epoch_rng(self.seed, epoch) if self.shuffle else None,
            window=self.window,
            order=self.order,
        )
        mine = shard(
            np.arange(order.size),
            world_size=self.world_size,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
        )[self.rank]
        if segments is not None and not self.shuffle:
            # storage order: neighbouring tiles are read together, one call per variable
            segments = self.reader.run_of(segments)
        return order[mine], None if segments is None else segments[mine]

    def batch_indices(self, epoch: int | None = None) -> list[np.ndarray[Any, Any]]:
        """Return this rank's batches of chip positions for ``epoch`` (default: the next one)."""
        span, _ = self._span(self._epoch if epoch is None else int(epoch))
        return split_batches(span, self.batch_size, self.drop_last)

    def __len__(self) -> int:
        n = len(self.chips)
        spans = shard(
            np.arange(n),
            world_size=self.world_size,
            batch_size=self.batch_size,
            drop_last=self.drop_last,
        )
        return len(split_batches(spans[self.rank], self.batch_size, self.drop_last))

    # -- iteration --------------------------------------------------------------------------
    def _arrays(self, worker: tuple[int, int] | None = None) -> Iterator[list[Any]]:
        """Yield the next epoch's batches as lists of arrays (one per variable group).

        ``worker = (id, count)`` takes every ``count``-th batch from ``id`` (loader workers).
        """
        span, segments = self._span(self._epoch)
        self._epoch += 1
        reader = self.reader
        stream = ChipStream(reader, self.chips.ids, self.groups)
        if worker is None and segments is not None and not reader.in_memory:
            # from a store: cut a whole tile (or window of tiles) at a time, batches are views
            arrays_iter = stream.iterate_staged(span, segments, self.batch_size)
        else:
            batches = split_batches(span, self.batch_size, self.drop_last)
            if worker is not None:
                batches = batches[worker[0] :: worker[1]]
            arrays_iter = stream.iterate(batches)
        for arrays in arrays_iter:
            yield [
                a if dt is None else a.astype(dt, copy=False)
                for a, dt in zip(arrays, self.dtypes, strict=True)
            ]
        self.last_stats = reader.stats()

    def _emit(self, parts: Sequence[Any]) -> Any:
        """Return the item yielded for one batch: its parts, through ``transform`` if given."""
        if self.transform is not None:
            return self.transform(*parts)
        return parts[0] if len(parts) == 1 else tuple(parts)

    def __iter__(self) -> Iterator[Any]:
        for arrays in self._arrays():
            yield self._emit(arrays)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} batches of {self.batch_size} over "
            f"{len(self.chips)} chips, shuffle={self.shuffle}, rank {self.rank}/{self.world_size})"
        )
