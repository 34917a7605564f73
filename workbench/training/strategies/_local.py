"""Training one model in this process: the body of ``single`` and of each partition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench.training.data import materialize
from workbench.training.loop import Callback, EpochRecord, evaluate, train
from workbench.training.task import (
    WorkerTask,
    batches_for,
    checkpointer,
    eval_batches_for,
    optimizer_factory,
    restore_history,
    resume_state,
)

__all__ = ["train_local", "in_memory"]


def in_memory(task: WorkerTask, data: Any) -> Any:
    """Return ``data`` read into memory once when it is a small ChipSet (the task's limit)."""
    return materialize(data, task.targets, max_bytes=task.in_memory_bytes)


def train_local(
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
    """Train one local model (the single strategy, or one partition); resume if asked."""
    data, val = in_memory(task, data), in_memory(task, val)
    state = resume_state(task, code)
    if state is not None:
        model.load_state_dict(state["model"])
    opt = (task.optimizer or optimizer_factory(None, task.lr))(model.parameters())
    if state is not None and state.get("optimizer"):
        opt.load_state_dict(state["optimizer"])
    history = restore_history(state)
    start = int(state["epoch"]) if state else 0
    held_out = eval_batches_for(task)

    def validate(m: Any) -> Mapping[str, float]:
        return evaluate(m, held_out(val), task.loss_fn, task.metrics)

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
