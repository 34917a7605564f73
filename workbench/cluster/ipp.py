"""ipyparallel clusters: started here (local engines or a batch job) or connected to.

:class:`IpyparallelCluster`: :meth:`~IpyparallelCluster.start` N engines (local processes,
or a batch job of Slurm, PBS, SGE, LSF, HTCondor, MPI or SSH: ``ClusterSpec.launcher``) with a
private profile folder (or a named profile's) and the controller bound to ``127.0.0.1``
(unless told otherwise), waiting for them with progress and the spec's timeout;
:meth:`~IpyparallelCluster.connect` to an existing cluster (and wait for its engines);
:meth:`~IpyparallelCluster.status` (engines with host, job and state; dead ones apart);
:meth:`~IpyparallelCluster.stop`. The processes and the batch job it started end
with this process (:mod:`workbench.cluster.reaper`). What it knows of its engines (alive or
dead, waiting, advice) is :class:`~workbench.cluster.ipp_health.EngineHealth`; the launcher that
trains on them is :class:`~workbench.cluster.ipp_launcher.IpyparallelLauncher` (also importable
from here).

With :mod:`~workbench.cluster.ipp_engines`, :mod:`~workbench.cluster.ipp_health` and
:mod:`~workbench.cluster.ipp_launcher`, the only modules that use ipyparallel (lazily).
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
import warnings
from collections.abc import Sequence
from typing import Any

from workbench._optional import lazy_import
from workbench.cluster.ipp_engines import (
    cancel_command,
    configure_engines,
    engine_job,
    ipyparallel,
    private_profile_folder,
    profile_folder,
)
from workbench.cluster.ipp_health import EngineHealth, Progress
from workbench.cluster.nodes import controller_addresses
from workbench.cluster.reaper import Reaper, process_tree, stop_processes, tie_to_this_process
from workbench.cluster.schedulers import LAUNCHERS, JobState, Scheduler
from workbench.cluster.spec import ClusterSpec
from workbench.errors import LaunchError, WorkbenchError

__all__ = ["IpyparallelCluster", "IpyparallelLauncher"]


def _children() -> set[int]:
    """Pids of this process's children (psutil comes with ipyparallel)."""
    psutil = lazy_import("psutil", extra="cluster")
    return {p.pid for p in psutil.Process().children()}


def _stop_quietly(cluster: Any) -> None:
    """Stop an ipyparallel cluster's engines and controller, each even if the other fails."""
    cluster.log.setLevel(logging.CRITICAL)  # engines stopped on purpose are not news
    for step in (cluster.stop_engines_sync, cluster.stop_controller_sync):
        try:
            step()
        except Exception as exc:
            warnings.warn(f"stopping the cluster: {exc}", stacklevel=3)


class IpyparallelCluster(EngineHealth):
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
        ipp = ipyparallel()
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
        ipp = ipyparallel()
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

    def launcher(self) -> IpyparallelLauncher:
        """Return a launcher that trains on this cluster's engines."""
        return IpyparallelLauncher(self)

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


# The launcher lives in its own module; it stays importable from here (entry point, subclasses).
from workbench.cluster.ipp_launcher import IpyparallelLauncher  # noqa: E402
