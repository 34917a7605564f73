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

from workbench.errors import LaunchError
from workbench.training.request import PartitionSpec, TrainRequest

__all__ = ["ClusterSpec", "PartitionSpec", "TrainRequest"]


@dataclass(frozen=True)
class ClusterSpec:
    """A local ipyparallel cluster to start, or an existing one to connect to.

    Parameters
    ----------
    n : int
        Engines to start.
    ip : str
        Address the controller binds to; loopback unless told otherwise.
    profile_dir : str, optional
        Profile folder; a private temporary one when starting, or the folder of an existing
        cluster when connecting.
    profile : str, optional
        Name of an existing IPython profile to connect to (``ipcluster start --profile=NAME``).
    cluster_id : str, optional
        Id of the cluster within the profile.
    engine_timeout : float
        Seconds to wait for engines to register.
    """

    n: int = 2
    ip: str = "127.0.0.1"
    profile_dir: str | None = None
    profile: str | None = None
    cluster_id: str | None = None
    engine_timeout: float = 120.0

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise LaunchError(f"a cluster needs n >= 1 engines, got n={self.n!r}")
        if self.engine_timeout <= 0:
            raise LaunchError(f"engine_timeout must be > 0 seconds, got {self.engine_timeout!r}")
