"""Run a :class:`~workbench.cluster.spec.TrainRequest`: plan, launch, collect a TrainResult.

* ``single`` runs in this process (the notebook kernel).
* ``ddp`` / ``fsdp``: the same task on every worker, with the rendezvous environment
  (``MASTER_ADDR``/``MASTER_PORT`` on loopback, ``RANK``, ``WORLD_SIZE``, ...).
* ``partitioned``: the geocode of every sample (``ChipSet.geocodes`` or the given codes)
  groups the samples into partitions; a :class:`~workbench.geo.HashRing` over the worker names
  places each partition on its owner, which receives only views of its own partitions
  (``ChipSet.select``: a file-backed ChipSet ships its path and selectors, not pixels). With
  ``transfer="glcm"`` the owners first compute texture vectors of their partitions, this
  process clusters them (k-means) and each worker trains its partitions cluster by cluster,
  warm-starting from the previous partition of the same cluster.

Examples
--------
>>> import torch
>>> from torch.utils.data import TensorDataset
>>> from workbench.cluster.spec import TrainRequest
>>> x = torch.rand(32, 2); data = TensorDataset(x, x.sum(dim=1, keepdim=True))
>>> req = TrainRequest(torch.nn.Linear(2, 1), data, torch.nn.functional.mse_loss, epochs=2,
...                    batch_size=8, lr=0.05, checkpoint=False)
>>> result = launch_training(req)
>>> result.strategy, len(result.history), result.bytes_exchanged
('single', 2, 0)
"""

from __future__ import annotations

import copy
import math
import os
import re
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.cluster.launch import Launcher, TrainingTimeoutError, WorkerCall, WorkerInfo
from workbench.cluster.spec import TrainRequest
from workbench.errors import EngineDiedError, LaunchError, TrainingError
from workbench.geo import HashRing
from workbench.metering.events import StepEvent
from workbench.training.checkpoint import load_checkpoint, model_checkpoint_path
from workbench.training.data import group_by_code, sample_geocodes, subset
from workbench.training.result import TrainResult, ensemble_val
from workbench.training.strategies import (
    PartitionJob,
    WorkerResult,
    WorkerTask,
    optimizer_factory,
    partition_textures,
    run_worker,
)
from workbench.training.transfer import texture_clusters, transfer_plan

__all__ = ["launch_training", "plan_partitions", "default_checkpoint_dir"]


def default_checkpoint_dir(label: str) -> str:
    """Return a new folder under the temporary directory for a run's checkpoints."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return str(
        Path(tempfile.gettempdir())
        / "workbench-checkpoints"
        / f"{safe}-{stamp}-{uuid.uuid4().hex[:6]}"
    )


def _checkpoint_note(ckdir: str | None) -> str:
    if not ckdir:
        return "No checkpoint was being written (no checkpoint folder)."
    path = model_checkpoint_path(ckdir)
    parts = sorted((Path(ckdir) / "partitions").glob("*.pt"))
    if path.is_file():
        try:
            epoch = load_checkpoint(path)["epoch"]
            what = f"{path} (after epoch {epoch})"
        except Exception as exc:  # the note must not hide the engine's death
            what = f"{path} (unreadable: {exc})"
    elif parts:
        what = f"{len(parts)} partition checkpoint(s) in {Path(ckdir) / 'partitions'}"
    else:
        return f"No checkpoint had been written yet in {ckdir}."
    return f"The last checkpoint survives: {what}; continue with --resume {ckdir}"


class _Sink:
    """Collects events and forwards them to callbacks; a failing callback is warned and dropped."""

    def __init__(
        self,
        callbacks: Sequence[Callable[[StepEvent], object]],
        deadline: float | None,
        timeout: float | None,
    ) -> None:
        self.callbacks = list(callbacks)
        self.events: list[StepEvent] = []
        self.deadline = deadline
        self.timeout = timeout

    def __call__(self, event: StepEvent, worker: str | None = None) -> None:
        self.events.append(event)
        for cb in list(self.callbacks):
            try:
                cb(event)
            except Exception as exc:
                self.callbacks.remove(cb)
                warnings.warn(
                    f"training callback {cb!r} failed and was removed: {exc!r}", stacklevel=2
                )
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TrainingTimeoutError(
                f"training did not finish within the timeout of {self.timeout} s "
                "(raise --timeout, or resume from the last checkpoint with --resume)"
            )


def _task(request: TrainRequest, ckdir: str | None, **changes: Any) -> WorkerTask:
    task = WorkerTask(
        strategy=request.strategy,
        model=request.model,
        loss_fn=request.loss_fn,  # type: ignore[arg-type]
        train_data=request.train_data,
        optimizer=optimizer_factory(request.optimizer, request.lr),
        val_data=request.val_data,
        metrics=dict(request.metrics) if request.metrics else None,
        targets=tuple(request.targets) if request.targets else None,
        epochs=request.epochs,
        batch_size=request.batch_size,
        lr=request.lr or 1e-3,
        seed=request.seed,
        sharding=request.sharding,
        shard_group_size=request.shard_group_size,
        checkpoint_dir=ckdir,
        resume=request.resume,
        pg_timeout_s=request.pg_timeout,
        lockstep=request.lockstep,
    )
    return _replace(task, **changes)


def _replace(task: WorkerTask, **changes: Any) -> WorkerTask:
    from dataclasses import replace

    return replace(task, **changes) if changes else task


def _threads(infos: Sequence[WorkerInfo]) -> list[int]:
    per_host = {h: sum(1 for w in infos if w.host == h) for h in {w.host for w in infos}}
    return [max(1, w.cpus // per_host[w.host]) for w in infos]


def plan_partitions(request: TrainRequest, workers: Sequence[str]) -> dict[str, Any]:
    """Geocode groups, their owners on the hash ring, and each worker's data and jobs.

    Returns a dict with ``placement`` (code -> worker), ``assignment`` (worker -> codes),
    ``data`` (worker -> ``(train view, val view or None)`` holding only its partitions),
    ``jobs`` (code -> :class:`PartitionJob`, positions within its worker's views) and
    ``unrouted_val`` (validation samples whose partition has no training data).
    """
    spec = request.partition
    assert spec is not None
    codes = sample_geocodes(
        request.train_data,
        scheme=spec.scheme,
        precision=spec.precision,
        geocodes=request.geocodes,
        partition_fn=request.partition_fn,
    )
    groups = group_by_code(codes)
    val_groups: dict[str, Any] = {}
    if request.val_data is not None:
        val_codes = sample_geocodes(
            request.val_data,
            scheme=spec.scheme,
            precision=spec.precision,
            geocodes=request.val_geocodes,
        )
        val_groups = group_by_code(val_codes)
    ring = HashRing(list(workers), tokens_per_node=request.tokens_per_node)
    placement = {code: ring.node_for(code, prefix_len=spec.precision) for code in groups}
    assignment = {w: [c for c in groups if placement[c] == w] for w in workers}
    jobs: dict[str, PartitionJob] = {}
    data: dict[str, tuple[Any, Any]] = {}
    for w, owned in assignment.items():
        train_idx: list[int] = []
        val_idx: list[int] = []
        for code in owned:
            own_val = val_groups.get(code, np.zeros(0, dtype=np.int64))
            jobs[code] = PartitionJob(
                code,
                tuple(range(len(train_idx), len(train_idx) + len(groups[code]))),
                tuple(range(len(val_idx), len(val_idx) + len(own_val))),
            )
            train_idx += groups[code].tolist()
            val_idx += own_val.tolist()
        val_view = subset(request.val_data, val_idx) if val_idx else None
        data[w] = (subset(request.train_data, train_idx), val_view)
    unrouted = sum(len(v) for c, v in val_groups.items() if c not in groups)
    return {
        "placement": placement,
        "assignment": assignment,
        "jobs": jobs,
        "data": data,
        "unrouted_val": unrouted,
    }


def _texture_worker(
    data: Any, jobs: Sequence[PartitionJob], *, targets: Any = None, callbacks: Any = ()
) -> Any:
    """Worker side of the texture round (data-local GLCM vectors)."""
    del callbacks
    return partition_textures(data, jobs, targets=targets)


def _partition_calls(
    request: TrainRequest, launcher: Launcher, infos: Sequence[WorkerInfo], ckdir: str | None
) -> tuple[list[WorkerCall], dict[str, Any], int]:
    names = [w.name for w in infos]
    plan = plan_partitions(request, names)
    jobs, assignment, data = plan["jobs"], plan["assignment"], plan["data"]
    order = {w: list(codes) for w, codes in assignment.items()}
    warm: dict[str, str | None] = {c: None for c in jobs}
    control = 0
    if request.transfer == "glcm":
        tex_calls = [
            WorkerCall(
                _texture_worker,
                (data[w][0], [jobs[c] for c in order[w]]),
                {"targets": request.targets},
            )
            for w in names
        ]
        out = launcher.run(tex_calls, timeout=request.timeout)
        control += out.control_bytes
        features = {c: v for part in out.results for c, v in part.items()}
        plan["clusters"] = texture_clusters(
            features, n_clusters=request.transfer_clusters, seed=request.seed
        )
        order, warm = transfer_plan(assignment, plan["clusters"])
    threads = _threads(infos)
    calls = []
    for i, w in enumerate(names):
        my_jobs = tuple(_with_warm(jobs[c], warm.get(c)) for c in order[w])
        task = _task(
            request,
            ckdir,
            partitions=my_jobs,
            train_data=data[w][0],
            val_data=data[w][1],
            threads=threads[i],
        )
        calls.append(
            WorkerCall(run_worker, (task,), {"rank": i, "world_size": len(names), "worker": w})
        )
    return calls, plan, control


def _with_warm(job: PartitionJob, source: str | None) -> PartitionJob:
    from dataclasses import replace

    return replace(job, warm_start=source)


def _data_parallel_calls(
    request: TrainRequest, launcher: Launcher, infos: Sequence[WorkerInfo], ckdir: str | None
) -> list[WorkerCall]:
    addr, port, ifname = launcher.rendezvous()
    n = len(infos)
    threads = _threads(infos)
    calls = []
    for i, w in enumerate(infos):
        env = {
            "MASTER_ADDR": addr,
            "MASTER_PORT": str(port),
            "RANK": str(i),
            "WORLD_SIZE": str(n),
            "LOCAL_RANK": str(sum(1 for v in infos[:i] if v.host == w.host)),
            "LOCAL_WORLD_SIZE": str(sum(1 for v in infos if v.host == w.host)),
        }
        if ifname:
            env["GLOO_SOCKET_IFNAME"] = ifname
        task = _task(request, ckdir, threads=threads[i])
        calls.append(
            WorkerCall(run_worker, (task,), {"rank": i, "world_size": n, "worker": w.name}, env)
        )
    return calls


def launch_training(
    request: TrainRequest,
    launcher: Launcher | None = None,
    *,
    callbacks: Sequence[Callable[[StepEvent], object]] = (),
) -> TrainResult:
    """Run ``request`` and return its :class:`~workbench.training.result.TrainResult`.

    Parameters
    ----------
    request : TrainRequest
        What and how to train.
    launcher : Launcher, optional
        Required for ``ddp``, ``fsdp`` and ``partitioned`` (e.g. an
        :class:`~workbench.cluster.ipp.IpyparallelLauncher` or a
        :class:`~workbench.cluster.launch.LocalProcessLauncher`).
    callbacks : sequence of callable
        Called with every :class:`~workbench.metering.events.StepEvent` as it arrives (e.g.
        ``LivePlot.update``); a callback that raises is warned about and dropped.

    Raises
    ------
    EngineDiedError
        A worker died; the message names it and the checkpoint that survives.
    TrainingTimeoutError
        The run exceeded ``request.timeout``.
    TrainingError
        Training failed on a worker, or DDP/FSDP replicas ended with different parameters.
    """
    start = time.perf_counter()
    ckdir = request.checkpoint_dir
    if ckdir is None and request.checkpoint:
        ckdir = default_checkpoint_dir(request.label)
    deadline = None if request.timeout is None else time.monotonic() + request.timeout
    sink = _Sink(callbacks, deadline, request.timeout)
    plan: dict[str, Any] = {}
    control = 0
    if request.strategy == "single":
        results = [run_worker(_task(request, ckdir), callbacks=[sink])]
        infos = [WorkerInfo("kernel", socket.gethostname(), os.cpu_count() or 1)]
    else:
        if launcher is None:
            raise LaunchError(
                f"strategy {request.strategy!r} needs a launcher (workers to run on): pass an "
                "IpyparallelLauncher or LocalProcessLauncher, or use %cluster start in a notebook"
            )
        infos = launcher.workers(request.engines)
        try:
            if request.strategy == "partitioned":
                calls, plan, control = _partition_calls(request, launcher, infos, ckdir)
            else:
                calls = _data_parallel_calls(request, launcher, infos, ckdir)
            remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
            out = launcher.run(calls, on_event=sink, timeout=remaining)
        except EngineDiedError as exc:
            raise EngineDiedError(f"{exc}. {_checkpoint_note(ckdir)}") from exc
        except TrainingTimeoutError as exc:
            raise TrainingTimeoutError(
                f"training did not finish within the timeout of {request.timeout} s; the workers "
                f"were stopped (raise --timeout). {_checkpoint_note(ckdir)}"
            ) from exc
        results, control = out.results, control + out.control_bytes
    duration = time.perf_counter() - start
    return _assemble(request, results, infos, plan, duration, control, ckdir, sink.events)


def _assemble(
    request: TrainRequest,
    results: Sequence[WorkerResult],
    infos: Sequence[WorkerInfo],
    plan: dict[str, Any],
    duration: float,
    control: int,
    ckdir: str | None,
    events: list[StepEvent],
) -> TrainResult:
    history = [r for w in results for r in w.history]
    model, models = None, {}
    if request.strategy == "partitioned":
        for w in results:
            for code, state in w.states.items():
                m = copy.deepcopy(request.model)
                m.load_state_dict(state)
                models[code] = m
        val = ensemble_val(history)
    else:
        digests = {w.digests.get("model") for w in results}
        if len(digests) != 1:
            raise TrainingError(
                f"the {request.strategy} replicas ended with different parameters "
                f"(digests {sorted(map(str, digests))}); the run is not trustworthy"
            )
        model = copy.deepcopy(request.model)
        model.load_state_dict(results[0].states["model"])
        val = dict(results[0].history[-1].val) if results[0].history else {}
    return TrainResult(
        name=request.label,
        strategy=request.strategy,
        engines=len(results),
        sharding=request.sharding if request.strategy == "fsdp" else None,
        partition=str(request.partition) if request.strategy == "partitioned" else None,
        model=model,
        models=models,
        history=history,
        duration_s=duration,
        train_s=max(w.duration for w in results),
        bytes_exchanged=sum(int(w.comm.get("wire_bytes", 0)) for w in results),
        payload_bytes=sum(int(w.comm.get("payload_bytes", 0)) for w in results),
        control_bytes=control,
        comm={w.worker: w.comm for w in results},
        val=val,
        carbon=_carbon(results, infos, duration),
        placement=plan.get("placement", {}),
        trained_on={c: w.worker for w in results for c in w.partitions},
        warm_start={c: s for w in results for c, s in w.warm_start.items()},
        clusters=plan.get("clusters", {}),
        checkpoint_dir=ckdir,
        workers=[
            {
                "name": w.worker,
                "rank": w.rank,
                "host": w.host,
                "pid": w.pid,
                "duration_s": w.duration,
                "lockstep": w.lockstep,
            }
            for w in results
        ],
        digests={w.worker: dict(w.digests) for w in results},
        events=events,
    )


def _carbon(results: Sequence[WorkerResult], infos: Sequence[WorkerInfo], duration: float) -> Any:
    """Estimate meter of the metering package: power model x wall time (an estimate)."""
    from workbench.metering.carbon import EstimateMeter

    total = max(w.cpus for w in infos)
    used = min(total, sum(_threads(infos))) if len(infos) > 1 else total
    meter = EstimateMeter(cores=used, total_threads=total)
    return meter.estimate(duration if math.isfinite(duration) else 0.0)
