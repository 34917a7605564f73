"""Torch views of a :class:`~workbench.chips.ChipSet`: an iterable of batches, a map-style Dataset.

:class:`ChipLoader` (``chips.to_torch(...)``) yields ready batches ``(B, C, *chip)``:
it plans each epoch up front (order, shuffle, DDP shard; see :mod:`workbench.chips.plan`),
then cuts every batch in one vectorised gather per variable from regions decoded once
and ahead of use. It is also a :class:`torch.utils.data.IterableDataset`, so
``DataLoader(loader, batch_size=None, num_workers=k)`` splits its batches among
workers (worker ``w`` takes batches ``w, w + k, ...``, so the order is unchanged).

:class:`ChipDataset` (``chips.torch_dataset()``) is the map-style view for users who
bring their own sampler and ``DataLoader``; it pickles (worker processes rebuild their
own reader) and implements ``__getitems__`` so a ``DataLoader`` fetches a whole batch
with one gather.

Examples
--------
>>> from workbench.data.synthetic import era5_like
>>> from workbench.chips import ChipSet
>>> chips = ChipSet(era5_like(time=4, lat=16, lon=16), {"time": 1, "lat": 8, "lon": 8})
>>> loader = chips.to_torch(batch_size=5, device="cpu")
>>> len(loader), [tuple(x.shape) for x in loader][-1]
(4, (1, 4, 1, 8, 8))
>>> x, y = next(iter(chips.to_torch(4, targets=["msl"], device="cpu")))
>>> tuple(x.shape), tuple(y.shape)
((4, 3, 1, 8, 8), (4, 1, 1, 8, 8))
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench._optional import lazy_import
from workbench.chips.collate import resolve_device, to_tensor
from workbench.chips.plan import epoch_rng, epoch_segments, shard, split_batches
from workbench.chips.reader import TileReader
from workbench.chips.source import ArraySource, as_names
from workbench.chips.stream import ChipStream
from workbench.errors import ChipSpecError, EmptyChipError

if TYPE_CHECKING:
    from workbench.chips.chipset import ChipSet

torch = lazy_import("torch", purpose="ChipSet.to_torch() and ChipSet.torch_dataset()")

__all__ = ["ChipLoader", "ChipDataset", "split_targets"]


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


class ChipLoader(torch.utils.data.IterableDataset):  # type: ignore[misc,name-defined]
    """Batches of chips as tensors; built by :meth:`ChipSet.to_torch`.

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
    device : {"auto", "cpu", "cuda"} or torch.device
        Where the tensors go (see :func:`~workbench.chips.collate.resolve_device`).
    drop_last : bool
        Drop the tail so that every batch is full (see :func:`~workbench.chips.plan.shard`).
    targets : sequence of str, optional
        Variables yielded apart, as ``(x, y)`` pairs.
    order : {"storage", "index"}
        Order without shuffling: tile by tile (each tile decoded once), or chip index order.
    window : int, optional
        Tiles whose chips are interleaved when shuffling a store; default: as many as fit
        in half of ``chunk_cache_bytes``.
    cache_bytes : int, optional
        Bound of decoded tiles held; ``workbench.options`` ``chunk_cache_bytes`` by default.
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
        device: Any = "auto",
        drop_last: bool = False,
        targets: Sequence[Hashable] | None = None,
        order: str = "storage",
        window: int | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        super().__init__()
        for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ChipSpecError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0 <= int(rank) < int(world_size):
            raise ChipSpecError(f"rank must be in [0, {world_size}), got {rank!r}")
        if order not in ("storage", "index"):
            raise ChipSpecError(f"order must be 'storage' or 'index', got {order!r}")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ChipSpecError(f"window must be an integer >= 1 (tiles), got {window!r}")
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
        self.source, self.groups = split_targets(chips, targets)
        self.targets = None if targets is None else list(self.source.names[len(self.groups[0]) :])
        self.device = resolve_device(device, data_on_gpu=self.source.is_gpu())
        self._epoch = 0
        self._reader: TileReader | None = None
        self._reader_pid = -1
        reader = self.reader
        self.window = int(window or max(1, (reader.cache_bytes // 2) // max(reader.tile_bytes, 1)))
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
        this object (``DataLoader`` worker processes without ``persistent_workers``).
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
    def __iter__(self) -> Iterator[Any]:
        span, segments = self._span(self._epoch)
        self._epoch += 1
        reader = self.reader
        stream = ChipStream(reader, self.chips.ids, self.groups)
        info = torch.utils.data.get_worker_info()
        if info is None and segments is not None and not reader.in_memory:
            # from a store: cut a whole tile (or window of tiles) at a time, batches are views
            arrays_iter = stream.iterate_staged(span, segments, self.batch_size)
        else:
            batches = split_batches(span, self.batch_size, self.drop_last)
            if info is not None:
                batches = batches[info.id :: info.num_workers]
            arrays_iter = stream.iterate(batches)
        for arrays in arrays_iter:
            tensors = [to_tensor(a, self.device) for a in arrays]
            yield tensors[0] if len(tensors) == 1 else tuple(tensors)
        self.last_stats = reader.stats()

    def __repr__(self) -> str:
        return (
            f"ChipLoader({len(self)} batches of {self.batch_size} over {len(self.chips)} chips, "
            f"shuffle={self.shuffle}, rank {self.rank}/{self.world_size}, device={self.device})"
        )


class ChipDataset(torch.utils.data.Dataset):  # type: ignore[misc,name-defined]
    """Map-style dataset of chips ``(C, *chip)`` or ``(x, y)``; see :meth:`ChipSet.torch_dataset`.

    Parameters
    ----------
    chips : ChipSet
        The chips.
    targets : sequence of str, optional
        Variables returned apart, as ``(x, y)``.
    """

    def __init__(self, chips: ChipSet, targets: Sequence[Hashable] | None = None) -> None:
        self.chips = chips
        self.source, self.groups = split_targets(chips, targets)
        self.device = resolve_device("auto", data_on_gpu=self.source.is_gpu())
        self._stream: ChipStream | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stream"] = None
        return state

    def _reader_stream(self) -> ChipStream:
        if self._stream is None or self._pid != os.getpid():
            reader = TileReader(self.source, self.chips.grid)
            self._stream = ChipStream(reader, self.chips.ids, self.groups)
            self._pid = os.getpid()
        return self._stream

    def __len__(self) -> int:
        return len(self.chips)

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        pos = np.asarray(indices, dtype=np.int64)
        if pos.size and ((pos < 0).any() or (pos >= len(self)).any()):
            raise IndexError(f"chip index out of range for {len(self)} chips: {indices!r}")
        arrays = self._reader_stream().read(pos)
        tensors = [to_tensor(a, self.device) for a in arrays]
        if len(tensors) == 1:
            return list(tensors[0].unbind(0))
        return list(zip(*[t.unbind(0) for t in tensors], strict=True))

    def __getitem__(self, index: int) -> Any:
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"chip index {index} out of range for {len(self)} chips")
        return self.__getitems__([i])[0]
