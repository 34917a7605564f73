"""ipyparallel engine launchers that start each engine inside a network namespace.

:class:`NetnsEngineSetLauncher` is ipyparallel's ``LocalEngineSetLauncher`` whose engines run
under ``ip netns exec <namespace> env K=V ... python -m ipyparallel.engine``: engine ``i`` in
the namespace (and with the environment) of ``hosts[i]``. Both ``ip netns exec`` and ``env``
exec the next program, so the launcher's pid is the engine's own and stopping or signalling
an engine works as for local engines. Imported lazily by :mod:`workbench.cluster.hosts`
(importing it imports ipyparallel).
"""

from __future__ import annotations

from typing import Any

from ipyparallel.cluster.launcher import LocalEngineLauncher, LocalEngineSetLauncher
from traitlets import Dict, List

__all__ = ["NetnsEngineLauncher", "NetnsEngineSetLauncher"]


class NetnsEngineLauncher(LocalEngineLauncher):  # type: ignore[misc]
    """One engine, started inside the namespace of its host (see the module docstring)."""

    def find_args(self) -> list[str]:
        """``ip netns exec NS env K=V ... <engine command>``."""
        hosts: list[dict[str, Any]] = list(self.parent.hosts)
        host = hosts[int(self.identifier) % len(hosts)]
        env = [f"{k}={v}" for k, v in sorted(dict(host.get("env", {})).items())]
        args: list[str] = super().find_args()
        return ["ip", "netns", "exec", str(host["netns"]), "env", *env, *args]


class NetnsEngineSetLauncher(LocalEngineSetLauncher):  # type: ignore[misc]
    """Engines in network namespaces: engine ``i`` on ``hosts[i % len(hosts)]``."""

    launcher_class = NetnsEngineLauncher
    hosts = List(
        Dict(),
        config=True,
        help="One {'netns': name, 'env': {...}} per host; engine i runs on host i.",
    )
