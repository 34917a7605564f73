"""Clusters and launchers: where training processes run.

* :mod:`~workbench.cluster.spec`: :class:`ClusterSpec`, :class:`PartitionSpec`,
  :class:`TrainRequest`.
* :mod:`~workbench.cluster.launch`: the :class:`Launcher` protocol, :class:`LocalProcessLauncher`,
  :func:`find_launcher` (``workbench.launchers`` entry points).
* :mod:`~workbench.cluster.ipp`: :class:`IpyparallelCluster` (local engines or a batch job:
  :mod:`~workbench.cluster.schedulers`, :mod:`~workbench.cluster.ipp_engines`; engine health:
  :mod:`~workbench.cluster.ipp_health`) and :class:`IpyparallelLauncher`
  (:mod:`~workbench.cluster.ipp_launcher`).
* :mod:`~workbench.cluster.nodes`: interfaces and reachable addresses, CPUs a job granted.
* :mod:`~workbench.cluster.orchestrate`: :func:`launch_training` (request -> TrainResult).
* :mod:`~workbench.cluster.netns` and :mod:`~workbench.cluster.hosts`: :class:`HostNetwork`
  (hosts as network namespaces, links shaped with ``tc``, bytes counted at the links) and
  :class:`HostCluster` (ipyparallel engines inside them); :mod:`~workbench.cluster.experiment`
  runs the seed paper's comparison on them.

Examples
--------
>>> from workbench.cluster import TrainRequest, find_launcher
>>> find_launcher("local").name
'local'
"""

from __future__ import annotations

from workbench.cluster.hosts import HostCluster, HostLauncher
from workbench.cluster.ipp import IpyparallelCluster, IpyparallelLauncher
from workbench.cluster.launch import (
    Launcher,
    LocalProcessLauncher,
    TrainingTimeoutError,
    WorkerCall,
    WorkerInfo,
    find_launcher,
)
from workbench.cluster.netns import HostNetwork
from workbench.cluster.orchestrate import launch_training, plan_partitions
from workbench.cluster.spec import ClusterSpec, PartitionSpec, TrainRequest

__all__ = [
    "ClusterSpec",
    "PartitionSpec",
    "TrainRequest",
    "Launcher",
    "LocalProcessLauncher",
    "IpyparallelCluster",
    "IpyparallelLauncher",
    "HostNetwork",
    "HostCluster",
    "HostLauncher",
    "TrainingTimeoutError",
    "WorkerCall",
    "WorkerInfo",
    "find_launcher",
    "launch_training",
    "plan_partitions",
]
