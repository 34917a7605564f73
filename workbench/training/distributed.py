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
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench.errors import LaunchError, TrainingError
from workbench.training.comm import CommCounter
from workbench.training.data import num_samples, subset
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


def _rendezvous(rank: int, timeout: datetime.timedelta) -> tuple[Any, Any]:
    """Return ``(server or None, client)``: the rendezvous store, served on ``MASTER_ADDR`` only.

    torch's own ``env://`` rendezvous makes rank 0 listen on every interface. Here rank 0
    binds the socket to the one address the launcher chose (loopback for engines on one host,
    the cluster's interface otherwise) and hands it to the server store; every rank, rank 0
    included, joins the group through a client store. The server is held apart from the
    group so that dropping it closes the port even when torch keeps the group alive (DDP's
    reducer holds a reference to its group in C++ after the group is destroyed).
    """
    dist = lazy_import("torch.distributed")
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    server = None
    if rank == 0:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise LaunchError(
                f"the rendezvous could not listen on {addr}:{port} ({exc}); the address must be "
                "one of this host's interfaces (choose another with --interface)"
            ) from exc
        fd = sock.detach()  # the server store owns the socket from here on, and closes it
        server = dist.TCPStore(
            addr, port, None, True, timeout, wait_for_workers=False, master_listen_fd=fd
        )
    return server, dist.TCPStore(addr, port, None, False, timeout)


@contextlib.contextmanager
def process_group(rank: int, world_size: int, *, timeout_s: float = 300.0) -> Iterator[Any]:
    """Join the default gloo process group and leave it (and close its rendezvous) on exit.

    The rendezvous store listens only on ``MASTER_ADDR`` and stops when the group is left
    (see :func:`_rendezvous`); gloo's own sockets use ``GLOO_SOCKET_IFNAME`` when the launcher
    sets it. A group left behind by an
    interrupted run in this process is destroyed first, so an engine stays usable after a
    :class:`KeyboardInterrupt`.

    Raises
    ------
    LaunchError
        If ``MASTER_ADDR`` or ``MASTER_PORT`` is not set, or the address is not this host's.
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
    timeout = datetime.timedelta(seconds=timeout_s)
    server, store = _rendezvous(rank, timeout)
    try:
        dist.init_process_group(
            "gloo", store=store, rank=rank, world_size=world_size, timeout=timeout
        )
        yield dist.group.WORLD
    finally:
        if dist.is_initialized():
            # shut the group down before destroying it: DDP's parameter check keeps a
            # reference to the group in C++, which would keep its sockets open after destroy
            shutdown = getattr(dist.group.WORLD, "shutdown", None)
            if callable(shutdown):
                shutdown()
            dist.destroy_process_group()
        del store, server  # rank 0's server stops listening


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
    loss_fn: Callable[[Any, Any], Any] | None,
    metrics: Mapping[str, Callable[[Any, Any], Any]] | None,
    *,
    rank: int,
    world_size: int,
    batches: Callable[[Any], Iterable[Any]],
    counter: CommCounter | None = None,
) -> dict[str, float]:
    """Evaluate ``model`` (a full local copy) on shard ``rank::world_size`` of ``data`` and sum.

    ``batches(view)`` gives the batches of a view of ``data`` (in order, through the task's
    transform). Every rank gets the global sample-weighted means (one all-reduce of a few
    numbers).
    """
    torch = lazy_import("torch")
    dist = lazy_import("torch.distributed")
    n = num_samples(data)
    mine = subset(data, np.arange(rank, n, world_size))
    local = evaluate(model, batches(mine), loss_fn, metrics)
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
