"""Torch views of a :class:`~workbench.chips.ChipSet`: an iterable of batches, a map-style Dataset.

:class:`ChipLoader` (``chips.to_torch(...)``) yields ready batches ``(B, C, *chip)``:
the stream of :class:`~workbench.chips.batches.ChipBatches` (each epoch planned up
front, every batch cut in one vectorised gather per variable from regions decoded once
and ahead of use), as tensors. It is also a :class:`torch.utils.data.IterableDataset`, so
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
from workbench.chips.batches import ChipBatches, resolve_dtype, split_targets
from workbench.chips.collate import resolve_device, to_tensor
from workbench.chips.reader import TileReader
from workbench.chips.stream import ChipStream

if TYPE_CHECKING:
    from workbench.chips.chipset import ChipSet

torch = lazy_import("torch", purpose="ChipSet.to_torch() and ChipSet.torch_dataset()")

__all__ = ["ChipLoader", "ChipDataset", "split_targets"]


class ChipLoader(ChipBatches, torch.utils.data.IterableDataset):  # type: ignore[misc,name-defined]
    """Batches of chips as tensors; built by :meth:`ChipSet.to_torch`.

    The stream of :class:`~workbench.chips.batches.ChipBatches` (same parameters, same
    order), each batch handed to torch without a copy (see
    :func:`~workbench.chips.collate.to_tensor`), then passed through ``transform`` on
    its device.

    Parameters
    ----------
    chips : ChipSet
        The chips.
    batch_size : int
        Chips per batch.
    device : {"auto", "cpu", "cuda"} or torch.device
        Where the tensors go (see :func:`~workbench.chips.collate.resolve_device`).
    dtype : "auto", None, torch.dtype or NumPy dtype
        ``"auto"`` (default): floating data as ``torch.float32``, integer data (labels,
        masks) in its own dtype; ``None`` keeps every dtype.
    **kwargs
        ``shuffle``, ``seed``, ``rank``, ``world_size``, ``drop_last``, ``targets``,
        ``order``, ``window``, ``cache_bytes``, ``transform``: see
        :class:`~workbench.chips.batches.ChipBatches`.
    """

    def __init__(self, chips: ChipSet, batch_size: int, *, device: Any = "auto", **kwargs: Any):
        ChipBatches.__init__(self, chips, batch_size, **kwargs)
        torch.utils.data.IterableDataset.__init__(self)
        self.device = resolve_device(device, data_on_gpu=self.source.is_gpu())

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        worker = None if info is None else (info.id, info.num_workers)
        for arrays in self._arrays(worker):
            yield self._emit([to_tensor(a, self.device) for a in arrays])

    def __repr__(self) -> str:
        return f"{ChipBatches.__repr__(self)[:-1]}, device={self.device})"


class ChipDataset(torch.utils.data.Dataset):  # type: ignore[misc,name-defined]
    """Map-style dataset of chips ``(C, *chip)`` or ``(x, y)``; see :meth:`ChipSet.torch_dataset`.

    Parameters
    ----------
    chips : ChipSet
        The chips.
    targets : sequence of str, optional
        Variables returned apart, as ``(x, y)``.
    dtype : "auto", None, torch.dtype or NumPy dtype
        As for :class:`ChipLoader`: floating data as ``float32`` by default.
    """

    def __init__(
        self, chips: ChipSet, targets: Sequence[Hashable] | None = None, dtype: Any = "auto"
    ) -> None:
        self.chips = chips
        self.source, self.groups = split_targets(chips, targets)
        self.dtypes = [resolve_dtype(dtype, self.source.dtype(group)) for group in self.groups]
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
        tensors = [
            to_tensor(a if dt is None else a.astype(dt, copy=False), self.device)
            for a, dt in zip(arrays, self.dtypes, strict=True)
        ]
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
