"""How an ipyparallel cluster knows its engines: alive or dead, waited for, asked, advised.

:class:`EngineHealth` is the part of :class:`~workbench.cluster.ipp.IpyparallelCluster` that
watches engines:

* :meth:`~EngineHealth.wait_for_engines`: wait until N engines registered, reporting progress
  and what the scheduler says of their job; give up at the timeout or when the job ends.
* :meth:`~EngineHealth.dead`: engines that are dead, known at once (their process gone from this
  host, or their batch job ended) rather than when the controller's heartbeat notices (half a
  minute).
* :meth:`~EngineHealth.ask`: run a function on engines, turning a death before the answer into
  :class:`~workbench.errors.EngineDiedError` (:meth:`~EngineHealth.died`: who, where, what
  survives, what to do next).
* :meth:`~EngineHealth.hint`: how to get N engines, in the terms of this cluster (the same
  launcher and options for a batch cluster; never local engines for a scheduler's user).
"""

from __future__ import annotations

import os
import shlex
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workbench._optional import lazy_import
from workbench.cluster.ipp_engines import engine_job, ipyparallel
from workbench.cluster.nodes import cpu_allocation
from workbench.cluster.schedulers import (
    LAUNCHERS,
    JobState,
    Scheduler,
    WaitProgress,
    job_of_this_process,
    job_state,
)
from workbench.cluster.spec import ClusterSpec
from workbench.errors import EngineDiedError, LaunchError

__all__ = ["EngineHealth", "Progress"]

_JOB_POLL_S = 3.0  # how often the scheduler is asked about a job (sooner when an engine dies)

#: Called with where a wait for engines stands (``%cluster`` shows it).
Progress = Callable[[WaitProgress], object]


# --------------------------------------------------------------------------- engine side
def _engine_info() -> dict[str, Any]:
    """Run on an engine: where it runs and what its job granted it."""
    psutil = lazy_import("psutil", extra="cluster")
    cpus, own = cpu_allocation()
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": psutil.Process().create_time(),
        "cpus": len(cpus),
        "cpu_set": list(cpus),
        "granted": own,
        "job": job_of_this_process(),
    }


# --------------------------------------------------------------------------- kernel side
def _running(pid: int, started: float | None) -> bool:
    """Whether process ``pid`` (started at ``started``, if known) still runs on this host."""
    psutil = lazy_import("psutil", extra="cluster")
    try:
        proc = psutil.Process(pid)
        same = started is None or abs(proc.create_time() - started) < 0.01
        return bool(same and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class EngineHealth:
    """Engine liveness, waiting and advice, for a cluster with these attributes.

    Attributes
    ----------
    client : ipyparallel.Client
        The cluster's client.
    cluster : ipyparallel.Cluster or None
        The cluster object (its engine set knows the batch job).
    owned : bool
        Whether the cluster was started here.
    spec : ClusterSpec
        How it was started or connected to.
    scheduler : Scheduler
        Its engine launcher.
    """

    client: Any
    cluster: Any
    owned: bool
    spec: ClusterSpec
    scheduler: Scheduler
    _info: dict[int, dict[str, Any]]
    _jobs: dict[tuple[str, str], tuple[float, JobState | None]]

    def wait_for_engines(
        self, n: int, *, timeout: float, progress: Progress | None = None
    ) -> list[int]:
        """Wait until ``n`` engines have registered; report to ``progress`` as it goes.

        Raises
        ------
        LaunchError
            If the engines' batch job ends first (with the end of its output), or after
            ``timeout`` seconds (saying what the scheduler says of the job).
        """
        started = time.monotonic()
        job = engine_job(self.cluster)
        title = LAUNCHERS[job[0]].title if job and job[0] in LAUNCHERS else "batch"
        while True:
            have = len(self.client.ids)
            elapsed = time.monotonic() - started
            state = self._job_state(job) if job else None
            if progress is not None:
                progress(
                    WaitProgress(have, n, elapsed, timeout, title, job[1] if job else None, state)
                )
            if have >= n:
                break
            what = f"{n} engines" + (f" of {title} job {job[1]}" if job else "")
            if state is not None and state.finished:
                raise LaunchError(
                    f"{what} did not register: the job ended ({state}) after {have} did. "
                    f"{self._job_output()}"
                )
            if elapsed > timeout:
                said = f"; the job is {state}" if state else ""
                raise LaunchError(
                    f"{what} not ready within the timeout of {timeout:g} s ({have} registered"
                    f"{said}); raise --timeout to wait longer (a queued job waits for resources)"
                )
            time.sleep(0.25)
        ids = self.engine_ids()
        self.info(ids)  # where each engine runs, asked once
        return ids

    def _job_state(self, job: tuple[str, str], *, fresh: bool = False) -> JobState | None:
        """Return what the scheduler says of ``job`` (asked at most every few seconds)."""
        when, state = self._jobs.get(job, (-1e9, None))
        if fresh or time.monotonic() - when >= _JOB_POLL_S:
            state = job_state(*job)
            self._jobs[job] = (time.monotonic(), state)
        return state

    def _job_output(self, lines: int = 8) -> str:
        path = getattr(getattr(self.cluster, "engine_set", None), "output_file", "")
        if not path or not Path(path).is_file():
            return ""
        tail = Path(path).read_text(errors="replace").strip().splitlines()[-lines:]
        return f"The end of its output ({path}):\n" + "\n".join(tail) if tail else ""

    def engine_ids(self) -> list[int]:
        """Ids of the registered engines, sorted."""
        return sorted(self.client.ids)

    def known_ids(self) -> list[int]:
        """Ids of the registered engines and of those seen before (dead ones among them)."""
        return sorted(set(self.client.ids) | set(self._info))

    def live_ids(self) -> list[int]:
        """Ids of the registered engines that are alive (see :meth:`dead`), sorted."""
        ids = self.engine_ids()
        dead = self.dead(ids)
        return [i for i in ids if i not in dead]

    def dead(self, ids: Sequence[int]) -> dict[int, str]:
        """``{id: why}`` of the engines of ``ids`` that are dead.

        Unregistered by the controller, or (known before the controller notices, which takes
        it half a minute) their process gone from this host or their batch job ended.
        """
        alive = set(self.client.ids)
        here = socket.gethostname()
        out: dict[int, str] = {}
        for e in ids:
            info = self._info.get(e) or {}
            why = None
            if e not in alive:
                why = "the controller unregistered it"
            elif info.get("host") == here and not _running(info["pid"], info.get("started")):
                why = "its process is gone"
            if info.get("job"):
                job = (str(info["job"][0]), str(info["job"][1]))
                state = self._job_state(job, fresh=why is not None)
                if state is not None and state.finished:  # the better reason: the job ended
                    title = LAUNCHERS[job[0]].title if job[0] in LAUNCHERS else job[0]
                    why = f"its {title} job {job[1]} is {state}"
            if why:
                out[e] = why
        return out

    def info(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Host, pid, CPUs and batch job of engines (asked once per engine)."""
        missing = [i for i in ids if i not in self._info]
        if missing:
            replies = self.ask(missing, _engine_info, during="when asked where it runs")
            self._info.update(zip(missing, replies, strict=True))
        return {i: self._info[i] for i in ids}

    def ask(
        self,
        ids: Sequence[int],
        fn: Callable[..., Any],
        *args: Any,
        during: str,
        names: dict[int, str] | None = None,
        timeout: float = 60.0,
    ) -> list[Any]:
        """Run ``fn(*args)`` on each engine of ``ids``; return the results in order.

        Raises
        ------
        EngineDiedError
            If an engine dies (or is dead) before it answers, ``during`` saying when.
        LaunchError
            If the call fails on an engine, or no answer comes within ``timeout`` seconds.
        """
        ipp = ipyparallel()
        ars = {e: self.client[e].apply_async(fn, *args) for e in ids}
        end = time.monotonic() + timeout
        while not all(ar.ready() for ar in ars.values()):
            dead = self.dead([e for e, ar in ars.items() if not ar.ready()])
            if dead:
                eid = next(iter(dead))
                raise self.died(eid, during, names, why=dead[eid])
            if time.monotonic() > end:
                late = [e for e, ar in ars.items() if not ar.ready()]
                raise LaunchError(f"engines {late} did not answer within {timeout:g} s {during}")
            time.sleep(0.05)
        out = []
        for e, ar in ars.items():
            try:
                out.append(ar.get(0))
            except ipp.error.EngineError as exc:
                raise self.died(e, during, names) from exc
            except ipp.error.RemoteError as exc:
                if exc.ename == "EngineError":
                    raise self.died(e, during, names) from exc
                where = (names or {}).get(e, f"engine {e}")
                raise LaunchError(f"{where} failed {during}: {exc.ename}: {exc.evalue}") from exc
        return out

    def describe(self, eid: int) -> str:
        """``engine id 3, pid 123 on node7, Slurm job 12`` (what is known of engine ``eid``)."""
        info = self._info.get(eid)
        if not info:
            return f"engine id {eid}, no process info"
        text = f"engine id {eid}, pid {info['pid']} on {info['host']}"
        if info.get("job"):
            name, job_id = info["job"]
            text += f", {LAUNCHERS[name].title if name in LAUNCHERS else name} job {job_id}"
        return text

    def died(
        self,
        eid: int,
        during: str = "while training",
        names: dict[int, str] | None = None,
        *,
        why: str | None = None,
    ) -> EngineDiedError:
        """Return the :class:`EngineDiedError` of ``eid``: who, where, what survives, what next."""
        name = (names or {}).get(eid, f"engine {eid}")
        self._jobs.clear()  # what survives, as the scheduler sees it now
        why = self.dead([eid]).get(eid, why)
        alive = [e for e in self.live_ids() if e != eid]
        if alive:
            kept = ", ".join(
                f"{(names or {}).get(e, f'engine {e}')} ({self.describe(e)})" for e in alive
            )
            survives = f"Engines still alive: {kept}."
        else:
            survives = "No engine of the cluster is alive."
        return EngineDiedError(
            f"{name} ({self.describe(eid)}) died {during}"
            + (f" ({why})" if why else "")
            + f". {survives} {self.hint(self.spec.n if self.owned else len(alive) + 1)}"
        )

    # -- advice that fits this cluster ----------------------------------------------------------
    def start_line(self, n: int) -> str:
        """Return the ``%cluster start`` line that starts this cluster again with ``n`` engines."""
        spec = self.spec
        parts = ["%cluster start"]
        if self.scheduler.name != "local" or spec.launcher:
            parts.append(f"--launcher {self.scheduler.name}")
        parts.append(f"-n {n}")
        for flag, value in (
            ("--profile", spec.profile),
            ("--queue", spec.queue),
            ("--account", spec.account),
            ("--time-limit", spec.time_limit),
            ("--gpus-per-engine", spec.gpus_per_engine),
            ("--cpus-per-engine", spec.cpus_per_engine),
            ("--interface", spec.interface),
        ):
            if value is not None:
                parts.append(f"{flag} {shlex.quote(str(value))}")
        parts += [f"--directive={shlex.quote(d)}" for d in spec.directives]
        if spec.ip != "127.0.0.1" and not spec.interface:
            parts.append(f"--ip {spec.ip}")
        return " ".join(parts)

    def hint(self, n: int) -> str:
        """How to get ``n`` working engines on this cluster (never local ones for a batch user)."""
        if self.owned:
            return f"Bring {n} engines back with {self.start_line(n)} (it replaces this cluster)."
        if self.spec.profile:
            where = f"--profile {self.spec.profile}"
        elif self.spec.profile_dir:
            where = f"--profile-dir {self.spec.profile_dir}"
        else:
            where = ""
        return (
            "Start engines where this cluster was started (ipcluster, or another engine job), "
            f"then wait for them with %cluster connect {where} --wait {n}".replace("  ", " ")
            + "."
        )
