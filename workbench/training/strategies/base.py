"""The strategy protocol, and what strategies share.

A strategy is one object that knows how one kind of training run goes, end to end:

* :meth:`Strategy.check` validates a :class:`~workbench.training.request.TrainRequest`
  (and fills in its defaults);
* :meth:`Strategy.plan` turns it into one :class:`~workbench.training.task.WorkerCall` per
  worker, given the :class:`Workers` a launcher offers (names, hosts, threads, a rendezvous
  address, and a way to run a preliminary round on them);
* :meth:`Strategy.run` is what each worker runs;
* :meth:`Strategy.assemble` turns the workers' results into the fields of a
  :class:`~workbench.training.result.TrainResult`.

:class:`BaseStrategy` implements what most strategies share: options scoped to the
strategies that take them, engine counts, a label, the plan of "the same task on every
worker", and the assembly of one model whose replicas must agree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from workbench._optional import lazy_import
from workbench.errors import LaunchError, TrainingError
from workbench.training.task import (
    WorkerCall,
    WorkerInfo,
    WorkerResult,
    WorkerTask,
    set_threads,
)

if TYPE_CHECKING:
    from workbench.training.request import TrainRequest

__all__ = ["Strategy", "BaseStrategy", "Plan", "Workers", "SCOPED_OPTIONS", "run_with"]

#: Request fields that only some strategies take (each strategy lists its own in ``options``).
SCOPED_OPTIONS = (
    "sharding",
    "shard_group_size",
    "partition",
    "transfer",
    "transfer_clusters",
    "tokens_per_node",
    "lockstep",
)


@dataclass
class Workers:
    """What a strategy's plan may use of a launcher's workers.

    Attributes
    ----------
    infos : list of WorkerInfo
        The workers, in rank order.
    threads : list of int
        Torch threads each worker should use.
    rendezvous : callable
        ``rendezvous() -> (address, port, interface or None)`` for a process group.
    run : callable
        ``run(calls) -> results``: a preliminary round on the workers (e.g. texture vectors).
    """

    infos: list[WorkerInfo]
    threads: list[int]
    rendezvous: Callable[[], tuple[str, int, str | None]]
    run: Callable[[Sequence[WorkerCall]], list[Any]]

    @property
    def names(self) -> list[str]:
        """Worker names in rank order."""
        return [w.name for w in self.infos]


@dataclass
class Plan:
    """The calls to make (one per worker) and what the plan found (placement, clusters...)."""

    calls: list[WorkerCall]
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Strategy(Protocol):
    """One kind of training run (see the module docstring)."""

    name: ClassVar[str]
    help: ClassVar[str]
    in_kernel: ClassVar[bool]
    options: ClassVar[tuple[str, ...]]

    def check(self, request: TrainRequest) -> dict[str, Any]:
        """Validate ``request``; return the fields to set (defaults the strategy fills in)."""
        ...

    def label(self, request: TrainRequest) -> str:
        """Return a short name of the run (``"ddpx2"``)."""
        ...

    def describe(self, request: TrainRequest, names: Sequence[str]) -> dict[str, Any]:
        """Return what ``%%train --dry-run`` shows beyond name, strategy and engines."""
        ...

    def plan(self, request: TrainRequest, workers: Workers, checkpoint_dir: str | None) -> Plan:
        """One call per worker."""
        ...

    def run(
        self,
        task: WorkerTask,
        *,
        rank: int,
        world_size: int,
        worker: str,
        callbacks: Sequence[Callable[[Any], object]],
    ) -> WorkerResult:
        """Train on one worker."""
        ...

    def assemble(
        self, request: TrainRequest, results: Sequence[WorkerResult], plan: Plan
    ) -> dict[str, Any]:
        """Fields of the TrainResult: ``model``/``models``, ``val``, and strategy details."""
        ...


class BaseStrategy:
    """Defaults shared by the built-in strategies (subclass and set the class attributes).

    Attributes
    ----------
    name, help : str
        Registry name and one line of help (shown by ``%%train --help``).
    in_kernel : bool
        Runs in the calling process, no launcher (``single``).
    min_engines, max_engines : int or None
        Allowed worker counts.
    options : tuple of str
        The :data:`SCOPED_OPTIONS` this strategy takes.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    in_kernel: ClassVar[bool] = False
    min_engines: ClassVar[int] = 1
    max_engines: ClassVar[int | None] = None
    options: ClassVar[tuple[str, ...]] = ()

    def check(self, request: TrainRequest) -> dict[str, Any]:
        """Refuse options of other strategies and engine counts outside the allowed range."""
        from workbench.training.strategies import registry

        given = request.given()
        for option in SCOPED_OPTIONS:
            if option in given and option not in self.options:
                takers = [s.name for s in registry().values() if option in s.options]
                raise LaunchError(
                    f"{option}={given[option]!r} applies to strategy "
                    f"{' or '.join(map(repr, takers)) or 'none'}, not {self.name!r}"
                )
        if request.engines < self.min_engines:
            raise LaunchError(
                f"strategy {self.name!r} needs at least {self.min_engines} engines, got "
                f"{request.engines}; use strategy='single' for one process"
            )
        if self.max_engines is not None and request.engines > self.max_engines:
            raise LaunchError(
                f"strategy {self.name!r} runs on {self.max_engines} process(es), got "
                f"engines={request.engines}; use a distributed strategy (ddp, fsdp, partitioned)"
            )
        return {}

    def label(self, request: TrainRequest) -> str:
        """``name`` for one process, ``"namexN"`` for N engines."""
        return self.name if self.in_kernel else f"{self.name}x{request.engines}"

    def describe(self, request: TrainRequest, names: Sequence[str]) -> dict[str, Any]:
        """Nothing beyond name, strategy and engines."""
        return {}

    def task(self, request: TrainRequest, checkpoint_dir: str | None, **changes: Any) -> WorkerTask:
        """Return the worker task of ``request`` (see :meth:`WorkerTask.from_request`)."""
        return WorkerTask.from_request(request, checkpoint_dir, **changes)

    def call(
        self,
        task: WorkerTask,
        rank: int,
        world_size: int,
        worker: str,
        env: Mapping[str, str] | None = None,
    ) -> WorkerCall:
        """Return the call that runs ``task`` with this strategy as ``rank`` on ``worker``."""
        return WorkerCall(
            functools.partial(run_with, self),
            (task,),
            {"rank": rank, "world_size": world_size, "worker": worker},
            dict(env or {}),
        )

    def plan(self, request: TrainRequest, workers: Workers, checkpoint_dir: str | None) -> Plan:
        """Plan the same task on every worker, each with its rank and thread count."""
        n = len(workers.infos)
        calls = [
            self.call(self.task(request, checkpoint_dir, threads=workers.threads[i]), i, n, w.name)
            for i, w in enumerate(workers.infos)
        ]
        return Plan(calls)

    def run(
        self,
        task: WorkerTask,
        *,
        rank: int,
        world_size: int,
        worker: str,
        callbacks: Sequence[Callable[[Any], object]],
    ) -> WorkerResult:
        """Train on one worker (each strategy implements it)."""
        raise NotImplementedError(f"strategy {self.name!r} does not implement run()")

    def assemble(
        self, request: TrainRequest, results: Sequence[WorkerResult], plan: Plan
    ) -> dict[str, Any]:
        """Assemble one model: every worker's copy has the same digest; rank 0's is kept."""
        import copy

        digests = {w.digests.get("model") for w in results}
        if len(digests) != 1:
            raise TrainingError(
                f"the {request.strategy} replicas ended with different parameters "
                f"(digests {sorted(map(str, digests))}); the run is not trustworthy"
            )
        model = copy.deepcopy(request.model)
        model.load_state_dict(results[0].states["model"])
        val = dict(results[0].history[-1].val) if results[0].history else {}
        return {"model": model, "val": val}


def run_with(
    strategy: Strategy,
    task: WorkerTask,
    *,
    rank: int = 0,
    world_size: int = 1,
    worker: str = "kernel",
    callbacks: Sequence[Callable[[Any], object]] = (),
) -> WorkerResult:
    """Run ``task`` with ``strategy`` on this worker: the task's thread count and random state.

    Random operations inside training (dropout, masking) draw from torch's generator seeded
    with ``task.seed + rank``, so a run is repeatable and every strategy sees the same random
    numbers; the caller's own random state is restored afterwards.
    """
    torch = lazy_import("torch")
    set_threads(task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(task.seed + rank)
        return strategy.run(
            task, rank=rank, world_size=world_size, worker=worker, callbacks=callbacks
        )
