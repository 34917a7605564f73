"""What to run and where: :class:`ClusterSpec`, :class:`PartitionSpec`, :class:`TrainRequest`.

Frozen dataclasses, validated on construction. ``%%train`` builds a :class:`TrainRequest` from
its arguments and the cell's objects and hands it to :func:`workbench.cluster.launch.launch`;
scripts can do the same without IPython.

Examples
--------
>>> PartitionSpec.parse("geohash:7")
PartitionSpec(scheme='geohash', precision=7)
>>> ClusterSpec(n=2).ip
'127.0.0.1'
>>> TrainRequest(model=None, train_data=[], loss_fn=None, strategy="fsdp", engines=2,
...              sharding="hybrid_shard").sharding
'hybrid_shard'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.errors import LaunchError
from workbench.training.strategies import SHARDING_MODES, STRATEGIES

__all__ = [
    "STRATEGIES",
    "SHARDING_MODES",
    "SCHEMES",
    "ClusterSpec",
    "PartitionSpec",
    "TrainRequest",
]

SCHEMES = ("geohash", "quadkey")
_MAX_PRECISION = {"geohash": 12, "quadkey": 23}


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


@dataclass(frozen=True)
class PartitionSpec:
    """A geocode scheme and precision: one model per cell of that size."""

    scheme: str = "geohash"
    precision: int = 5

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise LaunchError(f"unknown partition scheme {self.scheme!r}; use one of {SCHEMES}")
        top = _MAX_PRECISION[self.scheme]
        if not isinstance(self.precision, int) or not 1 <= self.precision <= top:
            raise LaunchError(
                f"{self.scheme} precision must be an integer in 1..{top}, got {self.precision!r}"
            )

    @classmethod
    def parse(cls, text: str) -> PartitionSpec:
        """Parse ``"scheme:precision"`` (``"geohash:5"``, ``"quadkey:14"``).

        Raises
        ------
        LaunchError
            For anything else.
        """
        scheme, sep, precision = str(text).partition(":")
        if not sep or not precision.strip().isdigit():
            raise LaunchError(
                "partition must look like 'geohash:5' or 'quadkey:14' (scheme:precision), "
                f"got {text!r}"
            )
        return cls(scheme.strip().lower(), int(precision))

    def __str__(self) -> str:
        return f"{self.scheme}:{self.precision}"


def _check_positive(
    name: str, value: Any, *, allow_none: bool = False, integer: bool = True
) -> None:
    if value is None and allow_none:
        return
    ok = (
        isinstance(value, int) and not isinstance(value, bool)
        if integer
        else isinstance(value, int | float)
    )
    if not ok or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise LaunchError(f"{name} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class TrainRequest:
    """One training run: the objects to train and how to run it.

    Parameters
    ----------
    model, train_data, loss_fn
        A ``torch.nn.Module``, a ChipSet or map-style torch Dataset of ``(x, y)`` items, and
        ``loss_fn(prediction, target) -> scalar tensor``.
    optimizer : torch.optim.Optimizer or callable, optional
        An optimizer (its class and hyper-parameters are reused on each worker) or a factory
        ``f(params) -> Optimizer``; default Adam.
    val_data, metrics, targets
        Held-out data, ``{name: fn(pred, y)}`` metrics, and a ChipSet's target variables.
    geocodes, val_geocodes, partition_fn
        Partition of each sample of a plain Dataset (for ``partitioned``).
    strategy : {"single", "ddp", "fsdp", "partitioned"}
        How to train (see :mod:`workbench.training.strategies`).
    engines : int
        Worker processes.
    epochs, batch_size, lr, seed
        Training settings (``lr=None`` keeps the optimizer's own).
    sharding, shard_group_size
        FSDP sharding mode, and the shard group size of ``hybrid_shard``.
    partition : PartitionSpec, optional
        Geocode cells for ``partitioned``.
    transfer : {"glcm"}, optional
        Warm-start partitions from texture-similar ones.
    transfer_clusters : int, optional
        Texture clusters (default: chosen by silhouette score).
    tokens_per_node : int
        Virtual nodes per engine on the placement ring.
    lockstep : bool
        Partitioned: let each worker train its partitions' models all at once when that is the
        same training (:mod:`workbench.training.lockstep`; default); ``False`` trains them one
        after another, as the paper's partitioned runs did.
    timeout : float, optional
        Seconds before the run is stopped.
    resume : str, optional
        Checkpoint file or run folder to continue from.
    checkpoint_dir : str, optional
        Where checkpoints go (default: a new folder under the temporary directory).
    checkpoint : bool
        Write a checkpoint every epoch (default ``True``).
    name : str, optional
        Label of the run in a :class:`~workbench.training.result.Comparison`.
    """

    model: Any
    train_data: Any
    loss_fn: Callable[[Any, Any], Any] | None
    optimizer: Any = None
    val_data: Any = None
    metrics: Mapping[str, Callable[[Any, Any], Any]] | None = None
    targets: Sequence[str] | None = None
    geocodes: Sequence[str] | None = None
    val_geocodes: Sequence[str] | None = None
    partition_fn: Callable[[int], str] | None = None
    strategy: str = "single"
    engines: int = 1
    epochs: int = 1
    batch_size: int = 32
    lr: float | None = None
    seed: int = 0
    sharding: str = "full_shard"
    shard_group_size: int | None = None
    partition: PartitionSpec | None = None
    transfer: str | None = None
    transfer_clusters: int | None = None
    tokens_per_node: int = 256
    lockstep: bool = True
    timeout: float | None = None
    resume: str | None = None
    checkpoint_dir: str | None = None
    checkpoint: bool = True
    name: str | None = None
    pg_timeout: float = 300.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise LaunchError(f"unknown strategy {self.strategy!r}; use one of {STRATEGIES}")
        if self.sharding not in SHARDING_MODES:
            raise LaunchError(f"unknown sharding {self.sharding!r}; use one of {SHARDING_MODES}")
        for name in ("engines", "epochs", "batch_size", "tokens_per_node"):
            _check_positive(name, getattr(self, name))
        _check_positive("shard_group_size", self.shard_group_size, allow_none=True)
        _check_positive("transfer_clusters", self.transfer_clusters, allow_none=True)
        for name in ("timeout", "lr", "pg_timeout"):
            _check_positive(name, getattr(self, name), allow_none=True, integer=False)
        if self.strategy == "partitioned" and self.partition is None:
            object.__setattr__(self, "partition", PartitionSpec())
        if self.transfer not in (None, "glcm"):
            raise LaunchError(f"unknown transfer {self.transfer!r}; the only one is 'glcm'")
        if self.transfer and self.strategy != "partitioned":
            raise LaunchError(
                "transfer='glcm' warm-starts partitions: it needs strategy='partitioned'"
            )
        if self.strategy in ("ddp", "fsdp") and self.engines < 2:
            raise LaunchError(
                f"strategy {self.strategy!r} needs at least 2 engines, got {self.engines}; "
                "use strategy='single' for one process"
            )
        if self.targets is not None and not isinstance(self.targets, tuple):
            object.__setattr__(self, "targets", tuple(self.targets))

    @property
    def label(self) -> str:
        """The run's name, or one made from the strategy (``"fsdp[full_shard]x2"``)."""
        if self.name:
            return self.name
        if self.strategy == "fsdp":
            return f"fsdp[{self.sharding}]x{self.engines}"
        if self.strategy == "partitioned":
            glcm = "+glcm" if self.transfer else ""
            return f"partitioned[{self.partition}]{glcm}x{self.engines}"
        if self.strategy == "single":
            return "single"
        return f"{self.strategy}x{self.engines}"

    def replace(self, **changes: Any) -> TrainRequest:
        """Return a copy with ``changes`` applied (and validated)."""
        return replace(self, **changes)
