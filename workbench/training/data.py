"""Batches for one process of a training run, from a ChipSet or any map-style torch Dataset.

Data-parallel ranks each take a disjoint, equally long share of a (per-epoch) shuffled order, as
:class:`torch.utils.data.DistributedSampler` with ``drop_last=True`` does, so every rank runs
the same number of steps and no collective waits forever. A :class:`~workbench.chips.ChipSet`
is read through its own fast path (``select(...).to_torch(...)``), anything else through a
:class:`~torch.utils.data.DataLoader`.

Examples
--------
>>> import torch
>>> from torch.utils.data import TensorDataset
>>> ds = TensorDataset(torch.arange(10.0).unsqueeze(1), torch.arange(10.0))
>>> [len(x) for x, _ in epoch_batches(ds, batch_size=2, rank=1, world_size=2, epoch=0, seed=0)]
[2, 2, 1]
>>> shard_indices(10, rank=0, world_size=3, epoch=0, seed=0, shuffle=False).tolist()
[0, 3, 6]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench.errors import GeocodeError, TrainingError

__all__ = [
    "is_chipset",
    "materialize",
    "num_samples",
    "shard_indices",
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


def shard_indices(
    n: int, *, rank: int, world_size: int, epoch: int, seed: int, shuffle: bool = True
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return the sample indices of ``rank`` for ``epoch``: disjoint, ``n // world_size`` each.

    The order is a permutation seeded by ``seed + epoch`` (the same on every rank), split
    round-robin; the last ``n % world_size`` samples of the order are left out this epoch (as
    ``DistributedSampler(drop_last=True)``), a different few each epoch when shuffling.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise TrainingError(
            f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
        )
    order = np.random.default_rng(seed + epoch).permutation(n) if shuffle else np.arange(n)
    per = n // world_size
    return order[rank : per * world_size : world_size].astype(np.int64)


def _tensor_pair(data: Any) -> tuple[Any, Any] | None:
    """Return the ``(x, y)`` tensors of a two-tensor ``TensorDataset``, else ``None``."""
    tensors = getattr(data, "tensors", None)
    if isinstance(tensors, tuple) and len(tensors) == 2:
        return tensors
    return None


def materialize(
    data: Any, targets: Sequence[str] | None = None, max_bytes: int = 256 * 2**20
) -> Any:
    """Read a (small) ChipSet once into a ``TensorDataset`` of ``(x, y)``; else return ``data``.

    Workers call it on the data they were given (their partition, their view) before the first
    epoch, so every epoch shuffles tensors in memory instead of reading the file again. A
    ChipSet larger than ``max_bytes`` (or without ``targets``) is left as it is and streamed.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.zeros(2, 1), torch.zeros(2))
    >>> materialize(ds) is ds
    True
    """
    if not is_chipset(data) or not targets or len(data) == 0:
        return data
    channels = len(getattr(data, "channel_names", ())) or 1
    pixels = int(np.prod(list(getattr(data, "dims", {}).values()) or [1]))
    if len(data) * channels * pixels * 8 > max_bytes:  # <= 8 bytes per value
        return data
    x, y = next(iter(data.to_torch(len(data), shuffle=False, targets=list(targets), device="cpu")))
    tud = lazy_import("torch.utils.data")
    return tud.TensorDataset(x, y)


def subset(data: Any, indices: Sequence[int] | np.ndarray[Any, Any]) -> Any:
    """Return a view on the samples ``indices`` (``ChipSet.select``, ``Subset``, a slice)."""
    idx = np.asarray(indices, dtype=np.int64)
    if is_chipset(data):
        return data.select(idx)
    pair = _tensor_pair(data)
    if pair is not None:
        tud = lazy_import("torch.utils.data")
        return tud.TensorDataset(pair[0][idx], pair[1][idx])
    tud = lazy_import("torch.utils.data")
    return tud.Subset(data, idx.tolist())


def epoch_batches(
    data: Any,
    *,
    batch_size: int,
    epoch: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    shuffle: bool = True,
    targets: Sequence[str] | None = None,
) -> Iterable[Any]:
    """Return the ``(x, y)`` batches of ``rank`` for ``epoch``.

    Parameters
    ----------
    data : ChipSet or torch.utils.data.Dataset
        A ChipSet needs ``targets`` (the variables to predict); a Dataset's items must be
        ``(x, y)`` pairs.
    batch_size, epoch, seed, rank, world_size, shuffle
        See :func:`shard_indices`.
    targets : sequence of str, optional
        Target variables of a ChipSet.
    """
    n = num_samples(data)
    if world_size == 1 and not shuffle:
        idx = np.arange(n, dtype=np.int64)
    else:
        idx = shard_indices(
            n, rank=rank, world_size=world_size, epoch=epoch, seed=seed, shuffle=shuffle
        )
    pair = _tensor_pair(data)
    if pair is not None:  # in memory: slice the tensors, no per-sample collation
        x, y = pair
        return [
            (x[b], y[b])
            for b in np.array_split(idx, range(batch_size, len(idx), batch_size))
            if len(b)
        ]
    if is_chipset(data):
        if not targets:
            raise TrainingError(
                "a ChipSet used as train_data needs the target variables: define "
                "`targets = ['ndvi']` in the %%train cell (or pass targets=... to the request)"
            )
        view = data if len(idx) == n and not shuffle else data.select(idx)
        loader: Iterable[Any] = view.to_torch(
            batch_size, shuffle=False, targets=list(targets), device="cpu"
        )
        return loader
    tud = lazy_import("torch.utils.data")
    view = data if len(idx) == n and not shuffle else tud.Subset(data, idx.tolist())
    batches: Iterable[Any] = tud.DataLoader(view, batch_size=batch_size, shuffle=False)
    return batches


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
