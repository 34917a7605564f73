"""What a training worker receives and returns: :class:`WorkerTask`, :class:`WorkerResult`.

Also the small helpers every strategy shares: the optimizer factory, resuming from a
checkpoint, per-epoch checkpoints, per-rank batches.

Examples
--------
>>> WorkerTask("single", model=None, loss_fn=print).batch_size
32
>>> WorkerCall(print, ("hello",)).env
{}
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench._optional import lazy_import
from workbench.errors import TrainingError
from workbench.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from workbench.training.data import epoch_batches
from workbench.training.loop import EpochRecord

__all__ = [
    "WorkerInfo",
    "WorkerCall",
    "PartitionJob",
    "WorkerTask",
    "WorkerResult",
    "optimizer_factory",
    "set_threads",
    "resume_state",
    "restore_history",
    "checkpointer",
    "worker_result",
    "batches_for",
    "eval_batches_for",
]


@dataclass(frozen=True)
class WorkerInfo:
    """A worker a launcher can use: its name (``engine-0``), host and CPU count.

    ``cpus`` counts the CPUs the worker may run on (its affinity mask, which a batch job's
    allocation narrows); ``threads``, when the launcher knows it, is the torch thread count
    the worker's allocation gives it (see :func:`workbench.cluster.nodes.threads_per_worker`);
    otherwise workers on one host share its ``cpus`` evenly.
    """

    name: str
    host: str
    cpus: int
    threads: int | None = None


@dataclass(frozen=True)
class WorkerCall:
    """``fn(*args, callbacks=[...], **kwargs)`` to run on one worker with ``env`` set."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartitionJob:
    """One partition of partitioned training.

    Its geocode, the positions of its samples in the worker's ``train_data`` / ``val_data``,
    and the partition to warm-start from.
    """

    code: str
    train_index: Sequence[int]
    val_index: Sequence[int] | None = None
    warm_start: str | None = None


@dataclass(frozen=True)
class WorkerTask:
    """Everything one worker needs; picklable (cloudpickle) to ship to engines.

    ``optimizer`` is a factory ``f(params) -> Optimizer`` (see :func:`optimizer_factory`) or
    ``None`` for Adam with ``lr``. ``loss_fn=None``: the model returns the loss itself. For
    ``partitioned``, ``train_data``/``val_data`` hold only this worker's partitions (read
    once, then sliced per partition) and ``partitions`` lists its jobs in training order;
    ``lockstep`` lets the worker train them all at once when that is the same training
    (:mod:`workbench.training.lockstep`), else one after another. ChipSets smaller than
    ``in_memory_bytes`` are read into memory once (:func:`~workbench.training.data.materialize`).
    """

    strategy: str
    model: Any
    loss_fn: Callable[[Any, Any], Any] | None
    train_data: Any = None
    optimizer: Callable[[Any], Any] | None = None
    val_data: Any = None
    metrics: Mapping[str, Callable[[Any, Any], Any]] | None = None
    targets: tuple[str, ...] | None = None
    transform: Callable[..., Any] | None = None
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    drop_last: bool = False
    sharding: str | None = None
    shard_group_size: int | None = None
    partitions: tuple[PartitionJob, ...] = ()
    checkpoint_dir: str | None = None
    resume: str | None = None
    pg_timeout_s: float = 300.0
    threads: int | None = None
    lockstep: bool = True
    in_memory_bytes: int = 256 * 2**20

    @classmethod
    def from_request(cls, request: Any, checkpoint_dir: str | None, **changes: Any) -> WorkerTask:
        """Return the task of a :class:`~workbench.training.request.TrainRequest`, changed.

        Fields of the same name are taken over; the optimizer becomes a factory each worker
        calls on its own parameters.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        same = {n: getattr(request, n) for n in names if hasattr(request, n)}
        same.update(
            optimizer=optimizer_factory(request.optimizer, request.lr),
            metrics=dict(request.metrics) if request.metrics else None,
            lr=request.lr or 1e-3,
            checkpoint_dir=checkpoint_dir,
            pg_timeout_s=request.pg_timeout,
        )
        same.update(changes)
        return cls(**same)


@dataclass(frozen=True)
class WorkerResult:
    """What one worker returns: history, trained state(s), digests, bytes exchanged, timing."""

    strategy: str
    rank: int
    world_size: int
    worker: str
    host: str
    pid: int
    history: tuple[EpochRecord, ...]
    states: dict[str, dict[str, Any]]
    digests: dict[str, str]
    comm: dict[str, Any]
    started: float
    ended: float
    partitions: tuple[str, ...] = ()
    warm_start: dict[str, str | None] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)
    lockstep: bool = False

    @property
    def duration(self) -> float:
        """Seconds from the worker's start to its end."""
        return self.ended - self.started


def optimizer_factory(optimizer: Any, lr: float | None = None) -> Callable[[Any], Any]:
    """Return a picklable ``f(params) -> Optimizer`` from an optimizer, a factory or ``None``.

    An optimizer *instance* (built in the notebook on the notebook's model) is turned into its
    class and hyper-parameters, so each worker builds its own over its own parameters. ``lr``
    overrides the learning rate when given.

    Examples
    --------
    >>> import torch
    >>> p = [torch.nn.Parameter(torch.zeros(1))]
    >>> f = optimizer_factory(torch.optim.SGD(p, lr=0.1, momentum=0.9))
    >>> opt = f(p); type(opt).__name__, opt.defaults["momentum"]
    ('SGD', 0.9)
    """
    torch = lazy_import("torch")
    if optimizer is None:
        return functools.partial(torch.optim.Adam, lr=1e-3 if lr is None else lr)
    if isinstance(optimizer, torch.optim.Optimizer):
        defaults = dict(optimizer.defaults)
        if lr is not None:
            defaults["lr"] = lr
        cls: Any = type(optimizer)
        return functools.partial(cls, **defaults)
    if callable(optimizer):
        return optimizer  # type: ignore[no-any-return]
    raise TrainingError(
        f"optimizer must be a torch.optim.Optimizer or a callable params -> Optimizer, got "
        f"{type(optimizer).__name__}"
    )


def set_threads(task: WorkerTask) -> None:
    """Use ``task.threads`` torch threads in this process (when set)."""
    if task.threads:
        lazy_import("torch").set_num_threads(task.threads)


def resume_state(task: WorkerTask, code: str | None = None) -> dict[str, Any] | None:
    """Load the checkpoint to resume from (of partition ``code``), or return ``None``."""
    if not task.resume:
        return None
    path = find_checkpoint(task.resume, code)
    return load_checkpoint(path) if path is not None else None


def restore_history(state: Mapping[str, Any] | None) -> list[EpochRecord]:
    """Rebuild the epoch records saved in a checkpoint."""
    if not state:
        return []
    out = []
    for d in state.get("history", []):
        d = dict(d)
        val = {k[4:]: v for k, v in list(d.items()) if k.startswith("val_")}
        base = {k: v for k, v in d.items() if not k.startswith("val_")}
        out.append(EpochRecord(**base, val=val))
    return out


def checkpointer(
    task: WorkerTask,
    path: Any,
    model: Any,
    opt: Any,
    history: list[EpochRecord],
    meta: dict[str, Any],
) -> Callable[[EpochRecord], None]:
    """Return an ``on_epoch_end`` that records the epoch and checkpoints to ``path``."""

    def on_epoch_end(record: EpochRecord) -> None:
        history.append(record)
        if path is None:
            return
        save_checkpoint(
            path,
            {
                "epoch": record.epoch + 1,
                "model": model.state_dict(),
                "optimizer": opt.state_dict() if opt is not None else None,
                "history": [r.to_dict() for r in history],
                "meta": meta,
            },
        )

    return on_epoch_end


def worker_result(
    task: WorkerTask, rank: int, world: int, worker: str, started: float, **kw: Any
) -> WorkerResult:
    """Build a :class:`WorkerResult` stamped with this host, pid and the end time."""
    return WorkerResult(
        strategy=task.strategy,
        rank=rank,
        world_size=world,
        worker=worker,
        host=socket.gethostname(),
        pid=os.getpid(),
        started=started,
        ended=time.time(),
        **kw,
    )


def batches_for(task: WorkerTask, data: Any, rank: int, world: int) -> Callable[[int], Any]:
    """``batches(epoch)`` of ``rank`` over ``data``: the task's batch size, seed, transform."""

    def batches(epoch: int) -> Any:
        return epoch_batches(
            data,
            batch_size=task.batch_size,
            epoch=epoch,
            seed=task.seed,
            rank=rank,
            world_size=world,
            drop_last=task.drop_last,
            targets=task.targets,
            transform=task.transform,
        )

    return batches


def eval_batches_for(task: WorkerTask) -> Callable[[Any], Any]:
    """``batches(data)``: one pass over held-out ``data`` in order, through the transform."""

    def batches(data: Any) -> Any:
        return epoch_batches(
            data,
            batch_size=task.batch_size,
            epoch=0,
            seed=0,
            shuffle=False,
            targets=task.targets,
            transform=task.transform,
        )

    return batches
