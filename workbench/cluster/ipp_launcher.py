"""The launcher that trains on the engines of an ipyparallel cluster.

:class:`IpyparallelLauncher` runs one call per engine with ``apply_async``; engines stream
their step events back with ``ipyparallel.datapub.publish_data``; a dead engine (its process
gone, its job ended, or unregistered by the controller), at any point, the rendezvous included,
raises :class:`~workbench.errors.EngineDiedError` naming it, its host, and what survives; on
timeout, error or a kernel :class:`KeyboardInterrupt` the engines are interrupted (SIGINT
through the control channel) and, if their work does not stop within a grace period (e.g.
blocked in a collective), a local cluster started here is restarted so it is usable again.

Engines are named ``engine-0 .. engine-{n-1}`` in the order of their ids; these names are the
nodes of the placement ring of partitioned training. The process groups of DDP and FSDP meet
on engine 0's address on the chosen interface (:meth:`IpyparallelLauncher.rendezvous`).
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench._optional import lazy_import
from workbench.cluster.ipp_engines import ipyparallel
from workbench.cluster.launch import (
    EventSink,
    RunOutput,
    TrainingTimeoutError,
    WorkerCall,
    WorkerInfo,
    call_worker,
)
from workbench.cluster.nodes import (
    free_port,
    interface_address,
    loopback_ifname,
    reachable_address,
    threads_per_worker,
)
from workbench.cluster.spec import ClusterSpec
from workbench.errors import EngineDiedError, LaunchError, TrainingError
from workbench.metering.events import StepEvent

if TYPE_CHECKING:
    from workbench.cluster.ipp import IpyparallelCluster

__all__ = ["IpyparallelLauncher"]

_PUBLISH_EVERY_S = 0.1
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_KEY = "wb_events_"


# --------------------------------------------------------------------------- engine side
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
    """Engine side: publish the events since the last publication, throttled.

    Each publication goes under its own key (``wb_<last seq>``: ``(first seq, events)``); the
    client merges every key into the result's ``data``, so each event crosses the network once
    and none is lost while the kernel is busy.
    """

    def __init__(self, publish: Any) -> None:
        self.publish = publish
        self.pending: list[dict[str, Any]] = []
        self.seq = 0
        self.last = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        self.seq += 1
        self.pending.append(event)
        if time.monotonic() - self.last >= _PUBLISH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        if self.pending:
            first = self.seq - len(self.pending) + 1
            self.publish({f"{_KEY}{self.seq:012d}": (first, self.pending)})
            self.pending = []


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
            from workbench.cluster.ipp import IpyparallelCluster

            self._cluster = IpyparallelCluster.start(ClusterSpec(n=self.n))
        return self._cluster

    def workers(self, n: int) -> list[WorkerInfo]:
        """Return the first ``n`` live engines by id, named ``engine-0 ..``.

        Their torch threads come from what their job granted (see
        :func:`~workbench.cluster.nodes.threads_per_worker`).

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
        if not data:
            return
        for key in sorted(k for k in list(data) if k.startswith(_KEY)):
            first, events = data.pop(key)  # the client's own dict: forwarded events are freed
            for seq, event in enumerate(events, first):
                if seq > seen[i] and on_event is not None:
                    on_event(StepEvent.from_dict(event), self._names[self._ids[i]])
            seen[i] = max(seen[i], first + len(events) - 1)

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
        ipp = ipyparallel()
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
