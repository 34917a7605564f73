"""What to train and how: :class:`TrainRequest` and the geocode cells of :class:`PartitionSpec`.

Frozen dataclasses, validated on construction: the generic rules here, the strategy's own rules
by the strategy (:mod:`workbench.training.strategies`, looked up by name in its registry).
``%%train`` builds a :class:`TrainRequest` from its arguments and the cell's objects and hands
it to :func:`workbench.cluster.orchestrate.launch_training`; scripts can do the same without
IPython.

Examples
--------
>>> PartitionSpec.parse("geohash:7")
PartitionSpec(scheme='geohash', precision=7)
>>> TrainRequest(model=None, train_data=[], loss_fn=None, strategy="fsdp", engines=2,
...              sharding="hybrid_shard").sharding
'hybrid_shard'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from workbench.errors import GeocodeError, LaunchError
from workbench.geo.schemes import get_scheme

__all__ = ["PartitionSpec", "TrainRequest"]


@dataclass(frozen=True)
class PartitionSpec:
    """A geocode scheme and precision: one model per cell of that size."""

    scheme: str = "geohash"
    precision: int = 5

    def __post_init__(self) -> None:
        try:
            get_scheme(self.scheme).check_precision(self.precision)
        except GeocodeError as exc:
            raise LaunchError(str(exc)) from exc

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
        else isinstance(value, int | float) and not isinstance(value, bool)
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
        A ``torch.nn.Module``; a ChipSet or map-style torch Dataset of ``(x, y)`` items (or of
        inputs alone, for self-supervised training); ``loss_fn(prediction, target)``, or
        ``loss_fn(prediction, x)`` for inputs alone. ``loss_fn=None``: the model's forward
        returns the (scalar) loss of a batch of inputs itself.
    optimizer : torch.optim.Optimizer or callable, optional
        An optimizer (its class and hyper-parameters are reused on each worker) or a factory
        ``f(params) -> Optimizer``; default Adam.
    val_data, metrics, targets
        Held-out data, ``{name: fn(pred, y)}`` metrics, and a ChipSet's target variables.
    transform : callable, optional
        ``transform(x)`` or ``transform(x, y)`` applied to every whole batch after it is cut
        (normalise, split a window into input and target, ...); returns the batch trained on.
    geocodes, val_geocodes, partition_fn
        Partition of each sample of a plain Dataset (for ``partitioned``).
    strategy : str
        How to train: a name of the strategy registry (``single``, ``ddp``, ``fsdp``,
        ``partitioned``, or one a package registered; see
        :func:`workbench.training.strategies.strategy_names`).
    engines : int
        Worker processes.
    epochs, batch_size, lr, seed, drop_last
        Training settings (``lr=None`` keeps the optimizer's own; ``drop_last`` trains on
        full batches only).
    sharding, shard_group_size
        FSDP sharding mode (default ``full_shard``), and the shard group size of
        ``hybrid_shard``.
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
        Where checkpoints go (default: a new folder in this user's cache directory).
    checkpoint : bool
        Write a checkpoint every epoch (default ``True``).
    name : str, optional
        Label of the run in a :class:`~workbench.training.result.Comparison`.
    in_memory_bytes : int, optional
        Workers read ChipSets smaller than this into memory once (default: the
        ``train_in_memory_bytes`` option where the request is made).

    Raises
    ------
    LaunchError
        An unknown strategy, a bad value, or an option the strategy does not take.
    """

    model: Any
    train_data: Any
    loss_fn: Callable[[Any, Any], Any] | None
    optimizer: Any = None
    val_data: Any = None
    metrics: Mapping[str, Callable[[Any, Any], Any]] | None = None
    targets: Sequence[str] | None = None
    transform: Callable[..., Any] | None = None
    geocodes: Sequence[str] | None = None
    val_geocodes: Sequence[str] | None = None
    partition_fn: Callable[[int], str] | None = None
    strategy: str = "single"
    engines: int = 1
    epochs: int = 1
    batch_size: int = 32
    lr: float | None = None
    seed: int = 0
    drop_last: bool = False
    sharding: str | None = None
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
    in_memory_bytes: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from workbench.options import OPTIONS
        from workbench.training.strategies import find_strategy

        for name in ("engines", "epochs", "batch_size", "tokens_per_node"):
            _check_positive(name, getattr(self, name))
        _check_positive("shard_group_size", self.shard_group_size, allow_none=True)
        _check_positive("transfer_clusters", self.transfer_clusters, allow_none=True)
        for name in ("timeout", "lr", "pg_timeout"):
            _check_positive(name, getattr(self, name), allow_none=True, integer=False)
        if self.transform is not None and not callable(self.transform):
            raise LaunchError(f"transform must be a function of the batch, got {self.transform!r}")
        if self.targets is not None and not isinstance(self.targets, tuple):
            targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
            object.__setattr__(self, "targets", targets)
        if self.in_memory_bytes is None:
            object.__setattr__(self, "in_memory_bytes", int(OPTIONS["train_in_memory_bytes"]))
        for key, value in find_strategy(self.strategy).check(self).items():
            object.__setattr__(self, key, value)

    def given(self) -> dict[str, Any]:
        """Return the fields set to something other than their default."""
        out = {}
        for f in fields(self):
            default = f.default_factory() if callable(f.default_factory) else f.default
            value = getattr(self, f.name)
            if value is not default and value != default:
                out[f.name] = value
        return out

    @property
    def label(self) -> str:
        """The run's name, or one the strategy makes (``"fsdp[full_shard]x2"``)."""
        from workbench.training.strategies import find_strategy

        return self.name or find_strategy(self.strategy).label(self)

    def replace(self, **changes: Any) -> TrainRequest:
        """Return a copy with ``changes`` applied (and validated)."""
        return replace(self, **changes)
