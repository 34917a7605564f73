"""``single``: one model, trained in this process (the notebook kernel)."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from workbench.training.checkpoint import model_checkpoint_path
from workbench.training.comm import CommCounter
from workbench.training.distributed import state_digest
from workbench.training.loop import Callback
from workbench.training.strategies._local import train_local
from workbench.training.strategies.base import BaseStrategy
from workbench.training.task import WorkerResult, WorkerTask, worker_result

__all__ = ["SingleStrategy"]


class SingleStrategy(BaseStrategy):
    """One model in the calling process; no launcher, no collective."""

    name: ClassVar[str] = "single"
    help: ClassVar[str] = "one model, trained in the kernel"
    in_kernel: ClassVar[bool] = True
    max_engines: ClassVar[int | None] = 1

    def run(
        self,
        task: WorkerTask,
        *,
        rank: int = 0,
        world_size: int = 1,
        worker: str = "kernel",
        callbacks: Sequence[Callback] = (),
    ) -> WorkerResult:
        """Train ``task.model`` on ``task.train_data`` here."""
        started = time.time()
        model = copy.deepcopy(task.model)
        path = model_checkpoint_path(task.checkpoint_dir) if task.checkpoint_dir else None
        history, model = train_local(
            task,
            model,
            task.train_data,
            task.val_data,
            code=None,
            rank=rank,
            callbacks=callbacks,
            first_step=0,
            path=path,
        )
        state: dict[str, Any] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return worker_result(
            task,
            rank,
            world_size,
            worker,
            started,
            history=tuple(history),
            states={"model": state},
            digests={"model": state_digest(state)},
            comm=CommCounter().to_dict(),
            checkpoints={"model": str(path)} if path else {},
        )
