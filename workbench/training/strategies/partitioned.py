"""``partitioned``: one independent model per geocode partition (*Small is Beautiful*).

The geocode of every sample (``ChipSet.geocodes`` or the given codes) groups the samples into
partitions; a :class:`~workbench.geo.HashRing` over the worker names places each partition on
its owner, which receives only views of its own partitions (``ChipSet.select``: a file-backed
ChipSet ships its path and selectors, not pixels). No collective at all. With
``transfer="glcm"`` the owners first compute texture vectors of their partitions, the caller
clusters them (k-means) and each worker trains its partitions cluster by cluster,
warm-starting from the previous partition of the same cluster. A worker trains its models all
at once when that is the same training (:mod:`workbench.training.lockstep`), else one after
another.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workbench.errors import LaunchError
from workbench.geo import HashRing
from workbench.training.checkpoint import partition_checkpoint_path
from workbench.training.comm import CommCounter
from workbench.training.data import epoch_batches, group_by_code, sample_geocodes, subset
from workbench.training.distributed import state_digest
from workbench.training.lockstep import run_lockstep, warm_start_levels
from workbench.training.loop import Callback, EpochRecord
from workbench.training.request import PartitionSpec
from workbench.training.result import ensemble_val
from workbench.training.strategies._local import in_memory, train_local
from workbench.training.strategies.base import BaseStrategy, Plan, Workers
from workbench.training.task import (
    PartitionJob,
    WorkerCall,
    WorkerResult,
    WorkerTask,
    worker_result,
)
from workbench.training.transfer import texture_clusters, texture_vector, transfer_plan

if TYPE_CHECKING:
    from workbench.training.request import TrainRequest

__all__ = ["PartitionedStrategy", "plan_partitions", "partition_textures"]

TRANSFERS = ("glcm",)


def plan_partitions(request: TrainRequest, workers: Sequence[str]) -> dict[str, Any]:
    """Geocode groups, their owners on the hash ring, and each worker's data and jobs.

    Returns a dict with ``placement`` (code -> worker), ``assignment`` (worker -> codes),
    ``data`` (worker -> ``(train view, val view or None)`` holding only its partitions),
    ``jobs`` (code -> :class:`PartitionJob`, positions within its worker's views) and
    ``unrouted_val`` (validation samples whose partition has no training data).
    """
    spec = request.partition or PartitionSpec()
    codes = sample_geocodes(
        request.train_data,
        scheme=spec.scheme,
        precision=spec.precision,
        geocodes=request.geocodes,
        partition_fn=request.partition_fn,
    )
    groups = group_by_code(codes)
    val_groups: dict[str, Any] = {}
    if request.val_data is not None:
        val_codes = sample_geocodes(
            request.val_data,
            scheme=spec.scheme,
            precision=spec.precision,
            geocodes=request.val_geocodes,
        )
        val_groups = group_by_code(val_codes)
    ring = HashRing(list(workers), tokens_per_node=request.tokens_per_node)
    placement = {code: ring.node_for(code, prefix_len=spec.precision) for code in groups}
    assignment = {w: [c for c in groups if placement[c] == w] for w in workers}
    jobs: dict[str, PartitionJob] = {}
    data: dict[str, tuple[Any, Any]] = {}
    for w, owned in assignment.items():
        train_idx: list[int] = []
        val_idx: list[int] = []
        for code in owned:
            own_val = val_groups.get(code, np.zeros(0, dtype=np.int64))
            jobs[code] = PartitionJob(
                code,
                tuple(range(len(train_idx), len(train_idx) + len(groups[code]))),
                tuple(range(len(val_idx), len(val_idx) + len(own_val))),
            )
            train_idx += groups[code].tolist()
            val_idx += own_val.tolist()
        val_view = subset(request.val_data, val_idx) if val_idx else None
        data[w] = (subset(request.train_data, train_idx), val_view)
    unrouted = sum(len(v) for c, v in val_groups.items() if c not in groups)
    return {
        "placement": placement,
        "assignment": assignment,
        "jobs": jobs,
        "data": data,
        "unrouted_val": unrouted,
    }


def partition_textures(
    data: Any,
    jobs: Sequence[PartitionJob],
    *,
    targets: Sequence[str] | None = None,
    batch_size: int = 256,
    levels: int = 32,
    callbacks: Sequence[Callback] = (),
) -> dict[str, list[float]]:
    """Compute the texture vector of each of this worker's partitions from its own chips.

    Data-local: only ``data`` (this worker's partitions) is read. See
    :func:`~workbench.training.transfer.texture_vector`.
    """
    del callbacks  # a preliminary round reports no steps
    out: dict[str, list[float]] = {}
    for job in jobs:
        batches = epoch_batches(
            subset(data, job.train_index),
            batch_size=batch_size,
            epoch=0,
            seed=0,
            shuffle=False,
            targets=targets,
        )
        xs = [
            np.asarray((b[0] if isinstance(b, tuple | list) else b).cpu().numpy()) for b in batches
        ]
        out[job.code] = texture_vector(np.concatenate(xs), levels=levels).tolist()
    return out


class PartitionedStrategy(BaseStrategy):
    """One model per geocode partition, each trained on the worker that owns its data."""

    name: ClassVar[str] = "partitioned"
    help: ClassVar[str] = (
        "one model per geocode cell, trained where its data is (--partition geohash:5, "
        "--transfer glcm)"
    )
    options: ClassVar[tuple[str, ...]] = (
        "partition",
        "transfer",
        "transfer_clusters",
        "tokens_per_node",
        "lockstep",
    )

    def check(self, request: TrainRequest) -> dict[str, Any]:
        """Check the transfer; fill in the default partition (``geohash:5``)."""
        out = super().check(request)
        if request.transfer not in (None, *TRANSFERS):
            raise LaunchError(f"unknown transfer {request.transfer!r}; use one of {TRANSFERS}")
        if request.transfer_clusters is not None and request.transfer is None:
            raise LaunchError("transfer_clusters needs transfer='glcm'")
        if request.partition is None:
            out["partition"] = PartitionSpec()
        return out

    def label(self, request: TrainRequest) -> str:
        """``partitioned[geohash:5]+glcmx2``."""
        glcm = "+glcm" if request.transfer else ""
        return f"partitioned[{request.partition}]{glcm}x{request.engines}"

    def describe(self, request: TrainRequest, names: Sequence[str]) -> dict[str, Any]:
        """Placement and assignment of the partitions on the hash ring."""
        p = plan_partitions(request, names)
        return {"placement": p["placement"], "assignment": p["assignment"]}

    def plan(self, request: TrainRequest, workers: Workers, checkpoint_dir: str | None) -> Plan:
        """Each worker: its own partitions' views and jobs (after the texture round, if any)."""
        names = workers.names
        plan = plan_partitions(request, names)
        jobs, assignment, data = plan["jobs"], plan["assignment"], plan["data"]
        order = {w: list(codes) for w, codes in assignment.items()}
        warm: dict[str, str | None] = {c: None for c in jobs}
        info: dict[str, Any] = {"placement": plan["placement"]}
        if request.transfer == "glcm":
            textures = workers.run(
                [
                    WorkerCall(
                        _textures_on_worker,
                        (data[w][0], [jobs[c] for c in order[w]]),
                        {"targets": request.targets, "in_memory_bytes": request.in_memory_bytes},
                    )
                    for w in names
                ]
            )
            features = {c: v for part in textures for c, v in part.items()}
            info["clusters"] = texture_clusters(
                features, n_clusters=request.transfer_clusters, seed=request.seed
            )
            order, warm = transfer_plan(assignment, info["clusters"])
        calls = []
        for i, w in enumerate(names):
            my_jobs = tuple(dataclasses.replace(jobs[c], warm_start=warm.get(c)) for c in order[w])
            task = self.task(
                request,
                checkpoint_dir,
                partitions=my_jobs,
                train_data=data[w][0],
                val_data=data[w][1],
                threads=workers.threads[i],
            )
            calls.append(self.call(task, i, len(names), w))
        return Plan(calls, info)

    def run(
        self,
        task: WorkerTask,
        *,
        rank: int = 0,
        world_size: int = 1,
        worker: str = "kernel",
        callbacks: Sequence[Callback] = (),
    ) -> WorkerResult:
        """Train this worker's partitions: in lockstep when that is the same, else one by one."""
        started = time.time()
        warm_start_levels(task.partitions)  # every warm-start source is trained before its user
        data, val = in_memory(task, task.train_data), in_memory(task, task.val_data)
        together = (
            run_lockstep(task, data, val, rank=rank, callbacks=callbacks) if task.lockstep else None
        )
        if together is not None:
            trained, history, checkpoints = together.states, together.history, together.checkpoints
        else:
            trained, history, checkpoints = _one_by_one(task, data, val, rank, callbacks)
        return worker_result(
            task,
            rank,
            world_size,
            worker,
            started,
            history=tuple(history),
            states=trained,
            digests={c: state_digest(s) for c, s in trained.items()},
            comm=CommCounter().to_dict(),
            partitions=tuple(j.code for j in task.partitions),
            warm_start={j.code: j.warm_start for j in task.partitions},
            checkpoints=checkpoints,
            lockstep=together is not None,
        )

    def assemble(
        self, request: TrainRequest, results: Sequence[WorkerResult], plan: Plan
    ) -> dict[str, Any]:
        """Assemble a model per partition, the ensemble's validation, placement, warm starts."""
        models = {}
        for w in results:
            for code, state in w.states.items():
                m = copy.deepcopy(request.model)
                m.load_state_dict(state)
                models[code] = m
        history = [r for w in results for r in w.history]
        return {
            "models": models,
            "val": ensemble_val(history),
            "partition": str(request.partition),
            "placement": plan.info.get("placement", {}),
            "trained_on": {c: w.worker for w in results for c in w.partitions},
            "warm_start": {c: s for w in results for c, s in w.warm_start.items()},
            "clusters": plan.info.get("clusters", {}),
        }


def _textures_on_worker(
    data: Any,
    jobs: Sequence[PartitionJob],
    *,
    targets: Any = None,
    in_memory_bytes: int | None = None,
    callbacks: Any = (),
) -> Any:
    """Worker side of the texture round (data-local GLCM vectors)."""
    from workbench.training.data import materialize

    return partition_textures(
        materialize(data, targets, max_bytes=in_memory_bytes), jobs, targets=targets
    )


def _one_by_one(
    task: WorkerTask, data: Any, val: Any, rank: int, callbacks: Sequence[Callback]
) -> tuple[dict[str, dict[str, Any]], list[EpochRecord], dict[str, str]]:
    """Train the worker's partition models one after another, in job order (the paper's way)."""
    trained: dict[str, dict[str, Any]] = {}
    history: list[EpochRecord] = []
    checkpoints: dict[str, str] = {}
    step = 0
    for job in task.partitions:
        model = copy.deepcopy(task.model)
        if job.warm_start is not None:
            model.load_state_dict(trained[job.warm_start])
        path = (
            partition_checkpoint_path(task.checkpoint_dir, job.code)
            if task.checkpoint_dir
            else None
        )
        records, model = train_local(
            task,
            model,
            subset(data, job.train_index),
            _val_subset(val, job.val_index),
            code=job.code,
            rank=rank,
            callbacks=callbacks,
            first_step=step,
            path=path,
        )
        step += sum(r.steps for r in records)
        history.extend(records)
        trained[job.code] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if path is not None:
            checkpoints[job.code] = str(path)
    return trained, history, checkpoints


def _val_subset(val: Any, index: Sequence[int] | None) -> Any:
    return None if val is None or index is None or len(index) == 0 else subset(val, index)
