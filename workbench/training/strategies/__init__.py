"""Training strategies, registered by name: single, DDP, FSDP, partitioned, and plug-ins.

Each strategy is one module here implementing :class:`~workbench.training.strategies.base.Strategy`
(validate a request, plan the worker calls, run on a worker, assemble the result). The
registry finds them by name: the built-in ones, those other packages register through the
``workbench.strategies`` entry points (``name = "package.module:StrategyClass"``), and those
registered at run time with :func:`register_strategy`. ``%%train --strategy`` takes its choices
and help from here; nothing outside these modules branches on a strategy's name.

Examples
--------
>>> strategy_names()[:4]
('single', 'ddp', 'fsdp', 'partitioned')
>>> find_strategy("FSDP").name
'fsdp'
>>> import torch
>>> from torch.utils.data import TensorDataset
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> x = torch.rand(64, 3); data = TensorDataset(x, x.sum(dim=1, keepdim=True))
>>> task = WorkerTask("single", torch.nn.Linear(3, 1), torch.nn.functional.mse_loss,
...                   train_data=data, epochs=4, batch_size=16, lr=0.05)
>>> result = run_worker(task)
>>> result.history[-1].loss < result.history[0].loss, sorted(result.states)
(True, ['model'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from workbench.errors import LaunchError
from workbench.training.strategies.base import BaseStrategy, Plan, Strategy, Workers, run_with
from workbench.training.strategies.ddp import DDPStrategy
from workbench.training.strategies.fsdp import SHARDING_MODES, FSDPStrategy
from workbench.training.strategies.partitioned import (
    PartitionedStrategy,
    partition_textures,
    plan_partitions,
)
from workbench.training.strategies.single import SingleStrategy
from workbench.training.task import (
    PartitionJob,
    WorkerResult,
    WorkerTask,
    optimizer_factory,
)

__all__ = [
    "Strategy",
    "BaseStrategy",
    "Plan",
    "Workers",
    "SHARDING_MODES",
    "PartitionJob",
    "WorkerTask",
    "WorkerResult",
    "optimizer_factory",
    "find_strategy",
    "strategy_names",
    "register_strategy",
    "registry",
    "run_worker",
    "plan_partitions",
    "partition_textures",
]

_BUILTIN: tuple[type[Any], ...] = (SingleStrategy, DDPStrategy, FSDPStrategy, PartitionedStrategy)
_REGISTERED: dict[str, Strategy] = {}
_ENTRY_POINTS: dict[str, Strategy] | None = None


def _from_entry_points() -> dict[str, Strategy]:
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        found: dict[str, Strategy] = {}
        for ep in entry_points(group="workbench.strategies"):
            found[ep.name.lower()] = _instance(ep.load())
        _ENTRY_POINTS = found
    return _ENTRY_POINTS


def _instance(obj: Any) -> Strategy:
    strategy = obj() if isinstance(obj, type) else obj
    if not isinstance(strategy, Strategy) or not getattr(strategy, "name", ""):
        raise LaunchError(
            f"{obj!r} is not a training strategy: it needs a name and the methods check, label, "
            "describe, plan, run and assemble (see workbench.training.strategies.base)"
        )
    return strategy


def registry() -> Mapping[str, Strategy]:
    """All strategies by name: built-in, then entry points, then run-time registrations."""
    out: dict[str, Strategy] = {cls.name: cls() for cls in _BUILTIN}
    out.update(_from_entry_points())
    out.update(_REGISTERED)
    return out


def strategy_names() -> tuple[str, ...]:
    """Names of the known strategies, built-in ones first."""
    return tuple(registry())


def find_strategy(name: str) -> Strategy:
    """Return the strategy called ``name`` (case-insensitive).

    Raises
    ------
    LaunchError
        For an unknown name; the message lists the known strategies.
    """
    known = registry()
    found = known.get(str(name).lower())
    if found is None:
        raise LaunchError(f"unknown strategy {name!r}; use one of {tuple(known)}")
    return found


def register_strategy(strategy: Any) -> Strategy:
    """Register a strategy (class or instance) under its ``name``, for this process.

    Packages register theirs for every process through the ``workbench.strategies`` entry
    points instead. Returns the registered instance.

    Raises
    ------
    LaunchError
        If ``strategy`` does not implement the protocol.
    """
    instance = _instance(strategy)
    _REGISTERED[instance.name.lower()] = instance
    return instance


def run_worker(
    task: WorkerTask,
    *,
    rank: int = 0,
    world_size: int = 1,
    worker: str = "kernel",
    callbacks: Sequence[Callable[[Any], object]] = (),
) -> WorkerResult:
    """Run ``task`` as process ``rank`` of ``world_size`` with the strategy it names.

    Raises
    ------
    LaunchError
        For an unknown strategy.
    TrainingError
        For a non-finite loss or bad batches.
    """
    return run_with(
        find_strategy(task.strategy),
        task,
        rank=rank,
        world_size=world_size,
        worker=worker,
        callbacks=callbacks,
    )
