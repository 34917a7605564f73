"""``ddp``: one model replicated on every rank, gradients all-reduced each step.

:class:`~torch.nn.parallel.DistributedDataParallel`; bytes counted by a DDP comm hook, plus
the initial broadcast of the model state.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, ClassVar

from workbench._optional import lazy_import
from workbench.training.comm import CommCounter, ddp_counting_hook
from workbench.training.distributed import state_nbytes
from workbench.training.strategies._data_parallel import DataParallelStrategy, Wrapped, as_is
from workbench.training.task import WorkerTask, optimizer_factory

__all__ = ["DDPStrategy"]


class DDPStrategy(DataParallelStrategy):
    """One replica per rank; gradients all-reduced every step."""

    name: ClassVar[str] = "ddp"
    help: ClassVar[str] = "one model replicated on every engine, gradients all-reduced (DDP)"

    def wrap(
        self, task: WorkerTask, model: Any, rank: int, world: int, counter: CommCounter, state: Any
    ) -> Wrapped:
        """Wrap in DDP with a byte-counting comm hook."""
        nn_parallel = lazy_import("torch.nn.parallel")
        dist = lazy_import("torch.distributed")
        counter.record("broadcast", state_nbytes(model), dist.get_world_size())  # initial sync
        ddp = nn_parallel.DistributedDataParallel(model)
        ddp.register_comm_hook(None, ddp_counting_hook(counter))
        opt = (task.optimizer or optimizer_factory(None, task.lr))(ddp.parameters())
        if state is not None and state.get("optimizer"):
            opt.load_state_dict(state["optimizer"])

        def full_state(with_optimizer: bool = True) -> tuple[dict[str, Any], Any]:
            sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return sd, (opt.state_dict() if with_optimizer else None)

        return Wrapped(
            module=ddp,
            optimizer=opt,
            full_state=full_state,
            counting=contextlib.nullcontext(),
            full_model=functools.partial(as_is, model),
        )
