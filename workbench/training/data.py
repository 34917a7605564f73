"""Batches for one process of a training run, from a ChipSet or any map-style torch Dataset.

One sampler: every epoch order comes from :mod:`workbench.chips.plan`. A
:class:`~workbench.chips.ChipSet` is read through its own chip stream, called exactly as a
user calls it (``to_torch(batch_size, shuffle=True, seed=seed, rank=rank,
world_size=world_size, drop_last=drop_last)`` with ``set_epoch(epoch)``): from a store, the
tiles of the whole store are visited in a new random order each epoch and a window of them is
interleaved, each tile decoded once. Any other Dataset is one "tile" for the same planner: a
full permutation of ``(seed, epoch)``, cut into ranks by :func:`workbench.chips.plan.shard`
(disjoint spans, the same number of batches on every rank, so no collective waits forever).

A batch is ``(x, y)``, or ``x`` alone for self-supervised training (a ChipSet without
targets, a ``TensorDataset`` of one tensor); ``transform(x[, y])`` is applied to every whole
batch after it is cut.

Examples
--------
>>> import torch
>>> from torch.utils.data import TensorDataset
>>> ds = TensorDataset(torch.arange(10.0).unsqueeze(1), torch.arange(10.0))
>>> [len(x) for x, _ in epoch_batches(ds, batch_size=2, rank=1, world_size=2, epoch=0, seed=0)]
[2, 2, 1]
>>> [b.tolist() for b in rank_batches(10, batch_size=3, rank=0, world_size=2, shuffle=False)]
[[0, 1, 2], [3, 4]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench.chips.plan import epoch_order, epoch_rng, shard, split_batches
from workbench.errors import GeocodeError, TrainingError
from workbench.options import OPTIONS

__all__ = [
    "is_chipset",
    "materialize",
    "num_samples",
    "rank_batches",
    "subset",
    "epoch_batches",
    "sample_geocodes",
    "group_by_code",
]


def is_chipset(data: Any) -> bool:
    """Whether ``data`` behaves like a :class:`~workbench.chips.ChipSet` (duck-typed)."""
    return all(hasattr(data, a) for a in ("to_torch", "select", "geocodes"))


def num_samples(data: Any) -> int:
    """Return the number of samples (chips) of a ChipSet or map-style Dataset.

    Raises
    ------
    TrainingError
        If ``data`` has no length (an iterable-style dataset).
    """
    try:
        return len(data)
    except TypeError as exc:
        raise TrainingError(
            f"train_data must be a ChipSet or a map-style torch Dataset with a length, got "
            f"{type(data).__name__}; wrap an iterable in a list or a TensorDataset"
        ) from exc


def rank_batches(
    n: int,
    *,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
) -> list[np.ndarray[Any, np.dtype[np.int64]]]:
    """Return the batches of sample positions of ``rank`` for ``epoch`` (in-memory data).

    The order is a permutation of ``(seed, epoch)`` (the same on every rank; see
    :func:`workbench.chips.plan.epoch_rng`), cut by :func:`workbench.chips.plan.shard`: the
    same number of batches on every rank, spans disjoint unless the rare padding applies.

    Raises
    ------
    TrainingError
        For a rank outside ``0 .. world_size - 1``.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise TrainingError(
            f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
        )
    order = epoch_order(
        np.zeros(n, dtype=np.int64),  # one tile: a full permutation when shuffling
        shuffle=shuffle,
        rng=epoch_rng(seed, epoch) if shuffle else None,
        order="index",
    )
    span = shard(order, world_size=world_size, batch_size=batch_size, drop_last=drop_last)[rank]
    return split_batches(span, batch_size, drop_last)


def _tensors(data: Any) -> tuple[Any, ...] | None:
    """Return the tensors of a one- or two-tensor ``TensorDataset``, else ``None``."""
    tensors = getattr(data, "tensors", None)
    if isinstance(tensors, tuple) and len(tensors) in (1, 2):
        return tensors
    return None


def materialize(
    data: Any, targets: Sequence[str] | None = None, max_bytes: int | None = None
) -> Any:
    """Read a (small) ChipSet once into a ``TensorDataset``; else return ``data``.

    Workers call it on the data they were given (their partition, their view) before the first
    epoch, so every epoch shuffles tensors in memory instead of reading the file again. A
    ChipSet larger than ``max_bytes`` (default: ``workbench.options``
    ``train_in_memory_bytes``, 256 MiB) is left as it is and streamed. Without ``targets`` the
    dataset holds the inputs only (self-supervised training).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.zeros(2, 1), torch.zeros(2))
    >>> materialize(ds) is ds
    True
    """
    if not is_chipset(data) or len(data) == 0:
        return data
    limit = OPTIONS["train_in_memory_bytes"] if max_bytes is None else max_bytes
    channels = len(getattr(data, "channel_names", ())) or 1
    pixels = int(np.prod(list(getattr(data, "dims", {}).values()) or [1]))
    if len(data) * channels * pixels * 8 > limit:  # <= 8 bytes per value
        return data
    loader = data.to_torch(
        len(data), shuffle=False, targets=list(targets) if targets else None, device="cpu"
    )
    batch = next(iter(loader))
    tud = lazy_import("torch.utils.data")
    return tud.TensorDataset(*(batch if isinstance(batch, tuple) else (batch,)))


def subset(data: Any, indices: Sequence[int] | np.ndarray[Any, Any]) -> Any:
    """Return a view on the samples ``indices`` (``ChipSet.select``, ``Subset``, a slice)."""
    idx = np.asarray(indices, dtype=np.int64)
    if is_chipset(data):
        return data.select(idx)
    tud = lazy_import("torch.utils.data")
    tensors = _tensors(data)
    if tensors is not None:
        return tud.TensorDataset(*(t[idx] for t in tensors))
    return tud.Subset(data, idx.tolist())


def _transformed(batches: Iterable[Any], transform: Callable[..., Any]) -> Iterator[Any]:
    for batch in batches:
        yield transform(*batch) if isinstance(batch, tuple | list) else transform(batch)


def epoch_batches(
    data: Any,
    *,
    batch_size: int,
    epoch: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    shuffle: bool = True,
    drop_last: bool = False,
    targets: Sequence[str] | None = None,
    transform: Callable[..., Any] | None = None,
) -> Iterable[Any]:
    """Return the batches of ``rank`` for ``epoch``: ``(x, y)`` pairs, or ``x`` alone.

    Parameters
    ----------
    data : ChipSet or torch.utils.data.Dataset
        A ChipSet yields ``(x, y)`` with ``targets`` (the variables to predict) and ``x``
        alone without; a Dataset's items are ``(x, y)`` pairs or single tensors.
    batch_size, epoch, seed, rank, world_size, shuffle, drop_last
        See :func:`rank_batches` (and :meth:`ChipSet.to_torch`, which takes the same).
    targets : sequence of str, optional
        Target variables of a ChipSet.
    transform : callable, optional
        ``transform(x)`` or ``transform(x, y)`` applied to every whole batch; its return value
        is the batch trained on.
    """
    if is_chipset(data):
        loader = data.to_torch(
            batch_size,
            shuffle=shuffle,
            seed=seed,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
            targets=list(targets) if targets else None,
            device="cpu",
            transform=transform,
        )
        loader.set_epoch(epoch)
        chip_batches: Iterable[Any] = loader
        return chip_batches
    n = num_samples(data)
    batches = rank_batches(
        n,
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        epoch=epoch,
        seed=seed,
        shuffle=shuffle,
        drop_last=drop_last,
    )
    tensors = _tensors(data)
    out: Iterable[Any]
    if tensors is not None:  # in memory: slice the tensors, no per-sample collation
        out = [tuple(t[b] for t in tensors) if len(tensors) > 1 else tensors[0][b] for b in batches]
    else:
        tud = lazy_import("torch.utils.data")
        out = tud.DataLoader(data, batch_sampler=[b.tolist() for b in batches])
    return out if transform is None else _transformed(out, transform)


def sample_geocodes(
    data: Any,
    *,
    scheme: str,
    precision: int,
    geocodes: Sequence[str] | None = None,
    partition_fn: Callable[[int], str] | None = None,
) -> np.ndarray[Any, np.dtype[np.str_]]:
    """One geocode of length ``precision`` per sample, for partitioned training.

    From ``geocodes`` (given per sample; longer codes are cut to ``precision``), from
    ``partition_fn(index)``, or from ``ChipSet.geocodes(scheme, precision)``.

    Raises
    ------
    GeocodeError
        If the codes are missing, of the wrong count, or shorter than ``precision``.

    Examples
    --------
    >>> sample_geocodes([0, 1], scheme="geohash", precision=3, geocodes=["u24mc", "u24q"]).tolist()
    ['u24', 'u24']
    """
    n = num_samples(data)
    if geocodes is not None:
        codes = [str(c) for c in geocodes]
    elif partition_fn is not None:
        codes = [str(partition_fn(i)) for i in range(n)]
    elif is_chipset(data):
        codes = [str(c) for c in data.geocodes(scheme=scheme, precision=precision)]
    else:
        raise GeocodeError(
            f"partitioned training needs the {scheme} cell of each sample: use a ChipSet as "
            "train_data, or define `geocodes` (one code per sample) or "
            "`partition_fn(index) -> geocode` in the %%train cell"
        )
    if len(codes) != n:
        raise GeocodeError(
            f"got {len(codes)} geocodes for {n} samples; give exactly one per sample"
        )
    short = [c for c in codes if len(c) < precision]
    if short:
        raise GeocodeError(
            f"geocode {short[0]!r} is shorter than the partition precision {precision}; "
            f"use --partition {scheme}:{len(short[0])} or longer codes"
        )
    return np.array([c[:precision] for c in codes], dtype=np.str_)


def group_by_code(codes: Sequence[str] | np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """Sample indices per geocode, codes sorted.

    Examples
    --------
    >>> {k: v.tolist() for k, v in group_by_code(["b", "a", "b"]).items()}
    {'a': [1], 'b': [0, 2]}
    """
    arr = np.asarray(codes)
    return {str(c): np.flatnonzero(arr == c) for c in sorted(set(arr.tolist()))}
