"""``fsdp``: one model sharded across ranks (FullyShardedDataParallel), every sharding mode.

``sharding`` one of ``no_shard`` | ``shard_grad_op`` | ``full_shard`` | ``hybrid_shard``;
bytes counted by wrapping the ``torch.distributed`` collectives. On CPU the device is given
explicitly (``device_id=cpu``); ``hybrid_shard`` shards within groups of
``shard_group_size`` ranks (default: the ranks of a host) and replicates across them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from workbench._optional import lazy_import
from workbench.errors import LaunchError
from workbench.training.comm import CommCounter, count_collectives
from workbench.training.distributed import hybrid_groups
from workbench.training.strategies._data_parallel import DataParallelStrategy, Wrapped
from workbench.training.task import WorkerTask, optimizer_factory

if TYPE_CHECKING:
    from workbench.training.request import TrainRequest

__all__ = ["FSDPStrategy", "SHARDING_MODES"]

#: FSDP sharding modes (``torch.distributed.fsdp.ShardingStrategy``, lower case).
SHARDING_MODES = ("no_shard", "shard_grad_op", "full_shard", "hybrid_shard")


class FSDPStrategy(DataParallelStrategy):
    """One model sharded across ranks in one of :data:`SHARDING_MODES`."""

    name: ClassVar[str] = "fsdp"
    help: ClassVar[str] = (
        "one model sharded across engines (FSDP; --sharding no_shard, shard_grad_op, "
        "full_shard, hybrid_shard)"
    )
    options: ClassVar[tuple[str, ...]] = ("sharding", "shard_group_size")

    def check(self, request: TrainRequest) -> dict[str, Any]:
        """Known sharding mode; a shard group size only for ``hybrid_shard``."""
        out = super().check(request)
        sharding = request.sharding or "full_shard"
        if sharding not in SHARDING_MODES:
            raise LaunchError(f"unknown sharding {sharding!r}; use one of {SHARDING_MODES}")
        if request.shard_group_size is not None and sharding != "hybrid_shard":
            raise LaunchError(
                f"shard_group_size applies to sharding 'hybrid_shard', not {sharding!r}"
            )
        return {**out, "sharding": sharding}

    def label(self, request: TrainRequest) -> str:
        """``fsdp[full_shard]x2``."""
        return f"fsdp[{request.sharding}]x{request.engines}"

    def wrap(
        self, task: WorkerTask, model: Any, rank: int, world: int, counter: CommCounter, state: Any
    ) -> Wrapped:
        """Wrap in FSDP with the task's sharding mode; restore a full optimizer state."""
        torch = lazy_import("torch")
        fsdp_mod = lazy_import("torch.distributed.fsdp")
        FSDP = fsdp_mod.FullyShardedDataParallel
        kwargs: dict[str, Any] = {}
        if task.sharding == "hybrid_shard":
            kwargs["process_group"] = hybrid_groups(rank, world, task.shard_group_size)
        with warnings.catch_warnings():
            # NO_SHARD is deprecated in favour of DDP; the user asked for it explicitly.
            warnings.filterwarnings("ignore", message=".*NO_SHARD.*deprecated.*")
            wrapped = FSDP(
                model,
                sharding_strategy=getattr(
                    fsdp_mod.ShardingStrategy, (task.sharding or "full_shard").upper()
                ),
                device_id=torch.device("cpu") if not torch.cuda.is_available() else None,
                use_orig_params=True,
                **kwargs,
            )
        opt = (task.optimizer or optimizer_factory(None, task.lr))(wrapped.parameters())
        dcp_sd = lazy_import("torch.distributed.checkpoint.state_dict")
        # cpu_offload=True (rank-0-only gathering) crashes SHARD_GRAD_OP on CPU in torch 2.13:
        # every rank gathers the full state (fine for the small models trained here).
        options = dcp_sd.StateDictOptions(full_state_dict=True)
        if state is not None and state.get("optimizer"):
            dcp_sd.set_optimizer_state_dict(wrapped, opt, state["optimizer"], options=options)

        def full_state(with_optimizer: bool = True) -> tuple[dict[str, Any], Any]:
            # Collective: every rank calls it and gets the whole model (and optimizer) state.
            sd = dcp_sd.get_model_state_dict(wrapped, options=options)
            osd = (
                dcp_sd.get_optimizer_state_dict(wrapped, opt, options=options)
                if with_optimizer
                else None
            )
            return {k: v.detach().clone() for k, v in sd.items()}, osd

        @contextlib.contextmanager
        def full_model() -> Iterator[Any]:
            with FSDP.summon_full_params(wrapped, writeback=False):
                yield wrapped.module

        return Wrapped(
            module=wrapped,
            optimizer=opt,
            full_state=full_state,
            counting=count_collectives(counter),
            full_model=full_model,
        )

    def assemble(self, request: TrainRequest, results: Any, plan: Any) -> dict[str, Any]:
        """One model (replicas agree), and the sharding mode."""
        return {**super().assemble(request, results, plan), "sharding": request.sharding}
