"""What a host offers a cluster: its interfaces and their addresses, and the CPUs a job granted.

One home for the addressing and CPU rules of clusters that span hosts:

* :func:`interfaces`: this host's interfaces that are up, with their IPv4 address.
* :func:`interface_address`: the address of one interface (a clear error naming the others).
* :func:`reachable_address`: an address of this host that other hosts can reach (never a
  loopback address such as the ``127.0.1.1`` that Debian maps the host name to): the chosen
  interface's, else the host name's when it names a real interface, else the default route's.
* :func:`controller_addresses`: where a controller binds and what its connection file
  advertises (never ``0.0.0.0``).
* :func:`cpu_allocation` and :func:`threads_per_worker`: torch threads from what the job
  granted (``SLURM_CPUS_PER_TASK``, the affinity mask), not from the node's CPU count.

Examples
--------
>>> interface_address(loopback_ifname())
'127.0.0.1'
>>> controller_addresses("127.0.0.1", None)
('127.0.0.1', '127.0.0.1')
>>> threads_per_worker([("a", (0, 1, 2, 3), None), ("a", (0, 1, 2, 3), None), ("b", range(16), 4)])
[2, 2, 4]
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from workbench._optional import lazy_import
from workbench.errors import LaunchError

__all__ = [
    "ANY_ADDRESS",
    "interfaces",
    "interface_address",
    "reachable_address",
    "controller_addresses",
    "cpu_allocation",
    "threads_per_worker",
    "free_port",
    "loopback_ifname",
]

#: Bind addresses that mean "every interface": never an address to advertise.
ANY_ADDRESS = frozenset({"0.0.0.0", "*", "::", ""})  # noqa: S104 (a set to compare with)


def _is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1"


def interfaces() -> dict[str, str]:
    """Return ``{name: IPv4 address}`` of this host's interfaces that are up."""
    psutil = lazy_import("psutil", extra="cluster", purpose="interface addresses")
    stats = psutil.net_if_stats()
    out: dict[str, str] = {}
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        ipv4 = [a.address for a in addrs if a.family == socket.AF_INET]
        if ipv4:
            out[name] = ipv4[0]
    return out


def interface_address(name: str) -> str:
    """Return the IPv4 address of interface ``name`` on this host.

    Raises
    ------
    LaunchError
        If this host has no such interface that is up with an IPv4 address (the message
        lists the ones it has).
    """
    found = interfaces()
    if name not in found:
        have = ", ".join(f"{k} ({v})" for k, v in sorted(found.items())) or "none"
        raise LaunchError(
            f"interface {name!r} is not up with an IPv4 address on {socket.gethostname()}; "
            f"its interfaces: {have}. Choose one of them with --interface"
        )
    return found[name]


def _default_route_interface() -> str | None:
    """Return the interface of the IPv4 default route (Linux), else ``None``."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                return fields[0]
    return None


def reachable_address(interface: str | None = None) -> tuple[str, str]:
    """Return ``(address, interface)`` of this host that other hosts can reach.

    The chosen ``interface``'s address; else the address the host name resolves to, when
    that is a non-loopback address of one of this host's interfaces; else the only
    non-loopback interface, or the default route's among several.

    Raises
    ------
    LaunchError
        If ``interface`` does not exist, if this host has no non-loopback interface, or if
        several could serve and none is the default route's (choose with ``--interface``).
    """
    if interface:
        return interface_address(interface), interface
    found = {k: v for k, v in interfaces().items() if not _is_loopback(v)}
    by_address = {v: k for k, v in found.items()}
    with contextlib.suppress(OSError):
        for addr in socket.gethostbyname_ex(socket.gethostname())[2]:
            if addr in by_address:
                return addr, by_address[addr]
    if len(found) == 1:
        name, addr = next(iter(found.items()))
        return addr, name
    route = _default_route_interface()
    if route in found:
        return found[route], route
    host = socket.gethostname()
    if not found:
        raise LaunchError(
            f"{host} has no interface but loopback with an IPv4 address: processes on other "
            "hosts cannot reach it. Keep the cluster on loopback (one host), or bring up the "
            "cluster's network interface"
        )
    raise LaunchError(
        f"{host} has several interfaces "
        f"({', '.join(f'{k} {v}' for k, v in sorted(found.items()))}) and its host name "
        "does not resolve to one of them: choose the one the other hosts reach with --interface"
    )


def controller_addresses(ip: str, interface: str | None) -> tuple[str, str]:
    """Return ``(bind, location)``: where a controller listens and the address it advertises.

    ``interface`` with the default loopback ``ip`` binds to that interface's address only;
    ``0.0.0.0`` binds everywhere and advertises a reachable address (the chosen interface's,
    see :func:`reachable_address`), never ``0.0.0.0``; any other ``ip`` is both.
    """
    if ip in ANY_ADDRESS:
        return ip or "0.0.0.0", reachable_address(interface)[0]  # noqa: S104 (asked for)
    if interface:
        addr = interface_address(interface)
        if ip != "127.0.0.1" and ip != addr:
            raise LaunchError(
                f"--ip {ip} is not the address of --interface {interface} ({addr}): give one "
                "of them, or --ip 0.0.0.0 to listen everywhere and advertise the interface"
            )
        return addr, addr
    return ip, ip


def cpu_allocation() -> tuple[tuple[int, ...], int | None]:
    """Return ``(cpu ids this process may run on, cpus granted to this task alone)``.

    The first is the affinity mask (what a job's cgroup or binding leaves, not the node's
    count); the second is ``SLURM_CPUS_PER_TASK`` when the scheduler set it, else ``None``.
    """
    try:
        cpus = tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        cpus = tuple(range(os.cpu_count() or 1))
    own: int | None = None
    with contextlib.suppress(ValueError):
        own = int(os.environ.get("SLURM_CPUS_PER_TASK", "")) or None
    return cpus, own


def threads_per_worker(workers: Sequence[tuple[str, Sequence[int], int | None]]) -> list[int]:
    """Torch threads for each worker ``(host, cpu ids, cpus granted alone)``.

    A worker the scheduler granted CPUs alone gets that many (at most its mask); workers on
    one host with the same mask share it evenly; at least one thread each.
    """
    out = []
    for host, cpus, own in workers:
        if own:
            out.append(max(1, min(own, len(cpus))))
            continue
        sharing = sum(1 for h, c, o in workers if h == host and not o and tuple(c) == tuple(cpus))
        out.append(max(1, len(cpus) // max(1, sharing)))
    return out


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def loopback_ifname() -> str | None:
    """Name of the loopback interface (``lo``, ``lo0``), for ``GLOO_SOCKET_IFNAME``."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((n for n in names if n.startswith("lo")), None)
