"""What to run and where: :class:`ClusterSpec` (and, re-exported, the training request).

:class:`~workbench.training.request.TrainRequest` and
:class:`~workbench.training.request.PartitionSpec` live with the strategies that check them
(:mod:`workbench.training.request`); they are re-exported here, next to the cluster they run on.

Examples
--------
>>> ClusterSpec(n=2).ip
'127.0.0.1'
>>> PartitionSpec.parse("geohash:7")
PartitionSpec(scheme='geohash', precision=7)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.cluster.schedulers import check_options
from workbench.errors import LaunchError
from workbench.training.request import PartitionSpec, TrainRequest

__all__ = ["ClusterSpec", "PartitionSpec", "TrainRequest"]


@dataclass(frozen=True)
class ClusterSpec:
    """An ipyparallel cluster to start (local engines or a batch job), or one to connect to.

    Parameters
    ----------
    n : int
        Engines to start (or, when connecting, to wait for with ``wait``).
    ip : str
        Address the controller binds to; loopback unless told otherwise. ``0.0.0.0`` listens
        everywhere and advertises a reachable address (see ``interface``), never ``0.0.0.0``.
    profile_dir : str, optional
        Profile folder; a private temporary one when starting, or the folder of an existing
        cluster when connecting.
    profile : str, optional
        Name of an IPython profile (``ipython profile create --parallel --profile=NAME``): its
        ``ipcluster_config.py`` configures the launcher, and its ``security/`` folder holds the
        connection files (on storage the compute nodes share).
    cluster_id : str, optional
        Id of the cluster within the profile.
    engine_timeout : float
        Seconds to wait for engines to register (a queued job waits in this time).
    launcher : str, optional
        Engine launcher (:data:`workbench.cluster.schedulers.LAUNCHERS`): ``local``, ``mpi``,
        ``ssh``, ``slurm``, ``pbs``, ``sge``, ``lsf`` or ``htcondor``. By default the
        profile's (``c.Cluster.engine_launcher_class``), else ``local``.
    queue, account, time_limit : str, optional
        Batch queue (Slurm partition), account to charge, time limit (``90``, ``1:30:00``,
        ``2-00:00:00``) of the engines' job.
    gpus_per_engine, cpus_per_engine : int, optional
        GPUs and CPUs the job grants each engine.
    directives : tuple of str
        Extra directive lines of the job script (``--qos=debug`` or ``#SBATCH --qos=debug``).
    interface : str, optional
        Network interface of the cluster: the controller binds to its address (with ``ip``
        ``0.0.0.0``: advertises it), and DDP/FSDP rendezvous and gloo/NCCL use it.
    """

    n: int = 2
    ip: str = "127.0.0.1"
    profile_dir: str | None = None
    profile: str | None = None
    cluster_id: str | None = None
    engine_timeout: float = 120.0
    launcher: str | None = None
    queue: str | None = None
    account: str | None = None
    time_limit: str | None = None
    gpus_per_engine: int | None = None
    cpus_per_engine: int | None = None
    directives: tuple[str, ...] = ()
    interface: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise LaunchError(f"a cluster needs n >= 1 engines, got n={self.n!r}")
        if self.engine_timeout <= 0:
            raise LaunchError(f"engine_timeout must be > 0 seconds, got {self.engine_timeout!r}")
        if self.profile and self.profile_dir:
            raise LaunchError(
                f"give a profile name or a profile folder, not both (profile={self.profile!r}, "
                f"profile_dir={self.profile_dir!r})"
            )
        for name in ("gpus_per_engine", "cpus_per_engine"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise LaunchError(f"{name} must be an integer >= 1, got {value!r}")
        object.__setattr__(self, "directives", tuple(self.directives))
        if self.launcher is not None:
            object.__setattr__(self, "launcher", self.launcher.lower())
            check_options(self.launcher, **self.batch_options())
        elif any(self.batch_options().values()):
            check_options("slurm", **self.batch_options())  # the values themselves are checked

    def batch_options(self) -> dict[str, Any]:
        """Return the batch scheduler options, as :func:`.schedulers.check_options` names them."""
        return {
            "queue": self.queue,
            "account": self.account,
            "time_limit": self.time_limit,
            "gpus_per_engine": self.gpus_per_engine,
            "cpus_per_engine": self.cpus_per_engine,
            "directives": self.directives,
        }
