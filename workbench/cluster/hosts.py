"""Engines as hosts: an ipyparallel cluster whose engines live in network namespaces.

:class:`HostCluster` starts a :class:`~workbench.cluster.netns.HostNetwork` (``n`` namespaced
hosts on a bridge, links shaped to ``rate_mbit``), an ipyparallel controller bound to the
bridge address and one engine inside each host's namespace
(:mod:`workbench.cluster.ipp_netns`), so everything the engines exchange (tasks, results,
collectives, data) crosses the shaped links, where the kernel counts it. Each engine knows its
host through ``WORKBENCH_HOST`` (name), ``WORKBENCH_HOST_ADDR`` (address) and
``WORKBENCH_HOST_DATA`` (its own data folder).

:class:`HostLauncher` is the :class:`~workbench.cluster.ipp.IpyparallelLauncher` of such a
cluster: workers are named after their hosts (``host-0`` ...: the nodes of the placement ring),
each gets an equal share of the machine's cores (the hosts share one machine), and the
cluster's interface is ``eth0``: the rendezvous of a process group is host 0's address on its
own interface (``MASTER_ADDR`` = that address, ``GLOO_SOCKET_IFNAME=eth0``), so collectives
travel between namespaces. :meth:`HostCluster.serve` starts a
:class:`~workbench.cluster.fileserve.FileService` on the bridge address and counts its port as
``data`` traffic.

Needs root (see :func:`~workbench.cluster.netns.netns_available`). ``%cluster start --hosts N
--rate MBIT`` starts one from a notebook.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from typing import Any

from workbench._optional import lazy_import
from workbench._typing import PathLike
from workbench.cluster.fileserve import FileService
from workbench.cluster.ipp import IpyparallelCluster, IpyparallelLauncher
from workbench.cluster.launch import WorkerInfo
from workbench.cluster.netns import Host, HostNetwork
from workbench.cluster.spec import ClusterSpec
from workbench.errors import HostNetworkError, LaunchError

__all__ = ["HostCluster", "HostLauncher", "host_environment"]

#: Environment variables an engine of a :class:`HostCluster` finds its host in.
HOST_ENV = ("WORKBENCH_HOST", "WORKBENCH_HOST_ADDR", "WORKBENCH_HOST_DATA")


def host_environment() -> dict[str, str]:
    """On an engine of a :class:`HostCluster`: its host's name, address and data folder.

    Raises
    ------
    HostNetworkError
        Outside such an engine (the variables are not set).
    """
    missing = [k for k in HOST_ENV if k not in os.environ]
    if missing:
        raise HostNetworkError(
            f"{', '.join(missing)} not set: this process is not an engine of a HostCluster "
            "(start one with HostCluster.start(n) or %cluster start --hosts N)"
        )
    return {k: os.environ[k] for k in HOST_ENV}


def _host_name() -> str:
    """Run on an engine: the name of its host (its namespace), else the machine's."""
    return os.environ.get("WORKBENCH_HOST", socket.gethostname())


class HostCluster(IpyparallelCluster):
    """An ipyparallel cluster of engines in namespaced hosts (see the module docstring).

    Use :meth:`start`; :meth:`stop` stops the engines, the controller, a file service started
    by :meth:`serve` and (when it made it) the network. Also a context manager.
    """

    network: HostNetwork
    services: list[FileService]
    _owned_net: bool

    @classmethod
    def start(  # type: ignore[override]
        cls,
        n: int = 2,
        *,
        rate_mbit: float = 1000.0,
        network: HostNetwork | None = None,
        engine_timeout: float = 120.0,
    ) -> HostCluster:
        """Start ``n`` hosts (or use ``network``), a controller on its bridge and the engines.

        Raises
        ------
        HostNetworkError
            Not root, no iproute2, or the network could not be made (skip with the reason).
        LaunchError
            If the engines did not register within ``engine_timeout`` (everything made is
            removed first).
        """
        ipp = lazy_import("ipyparallel", extra="cluster", purpose="engines in namespaced hosts")
        owned_net = network is None
        net = network or HostNetwork(n, rate_mbit=rate_mbit)
        net.start()
        profile_dir = tempfile.mkdtemp(prefix="workbench-hosts-ipp-")
        cluster = None
        try:
            from traitlets.config import Config

            from workbench.cluster.ipp_netns import NetnsEngineSetLauncher

            config = Config()
            config.NetnsEngineSetLauncher.hosts = [
                {
                    "netns": h.netns,
                    "env": {
                        "WORKBENCH_HOST": h.name,
                        "WORKBENCH_HOST_ADDR": h.address,
                        "WORKBENCH_HOST_DATA": str(h.data_dir),
                    },
                }
                for h in net.hosts
            ]
            cluster = ipp.Cluster(
                n=len(net.hosts),
                profile_dir=profile_dir,
                controller_ip=net.address,
                controller_location=net.address,
                engine_launcher_class=NetnsEngineSetLauncher,
                engine_timeout=int(engine_timeout),
                log_level=logging.WARNING,
                config=config,
            )
            client = cluster.start_and_connect_sync()
        except BaseException as exc:
            if cluster is not None:
                cluster.stop_cluster_sync()
            shutil.rmtree(profile_dir, ignore_errors=True)
            if owned_net:
                net.close()
            if isinstance(exc, Exception) and not isinstance(exc, HostNetworkError):
                raise LaunchError(
                    f"could not start {len(net.hosts) or n} engines in namespaced hosts: {exc}"
                ) from exc
            raise
        spec = ClusterSpec(
            n=len(net.hosts), ip=net.address, profile_dir=profile_dir, interface="eth0"
        )
        handle = cls(client, cluster=cluster, owned=True, spec=spec)
        handle._private_dir = profile_dir
        handle.network = net
        handle.services = []
        handle._owned_net = owned_net
        return handle

    @property
    def hosts(self) -> list[Host]:
        """The hosts, in order (``host-0`` ...)."""
        return list(self.network.hosts)

    def info(self, ids: Any) -> dict[int, dict[str, Any]]:
        """Return what :meth:`IpyparallelCluster.info` says, with each engine's host name."""
        missing = [i for i in ids if i not in self._info]
        out = super().info(ids)
        if missing:
            names = self.ask(missing, _host_name, during="when asked for its host")
            for i, name in zip(missing, names, strict=True):
                self._info[i]["host"] = name
        return out

    def serve(self, root: PathLike) -> FileService:
        """Serve ``root`` to the hosts from the bridge address; its port counts as ``data``."""
        service = FileService(root, host=self.network.address)
        self.network.classify_data_port(service.port)
        self.services.append(service)
        return service

    def launcher(self) -> HostLauncher:
        """Return a launcher on this cluster's engines."""
        return HostLauncher(self)

    def status(self) -> dict[str, Any]:
        """Engines, hosts (name, namespace, address), link rate, controller address."""
        out = super().status()
        out["network"] = {
            "namespaces": True,
            "hosts": len(self.network.hosts),
            "link_rate_mbit": self.network.rate_mbit,
            "bridge_address": self.network.address,
            "host_addresses": {h.name: h.address for h in self.network.hosts},
        }
        return out

    def stop(self) -> None:
        """Stop file services, engines and controller, and the network if it was made here."""
        try:
            for service in self.services:
                service.close()
            self.services = []
            super().stop()
        finally:
            if getattr(self, "_owned_net", False):
                self.network.close()

    def __enter__(self) -> HostCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"HostCluster({len(self.network.hosts)} hosts at {self.network.rate_mbit:g} Mbit/s, "
            f"engines={self.engine_ids()})"
        )


class HostLauncher(IpyparallelLauncher):
    """Train on the engines of a :class:`HostCluster` (see the module docstring)."""

    name = "hosts"

    def __init__(self, cluster: HostCluster, **kwargs: Any) -> None:
        super().__init__(cluster, **kwargs)
        self._host_cluster = cluster

    def workers(self, n: int) -> list[WorkerInfo]:
        """Return the engines of hosts ``host-0 .. host-{n-1}``, named after their hosts.

        Each gets one equal share of the machine's cores as its torch threads (the hosts
        share one machine).
        """
        cluster = self._host_cluster
        ids = cluster.known_ids()
        dead = cluster.dead(ids)
        live = [e for e in ids if e not in dead]
        info = cluster.info(live)
        by_host = {str(info[e]["host"]): e for e in live}
        names = [h.name for h in cluster.hosts][:n]
        if len(names) < n or any(h not in by_host for h in names):
            raise LaunchError(
                f"asked for {n} workers but the cluster has live engines on hosts "
                f"{sorted(by_host)}; start one with HostCluster.start({n})"
            )
        self._ids = [by_host[h] for h in names]
        self._names = {by_host[h]: h for h in names}
        share = max(1, (os.cpu_count() or 1) // len(cluster.hosts))
        return [WorkerInfo(h, h, share, share) for h in names]
