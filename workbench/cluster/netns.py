"""Hosts on one machine: network namespaces on a bridge, each link shaped to a rate.

:class:`HostNetwork` makes ``n`` hosts, each a Linux network namespace with one interface
(``eth0``) on a private test subnet, joined by veth pairs to a bridge in the root namespace,
whose address (``.1``) is where a controller and a file service listen. Every host link is
shaped with ``tc`` (an ``htb`` tree, in both directions) to ``rate_mbit``; the controller's
own link (the bridge's egress) is shaped to the same rate with ``tbf``. The subnet has no
route out: traffic stays inside these namespaces and the root namespace's bridge.

Bytes are counted by the kernel at the interfaces: the root side of each veth pair
(``/sys/class/net/<link>/statistics``: what the host received and sent) and, split by
traffic class, the ``htb`` classes of each direction:

=============  ===================================================================
class          packets
=============  ===================================================================
``data``       to or from the controller address on a port given to
               :meth:`HostNetwork.classify_data_port` (the file service)
``control``    any other traffic with the controller address (tasks, results,
               heartbeats of the ipyparallel controller)
``training``   between two hosts (collectives, the rendezvous store)
``other``      anything else (ARP)
=============  ===================================================================

Everything is removed at exit: :meth:`HostNetwork.close` (the context manager's exit) kills
the processes inside the namespaces, deletes the namespaces (their veth pairs go with them)
and the bridge; an ``atexit`` hook and SIGTERM/SIGHUP handlers do the same if the process
ends first, and :func:`sweep_leftovers` removes what a killed process left behind (objects
named with the prefix whose owner process is gone). Needs root, ``ip`` and ``tc``:
:func:`netns_available` says whether they are here, and why not.

Examples
--------
>>> ok, reason = netns_available()
>>> isinstance(ok, bool) and isinstance(reason, str)
True
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench._files import pid_alive
from workbench.cluster.linkstats import CLASSID as _CLASSID
from workbench.cluster.linkstats import TRAFFIC_CLASSES, LinkCounters, class_bytes
from workbench.errors import HostNetworkError

__all__ = [
    "TRAFFIC_CLASSES",
    "Host",
    "LinkCounters",
    "HostNetwork",
    "netns_available",
    "sweep_leftovers",
]

_PREFIX = "wbn"
_STATE_DIR = Path(tempfile.gettempdir()) / "workbench-netns"
_LIVE: dict[str, HostNetwork] = {}
_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _run(*argv: str, netns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise HostNetworkError(
            f"`{' '.join(cmd)}` failed with exit code {proc.returncode}: "
            f"{(proc.stderr or proc.stdout).strip()}"
        )
    return proc.stdout


def _tc(netns: str | None, command: str) -> str:
    return _run("tc", *command.split(), netns=netns)


def netns_available() -> tuple[bool, str]:
    """Whether namespaced hosts can be made here, and the reason when not.

    Needs Linux, root (``CAP_NET_ADMIN``), and the ``ip`` and ``tc`` commands of iproute2.
    """
    if not Path("/proc/self/ns/net").exists():
        return False, "network namespaces need Linux (/proc/self/ns/net is missing)"
    if os.geteuid() != 0:
        return False, f"network namespaces need root; this process runs as uid {os.geteuid()}"
    missing = [c for c in ("ip", "tc") if shutil.which(c) is None]
    if missing:
        return False, f"{' and '.join(missing)} not found on PATH (install iproute2)"
    return True, "root, ip and tc are available"


@dataclass(frozen=True)
class Host:
    """One namespaced host: its name, namespace, address, interface, link and data folder."""

    name: str
    netns: str
    address: str
    ifname: str
    link: str
    data_dir: Path


def _state_path(run_id: str) -> Path:
    return _STATE_DIR / f"{run_id}.json"


def _names(prefix: str) -> tuple[list[str], list[str]]:
    namespaces = [
        line.split()[0] for line in _run("ip", "netns", "list").splitlines() if line.strip()
    ]
    links = [
        m.group(1) for m in re.finditer(r"^\d+: ([^:@\s]+)", _run("ip", "-o", "link", "show"), re.M)
    ]
    return (
        [n for n in namespaces if n.startswith(f"{prefix}-")],
        [link for link in links if link.startswith(prefix)],
    )


def _run_id(name: str, prefix: str) -> str:
    rest = name[len(prefix) :].lstrip("-")
    return rest[:4]


def _kill_namespace_processes(netns: str, grace_s: float = 3.0) -> None:
    out = _run("ip", "netns", "pids", netns, check=False)
    pids = [int(p) for p in out.split() if p.isdigit()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        end = time.monotonic() + grace_s
        while pids and time.monotonic() < end:
            pids = [p for p in pids if pid_alive(p) and not _zombie(p)]
            time.sleep(0.05)
        if not pids:
            return


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def sweep_leftovers(prefix: str = _PREFIX, *, force: bool = False) -> list[str]:
    """Remove namespaces and links named ``prefix...`` whose owner process has gone.

    A :class:`HostNetwork` records its owner's pid before it creates anything and removes the
    record last, so an object without a live owner was left by a process that was killed.
    ``force=True`` removes them all (only do that when no other run uses the prefix).

    Returns
    -------
    list of str
        The names removed.
    """
    ok, reason = netns_available()
    if not ok:
        raise HostNetworkError(f"cannot sweep network namespaces: {reason}")
    namespaces, links = _names(prefix)
    owners: dict[str, bool] = {}
    for name in namespaces + links:
        rid = _run_id(name, prefix)
        if rid not in owners:
            try:
                pid = int(json.loads(_state_path(rid).read_text())["pid"])
                owners[rid] = pid_alive(pid) and not force
            except (OSError, ValueError, KeyError):
                owners[rid] = False
    removed = []
    for ns in namespaces:
        if not owners[_run_id(ns, prefix)]:
            _kill_namespace_processes(ns)
            _run("ip", "netns", "delete", ns, check=False)
            removed.append(ns)
    for link in _names(prefix)[1]:
        if not owners.get(_run_id(link, prefix), False):
            _run("ip", "link", "delete", link, check=False)
            removed.append(link)
    for rid, alive in owners.items():
        if not alive:
            _state_path(rid).unlink(missing_ok=True)
    return removed


def _pick_subnet(base: str = "10.231.0.0/16") -> ipaddress.IPv4Network:
    used = _run("ip", "-4", "-o", "addr", "show") + _run("ip", "-4", "route", "show")
    taken = {
        ipaddress.IPv4Network(m, strict=False) for m in re.findall(r"\d+\.\d+\.\d+\.\d+/\d+", used)
    }
    nets = list(ipaddress.IPv4Network(base).subnets(new_prefix=24))
    start = secrets.randbelow(len(nets))
    for net in nets[start:] + nets[:start]:
        if not any(net.overlaps(t) for t in taken):
            return net
    raise HostNetworkError(f"no free /24 left in {base} for the host subnet")


def _burst(rate_mbit: float) -> str:
    # at least one timer tick of data (HZ >= 100) and a whole GSO segment (64 KiB)
    return f"{max(64 * 1024, int(rate_mbit * 1e6 / 8 / 100))}b"


class HostNetwork:
    """``n`` namespaced hosts on a bridge, links shaped to ``rate_mbit`` (module docstring).

    Parameters
    ----------
    n : int
        Number of hosts (``host-0`` ...).
    rate_mbit : float
        Rate of every link, each direction, in Mbit/s (1000: the paper's commodity cluster).
    prefix : str
        Name prefix of namespaces and links (3-5 letters); leftovers are swept by it.
    root : path, optional
        Folder for the hosts' data folders (``root/host-i``); a temporary one by default,
        removed at close (a given one is kept).
    shape_controller : bool
        Shape the controller's link (the bridge's egress) too.

    Raises
    ------
    HostNetworkError
        Not root / no iproute2 (with the reason), a bad argument, or a failed command (what
        was made so far is removed before it propagates).

    Examples
    --------
    >>> with HostNetwork(2, rate_mbit=100) as net:  # doctest: +SKIP
    ...     net.run(net.hosts[0], "ip", "-4", "addr", "show", "eth0")
    """

    def __init__(
        self,
        n: int,
        *,
        rate_mbit: float = 1000.0,
        prefix: str = _PREFIX,
        root: str | os.PathLike[str] | None = None,
        shape_controller: bool = True,
    ) -> None:
        if not isinstance(n, int) or not 1 <= n <= 200:
            raise HostNetworkError(f"n must be an integer in 1..200 hosts, got {n!r}")
        if not rate_mbit or rate_mbit <= 0:
            raise HostNetworkError(f"rate_mbit must be a positive number, got {rate_mbit!r}")
        if not re.fullmatch(r"[a-z]{3,5}", prefix):
            raise HostNetworkError(f"prefix must be 3-5 lowercase letters, got {prefix!r}")
        self.n = n
        self.rate_mbit = float(rate_mbit)
        self.prefix = prefix
        self.shape_controller = shape_controller
        self.run_id = secrets.token_hex(2)
        self._given_root = root is not None
        self.root = Path(root) if root is not None else None
        self.hosts: list[Host] = []
        self.bridge = f"{prefix}{self.run_id}br"
        self.address = ""
        self.subnet: ipaddress.IPv4Network | None = None
        self._data_ports: list[int] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> HostNetwork:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> HostNetwork:
        """Sweep leftovers, then make the bridge, namespaces, links, shaping and folders."""
        ok, reason = netns_available()
        if not ok:
            raise HostNetworkError(f"cannot make namespaced hosts: {reason}")
        if self._started:
            return self
        sweep_leftovers(self.prefix)
        _STATE_DIR.mkdir(parents=True, exist_ok=True)
        _state_path(self.run_id).write_text(json.dumps({"pid": os.getpid(), "n": self.n}))
        _register(self)
        self._started = True
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def _make(self) -> None:
        self.subnet = _pick_subnet()
        addrs = list(self.subnet.hosts())
        self.address = str(addrs[0])
        plen = self.subnet.prefixlen
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="workbench-hosts-"))
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.address}/{plen}", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        if self.shape_controller:
            rate = f"{self.rate_mbit}mbit"
            _run("tc", "qdisc", "add", "dev", self.bridge, "root", "tbf", "rate", rate,
                 "burst", _burst(self.rate_mbit), "latency", "50ms")  # fmt: skip
        for i in range(self.n):
            name = f"host-{i}"
            netns = f"{self.prefix}-{self.run_id}-h{i}"
            link, peer = f"{self.prefix}{self.run_id}v{i}", f"{self.prefix}{self.run_id}p{i}"
            address = str(addrs[9 + i])
            _run("ip", "netns", "add", netns)
            _run("ip", "link", "add", link, "type", "veth", "peer", "name", peer)
            _run("ip", "link", "set", peer, "netns", netns)
            _run("ip", "link", "set", peer, "name", "eth0", netns=netns)
            _run("ip", "addr", "add", f"{address}/{plen}", "dev", "eth0", netns=netns)
            _run("ip", "link", "set", "eth0", "up", netns=netns)
            _run("ip", "link", "set", "lo", "up", netns=netns)
            _run("ip", "link", "set", link, "master", self.bridge)
            _run("ip", "link", "set", link, "up")
            data_dir = self.root / name
            data_dir.mkdir(parents=True, exist_ok=True)
            host = Host(name, netns, address, "eth0", link, data_dir)
            self._shape(host)
            self.hosts.append(host)

    def _shape(self, host: Host) -> None:
        """Put an htb tree on both ends of the host's link: one rate, four counted classes."""
        rate, burst = f"{self.rate_mbit}mbit", _burst(self.rate_mbit)
        share = f"{self.rate_mbit / len(_CLASSID)}mbit"
        for dev, netns, side in ((host.link, None, "src"), ("eth0", host.netns, "dst")):
            _tc(netns, f"qdisc add dev {dev} root handle 1: htb default 40")
            _tc(netns, f"class add dev {dev} parent 1: classid 1:1 htb rate {rate} ceil {rate} "
                       f"burst {burst} cburst {burst}")  # fmt: skip
            for classid in _CLASSID.values():
                _tc(netns, f"class add dev {dev} parent 1:1 classid {classid} htb rate {share} "
                           f"ceil {rate} burst {burst} cburst {burst} quantum 60000")  # fmt: skip
            # prio 2: anything with the controller; prio 3: anything else in the subnet
            match = f"filter add dev {dev} parent 1: protocol ip"
            _tc(netns, f"{match} prio 2 u32 match ip {side} {self.address}/32 "
                       f"flowid {_CLASSID['control']}")  # fmt: skip
            _tc(netns, f"{match} prio 3 u32 match ip {side} {self.subnet} "
                       f"flowid {_CLASSID['training']}")  # fmt: skip
            for port in self._data_ports:
                self._data_filter(dev, netns, side, port)

    def _data_filter(self, dev: str, netns: str | None, side: str, port: int) -> None:
        sport = "sport" if side == "src" else "dport"
        _tc(netns, f"filter add dev {dev} parent 1: protocol ip prio 1 u32 "
                   f"match ip {side} {self.address}/32 match ip {sport} {port} 0xffff "
                   f"flowid {_CLASSID['data']}")  # fmt: skip

    def classify_data_port(self, port: int) -> None:
        """Count traffic with the controller address on ``port`` as ``data`` (file service)."""
        if not isinstance(port, int) or not 0 < port < 65536:
            raise HostNetworkError(f"port must be an integer in 1..65535, got {port!r}")
        self._data_ports.append(port)
        for host in self.hosts:
            self._data_filter(host.link, None, "src", port)
            self._data_filter("eth0", host.netns, "dst", port)

    # -- processes -------------------------------------------------------------------------
    def popen(
        self, host: Host, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **kw: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``host``'s namespace (tracked, stopped at :meth:`close`)."""
        full = {**os.environ, **(env or {})}
        proc = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, *argv], env=full, start_new_session=True, **kw
        )
        self._procs.append(proc)
        return proc

    def run(self, host: Host, *argv: str) -> str:
        """Run a command inside ``host``'s namespace and return its output."""
        return _run(*argv, netns=host.netns)

    # -- counters --------------------------------------------------------------------------
    def counters(self) -> LinkCounters:
        """Snapshot the byte counters of every link (subtract two for a phase's bytes)."""
        hosts: dict[str, Any] = {}
        for h in self.hosts:
            stats = Path("/sys/class/net") / h.link / "statistics"
            to_host = class_bytes(_run("tc", "-s", "class", "show", "dev", h.link))
            from_host = class_bytes(_run("tc", "-s", "class", "show", "dev", "eth0", netns=h.netns))
            hosts[h.name] = {
                "rx": int((stats / "tx_bytes").read_text()),
                "tx": int((stats / "rx_bytes").read_text()),
                "classes": {
                    k: {"rx": to_host.get(c, 0), "tx": from_host.get(c, 0)}
                    for k, c in _CLASSID.items()
                },
            }
        bridge = Path("/sys/class/net") / self.bridge / "statistics"
        controller = {
            "rx": int((bridge / "rx_bytes").read_text()),
            "tx": int((bridge / "tx_bytes").read_text()),
        }
        return LinkCounters(hosts, controller)

    @contextlib.contextmanager
    def measure(self) -> Iterator[dict[str, Any]]:
        """``with net.measure() as m:`` fills ``m["bytes"]`` (a :class:`LinkCounters` delta)."""
        out: dict[str, Any] = {}
        before = self.counters()
        try:
            yield out
        finally:
            out["bytes"] = self.counters() - before

    # -- teardown --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every process in the namespaces and remove namespaces, links and folders."""
        if not self._started:
            return
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(3.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(3.0)
        namespaces = _names(self.prefix)[0]
        mine = f"{self.prefix}-{self.run_id}-"
        for ns in [n for n in namespaces if n.startswith(mine)]:
            _kill_namespace_processes(ns)
            _run("ip", "netns", "delete", ns, check=False)
        for link in [
            lk for lk in _names(self.prefix)[1] if lk.startswith(self.prefix + self.run_id)
        ]:
            _run("ip", "link", "delete", link, check=False)
        if self.root is not None and not self._given_root:
            shutil.rmtree(self.root, ignore_errors=True)
        _state_path(self.run_id).unlink(missing_ok=True)
        self._started = False
        self.hosts = []
        with _LOCK:
            _LIVE.pop(self.run_id, None)

    def __repr__(self) -> str:
        state = f"{self.address} {len(self.hosts)} hosts" if self._started else "not started"
        return f"HostNetwork(n={self.n}, rate_mbit={self.rate_mbit:g}, {state})"


# -- cleanup at exit and on signals ------------------------------------------------------------
def _close_all() -> None:
    with _LOCK:
        live = list(_LIVE.values())
    for net in live:
        with contextlib.suppress(Exception):
            net.close()


def _on_signal(signum: int, frame: Any) -> None:
    _close_all()
    previous = _PREVIOUS.get(signum)
    if callable(previous):
        previous(signum, frame)
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


_PREVIOUS: dict[int, Any] = {}


def _register(net: HostNetwork) -> None:
    global _HANDLERS_INSTALLED
    with _LOCK:
        _LIVE[net.run_id] = net
        if _HANDLERS_INSTALLED:
            return
        _HANDLERS_INSTALLED = True
    atexit.register(_close_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(sig)
            if previous in (signal.SIG_IGN,):
                continue
            _PREVIOUS[sig] = previous
            signal.signal(sig, _on_signal)
