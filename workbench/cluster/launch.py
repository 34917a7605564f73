"""Launchers: how worker processes are started, fed, watched and stopped.

A :class:`Launcher` runs one :class:`WorkerCall` per worker, forwards the workers' step
events to the caller while they run, and turns failures into clear errors: a worker that
disappears raises :class:`~workbench.errors.EngineDiedError` naming it, a run past its
deadline raises :class:`TrainingTimeoutError`, and a :class:`KeyboardInterrupt` in the caller
stops the workers before it propagates. Launchers are found by name through the
``workbench.launchers`` entry points (``local``, ``ipyparallel``), case-insensitively.

:class:`LocalProcessLauncher` starts fresh ``spawn`` processes on this machine for each run
(gloo over loopback); :class:`~workbench.cluster.ipp.IpyparallelLauncher` uses the engines
of an ipyparallel cluster.

Examples
--------
>>> find_launcher("LOCAL").__name__
'LocalProcessLauncher'
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import socket
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from workbench._optional import lazy_import
from workbench.cluster.nodes import cpu_allocation, free_port, loopback_ifname
from workbench.errors import EngineDiedError, LaunchError, TrainingError, TrainingTimeoutError
from workbench.metering.events import StepEvent
from workbench.training.task import WorkerCall, WorkerInfo

__all__ = [
    "WorkerInfo",
    "WorkerCall",
    "RunOutput",
    "Launcher",
    "LocalProcessLauncher",
    "TrainingTimeoutError",
    "find_launcher",
    "call_worker",
    "free_port",
    "loopback_ifname",
]

#: Called with each step event and the name of the worker that sent it.
EventSink = Callable[[StepEvent, str], object]


@dataclass(frozen=True)
class RunOutput:
    """What :meth:`Launcher.run` returns: one result per call and the bytes shipped."""

    results: list[Any]
    control_bytes: int


@runtime_checkable
class Launcher(Protocol):
    """Starts workers and runs calls on them (see the module docstring)."""

    name: str

    def workers(self, n: int) -> list[WorkerInfo]:
        """Return the first ``n`` workers (starting them if needed)."""
        ...

    def rendezvous(self) -> tuple[str, int, str | None]:
        """``(MASTER_ADDR, MASTER_PORT, GLOO_SOCKET_IFNAME or None)`` for a process group."""
        ...

    def run(
        self,
        calls: Sequence[WorkerCall],
        *,
        on_event: EventSink | None = None,
        timeout: float | None = None,
    ) -> RunOutput:
        """Run ``calls[i]`` on worker ``i``; return the results in order."""
        ...

    def close(self) -> None:
        """Release what the launcher started."""
        ...


def find_launcher(name: str) -> type[Any]:
    """Return the launcher class registered as ``name`` (``workbench.launchers`` entry points).

    Raises
    ------
    LaunchError
        If no launcher has that name (the message lists the known ones).
    """
    found = {ep.name.lower(): ep for ep in entry_points(group="workbench.launchers")}
    builtin = {"local": LocalProcessLauncher}
    key = name.lower()
    if key in found:
        return found[key].load()  # type: ignore[no-any-return]
    if key in builtin:  # running from a source tree that was never installed
        return builtin[key]
    if key == "ipyparallel":
        from workbench.cluster.ipp import IpyparallelLauncher

        return IpyparallelLauncher
    known = sorted(set(found) | set(builtin) | {"ipyparallel"})
    raise LaunchError(f"unknown launcher {name!r}; known launchers: {known}")


def call_worker(call: WorkerCall, emit: Callable[[dict[str, Any]], object]) -> Any:
    """Run ``call`` in this process with its environment; events go to ``emit`` as dicts."""
    saved = {k: os.environ.get(k) for k in call.env}
    os.environ.update({k: str(v) for k, v in call.env.items()})
    try:
        return call.fn(*call.args, callbacks=[lambda e: emit(e.to_dict())], **dict(call.kwargs))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _local_entry(payload: bytes, index: int, q: Any) -> None:
    """Body of a :class:`LocalProcessLauncher` process."""
    cloudpickle = lazy_import("cloudpickle", extra="cluster")
    install_sigterm_handler()
    try:
        call = cloudpickle.loads(payload)
        result = call_worker(call, lambda d: q.put(("event", index, d)))
        q.put(("result", index, cloudpickle.dumps(result)))
    except BaseException as exc:  # report everything, KeyboardInterrupt included
        try:
            blob = cloudpickle.dumps(exc)
        except Exception:
            blob = b""
        q.put(("error", index, (blob, "".join(traceback.format_exception(exc)))))


class LocalProcessLauncher:
    """Fresh ``spawn`` processes on this machine for each run; gloo over loopback.

    Parameters
    ----------
    n : int
        Number of workers.
    grace_s : float
        Seconds a stopped worker gets to exit after SIGTERM before it is killed.
    poll_s : float
        How often the parent checks events, deaths and the deadline.

    Examples
    --------
    >>> launcher = LocalProcessLauncher(n=2)
    >>> [w.name for w in launcher.workers(2)]
    ['worker-0', 'worker-1']
    """

    name = "local"

    def __init__(self, n: int = 2, *, grace_s: float = 5.0, poll_s: float = 0.05) -> None:
        if n < 1:
            raise LaunchError(f"LocalProcessLauncher needs n >= 1 workers, got {n!r}")
        self.n = n
        self.grace_s = grace_s
        self.poll_s = poll_s
        self._procs: list[Any] = []

    def workers(self, n: int) -> list[WorkerInfo]:
        """Names ``worker-0 ..``; all on this host."""
        if n > self.n:
            raise LaunchError(f"asked for {n} workers, this LocalProcessLauncher has n={self.n}")
        cpus = len(cpu_allocation()[0])
        return [WorkerInfo(f"worker-{i}", socket.gethostname(), cpus) for i in range(n)]

    def rendezvous(self) -> tuple[str, int, str | None]:
        """Return a free loopback port for rank 0."""
        return "127.0.0.1", free_port("127.0.0.1"), loopback_ifname()

    def run(
        self,
        calls: Sequence[WorkerCall],
        *,
        on_event: EventSink | None = None,
        timeout: float | None = None,
    ) -> RunOutput:
        """Start one process per call, stream events, collect results (see module doc)."""
        cloudpickle = lazy_import("cloudpickle", extra="cluster")
        names = [w.name for w in self.workers(len(calls))]
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        payloads = [cloudpickle.dumps(c) for c in calls]
        control = sum(len(p) for p in payloads)
        self._procs = [
            ctx.Process(target=_local_entry, args=(p, i, q), name=names[i], daemon=True)
            for i, p in enumerate(payloads)
        ]
        for p in self._procs:
            p.start()
        results: dict[int, Any] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while len(results) < len(calls):
                try:
                    kind, i, body = q.get(timeout=self.poll_s)
                except queue.Empty:
                    self._check(results, names, deadline, timeout)
                    continue
                if kind == "event":
                    if on_event is not None:
                        on_event(StepEvent.from_dict(body), names[i])
                elif kind == "result":
                    control += len(body)
                    results[i] = cloudpickle.loads(body)
                else:
                    error = _remote_error(names[i], *body)
                    dead = self._dead_peer(i, results)  # a peer's death is the root cause
                    self._stop()
                    if dead is not None:
                        raise dead from error
                    raise error
        except BaseException:
            self._stop()
            raise
        for p in self._procs:
            p.join(self.grace_s)
        return RunOutput([results[i] for i in range(len(calls))], control)

    def _dead_peer(self, failed: int, results: Mapping[int, Any]) -> EngineDiedError | None:
        """Return the death of a worker other than ``failed`` (after a moment), else ``None``."""
        end = time.monotonic() + 1.0
        while True:
            for j, p in enumerate(self._procs):
                if j != failed and j not in results and p.exitcode not in (None, 0, 1):
                    return EngineDiedError(
                        f"{p.name} (pid {p.pid}) died with exit code {p.exitcode} while training"
                    )
            if time.monotonic() > end:
                return None
            time.sleep(self.poll_s)

    def _check(
        self,
        results: Mapping[int, Any],
        names: list[str],
        deadline: float | None,
        timeout: float | None,
    ) -> None:
        for i, p in enumerate(self._procs):
            if i not in results and p.exitcode is not None:
                time.sleep(self.poll_s)  # let a final message arrive before declaring death
                raise EngineDiedError(
                    f"{names[i]} (pid {p.pid}) died with exit code {p.exitcode} while training"
                )
        if deadline is not None and time.monotonic() > deadline:
            raise TrainingTimeoutError(
                f"training did not finish within the timeout of {timeout} s; the workers were "
                "stopped (raise --timeout, or resume from the last checkpoint with --resume)"
            )

    def _stop(self) -> None:
        alive = [p for p in self._procs if p.is_alive()]
        for p in alive:
            p.terminate()
        end = time.monotonic() + self.grace_s
        for p in alive:
            p.join(max(0.0, end - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)

    def close(self) -> None:
        """Stop any process still running."""
        self._stop()
        self._procs = []


def _remote_error(worker: str, blob: bytes, text: str) -> BaseException:
    """Rebuild the exception a worker raised, noting its traceback and the worker's name."""
    cloudpickle = lazy_import("cloudpickle", extra="cluster")
    try:
        exc = cloudpickle.loads(blob) if blob else None
    except Exception:
        exc = None
    if isinstance(exc, KeyboardInterrupt):
        return LaunchError(f"{worker} was interrupted")
    if not isinstance(exc, BaseException):
        return TrainingError(f"{worker} failed:\n{text}")
    exc.add_note(f"(raised on {worker}; remote traceback:)\n{text}")
    return exc


# SIGTERM handler so a terminated local worker unwinds (process groups are destroyed).
def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_sigterm_handler() -> None:
    """Make SIGTERM raise KeyboardInterrupt in this process (used by local workers)."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
