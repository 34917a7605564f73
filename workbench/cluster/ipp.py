"""ipyparallel clusters and the launcher that trains on their engines (the only ipyparallel user).

* :class:`IpyparallelCluster`: :meth:`~IpyparallelCluster.start` N local engines with a private
  profile folder and the controller bound to ``127.0.0.1`` (unless told otherwise),
  :meth:`~IpyparallelCluster.connect` to an existing cluster profile,
  :meth:`~IpyparallelCluster.status`, :meth:`~IpyparallelCluster.stop`.
* :class:`IpyparallelLauncher`: runs one call per engine with ``apply_async``; engines stream
  their step events back with ``ipyparallel.datapub.publish_data``; a dead engine raises
  :class:`~workbench.errors.EngineDiedError` naming it; on timeout, error or a kernel
  :class:`KeyboardInterrupt` the engines are interrupted (SIGINT through the control channel)
  and, if their work does not stop within a grace period (e.g. blocked in a collective), a
  cluster started here is restarted so it is usable again.

Engines are named ``engine-0 .. engine-{n-1}`` in the order of their ids; these names are the
nodes of the placement ring of partitioned training.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import time
import warnings
from collections.abc import Sequence
from typing import Any

from workbench._optional import lazy_import
from workbench.cluster.launch import (
    EventSink,
    RunOutput,
    TrainingTimeoutError,
    WorkerCall,
    WorkerInfo,
    call_worker,
    free_port,
    loopback_ifname,
)
from workbench.cluster.reaper import Reaper, tie_to_this_process
from workbench.cluster.spec import ClusterSpec
from workbench.errors import EngineDiedError, LaunchError, TrainingError
from workbench.metering.events import StepEvent

__all__ = ["IpyparallelCluster", "IpyparallelLauncher"]

_PUBLISH_EVERY_S = 0.1
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WINDOW = 2048


def _ipp() -> Any:
    return lazy_import(
        "ipyparallel", extra="cluster", purpose="engines (%cluster, %%train --engines)"
    )


# --------------------------------------------------------------------------- engine side
def _engine_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "cpus": os.cpu_count() or 1}


def _engine_rendezvous(loopback: bool) -> tuple[str, int, str | None]:
    if loopback:
        return "127.0.0.1", free_port("127.0.0.1"), loopback_ifname()
    addr = socket.gethostbyname(socket.gethostname())
    return addr, free_port(addr), None


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


class IpyparallelCluster:
    """A cluster started here (``owned``, stopped by :meth:`stop`) or one connected to."""

    def __init__(
        self,
        client: Any,
        *,
        cluster: Any = None,
        owned: bool = False,
        spec: ClusterSpec | None = None,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.owned = owned
        self.spec = spec or ClusterSpec()
        self._info: dict[int, dict[str, Any]] = {}
        self._private_dir: str | None = None  # a temporary profile folder made by start()
        self._reaper: Reaper | None = None  # ends the processes started here with this one

    @classmethod
    def start(cls, spec: ClusterSpec | None = None) -> IpyparallelCluster:
        """Start a controller bound to ``spec.ip`` and ``spec.n`` local engines.

        A private profile folder (temporary unless ``spec.profile_dir``) keeps this cluster
        apart from others on the machine; ports are picked free.
        """
        spec = spec or ClusterSpec()
        ipp = _ipp()
        before = _children()
        profile_dir = spec.profile_dir or tempfile.mkdtemp(prefix="workbench-ipp-")
        cluster = ipp.Cluster(
            n=spec.n,
            profile_dir=profile_dir,
            controller_ip=spec.ip,
            controller_location=spec.ip,
            engine_timeout=int(spec.engine_timeout),
            log_level=logging.WARNING,
        )
        try:
            client = cluster.start_and_connect_sync()
        except Exception as exc:
            cluster.stop_cluster_sync()
            raise LaunchError(f"could not start {spec.n} engines on {spec.ip}: {exc}") from exc
        handle = cls(client, cluster=cluster, owned=True, spec=spec)
        handle._private_dir = None if spec.profile_dir else profile_dir
        handle._tie(before)
        return handle

    def _tie(self, before: set[int]) -> None:
        """Tie the processes this cluster started (controller, engines) to this process."""
        if self._reaper is not None:
            self._reaper.release()
        started = sorted(_children() - before)
        self._reaper = tie_to_this_process(started) if started else None

    @classmethod
    def connect(cls, spec: ClusterSpec) -> IpyparallelCluster:
        """Connect to a running cluster by ``spec.profile``, ``profile_dir`` or ``cluster_id``."""
        ipp = _ipp()
        kwargs = {
            k: v for k, v in {"profile": spec.profile, "profile_dir": spec.profile_dir}.items() if v
        }
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
        return cls(client, cluster=cluster, owned=False, spec=spec)

    def engine_ids(self) -> list[int]:
        """Ids of the registered engines, sorted."""
        return sorted(self.client.ids)

    def info(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Host, pid and CPU count of engines (asked once per engine)."""
        missing = [i for i in ids if i not in self._info]
        if missing:
            replies = self.client[missing].apply_sync(_engine_info)
            self._info.update(zip(missing, replies, strict=True))
        return {i: self._info[i] for i in ids}

    def status(self) -> dict[str, Any]:
        """Engines (id, host, pid, queue), controller address, profile, ownership."""
        ids = self.engine_ids()
        queues = self.client.queue_status() if ids else {}
        info = self.info(ids) if ids else {}
        return {
            "owned": self.owned,
            "ip": self.spec.ip if self.owned else None,
            "profile_dir": getattr(self.cluster, "profile_dir", self.spec.profile_dir),
            "cluster_id": getattr(self.cluster, "cluster_id", self.spec.cluster_id),
            "engines": [
                {"id": i, **info[i], **{k: v for k, v in queues.get(i, {}).items()}} for i in ids
            ],
        }

    def interrupt(self, ids: Sequence[int]) -> None:
        """Send SIGINT to engines through their control channel (stops running work)."""
        if ids:
            self.client.send_signal(signal.SIGINT, targets=list(ids), block=False)

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
        """Stop a cluster started here (engines and controller); disconnect from any other."""
        if self.owned and self.cluster is not None:
            # Engines stopped on purpose exit with status 1, and ipyparallel then logs their
            # whole output as a warning: noise here (a dead engine is reported elsewhere).
            self.cluster.log.setLevel(logging.ERROR)
        try:
            if self.owned and self.client.ids:
                # engines exit cleanly on a shutdown request; SIGTERM alone takes seconds
                self.client.shutdown(targets="all", hub=True, block=True)
            self.client.close()
        finally:
            if self.owned and self.cluster is not None:
                self.cluster.stop_cluster_sync()
            if self._reaper is not None:
                self._reaper.release()
                self._reaper = None
            if self._private_dir:
                shutil.rmtree(self._private_dir, ignore_errors=True)

    def __repr__(self) -> str:
        kind = "started here" if self.owned else "connected"
        return f"IpyparallelCluster({kind}, engines={self.engine_ids()})"


class IpyparallelLauncher:
    """Train on the engines of an ipyparallel cluster (see the module docstring).

    Parameters
    ----------
    cluster : IpyparallelCluster, optional
        The cluster to use; by default one is started (``n`` engines on loopback) at first use.
    n : int
        Engines to start when no cluster is given.
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
        grace_s: float = 15.0,
        poll_s: float = 0.05,
    ) -> None:
        self._cluster = cluster
        self.n = n
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
        """Return the first ``n`` engines by id, named ``engine-0 ..``."""
        ids = self.cluster.engine_ids()
        if len(ids) < n:
            raise LaunchError(
                f"asked for {n} engines but the cluster has {len(ids)} ({ids}); start more "
                f"with %cluster start -n {n}"
            )
        self._ids = ids[:n]
        self._names = {eid: f"engine-{i}" for i, eid in enumerate(self._ids)}
        info = self.cluster.info(self._ids)
        return [
            WorkerInfo(self._names[e], info[e]["host"], int(info[e]["cpus"])) for e in self._ids
        ]

    def rendezvous(self) -> tuple[str, int, str | None]:
        """Ask engine 0 for a free port: loopback when all engines share one host."""
        info = self.cluster.info(self._ids)
        loopback = len({v["host"] for v in info.values()}) == 1
        view = self.cluster.client[self._ids[0]]
        addr, port, ifname = view.apply_sync(_engine_rendezvous, loopback)
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
        """Return an engine of ``ids`` the hub reports gone (after a moment), else ``None``."""
        end = time.monotonic() + wait_s
        while True:
            alive = set(self.cluster.client.ids)
            gone = [e for e in ids if e not in alive]
            if gone or time.monotonic() > end:
                return gone[0] if gone else None
            time.sleep(self.poll_s)

    def _died(self, eid: int) -> EngineDiedError:
        info = self.cluster._info.get(eid, {})
        where = f"pid {info['pid']} on {info['host']}" if info else "no process info"
        return EngineDiedError(
            f"{self._names.get(eid, f'engine {eid}')} (engine id {eid}, {where}) "
            "died while training"
        )

    def _check(
        self, ids: list[int], done: dict[int, Any], deadline: float | None, timeout: float | None
    ) -> None:
        alive = set(self.cluster.client.ids)
        for i, eid in enumerate(ids):
            if i not in done and eid not in alive:
                raise self._died(eid)
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
        alive = [e for e in ids if e in set(client.ids)]
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
        died = [e for e in ids if e not in set(client.ids)]
        if stuck or died:
            if self.cluster.owned:
                self.cluster.restart()
                self._ids = []
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
