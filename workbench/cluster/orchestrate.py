"""Run a :class:`~workbench.training.request.TrainRequest`: plan, launch, collect a TrainResult.

The strategy named by the request (:func:`workbench.training.strategies.find_strategy`) does
the strategy's part: it checks the request, plans one call per worker (given the launcher's
workers, a rendezvous address and a preliminary round), runs on each worker, and assembles
the result. This module does what every run needs: the checkpoint folder, the launcher's
workers and their thread counts, the deadline, the event stream, errors that name what
survives, and the parts of the :class:`~workbench.training.result.TrainResult` every
strategy has (time, bytes, carbon, workers).

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

import math
import re
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workbench.cluster.launch import Launcher, TrainingTimeoutError, WorkerCall, WorkerInfo
from workbench.cluster.nodes import cpu_allocation
from workbench.errors import EngineDiedError, LaunchError
from workbench.metering.events import StepEvent
from workbench.training.checkpoint import (
    checkpoint_root,
    load_checkpoint,
    model_checkpoint_path,
)
from workbench.training.request import TrainRequest
from workbench.training.result import TrainResult
from workbench.training.strategies import Plan, Workers, find_strategy, plan_partitions
from workbench.training.strategies.base import run_with
from workbench.training.task import WorkerResult, WorkerTask

__all__ = ["launch_training", "plan_partitions", "default_checkpoint_dir"]


def default_checkpoint_dir(label: str) -> str:
    """Return a new folder for a run's checkpoints in this user's checkpoint root.

    See :func:`workbench.training.checkpoint.checkpoint_root` (a per-user cache folder, never
    a path shared by the users of a machine).
    """
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return str(checkpoint_root() / f"{safe}-{stamp}-{uuid.uuid4().hex[:6]}")


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


def _threads(infos: Sequence[WorkerInfo]) -> list[int]:
    """Torch threads per worker: what its allocation gives it, else an even share of its host."""
    per_host = {h: sum(1 for w in infos if w.host == h) for h in {w.host for w in infos}}
    return [w.threads or max(1, w.cpus // per_host[w.host]) for w in infos]


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
    strategy = find_strategy(request.strategy)
    ckdir = request.checkpoint_dir
    if ckdir is None and request.checkpoint:
        ckdir = default_checkpoint_dir(request.label)
    deadline = None if request.timeout is None else time.monotonic() + request.timeout
    sink = _Sink(callbacks, deadline, request.timeout)
    plan = Plan([])
    control = 0
    if strategy.in_kernel:
        task = WorkerTask.from_request(request, ckdir)
        infos = [WorkerInfo("kernel", socket.gethostname(), len(cpu_allocation()[0]))]
        results = [run_with(strategy, task, worker="kernel", callbacks=[sink])]
    else:
        if launcher is None:
            raise LaunchError(
                f"strategy {request.strategy!r} needs a launcher (workers to run on): pass an "
                "IpyparallelLauncher or LocalProcessLauncher, or use %cluster start in a notebook"
            )
        spent = [0]

        def preliminary(calls: Sequence[WorkerCall]) -> list[Any]:
            out = launcher.run(calls, timeout=_remaining(deadline))
            spent[0] += out.control_bytes
            return list(out.results)

        try:
            infos = launcher.workers(request.engines)
            workers = Workers(infos, _threads(infos), launcher.rendezvous, preliminary)
            plan = strategy.plan(request, workers, ckdir)
            out = launcher.run(plan.calls, on_event=sink, timeout=_remaining(deadline))
        except EngineDiedError as exc:
            raise EngineDiedError(f"{exc}. {_checkpoint_note(ckdir)}") from exc
        except TrainingTimeoutError as exc:
            raise TrainingTimeoutError(
                f"training did not finish within the timeout of {request.timeout} s; the workers "
                f"were stopped (raise --timeout). {_checkpoint_note(ckdir)}"
            ) from exc
        results, control = out.results, spent[0] + out.control_bytes
    duration = time.perf_counter() - start
    return _assemble(request, strategy, results, infos, plan, duration, control, ckdir, sink.events)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.1, deadline - time.monotonic())


def _assemble(
    request: TrainRequest,
    strategy: Any,
    results: Sequence[WorkerResult],
    infos: Sequence[WorkerInfo],
    plan: Plan,
    duration: float,
    control: int,
    ckdir: str | None,
    events: list[StepEvent],
) -> TrainResult:
    history = [r for w in results for r in w.history]
    return TrainResult(
        name=request.label,
        strategy=request.strategy,
        engines=len(results),
        history=history,
        duration_s=duration,
        train_s=max(w.duration for w in results),
        bytes_exchanged=sum(int(w.comm.get("wire_bytes", 0)) for w in results),
        payload_bytes=sum(int(w.comm.get("payload_bytes", 0)) for w in results),
        control_bytes=control,
        comm={w.worker: w.comm for w in results},
        carbon=_carbon(results, infos, duration),
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
        **strategy.assemble(request, results, plan),
    )


def _carbon(results: Sequence[WorkerResult], infos: Sequence[WorkerInfo], duration: float) -> Any:
    """Estimate meter of the metering package: power model x wall time (an estimate)."""
    from workbench.metering.carbon import EstimateMeter

    total = max(w.cpus for w in infos)
    used = min(total, sum(_threads(infos))) if len(infos) > 1 else total
    meter = EstimateMeter(cores=used, total_threads=total)
    return meter.estimate(duration if math.isfinite(duration) else 0.0)
