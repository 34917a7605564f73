"""Training: the loop, the strategies (single, DDP, FSDP, partitioned), checkpoints, transfer.

Everything here runs inside one process; :mod:`workbench.cluster` starts the processes.

Examples
--------
>>> from workbench.training import STRATEGIES, SHARDING_MODES
>>> STRATEGIES
('single', 'ddp', 'fsdp', 'partitioned')
>>> SHARDING_MODES
('no_shard', 'shard_grad_op', 'full_shard', 'hybrid_shard')
"""

from __future__ import annotations

from workbench.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from workbench.training.comm import CommCounter, count_collectives, ddp_counting_hook
from workbench.training.loop import EpochRecord, evaluate, train
from workbench.training.result import Comparison, TrainResult
from workbench.training.strategies import (
    SHARDING_MODES,
    STRATEGIES,
    PartitionJob,
    WorkerResult,
    WorkerTask,
    optimizer_factory,
    run_worker,
)
from workbench.training.transfer import texture_clusters, texture_vector, transfer_plan

__all__ = [
    "STRATEGIES",
    "SHARDING_MODES",
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
