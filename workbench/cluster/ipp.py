"""ipyparallel clusters and the launcher that trains on their engines.

With :mod:`~workbench.cluster.ipp_engines`, the only modules that use ipyparallel.

* :class:`IpyparallelCluster`: :meth:`~IpyparallelCluster.start` N engines (local processes, or
  a batch job of Slurm, PBS, SGE, LSF, HTCondor, MPI or SSH: ``ClusterSpec.launcher``) with a
  private profile folder (or a named profile's) and the controller bound to ``127.0.0.1``
  (unless told otherwise), waiting for them with progress and the spec's timeout;
  :meth:`~IpyparallelCluster.connect` to an existing cluster (and wait for its engines);
  :meth:`~IpyparallelCluster.status` (engines with host, job and state; dead ones dropped);
  :meth:`~IpyparallelCluster.stop`. The processes and the batch job it started end with this
  process (:mod:`workbench.cluster.reaper`).
* :class:`IpyparallelLauncher`: runs one call per engine with ``apply_async``; engines stream
  their step events back with ``ipyparallel.datapub.publish_data``; a dead engine (its process
  gone, its job ended, or unregistered by the controller), at any point, the rendezvous
  included, raises :class:`~workbench.errors.EngineDiedError` naming it, its host, and what
  survives; on timeout, error or a kernel :class:`KeyboardInterrupt` the engines are
  interrupted (SIGINT through the control channel) and, if their work does not stop within a
  grace period (e.g. blocked in a collective), a local cluster started here is restarted so
  it is usable again.

Engines are named ``engine-0 .. engine-{n-1}`` in the order of their ids; these names are the
nodes of the placement ring of partitioned training.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workbench._optional import lazy_import
from workbench.cluster.hosts import (
    controller_addresses,
    cpu_allocation,
    free_port,
    interface_address,
    loopback_ifname,
    reachable_address,
    threads_per_worker,
)
from workbench.cluster.ipp_engines import (
    cancel_command,
    configure_engines,
    engine_job,
    private_profile_folder,
    profile_folder,
)
from workbench.cluster.launch import (
    EventSink,
    RunOutput,
    TrainingTimeoutError,
    WorkerCall,
    WorkerInfo,
    call_worker,
)
from workbench.cluster.reaper import Reaper, process_tree, stop_processes, tie_to_this_process
from workbench.cluster.schedulers import (
    LAUNCHERS,
    JobState,
    Scheduler,
    WaitProgress,
    job_of_this_process,
    job_state,
)
from workbench.cluster.spec import ClusterSpec
from workbench.errors import EngineDiedError, LaunchError, TrainingError, WorkbenchError
from workbench.metering.events import StepEvent

__all__ = ["IpyparallelCluster", "IpyparallelLauncher"]

_PUBLISH_EVERY_S = 0.1
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WINDOW = 2048
_JOB_POLL_S = 2.0  # how often the scheduler is asked about a job

#: Called with where a wait for engines stands (``%cluster`` shows it).
Progress = Callable[[WaitProgress], object]


def _ipp() -> Any:
    return lazy_import(
        "ipyparallel", extra="cluster", purpose="engines (%cluster, %%train --engines)"
    )


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


def _engine_rendezvous(loopback: bool, interface: str | None = None) -> tuple[str, int, str | None]:
    """Run on engine 0: ``(address, free port, interface)`` for the process group.

    The chosen interface's address; else loopback when all engines share one host; else an
    address of this host the others can reach (never the loopback address the host name may
    resolve to).
    """
    if interface:
        addr = interface_address(interface)
        return addr, free_port(addr), interface
    if loopback:
        return "127.0.0.1", free_port("127.0.0.1"), loopback_ifname()
    addr, ifname = reachable_address(None)
    return addr, free_port(addr), ifname


class _Publisher:
    """Engine side: keep the last events with sequence numbers and publish them, throttled."""

    def __init__(self, publish: Any) -> None:
        self.publish = publish
        self.window: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(
            maxlen=_WINDOW
        )
        self.seq = 0
        self.last = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        self.seq += 1
        self.window.append((self.seq, event))
        if time.monotonic() - self.last >= _PUBLISH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        self.publish({"wb_seq": self.seq, "wb_events": list(self.window)})


def _engine_entry(payload: bytes) -> tuple[bytes, int]:
    """Run on an engine: unpickle the call, run it publishing events, pickle the result."""
    cloudpickle = lazy_import("cloudpickle", extra="cluster")
    datapub = lazy_import("ipyparallel.datapub", extra="cluster")
    call = cloudpickle.loads(payload)
    pub = _Publisher(datapub.publish_data)
    try:
        result = call_worker(call, pub)
    finally:
        pub.flush()
    blob: bytes = cloudpickle.dumps(result)
    return blob, pub.seq


# --------------------------------------------------------------------------- kernel side
def _children() -> set[int]:
    """Pids of this process's children (psutil comes with ipyparallel)."""
    psutil = lazy_import("psutil", extra="cluster")
    return {p.pid for p in psutil.Process().children()}


def _running(pid: int, started: float | None) -> bool:
    """Whether process ``pid`` (started at ``started``, if known) still runs on this host."""
    psutil = lazy_import("psutil", extra="cluster")
    try:
        proc = psutil.Process(pid)
        same = started is None or abs(proc.create_time() - started) < 0.01
        return bool(same and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _stop_quietly(cluster: Any) -> None:
    """Stop an ipyparallel cluster's engines and controller, each even if the other fails."""
    cluster.log.setLevel(logging.CRITICAL)  # engines stopped on purpose are not news
    for step in (cluster.stop_engines_sync, cluster.stop_controller_sync):
        try:
            step()
        except Exception as exc:
            warnings.warn(f"stopping the cluster: {exc}", stacklevel=3)


class IpyparallelCluster:
    """A cluster started here (``owned``, stopped by :meth:`stop`) or one connected to."""

    def __init__(
        self,
        client: Any,
        *,
        cluster: Any = None,
        owned: bool = False,
        spec: ClusterSpec | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.owned = owned
        self.spec = spec or ClusterSpec()
        self.scheduler = scheduler or LAUNCHERS["local"]
        self._info: dict[int, dict[str, Any]] = {}
        self._jobs: dict[tuple[str, str], tuple[float, JobState | None]] = {}
        self._private_dir: str | None = None  # a temporary profile folder made by start()
        self._reaper: Reaper | None = None  # ends the processes started here with this one

    @classmethod
    def start(
        cls, spec: ClusterSpec | None = None, *, progress: Progress | None = None
    ) -> IpyparallelCluster:
        """Start a controller bound to ``spec.ip`` and ``spec.n`` engines; wait for them.

        The engines are local processes or the batch job of ``spec.launcher`` (or the named
        profile's launcher); the wait reports to ``progress`` and gives up after
        ``spec.engine_timeout`` seconds, stopping what it started (the job included). A
        private profile folder (temporary unless ``spec.profile_dir`` or ``spec.profile``)
        keeps this cluster apart from others on the machine; ports are picked free.

        Raises
        ------
        LaunchError
            If the launcher cannot honour the spec, the submission fails (with the
            scheduler's message), the job ends before its engines register, or they do not
            register in time.
        """
        spec = spec or ClusterSpec()
        ipp = _ipp()
        bind, location = controller_addresses(spec.ip, spec.interface)
        before = _children()
        if spec.profile:
            profile_dir = profile_folder(spec.profile)
        else:
            profile_dir = spec.profile_dir or private_profile_folder(spec)
        private = None if spec.profile or spec.profile_dir else profile_dir
        cluster = ipp.Cluster(
            n=spec.n,
            profile_dir=profile_dir,
            controller_ip=bind,
            controller_location=location,
            engine_timeout=int(spec.engine_timeout),
            log_level=logging.WARNING,
        )
        where = f"on {bind}"
        try:
            scheduler = configure_engines(cluster, spec)
            where = f"with the {scheduler.title} launcher, controller on {bind}"
            cluster.start_cluster_sync()
            client = cluster.connect_client_sync()
        except BaseException as exc:
            tree = process_tree(sorted(_children() - before))
            _stop_quietly(cluster)
            stop_processes(tree, grace_s=2.0)  # a controller stopped while it starts: its children
            if private:
                shutil.rmtree(private, ignore_errors=True)
            if isinstance(exc, WorkbenchError | KeyboardInterrupt):
                raise
            raise LaunchError(f"could not start {spec.n} engines {where}: {exc}") from exc
        handle = cls(client, cluster=cluster, owned=True, spec=spec, scheduler=scheduler)
        handle._private_dir = private
        handle._tie(before)
        try:
            handle.wait_for_engines(spec.n, timeout=spec.engine_timeout, progress=progress)
        except BaseException:
            handle.stop()  # nothing is left behind: the queued job is cancelled too
            raise
        return handle

    def _tie(self, before: set[int]) -> None:
        """Tie what this cluster started (controller, engines, batch job) to this process."""
        if self._reaper is not None:
            self._reaper.release()
        started = sorted(_children() - before)
        cancel = cancel_command(self.cluster) if self.owned else None
        on_exit = [cancel] if cancel else []
        self._reaper = tie_to_this_process(started, on_exit=on_exit) if started else None

    @classmethod
    def connect(
        cls, spec: ClusterSpec, *, wait: int = 0, progress: Progress | None = None
    ) -> IpyparallelCluster:
        """Connect to a running cluster by ``spec.profile``, ``profile_dir`` or ``cluster_id``.

        With ``wait``, wait (up to ``spec.engine_timeout`` seconds, reporting to
        ``progress``) until that many engines have registered.
        """
        ipp = _ipp()
        kwargs = {
            k: v for k, v in {"profile": spec.profile, "profile_dir": spec.profile_dir}.items() if v
        }
        if spec.profile:
            profile_folder(spec.profile)  # a missing profile is an error, not a new profile
        cluster = None
        try:
            cluster = ipp.Cluster.from_file(cluster_id=spec.cluster_id or "", **kwargs)
            client = cluster.connect_client_sync()
        except Exception:  # no cluster file (started by hand): fall back to the client files
            try:
                client = ipp.Client(cluster_id=spec.cluster_id, **kwargs)
            except Exception as exc:
                raise LaunchError(
                    f"could not connect to a cluster with {kwargs or 'the default profile'}"
                    f"{' and id ' + repr(spec.cluster_id) if spec.cluster_id else ''}: {exc}"
                ) from exc
        job = engine_job(cluster)
        scheduler = LAUNCHERS.get(job[0]) if job else None
        handle = cls(client, cluster=cluster, owned=False, spec=spec, scheduler=scheduler)
        if wait:
            try:
                handle.wait_for_engines(wait, timeout=spec.engine_timeout, progress=progress)
            except BaseException:
                client.close()
                raise
        return handle

    # -- engines and their state --------------------------------------------------------------
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
        ipp = _ipp()
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
        parts += [f"--directive {shlex.quote(d)}" for d in spec.directives]
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

    def status(self) -> dict[str, Any]:
        """Return the controller, launcher, job and engines (host, pid, job, state); dead apart."""
        ids = self.known_ids()
        dead = self.dead(ids)
        live = [i for i in ids if i not in dead]
        info = self.info(live) if live else {}
        queues = self.client.queue_status(targets=live) if live else {}
        job = engine_job(self.cluster)
        state = self._job_state(job) if job else None

        def row(e: int, known: dict[str, Any]) -> dict[str, Any]:
            j = known.get("job")
            return {
                "id": e,
                "host": known.get("host"),
                "pid": known.get("pid"),
                "job_id": j[1] if j else None,
                "cpus": known.get("cpus"),
            }

        engines = []
        for e in live:
            q = queues.get(e, {})
            busy = q.get("queue", 0) or q.get("tasks", 0)
            engines.append({**row(e, info[e]), "state": "busy" if busy else "idle", **q})
        return {
            "owned": self.owned,
            "ip": self.spec.ip if self.owned else None,
            "launcher": self.scheduler.name,
            "job": {"id": job[1], "state": str(state) if state else "unknown"} if job else None,
            "profile_dir": getattr(self.cluster, "profile_dir", self.spec.profile_dir),
            "cluster_id": getattr(self.cluster, "cluster_id", self.spec.cluster_id),
            "engines": engines,
            "dropped": [
                {**row(e, self._info.get(e, {})), "state": "dead", "why": dead[e]} for e in dead
            ],
        }

    def interrupt(self, ids: Sequence[int]) -> None:
        """Send SIGINT to engines through their control channel (stops running work)."""
        if ids:
            self.client.send_signal(signal.SIGINT, targets=list(ids), block=False)

    @property
    def restartable(self) -> bool:
        """Whether :meth:`restart` may bring engines back unasked (local engines started here).

        A batch job is not resubmitted behind the user's back (it may wait in a queue).
        """
        return self.owned and self.cluster is not None and not self.scheduler.batch

    def restart(self) -> None:
        """Restart the engines of a cluster started here and wait until they are back.

        Raises
        ------
        LaunchError
            For a connected cluster (restart it where it was started), or if the engines do
            not come back.
        """
        if not self.owned or self.cluster is None:
            raise LaunchError("only a cluster started by %cluster start can be restarted from here")
        kept = _children() - set(self._reaper.pids if self._reaper else ())
        self.cluster.restart_engines_sync()
        self._info.clear()
        try:
            self.client.wait_for_engines(self.spec.n, timeout=self.spec.engine_timeout, block=True)
        except Exception as exc:
            raise LaunchError(f"engines did not come back after a restart: {exc}") from exc
        deadline = time.monotonic() + self.spec.engine_timeout
        while len(self.client.ids) > self.spec.n and time.monotonic() < deadline:
            time.sleep(0.1)  # old ids are unregistered asynchronously
        self._tie(kept)  # the new engines end with this process too

    def stop(self) -> None:
        """Stop a cluster started here (engines, controller, job), or disconnect from another."""
        tree = process_tree(self._reaper.pids) if self.owned and self._reaper else []
        try:
            if self.owned:
                live = self.live_ids()
                if live and len(live) == len(self.client.ids):
                    # engines exit cleanly on a shutdown request; SIGTERM alone takes seconds
                    self.client.shutdown(targets="all", hub=True, block=True)
                elif live:  # a dead engine would never answer: ask only the live ones
                    self.client.shutdown(targets=live, block=False)
            self.client.close()
        finally:
            if self.owned and self.cluster is not None:
                _stop_quietly(self.cluster)
                stop_processes(tree)  # whatever the cluster left behind, by pid
            if self._reaper is not None:
                self._reaper.release()
                self._reaper = None
            if self._private_dir:
                shutil.rmtree(self._private_dir, ignore_errors=True)

    def __repr__(self) -> str:
        kind = "started here" if self.owned else "connected"
        return f"IpyparallelCluster({kind}, {self.scheduler.name}, engines={self.engine_ids()})"


class IpyparallelLauncher:
    """Train on the engines of an ipyparallel cluster (see the module docstring).

    Parameters
    ----------
    cluster : IpyparallelCluster, optional
        The cluster to use; by default one is started (``n`` engines on loopback) at first use.
    n : int
        Engines to start when no cluster is given.
    interface : str, optional
        Network interface for the process groups' rendezvous and for gloo/NCCL (default: the
        cluster's ``spec.interface``; else loopback on one host, a reachable address across
        hosts).
    grace_s : float
        Seconds interrupted engines get to stop before a cluster started here is restarted
        (a rank blocked in a collective only stops once gloo notices its peer left).
    poll_s : float
        Seconds between checks for events, results, deaths and the deadline.
    """

    name = "ipyparallel"

    def __init__(
        self,
        cluster: IpyparallelCluster | None = None,
        n: int = 2,
        *,
        interface: str | None = None,
        grace_s: float = 15.0,
        poll_s: float = 0.05,
    ) -> None:
        self._cluster = cluster
        self.n = n
        self.interface = interface
        self.grace_s = grace_s
        self.poll_s = poll_s
        self._ids: list[int] = []
        self._names: dict[int, str] = {}

    @property
    def cluster(self) -> IpyparallelCluster:
        """The cluster, started on first use if none was given."""
        if self._cluster is None:
            self._cluster = IpyparallelCluster.start(ClusterSpec(n=self.n))
        return self._cluster

    def workers(self, n: int) -> list[WorkerInfo]:
        """Return the first ``n`` live engines by id, named ``engine-0 ..``.

        Their torch threads come from what their job granted (see
        :func:`~workbench.cluster.hosts.threads_per_worker`).

        Raises
        ------
        EngineDiedError
            If engines of the cluster died and too few are left.
        LaunchError
            If the cluster has fewer than ``n`` engines (the advice fits the cluster).
        """
        cluster = self.cluster
        ids = cluster.known_ids()
        dead = cluster.dead(ids)
        live = [e for e in ids if e not in dead]
        if len(live) < n:
            if dead:
                eid = next(iter(dead))
                raise cluster.died(eid, "before this run", why=dead[eid])
            raise LaunchError(
                f"asked for {n} engines but the cluster has {len(live)} ({live}). "
                + cluster.hint(n)
            )
        self._ids = live[:n]
        self._names = {eid: f"engine-{i}" for i, eid in enumerate(self._ids)}
        info = cluster.info(self._ids)
        threads = threads_per_worker(
            [
                (
                    info[e]["host"],
                    info[e].get("cpu_set") or range(info[e]["cpus"]),
                    info[e].get("granted"),
                )
                for e in self._ids
            ]
        )
        return [
            WorkerInfo(self._names[e], info[e]["host"], int(info[e]["cpus"]), t)
            for e, t in zip(self._ids, threads, strict=True)
        ]

    def rendezvous(self) -> tuple[str, int, str | None]:
        """Ask engine 0 for its address and a free port on the chosen interface.

        The interface given to the launcher or the cluster; else loopback when all engines
        share one host, and an address of engine 0's host the others can reach otherwise.

        Raises
        ------
        EngineDiedError
            If engine 0 is dead or dies before it answers.
        """
        info = self.cluster.info(self._ids)
        loopback = len({v["host"] for v in info.values()}) == 1
        interface = self.interface or self.cluster.spec.interface
        ((addr, port, ifname),) = self.cluster.ask(
            self._ids[:1],
            _engine_rendezvous,
            loopback,
            interface,
            during="during the rendezvous of the process group",
            names=self._names,
        )
        return str(addr), int(port), ifname

    def run(
        self,
        calls: Sequence[WorkerCall],
        *,
        on_event: EventSink | None = None,
        timeout: float | None = None,
    ) -> RunOutput:
        """Run ``calls[i]`` on engine ``i`` (call :meth:`workers` first)."""
        cloudpickle = lazy_import("cloudpickle", extra="cluster")
        if len(self._ids) < len(calls):
            self.workers(len(calls))
        client = self.cluster.client
        payloads = [cloudpickle.dumps(c) for c in calls]
        control = sum(len(p) for p in payloads)
        ids = self._ids[: len(calls)]
        ars = [
            client[eid].apply_async(_engine_entry, p) for eid, p in zip(ids, payloads, strict=True)
        ]
        seen = [0] * len(calls)
        done: dict[int, Any] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while len(done) < len(calls):
                for i, ar in enumerate(ars):
                    self._forward(i, ar, seen, on_event)
                    if i not in done and ar.ready():
                        done[i] = self._collect(i, ar, ids)
                        control += len(done[i][0])
                self._check(ids, done, deadline, timeout)
                if len(done) < len(calls):
                    time.sleep(self.poll_s)
            self._drain(ars, done, seen, on_event)
        except BaseException:
            self._abort(ars, ids)
            raise
        return RunOutput([cloudpickle.loads(done[i][0]) for i in range(len(calls))], control)

    # -- helpers -----------------------------------------------------------------------------
    def _forward(self, i: int, ar: Any, seen: list[int], on_event: EventSink | None) -> None:
        data = ar.data
        if isinstance(data, list):
            data = data[0]
        if not data or data.get("wb_seq", 0) <= seen[i]:
            return
        for seq, event in data.get("wb_events", []):
            if seq > seen[i] and on_event is not None:
                on_event(StepEvent.from_dict(event), self._names[self._ids[i]])
        seen[i] = int(data["wb_seq"])

    def _drain(
        self, ars: list[Any], done: dict[int, Any], seen: list[int], on_event: EventSink | None
    ) -> None:
        """Wait briefly for the last published events (they travel apart from the results)."""
        end = time.monotonic() + 1.0
        while time.monotonic() < end and any(seen[i] < done[i][1] for i in done):
            for i, ar in enumerate(ars):
                self._forward(i, ar, seen, on_event)
            time.sleep(0.02)

    def _collect(self, i: int, ar: Any, ids: list[int]) -> Any:
        ipp = _ipp()
        try:
            return ar.get(0)
        except ipp.error.EngineError as exc:
            raise self._died(ids[i]) from exc
        except ipp.error.RemoteError as exc:
            name = self._names[ids[i]]
            if exc.ename == "EngineError":  # the hub reported the engine's death
                raise self._died(ids[i]) from exc
            if exc.ename == "KeyboardInterrupt":
                raise LaunchError(f"{name} was interrupted") from exc
            dead = self._dead_peer(ids)  # a collective fails on the peers of a dead engine
            if dead is not None:
                raise self._died(dead) from exc
            trace = _ANSI.sub("", exc.traceback or "")
            raise TrainingError(
                f"{name} (engine {ids[i]}) failed: {exc.ename}: {exc.evalue}\n{trace}"
            ) from exc

    def _dead_peer(self, ids: list[int], wait_s: float = 2.0) -> int | None:
        """Return a dead engine of ``ids`` (after a moment), else ``None``."""
        end = time.monotonic() + wait_s
        while True:
            gone = self.cluster.dead(ids)
            if gone or time.monotonic() > end:
                return next(iter(gone)) if gone else None
            time.sleep(self.poll_s)

    def _died(self, eid: int, why: str | None = None) -> EngineDiedError:
        return self.cluster.died(eid, "while training", self._names, why=why)

    def _check(
        self, ids: list[int], done: dict[int, Any], deadline: float | None, timeout: float | None
    ) -> None:
        dead = self.cluster.dead([eid for i, eid in enumerate(ids) if i not in done])
        if dead:
            eid = next(iter(dead))
            raise self._died(eid, dead[eid])
        if deadline is not None and time.monotonic() > deadline:
            raise TrainingTimeoutError(
                f"training did not finish within the timeout of {timeout} s; the engines were "
                "interrupted (raise --timeout, or resume from the last checkpoint with --resume)"
            )

    def _abort(self, ars: list[Any], ids: list[int]) -> None:
        """Stop the engines' work: abort queued tasks, SIGINT running ones, restart if stuck."""
        client = self.cluster.client
        pending = [ar for ar in ars if not ar.ready()]
        if not pending:
            return
        gone = self.cluster.dead(ids)
        alive = [e for e in ids if e not in gone]
        try:
            client.abort(pending, targets=alive, block=False)
        except Exception as exc:  # aborting is best effort: the signal below is what stops work
            warnings.warn(f"aborting queued tasks failed: {exc!r}", stacklevel=3)
        self.cluster.interrupt(alive)
        # Judge by the hub's queues, not only by local futures: a KeyboardInterrupt may have hit
        # this process inside ipyparallel's own bookkeeping.
        end = time.monotonic() + self.grace_s
        idle = False
        while time.monotonic() < end:
            if all(ar.ready() for ar in pending) or (idle := self._idle(alive)):
                break
            time.sleep(0.2)
        stuck = [] if idle else [ids[i] for i, ar in enumerate(ars) if not ar.ready()]
        died = list(self.cluster.dead(ids))
        if stuck or died:
            if self.cluster.restartable:
                self.cluster.restart()
                self._ids = []
            elif self.cluster.owned or not stuck:
                return  # a batch job is not resubmitted unasked: the error says how
            else:
                warnings.warn(
                    f"engines {stuck or died} did not stop after SIGINT; restart them where the "
                    "cluster was started (ipcluster) before training again",
                    stacklevel=3,
                )

    def _idle(self, ids: Sequence[int]) -> bool:
        if not ids:
            return True
        try:
            queues = self.cluster.client.queue_status(targets=list(ids))
        except Exception:  # hub unreachable for a moment: not idle as far as we know
            return False
        return all(queues.get(e, {}).get("queue", 1) == 0 for e in ids)

    def close(self) -> None:
        """Release nothing: the cluster outlives the launcher (``cluster.stop()`` stops it)."""
        return None
