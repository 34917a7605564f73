"""Partitioned training in lockstep: all of a worker's partition models trained as one.

The partitioned strategy trains one small model per geocode on the worker that owns it. Trained
one after another, each model sees few samples per step, so the time goes into fixed costs per
step and per model (a tiny forward/backward, an optimizer step over every tensor, a validation
pass), not into arithmetic. Here a worker stacks its models' parameters ``(K, *shape)`` and runs
every step for all of them at once with :func:`torch.vmap` over
:func:`torch.func.functional_call`: the analogue of the paper's containerised variant, which
trains several data-local models on a machine simultaneously.

It is the same training as one model after another: each model starts from the same initial
weights (or its warm-start source's trained weights), sees only its own partition's samples in
the same per-epoch order (:func:`~workbench.training.data.rank_batches` with the task's seed),
keeps its own optimizer state and step count (:class:`~workbench.training.stacked.StackedOptimizer`;
a model whose epoch has fewer steps is not updated in the steps it has no batch for), and
minimises the mean loss of its own batch. Records, events (step numbers included), checkpoints
and results are those of the one-after-another loop; float results agree to rounding.

:func:`run_lockstep` returns ``None`` (the caller then trains one after another) unless the
worker has 2+ partitions in memory (a ``TensorDataset`` of ``(x, y)``), no batch transform
is set, the loss is a ``loss_fn`` (not computed by the model), the model has no buffers, the
optimizer is a one-group ``Adam``/``AdamW``/``SGD``, no ``resume`` is asked for, and a trial on
real samples shows that the loss and metrics are means over samples and that the model runs
under :func:`torch.vmap` (no random ops, no data-dependent control flow).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench.errors import TrainingError
from workbench.metering.events import StepEvent
from workbench.training.checkpoint import partition_checkpoint_path, save_checkpoint
from workbench.training.data import rank_batches
from workbench.training.loop import Callback, EpochRecord, _check_finite
from workbench.training.stacked import StackedOptimizer, StackedRule, stacked_rule

__all__ = ["LockstepRun", "run_lockstep", "warm_start_levels"]


@dataclass
class LockstepRun:
    """Trained state per partition, epoch records in job order, checkpoint paths."""

    states: dict[str, dict[str, Any]]
    history: list[EpochRecord]
    checkpoints: dict[str, str]


def warm_start_levels(jobs: Sequence[Any]) -> list[list[int]]:
    """Group job positions into levels: a job trains one level after its warm-start source.

    Raises
    ------
    TrainingError
        If a job warm-starts from a partition not trained before it on this worker.

    Examples
    --------
    >>> from workbench.training.task import PartitionJob
    >>> jobs = [PartitionJob("a", (0,)), PartitionJob("b", (1,), warm_start="a"),
    ...         PartitionJob("c", (2,))]
    >>> warm_start_levels(jobs)
    [[0, 2], [1]]
    """
    level: dict[str, int] = {}
    out: list[list[int]] = []
    for i, job in enumerate(jobs):
        if job.warm_start is not None and job.warm_start not in level:
            raise TrainingError(
                f"partition {job.code!r} should warm-start from {job.warm_start!r}, which "
                "this worker has not trained before it; order the jobs with transfer_plan()"
            )
        lv = 0 if job.warm_start is None else level[job.warm_start] + 1
        level[job.code] = lv
        out += [[] for _ in range(lv + 1 - len(out))]
        out[lv].append(i)
    return out


@dataclass
class _Setup:
    x: Any
    y: Any
    vx: Any
    vy: Any
    base: Any
    names: list[str]
    rule: StackedRule
    forward: Callable[[Any, Any], Any]
    losses: dict[str, Callable[[Any, Any], Any]]


def _pair(data: Any) -> tuple[Any, Any] | None:
    tensors = getattr(data, "tensors", None)
    return tensors if isinstance(tensors, tuple) and len(tensors) == 2 else None


def _setup(task: Any, data: Any, val: Any) -> _Setup | None:
    torch = lazy_import("torch")
    pair, vpair = _pair(data), _pair(val) if val is not None else None
    if task.resume or task.transform is not None or len(task.partitions) < 2 or pair is None:
        return None
    if task.loss_fn is None:  # the model computes its own loss: not a mean we can stack
        return None
    if (val is not None and vpair is None) or not isinstance(task.model, torch.nn.Module):
        return None
    base = copy.deepcopy(task.model)
    params = dict(base.named_parameters())
    if next(base.buffers(), None) is not None or set(params) != set(base.state_dict()):
        return None
    if not params or not all(p.requires_grad for p in params.values()):
        return None
    factory = task.optimizer or (lambda ps: torch.optim.Adam(ps, lr=task.lr))
    try:
        rule = stacked_rule(factory(list(copy.deepcopy(base).parameters())))
    except Exception:
        return None
    if rule is None:
        return None

    def forward(p: Any, xb: Any) -> Any:
        return torch.func.functional_call(base, p, (xb,))

    def per_sample(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        one = lambda pi, yi: fn(pi.unsqueeze(0), yi.unsqueeze(0))  # noqa: E731
        return torch.vmap(torch.vmap(one))  # type: ignore[no-any-return]

    losses = {"loss": per_sample(task.loss_fn)}
    losses.update({k: per_sample(fn) for k, fn in (task.metrics or {}).items()})
    vx, vy = vpair if vpair is not None else (None, None)
    setup = _Setup(pair[0], pair[1], vx, vy, base, list(params), rule, torch.vmap(forward), losses)
    return setup if _trial(setup, task, params) else None


def _trial(s: _Setup, task: Any, params: Mapping[str, Any]) -> bool:
    """Whether the stacked path reproduces the model's loss and metrics on real samples."""
    torch = lazy_import("torch")
    idx = list(task.partitions[0].train_index)[:4]
    xb, yb = s.x[idx], s.y[idx]
    stacked = {n: p.detach().unsqueeze(0).clone().requires_grad_(True) for n, p in params.items()}
    try:
        s.base.train()
        values = {k: fn(s.forward(stacked, xb[None]), yb[None]) for k, fn in s.losses.items()}
        values["loss"].mean().backward()
        with torch.no_grad():
            pred = s.base(xb)
            ref = {"loss": task.loss_fn(pred, yb)}
            ref.update({k: fn(pred, yb) for k, fn in (task.metrics or {}).items()})
        return all(
            math.isclose(float(values[k].detach().mean()), float(v), rel_tol=1e-4, abs_tol=1e-6)
            for k, v in ref.items()
        )
    except Exception:  # not vmappable, random ops, not a mean over samples: one by one
        return False


def _padded(rows: Sequence[np.ndarray[Any, Any]]) -> tuple[Any, Any]:
    """``(index (A, B), mask (A, B))`` of ragged index rows, padded with each row's first."""
    torch = lazy_import("torch")
    width = max(len(r) for r in rows)
    index = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.float32)
    for i, r in enumerate(rows):
        index[i, : len(r)], index[i, len(r) :], mask[i, : len(r)] = r, r[0], 1.0
    return torch.from_numpy(index), torch.from_numpy(mask)


def run_lockstep(
    task: Any, data: Any, val: Any, *, rank: int = 0, callbacks: Sequence[Callback] = ()
) -> LockstepRun | None:
    """Train ``task.partitions`` in lockstep on ``data``/``val`` (see the module docstring).

    ``data`` and ``val`` are this worker's materialised data; ``task`` a partitioned
    :class:`~workbench.training.task.WorkerTask`. Returns ``None`` when lockstep training does
    not apply (the caller trains one model after another).
    """
    jobs = list(task.partitions)
    levels = warm_start_levels(jobs)
    s = _setup(task, data, val)
    if s is None:
        return None
    bs = task.batch_size
    per_epoch = {
        j.code: len(j.train_index) // bs if task.drop_last else math.ceil(len(j.train_index) / bs)
        for j in jobs
    }
    first, step = {}, 0
    for j in jobs:
        first[j.code], step = step, step + per_epoch[j.code] * task.epochs
    run = LockstepRun({}, [], {})
    records: dict[str, list[EpochRecord]] = {j.code: [] for j in jobs}
    initial = {n: p.detach() for n, p in s.base.named_parameters()}
    for level in levels:
        group = [jobs[i] for i in level]
        inits = [initial if j.warm_start is None else run.states[j.warm_start] for j in group]
        _train_level(task, s, group, inits, first, rank, callbacks, records, run)
    run.history = [r for j in jobs for r in records[j.code]]
    run.states = {j.code: run.states[j.code] for j in jobs}  # job order, as one by one
    return run


def _train_level(
    task: Any,
    s: _Setup,
    group: list[Any],
    inits: Sequence[Mapping[str, Any]],
    first: Mapping[str, int],
    rank: int,
    callbacks: Sequence[Callback],
    records: dict[str, list[EpochRecord]],
    run: LockstepRun,
) -> None:
    torch = lazy_import("torch")
    k_all = len(group)
    params = {
        n: torch.stack([init[n].detach() for init in inits]).clone().requires_grad_(True)
        for n in s.names
    }
    opt = StackedOptimizer(s.rule, params, k_all)
    train_idx = [np.asarray(j.train_index, dtype=np.int64) for j in group]
    val_idx = [
        np.asarray(j.val_index, dtype=np.int64) if s.vx is not None and j.val_index else None
        for j in group
    ]
    steps = [first[j.code] for j in group]
    item_bytes = s.x[0].element_size() * s.x[0].numel() + s.y[0].element_size() * s.y[0].numel()
    for epoch in range(task.epochs):
        t_epoch = time.perf_counter()
        plans: dict[int, Any] = {}
        batches = []
        for idx in train_idx:
            n = len(idx)
            if n not in plans:  # the order one-by-one training gives a partition of n samples
                plans[n] = rank_batches(
                    n,
                    batch_size=task.batch_size,
                    epoch=epoch,
                    seed=task.seed,
                    drop_last=task.drop_last,
                )
            batches.append([idx[b] for b in plans[n]])
        sums, counts, nsteps = [0.0] * k_all, [0] * k_all, [0] * k_all
        s.base.train()
        for b in range(max(len(x) for x in batches)):
            t0 = time.perf_counter()
            active = [k for k in range(k_all) if b < len(batches[k])]
            index, mask = _padded([batches[k][b] for k in active])
            xb, yb = s.x[index], s.y[index]
            t_data = time.perf_counter()
            rows = None if len(active) == k_all else torch.as_tensor(active)
            p = params if rows is None else {n: v[rows] for n, v in params.items()}
            per_sample = s.losses["loss"](s.forward(p, xb), yb)
            n_k = mask.sum(dim=1)
            loss = (per_sample * mask).sum(dim=1) / n_k
            loss.sum().backward()
            opt.step(params, {n: v.grad for n, v in params.items()}, rows)
            for v in params.values():
                v.grad = None
            values = loss.detach().tolist()
            t1 = time.perf_counter()
            for a, k in enumerate(active):
                code = group[k].code
                _check_finite(values[a], epoch, steps[k], rank, code)
                size = int(n_k[a])
                sums[k] += values[a] * size
                counts[k] += size
                nsteps[k] += 1
                event = StepEvent(
                    step=steps[k],
                    samples=size,
                    nbytes=size * item_bytes,
                    t=time.time(),
                    duration=(t1 - t0) / len(active),
                    data_wait=(t_data - t0) / len(active),
                    loss=values[a],
                    rank=rank,
                    epoch=epoch,
                    partition=code,
                )
                steps[k] += 1
                for cb in callbacks:
                    cb(event)
        t_val = time.perf_counter()
        vals = _validate(task, s, params, val_idx)
        val_time = (time.perf_counter() - t_val) / k_all
        for k, job in enumerate(group):  # the events one-by-one training sends per validation
            if vals[k].get("samples"):
                event = StepEvent(
                    step=steps[k],
                    samples=int(vals[k]["samples"]),
                    nbytes=0,
                    t=time.time(),
                    duration=val_time,
                    loss=vals[k]["loss"],
                    rank=rank,
                    epoch=epoch,
                    partition=job.code,
                    kind="val",
                )
                for cb in callbacks:
                    cb(event)
        share = (time.perf_counter() - t_epoch) / k_all
        for k, job in enumerate(group):
            record = EpochRecord(
                epoch=epoch,
                loss=sums[k] / counts[k] if counts[k] else math.nan,
                samples=counts[k],
                steps=nsteps[k],
                duration=share,
                rank=rank,
                partition=job.code,
                val=vals[k],
            )
            records[job.code].append(record)
            if task.checkpoint_dir:
                path = partition_checkpoint_path(task.checkpoint_dir, job.code)
                save_checkpoint(
                    path,
                    {
                        "epoch": epoch + 1,
                        "model": _state(params, s.names, k),
                        "optimizer": opt.model_state(k),
                        "history": [r.to_dict() for r in records[job.code]],
                        "meta": {"strategy": task.strategy, "partition": job.code},
                    },
                )
                run.checkpoints[job.code] = str(path)
    for k, job in enumerate(group):
        run.states[job.code] = _state(params, s.names, k)


def _state(params: Mapping[str, Any], names: Sequence[str], k: int) -> dict[str, Any]:
    return {n: params[n][k].detach().clone() for n in names}


def _validate(
    task: Any, s: _Setup, params: Mapping[str, Any], val_idx: Sequence[Any]
) -> list[dict[str, float]]:
    """Return each model's validation loss and metrics on its own held-out samples."""
    torch = lazy_import("torch")
    out: list[dict[str, float]] = [{} for _ in val_idx]
    have = [k for k, v in enumerate(val_idx) if v is not None and len(v)]
    if not have:
        return out
    rows = torch.as_tensor(have)
    sums = {name: torch.zeros(len(have), dtype=torch.float64) for name in s.losses}
    n = torch.zeros(len(have), dtype=torch.float64)
    s.base.eval()
    try:
        with torch.no_grad():
            p = {name: v.detach()[rows] for name, v in params.items()}
            width = max(len(val_idx[k]) for k in have)
            for lo in range(0, width, task.batch_size):
                chunks = [val_idx[k][lo : lo + task.batch_size] for k in have]
                live = [a for a, c in enumerate(chunks) if len(c)]
                index, mask = _padded([chunks[a] for a in live])
                sub = torch.as_tensor(live)
                pred = s.forward({name: v[sub] for name, v in p.items()}, s.vx[index])
                target = s.vy[index]
                for name, fn in s.losses.items():
                    sums[name][sub] += (fn(pred, target) * mask).sum(dim=1).double()
                n[sub] += mask.sum(dim=1).double()
    finally:
        s.base.train()
    for a, k in enumerate(have):
        out[k] = {name: float(sums[name][a] / n[a]) for name in s.losses}
        out[k]["samples"] = float(n[a])
    return out
