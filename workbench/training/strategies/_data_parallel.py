"""What DDP and FSDP share: one model over a torch.distributed process group.

The plan gives every worker the same task and the rendezvous environment (``MASTER_ADDR``
and ``MASTER_PORT`` of rank 0's host, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, and
``GLOO_SOCKET_IFNAME`` and ``NCCL_SOCKET_IFNAME`` when the launcher names an interface, so
that gloo and NCCL use the interface the rendezvous listens on). Each worker joins the group
(:func:`~workbench.training.distributed.process_group`), wraps the model as its strategy says
(:meth:`DataParallelStrategy.wrap`), trains its shard of every epoch, validates on disjoint
shards of ``val_data`` with the full model and sums with one all-reduce. Rank 0 writes the
checkpoint (the full state, gathered).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from workbench._optional import lazy_import
from workbench.training.checkpoint import model_checkpoint_path, save_checkpoint
from workbench.training.comm import CommCounter
from workbench.training.distributed import distributed_evaluate, process_group, state_digest
from workbench.training.loop import Callback, EpochRecord, train
from workbench.training.strategies._local import in_memory
from workbench.training.strategies.base import BaseStrategy, Plan, Workers
from workbench.training.task import (
    WorkerResult,
    WorkerTask,
    batches_for,
    eval_batches_for,
    restore_history,
    resume_state,
    worker_result,
)

__all__ = ["DataParallelStrategy", "Wrapped"]

#: ``full_state(with_optimizer) -> (model state, optimizer state or None)``: collective.
FullState = Callable[[bool], tuple[dict[str, Any], Any]]


@dataclasses.dataclass
class Wrapped:
    """A model wrapped for a process group: module to train, optimizer, state gatherer.

    ``counting`` is entered around training to count the bytes of collectives the wrapper
    does not report itself; ``full_model()`` gives the whole model for validation.
    """

    module: Any
    optimizer: Any
    full_state: FullState
    counting: contextlib.AbstractContextManager[Any]
    full_model: Callable[[], contextlib.AbstractContextManager[Any]]


class DataParallelStrategy(BaseStrategy):
    """Base of DDP and FSDP: subclasses implement :meth:`wrap`."""

    min_engines: ClassVar[int] = 2

    def wrap(
        self, task: WorkerTask, model: Any, rank: int, world: int, counter: CommCounter, state: Any
    ) -> Wrapped:
        """Wrap ``model`` for the default process group (and restore the optimizer state)."""
        raise NotImplementedError

    def plan(self, request: Any, workers: Workers, checkpoint_dir: str | None) -> Plan:
        """Plan the same task on every worker, with the rendezvous environment."""
        addr, port, ifname = workers.rendezvous()
        infos = workers.infos
        n = len(infos)
        calls = []
        for i, w in enumerate(infos):
            env = {
                "MASTER_ADDR": addr,
                "MASTER_PORT": str(port),
                "RANK": str(i),
                "WORLD_SIZE": str(n),
                "LOCAL_RANK": str(sum(1 for v in infos[:i] if v.host == w.host)),
                "LOCAL_WORLD_SIZE": str(sum(1 for v in infos if v.host == w.host)),
            }
            if ifname:
                env["GLOO_SOCKET_IFNAME"] = env["NCCL_SOCKET_IFNAME"] = ifname
            task = self.task(request, checkpoint_dir, threads=workers.threads[i])
            calls.append(self.call(task, i, n, w.name, env))
        return Plan(calls)

    def run(
        self,
        task: WorkerTask,
        *,
        rank: int = 0,
        world_size: int = 1,
        worker: str = "kernel",
        callbacks: Sequence[Callback] = (),
    ) -> WorkerResult:
        """Join the group, train this rank's shards, leave the group."""
        started = time.time()
        task = dataclasses.replace(
            task,
            train_data=in_memory(task, task.train_data),
            val_data=in_memory(task, task.val_data),
        )
        model = copy.deepcopy(task.model)
        state = resume_state(task)
        if state is not None:
            model.load_state_dict(state["model"])
        # the checkpoint holds rank 0's records
        history = restore_history(state) if rank == 0 else []
        path = model_checkpoint_path(task.checkpoint_dir) if task.checkpoint_dir else None
        counter = CommCounter()
        with process_group(rank, world_size, timeout_s=task.pg_timeout_s):
            final = self._train_in_group(
                task, model, state, rank, world_size, counter, callbacks, history, path
            )
            gc.collect()  # free the wrappers (reference cycles) while the group still exists
        # Every rank digests its model (DDP: its replica; FSDP: the gathered state): they agree.
        return worker_result(
            task,
            rank,
            world_size,
            worker,
            started,
            history=tuple(history),
            states={"model": final} if rank == 0 else {},
            digests={"model": state_digest(final)},
            comm=counter.to_dict(),
            checkpoints={"model": str(path)} if path and rank == 0 else {},
        )

    def _train_in_group(
        self,
        task: WorkerTask,
        model: Any,
        state: Any,
        rank: int,
        world: int,
        counter: CommCounter,
        callbacks: Sequence[Callback],
        history: list[EpochRecord],
        path: Any,
    ) -> dict[str, Any]:
        """Wrap, train, gather the final state; every wrapper is freed before the group is left.

        Ends with a barrier: no rank leaves while another still has a collective in flight, and
        the DDP reducer (which holds the gloo group) is released here, not after the group was
        destroyed (a gloo group destroyed last from a reducer can hang in its thread join).
        """
        dist = lazy_import("torch.distributed")
        start = int(state["epoch"]) if state else 0
        w = self.wrap(task, model, rank, world, counter, state)
        held_out = eval_batches_for(task)

        def validate(_: Any) -> Mapping[str, float]:
            with w.full_model() as full:
                return distributed_evaluate(
                    full,
                    task.val_data,
                    task.loss_fn,
                    task.metrics,
                    rank=rank,
                    world_size=world,
                    batches=held_out,
                    counter=counter,
                )

        with w.counting:
            meta = {"strategy": task.strategy, "sharding": task.sharding, "world_size": world}

            def on_epoch_end(record: EpochRecord) -> None:
                history.append(record)
                if path is None:
                    return
                model_state, opt_state = w.full_state(True)
                if rank == 0:
                    save_checkpoint(
                        path,
                        {
                            "epoch": record.epoch + 1,
                            "model": model_state,
                            "optimizer": opt_state,
                            "history": [r.to_dict() for r in history],
                            "meta": meta,
                        },
                    )

            train(
                w.module,
                task.loss_fn,
                w.optimizer,
                batches_for(task, task.train_data, rank, world),
                epochs=task.epochs,
                start_epoch=start,
                callbacks=callbacks,
                rank=rank,
                validate=validate if task.val_data is not None else None,
                on_epoch_end=on_epoch_end,
            )
            final, _ = w.full_state(False)
            dist.barrier()
        final_state: dict[str, Any] = final
        return final_state


@contextlib.contextmanager
def as_is(module: Any) -> Iterator[Any]:
    """Yield ``module`` as it is: ``full_model`` of wrappers whose module is whole (DDP)."""
    yield module
