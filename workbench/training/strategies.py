"""Training strategies, run inside one worker process: single, DDP, FSDP, partitioned.

A launcher (:mod:`workbench.cluster.launch`) starts the processes, sets the rendezvous
environment and calls :func:`run_worker` on each with a picklable :class:`WorkerTask`:

* ``single``: one model, one process (the notebook kernel).
* ``ddp``: one model replicated on every rank, gradients all-reduced each step
  (:class:`~torch.nn.parallel.DistributedDataParallel`); bytes counted by a comm hook.
* ``fsdp``: one model sharded across ranks
  (:class:`~torch.distributed.fsdp.FullyShardedDataParallel`)
  with ``sharding`` ``no_shard`` | ``shard_grad_op`` | ``full_shard`` | ``hybrid_shard``; bytes
  counted by wrapping the ``torch.distributed`` collectives.
* ``partitioned``: one independent model per geocode partition (*Small is Beautiful*), trained
  one after another on the worker that owns the partitions; no collective at all.

Every strategy writes atomic checkpoints each epoch (:mod:`workbench.training.checkpoint`) when
``checkpoint_dir`` is set and resumes from ``resume``.

Examples
--------
>>> import torch
>>> from torch.utils.data import TensorDataset
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> x = torch.rand(64, 3); data = TensorDataset(x, x.sum(dim=1, keepdim=True))
>>> task = WorkerTask("single", torch.nn.Linear(3, 1), torch.nn.functional.mse_loss,
...                   train_data=data, epochs=4, batch_size=16, lr=0.05)
>>> result = run_worker(task)
>>> result.history[-1].loss < result.history[0].loss, sorted(result.states)
(True, ['model'])
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workbench.errors import TrainingError
from workbench.training.checkpoint import model_checkpoint_path, partition_checkpoint_path
from workbench.training.comm import CommCounter
from workbench.training.data import epoch_batches, materialize, subset
from workbench.training.distributed import state_digest
from workbench.training.lockstep import run_lockstep, warm_start_levels
from workbench.training.loop import Callback, EpochRecord, evaluate, train
from workbench.training.parallel import run_data_parallel
from workbench.training.task import (
    SHARDING_MODES,
    STRATEGIES,
    PartitionJob,
    WorkerResult,
    WorkerTask,
    batches_for,
    checkpointer,
    optimizer_factory,
    restore_history,
    resume_state,
    set_threads,
    worker_result,
)
from workbench.training.transfer import texture_vector

__all__ = [
    "STRATEGIES",
    "SHARDING_MODES",
    "PartitionJob",
    "WorkerTask",
    "WorkerResult",
    "optimizer_factory",
    "run_worker",
    "partition_textures",
]


def _train_one(
    task: WorkerTask,
    model: Any,
    data: Any,
    val: Any,
    *,
    code: str | None,
    rank: int,
    callbacks: Sequence[Callback],
    first_step: int,
    path: Any,
) -> tuple[list[EpochRecord], Any]:
    """Train one local model (single strategy, or one partition)."""
    data, val = materialize(data, task.targets), materialize(val, task.targets)
    state = resume_state(task, code)
    if state is not None:
        model.load_state_dict(state["model"])
    opt = (task.optimizer or optimizer_factory(None, task.lr))(model.parameters())
    if state is not None and state.get("optimizer"):
        opt.load_state_dict(state["optimizer"])
    history = restore_history(state)
    start = int(state["epoch"]) if state else 0

    def validate(m: Any) -> Mapping[str, float]:
        b = epoch_batches(
            val, batch_size=task.batch_size, epoch=0, seed=0, shuffle=False, targets=task.targets
        )
        return evaluate(m, b, task.loss_fn, task.metrics)

    meta = {"strategy": task.strategy, "partition": code}
    train(
        model,
        task.loss_fn,
        opt,
        batches_for(task, data, 0, 1),
        epochs=task.epochs,
        start_epoch=start,
        callbacks=callbacks,
        rank=rank,
        partition=code,
        validate=validate if val is not None else None,
        on_epoch_end=checkpointer(task, path, model, opt, history, meta),
        first_step=first_step,
    )
    return history, model


def _run_single(
    task: WorkerTask, rank: int, world: int, worker: str, callbacks: Sequence[Callback]
) -> WorkerResult:
    started = time.time()
    model = copy.deepcopy(task.model)
    path = model_checkpoint_path(task.checkpoint_dir) if task.checkpoint_dir else None
    history, model = _train_one(
        task,
        model,
        task.train_data,
        task.val_data,
        code=None,
        rank=rank,
        callbacks=callbacks,
        first_step=0,
        path=path,
    )
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return worker_result(
        task,
        rank,
        world,
        worker,
        started,
        history=tuple(history),
        states={"model": state},
        digests={"model": state_digest(state)},
        comm=CommCounter().to_dict(),
        checkpoints={"model": str(path)} if path else {},
    )


def _run_partitioned(
    task: WorkerTask, rank: int, world: int, worker: str, callbacks: Sequence[Callback]
) -> WorkerResult:
    started = time.time()
    warm_start_levels(task.partitions)  # every warm-start source is trained before its user
    data, val = materialize(task.train_data, task.targets), materialize(task.val_data, task.targets)
    # All partitions at once when that is the same training (see workbench.training.lockstep).
    together = (
        run_lockstep(task, data, val, rank=rank, callbacks=callbacks) if task.lockstep else None
    )
    if together is not None:
        trained, history, checkpoints = together.states, together.history, together.checkpoints
    else:
        trained, history, checkpoints = _one_by_one(task, data, val, rank, callbacks)
    return worker_result(
        task,
        rank,
        world,
        worker,
        started,
        history=tuple(history),
        states=trained,
        digests={c: state_digest(s) for c, s in trained.items()},
        comm=CommCounter().to_dict(),
        partitions=tuple(j.code for j in task.partitions),
        warm_start={j.code: j.warm_start for j in task.partitions},
        checkpoints=checkpoints,
        lockstep=together is not None,
    )


def _one_by_one(
    task: WorkerTask, data: Any, val: Any, rank: int, callbacks: Sequence[Callback]
) -> tuple[dict[str, dict[str, Any]], list[EpochRecord], dict[str, str]]:
    """Train the worker's partition models one after another, in job order (the paper's way)."""
    trained: dict[str, dict[str, Any]] = {}
    history: list[EpochRecord] = []
    checkpoints: dict[str, str] = {}
    step = 0
    for job in task.partitions:
        model = copy.deepcopy(task.model)
        if job.warm_start is not None:
            model.load_state_dict(trained[job.warm_start])
        path = (
            partition_checkpoint_path(task.checkpoint_dir, job.code)
            if task.checkpoint_dir
            else None
        )
        records, model = _train_one(
            task,
            model,
            subset(data, job.train_index),
            _val_subset(val, job.val_index),
            code=job.code,
            rank=rank,
            callbacks=callbacks,
            first_step=step,
            path=path,
        )
        step += sum(r.steps for r in records)
        history.extend(records)
        trained[job.code] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if path is not None:
            checkpoints[job.code] = str(path)
    return trained, history, checkpoints


def _val_subset(val: Any, index: Sequence[int] | None) -> Any:
    return None if val is None or index is None or len(index) == 0 else subset(val, index)


def run_worker(
    task: WorkerTask,
    *,
    rank: int = 0,
    world_size: int = 1,
    worker: str = "kernel",
    callbacks: Sequence[Callback] = (),
) -> WorkerResult:
    """Run ``task`` as process ``rank`` of ``world_size``; the entry point launchers call.

    Parameters
    ----------
    task : WorkerTask
        What to train and how.
    rank, world_size : int
        This process's rank and the number of processes (ignored by ``single`` and
        ``partitioned``, which need no process group).
    worker : str
        Name of this worker (e.g. ``"engine-0"``), recorded in the result.
    callbacks : sequence of callable
        Called with every :class:`~workbench.metering.events.StepEvent`.

    Raises
    ------
    TrainingError
        For an unknown strategy, a non-finite loss, or bad batches.
    """
    set_threads(task)
    if task.strategy == "single":
        return _run_single(task, rank, world_size, worker, callbacks)
    if task.strategy == "partitioned":
        return _run_partitioned(task, rank, world_size, worker, callbacks)
    if task.strategy in ("ddp", "fsdp"):
        return run_data_parallel(task, rank, world_size, worker, callbacks)
    raise TrainingError(f"unknown strategy {task.strategy!r}; use one of {STRATEGIES}")


def partition_textures(
    data: Any,
    jobs: Sequence[PartitionJob],
    *,
    targets: Sequence[str] | None = None,
    batch_size: int = 256,
    levels: int = 32,
) -> dict[str, list[float]]:
    """Compute the texture vector of each of this worker's partitions from its own chips.

    Data-local: only ``data`` (this worker's partitions) is read. See
    :func:`~workbench.training.transfer.texture_vector`.
    """
    data = materialize(data, targets)
    out: dict[str, list[float]] = {}
    for job in jobs:
        batches = epoch_batches(
            subset(data, job.train_index),
            batch_size=batch_size,
            epoch=0,
            seed=0,
            shuffle=False,
            targets=targets,
        )
        xs = [np.asarray(x.detach().cpu().numpy()) for x, _ in batches]
        out[job.code] = texture_vector(np.concatenate(xs), levels=levels).tolist()
    return out
