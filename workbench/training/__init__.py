"""Training: the loop, the strategies (single, DDP, FSDP, partitioned), checkpoints, transfer.

Everything here runs inside one process; :mod:`workbench.cluster` starts the processes.

Examples
--------
>>> from workbench.training import SHARDING_MODES, strategy_names
>>> strategy_names()
('single', 'ddp', 'fsdp', 'partitioned')
>>> SHARDING_MODES
('no_shard', 'shard_grad_op', 'full_shard', 'hybrid_shard')
"""

from __future__ import annotations

from workbench.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from workbench.training.comm import CommCounter, count_collectives, ddp_counting_hook
from workbench.training.loop import EpochRecord, evaluate, train
from workbench.training.request import PartitionSpec, TrainRequest
from workbench.training.result import Comparison, TrainResult
from workbench.training.strategies import (
    SHARDING_MODES,
    PartitionJob,
    WorkerResult,
    WorkerTask,
    find_strategy,
    optimizer_factory,
    register_strategy,
    run_worker,
    strategy_names,
)
from workbench.training.transfer import texture_clusters, texture_vector, transfer_plan

__all__ = [
    "strategy_names",
    "find_strategy",
    "register_strategy",
    "SHARDING_MODES",
    "TrainRequest",
    "PartitionSpec",
    "train",
    "evaluate",
    "EpochRecord",
    "WorkerTask",
    "WorkerResult",
    "PartitionJob",
    "run_worker",
    "optimizer_factory",
    "save_checkpoint",
    "load_checkpoint",
    "find_checkpoint",
    "CommCounter",
    "count_collectives",
    "ddp_counting_hook",
    "texture_vector",
    "texture_clusters",
    "transfer_plan",
    "TrainResult",
    "Comparison",
]
