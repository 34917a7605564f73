"""torch.distributed plumbing shared by the DDP and FSDP strategies (gloo, CPU or GPU hosts).

* :func:`process_group`: join the default group from the ``MASTER_ADDR``/``MASTER_PORT``/
  ``RANK``/``WORLD_SIZE`` environment the launcher sets, and always leave it.
* :func:`hybrid_groups`: the (shard, replicate) groups of FSDP ``HYBRID_SHARD``.
* :func:`distributed_evaluate`: validation on disjoint shards, summed with one all-reduce.
* :func:`state_digest`: a hash of a state dict, to prove replicas are identical.

Examples
--------
>>> import torch
>>> a = state_digest({"w": torch.ones(3)}); b = state_digest({"w": torch.ones(3)})
>>> a == b, a == state_digest({"w": torch.zeros(3)})
(True, False)
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench.errors import LaunchError, TrainingError
from workbench.training.comm import CommCounter
from workbench.training.data import epoch_batches, num_samples, subset
from workbench.training.loop import evaluate

__all__ = ["process_group", "hybrid_groups", "distributed_evaluate", "state_digest", "state_nbytes"]


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 of a state dict's tensors (names, dtypes, shapes and bytes), in key order."""
    torch = lazy_import("torch")
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        h.update(key.encode())
        if hasattr(value, "detach"):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def state_nbytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(int(t.element_size() * t.numel()) for t in tensors)


@contextlib.contextmanager
def process_group(rank: int, world_size: int, *, timeout_s: float = 300.0) -> Iterator[Any]:
    """Join the default gloo process group (``env://`` rendezvous) and leave it on exit.

    A group left behind by an interrupted run in this process is destroyed first, so an
    engine stays usable after a :class:`KeyboardInterrupt`.

    Raises
    ------
    LaunchError
        If ``MASTER_ADDR`` or ``MASTER_PORT`` is not set.
    """
    dist = lazy_import("torch.distributed")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise LaunchError(
            f"{', '.join(missing)} not set: distributed strategies must be started by a "
            "launcher (workbench.cluster.launch) that sets the rendezvous address"
        )
    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group(
        "gloo",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    try:
        yield dist.group.WORLD
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def hybrid_groups(rank: int, world_size: int, shard_size: int | None = None) -> tuple[Any, Any]:
    """Create the ``(shard group, replicate group)`` of ``rank`` for FSDP ``HYBRID_SHARD``.

    Parameters are sharded within blocks of ``shard_size`` consecutive ranks and replicated
    across blocks. The default ``shard_size`` is the number of ranks on this host (so on one
    machine HYBRID_SHARD shards like FULL_SHARD and replicates over groups of one).
    Every rank must call this (group creation is collective).

    Raises
    ------
    TrainingError
        If ``shard_size`` does not divide the world size.
    """
    dist = lazy_import("torch.distributed")
    if shard_size is None:
        hosts: list[Any] = [None] * world_size
        dist.all_gather_object(hosts, socket.gethostname())
        shard_size = hosts.count(hosts[rank])
    if shard_size < 1 or world_size % shard_size:
        raise TrainingError(
            f"--shard-group-size {shard_size} must divide the world size {world_size}"
        )
    blocks = world_size // shard_size
    shard = [
        dist.new_group(list(range(b * shard_size, (b + 1) * shard_size))) for b in range(blocks)
    ]
    replicate = [dist.new_group(list(range(j, world_size, shard_size))) for j in range(shard_size)]
    return shard[rank // shard_size], replicate[rank % shard_size]


def distributed_evaluate(
    model: Any,
    data: Any,
    loss_fn: Callable[[Any, Any], Any],
    metrics: Mapping[str, Callable[[Any, Any], Any]] | None,
    *,
    rank: int,
    world_size: int,
    batch_size: int,
    targets: Sequence[str] | None,
    counter: CommCounter | None = None,
) -> dict[str, float]:
    """Evaluate ``model`` (a full local copy) on shard ``rank::world_size`` of ``data`` and sum.

    Every rank gets the global sample-weighted means (one all-reduce of a few numbers).
    """
    torch = lazy_import("torch")
    dist = lazy_import("torch.distributed")
    n = num_samples(data)
    mine = subset(data, np.arange(rank, n, world_size))
    batches = epoch_batches(
        mine, batch_size=batch_size, epoch=0, seed=0, shuffle=False, targets=targets
    )
    local = evaluate(model, batches, loss_fn, metrics)
    names = ["loss", *sorted(metrics or {})]
    k = local["samples"]
    vec = torch.tensor([local.get(m, 0.0) * k for m in names] + [float(k)], dtype=torch.float64)
    if counter is not None:
        counter.record("all_reduce", vec.element_size() * vec.numel(), world_size)
    dist.all_reduce(vec)
    total = float(vec[-1])
    out = {m: float(vec[i]) / total for i, m in enumerate(names)} if total else {}
    out["samples"] = total
    return out
