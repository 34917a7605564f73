"""Data-parallel strategies over a torch.distributed process group: DDP and FSDP.

* DDP (:class:`~torch.nn.parallel.DistributedDataParallel`): gradients all-reduced every step;
  bytes counted by a DDP comm hook, plus the initial broadcast of the model state.
* FSDP (:class:`~torch.distributed.fsdp.FullyShardedDataParallel`), ``sharding`` one of
  ``no_shard`` | ``shard_grad_op`` | ``full_shard`` | ``hybrid_shard``; bytes counted by
  wrapping the ``torch.distributed`` collectives. On CPU the device is given explicitly
  (``device_id=cpu``); ``hybrid_shard`` shards within a host and replicates across hosts.

Validation runs every epoch on disjoint shards of ``val_data`` with the full model (DDP: the
local replica; FSDP: inside ``summon_full_params``) and is summed with one all-reduce.
Rank 0 writes the checkpoint (the full state, gathered).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workbench._optional import lazy_import
from workbench.errors import TrainingError
from workbench.training.checkpoint import model_checkpoint_path, save_checkpoint
from workbench.training.comm import CommCounter, count_collectives, ddp_counting_hook
from workbench.training.data import materialize
from workbench.training.distributed import (
    distributed_evaluate,
    hybrid_groups,
    process_group,
    state_digest,
    state_nbytes,
)
from workbench.training.loop import Callback, EpochRecord, train
from workbench.training.task import (
    SHARDING_MODES,
    WorkerResult,
    WorkerTask,
    batches_for,
    optimizer_factory,
    restore_history,
    resume_state,
    worker_result,
)

__all__ = ["run_data_parallel"]


def run_data_parallel(
    task: WorkerTask, rank: int, world: int, worker: str, callbacks: Sequence[Callback]
) -> WorkerResult:
    """DDP or FSDP over the default process group."""
    started = time.time()
    task = dataclasses.replace(
        task,
        train_data=materialize(task.train_data, task.targets),
        val_data=materialize(task.val_data, task.targets),
    )
    model = copy.deepcopy(task.model)
    state = resume_state(task)
    if state is not None:
        model.load_state_dict(state["model"])
    history = restore_history(state) if rank == 0 else []  # the checkpoint holds rank 0's records
    path = model_checkpoint_path(task.checkpoint_dir) if task.checkpoint_dir else None
    counter = CommCounter()
    with process_group(rank, world, timeout_s=task.pg_timeout_s):
        final = _train_in_group(task, model, state, rank, world, counter, callbacks, history, path)
        gc.collect()  # free the wrappers (reference cycles) while the group still exists
    # Every rank digests its model (DDP: its replica; FSDP: the gathered state): they must agree.
    return worker_result(
        task,
        rank,
        world,
        worker,
        started,
        history=tuple(history),
        states={"model": final} if rank == 0 else {},
        digests={"model": state_digest(final)},
        comm=counter.to_dict(),
        checkpoints={"model": str(path)} if path and rank == 0 else {},
    )


def _train_in_group(
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
    if task.strategy == "ddp":
        wrapped, opt, full_state = _wrap_ddp(task, model, counter, state)
        tap: Any = contextlib.nullcontext()
    else:
        wrapped, opt, full_state = _wrap_fsdp(task, model, rank, world, state)
        tap = count_collectives(counter)
    with tap:
        local_eval = _local_eval(task, wrapped, rank, world, counter)
        meta = {"strategy": task.strategy, "sharding": task.sharding, "world_size": world}

        def on_epoch_end(record: EpochRecord) -> None:
            history.append(record)
            if path is None:
                return
            model_state, opt_state = full_state()
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
            wrapped,
            task.loss_fn,
            opt,
            batches_for(task, task.train_data, rank, world),
            epochs=task.epochs,
            start_epoch=start,
            callbacks=callbacks,
            rank=rank,
            validate=local_eval if task.val_data is not None else None,
            on_epoch_end=on_epoch_end,
        )
        final, _ = full_state(with_optimizer=False)
        dist.barrier()
    final_state: dict[str, Any] = final
    return final_state


def _wrap_ddp(
    task: WorkerTask, model: Any, counter: CommCounter, state: Any
) -> tuple[Any, Any, Any]:
    nn_parallel = lazy_import("torch.nn.parallel")
    dist = lazy_import("torch.distributed")
    counter.record("broadcast", state_nbytes(model), dist.get_world_size())  # initial state sync
    ddp = nn_parallel.DistributedDataParallel(model)
    ddp.register_comm_hook(None, ddp_counting_hook(counter))
    opt = (task.optimizer or optimizer_factory(None, task.lr))(ddp.parameters())
    if state is not None and state.get("optimizer"):
        opt.load_state_dict(state["optimizer"])

    def full_state(with_optimizer: bool = True) -> tuple[dict[str, Any], Any]:
        sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return sd, (opt.state_dict() if with_optimizer else None)

    return ddp, opt, full_state


def _wrap_fsdp(
    task: WorkerTask, model: Any, rank: int, world: int, state: Any
) -> tuple[Any, Any, Any]:
    torch = lazy_import("torch")
    fsdp_mod = lazy_import("torch.distributed.fsdp")
    FSDP = fsdp_mod.FullyShardedDataParallel
    if task.sharding not in SHARDING_MODES:
        raise TrainingError(f"unknown FSDP sharding {task.sharding!r}; use one of {SHARDING_MODES}")
    kwargs: dict[str, Any] = {}
    if task.sharding == "hybrid_shard":
        kwargs["process_group"] = hybrid_groups(rank, world, task.shard_group_size)
    with warnings.catch_warnings():
        # NO_SHARD is deprecated in favour of DDP; the user asked for it explicitly.
        warnings.filterwarnings("ignore", message=".*NO_SHARD.*deprecated.*")
        wrapped = FSDP(
            model,
            sharding_strategy=getattr(fsdp_mod.ShardingStrategy, task.sharding.upper()),
            device_id=torch.device("cpu") if not torch.cuda.is_available() else None,
            use_orig_params=True,
            **kwargs,
        )
    opt = (task.optimizer or optimizer_factory(None, task.lr))(wrapped.parameters())
    dcp_sd = lazy_import("torch.distributed.checkpoint.state_dict")
    if state is not None and state.get("optimizer"):
        dcp_sd.set_optimizer_state_dict(
            wrapped,
            opt,
            state["optimizer"],
            options=dcp_sd.StateDictOptions(full_state_dict=True),
        )
    # cpu_offload=True (rank-0-only gathering) crashes SHARD_GRAD_OP on CPU in torch 2.13:
    # every rank gathers the full state (fine for the small models trained here).
    options = dcp_sd.StateDictOptions(full_state_dict=True)

    def full_state(with_optimizer: bool = True) -> tuple[dict[str, Any], Any]:
        # Collective: every rank calls it and gets the whole model (and optimizer) state.
        sd = dcp_sd.get_model_state_dict(wrapped, options=options)
        osd = (
            dcp_sd.get_optimizer_state_dict(wrapped, opt, options=options)
            if with_optimizer
            else None
        )
        return {k: v.detach().clone() for k, v in sd.items()}, osd

    return wrapped, opt, full_state


def _local_eval(
    task: WorkerTask, wrapped: Any, rank: int, world: int, counter: CommCounter
) -> Callable[[Any], Mapping[str, float]]:
    def validate(_: Any) -> Mapping[str, float]:
        if task.strategy == "ddp":
            local = wrapped.module
            return distributed_evaluate(
                local,
                task.val_data,
                task.loss_fn,
                task.metrics,
                rank=rank,
                world_size=world,
                batch_size=task.batch_size,
                targets=task.targets,
                counter=counter,
            )
        FSDP = lazy_import("torch.distributed.fsdp").FullyShardedDataParallel
        with FSDP.summon_full_params(wrapped, writeback=False):
            return distributed_evaluate(
                wrapped.module,
                task.val_data,
                task.loss_fn,
                task.metrics,
                rank=rank,
                world_size=world,
                batch_size=task.batch_size,
                targets=task.targets,
                counter=counter,
            )

    return validate
