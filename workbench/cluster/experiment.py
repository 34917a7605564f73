"""The seed paper's experiment on namespaced hosts: strategies side by side, bytes on the links.

*Small is Beautiful* (Tables III-V) compares one distributed model with an ensemble of
per-geocode models trained where their data lives. :func:`run_on_hosts` runs that comparison
on a :class:`~workbench.cluster.hosts.HostCluster` for a :class:`HostTask`:

1. **staging** (its own measured phase): the controller stages the task's catalog pieces onto
   the hosts with :meth:`~workbench.catalog.Catalog.stage` (the placement ring of the
   training), and every host pulls its folder from the controller's file service into its own
   data folder; the whole training set is also exported for the data-parallel ranks;
2. **training**, one strategy after another (:data:`PAPER_STRATEGIES`), each measured at the
   links (bytes by traffic class: ``data``, ``training``, ``control``) and by the training
   code's own counters; partitioned workers read only their local pieces
   (:class:`~workbench.chips.staged.HostChips`), DDP ranks read their shard over the network
   each epoch (:class:`~workbench.cluster.hostdata.RemoteChips`);
3. **scoring** in this process on held-out chips, overall and per partition.

The same epochs, batch size, learning rate and model for every strategy.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench._optional import lazy_import
from workbench.chips.staged import Chipper, ChipTable
from workbench.cluster.hostdata import RemoteChips, export_chips
from workbench.cluster.hosts import HostCluster
from workbench.cluster.orchestrate import launch_training
from workbench.cluster.spec import PartitionSpec, TrainRequest
from workbench.errors import LaunchError
from workbench.geo import HashRing

__all__ = [
    "StrategySpec",
    "PAPER_STRATEGIES",
    "HostTask",
    "stage_to_hosts",
    "run_single",
    "run_on_hosts",
]

_TOKENS = 256  # tokens per node of the placement ring (TrainRequest's default)


@dataclass(frozen=True)
class StrategySpec:
    """One row of the comparison: a strategy and its partitioning."""

    name: str
    strategy: str
    precision: int | None = None
    transfer: str | None = None
    lockstep: bool = False


#: The rows of the paper's comparison. ``partitioned`` trains each host's models one after
#: another, as the paper's partitioned runs did; ``containerised`` trains them all at once
#: (lockstep), the analogue of the paper's Kubernetes variant.
PAPER_STRATEGIES = (
    StrategySpec("ddp", "ddp"),
    StrategySpec("partitioned", "partitioned", precision=4),
    StrategySpec("partitioned+glcm", "partitioned", precision=4, transfer="glcm"),
    StrategySpec("partitioned@3", "partitioned", precision=3),
    StrategySpec("containerised", "partitioned", precision=4, lockstep=True),
)


@dataclass(frozen=True)
class HostTask:
    """A task for the experiment: pieces to stage, chip index, model, loss and scoring.

    ``score(result, table, precision)`` returns ``(metrics, per_sample_errors)`` of a trained
    :class:`~workbench.training.result.TrainResult` on the chips of ``table``
    (``metrics["held_out_error"]`` is the headline number, lower is better).
    """

    name: str
    catalog: Any
    records: pd.DataFrame
    chipper: Chipper
    train: ChipTable
    held_out: ChipTable
    model: Any
    loss_fn: Callable[[Any, Any], Any]
    score: Callable[[Any, ChipTable, int | None], tuple[dict[str, float], np.ndarray[Any, Any]]]
    targets: tuple[str, ...] = ("target",)
    optimizer: Any = None
    error_precision: int = 4
    baselines: Mapping[str, Any] = field(default_factory=dict)


def _pull(url: str, token: str, rel: str, subdir: str) -> int:
    """Engine side: copy this host's staged folder from the controller into its data folder."""
    from workbench.cluster.fileserve import FileClient
    from workbench.cluster.hosts import host_environment

    dest = Path(host_environment()["WORKBENCH_HOST_DATA"]) / subdir
    return FileClient(url, token).fetch_tree(rel, dest)


def _ring(hosts: Sequence[str]) -> HashRing:
    return HashRing(list(hosts), tokens_per_node=_TOKENS)


def stage_to_hosts(
    cluster: HostCluster, task: HostTask, precision: int, export: Path, service: Any
) -> dict[str, Any]:
    """Stage ``task.records`` by geocode prefix ``precision`` onto the hosts; measured.

    Returns the staging row: seconds (the controller's copy and the hosts' pulls), bytes on
    the links by class, bytes per host, partitions per host.
    """
    names = [h.name for h in cluster.hosts]
    subdir = f"stage-p{precision}"
    t0 = time.perf_counter()
    with cluster.network.measure() as m:
        staged = task.catalog.stage(
            _ring(names), export / subdir, records=task.records, prefix_len=precision
        )
        t1 = time.perf_counter()
        ids = cluster.engine_ids()
        info = cluster.info(ids)
        by_host = {str(info[e]["host"]): e for e in ids}
        pulls = [
            cluster.client[by_host[n]].apply_async(
                _pull, service.url, service.token, f"{subdir}/{n}", subdir
            )
            for n in names
        ]
        received = [int(ar.get(600)) for ar in pulls]
    links = m["bytes"]
    return {
        "precision": precision,
        "duration_s": time.perf_counter() - t0,
        "copy_s": t1 - t0,
        "pull_s": time.perf_counter() - t1,
        "bytes_on_links": links.bytes_on_links,
        "by_class": links.by_class(),
        "received_per_host": dict(zip(names, received, strict=True)),
        "partitions_per_host": {n: len(s.partitions) for n, s in staged.items()},
        "records_per_host": {n: s.records for n, s in staged.items()},
    }


def _request(
    task: HostTask, spec: StrategySpec, train_data: Any, n: int, settings: Mapping[str, Any]
) -> TrainRequest:
    scoped: dict[str, Any] = {}
    if spec.strategy == "partitioned":  # options only this strategy takes
        scoped = {
            "partition": PartitionSpec("geohash", spec.precision or 4),
            "transfer": spec.transfer,
            "lockstep": spec.lockstep,
            "tokens_per_node": _TOKENS,
        }
    return TrainRequest(
        model=copy.deepcopy(task.model),
        train_data=train_data,
        loss_fn=task.loss_fn,
        optimizer=task.optimizer,
        targets=task.targets,
        strategy=spec.strategy,
        engines=n,
        checkpoint=False,
        name=spec.name,
        **scoped,
        **settings,
    )


def _row(
    task: HostTask, spec: StrategySpec, result: Any, links: Any, extra: Mapping[str, Any]
) -> dict[str, Any]:
    from workbench.training.regions import partition_errors

    held = task.held_out
    metrics, errors = task.score(result, held, spec.precision)
    cells = [c[: task.error_precision] for c in held.codes.tolist()]
    per_partition = partition_errors(errors, cells, held.lon, held.lat)
    return {
        "name": spec.name,
        "strategy": spec.strategy,
        "partition_precision": spec.precision,
        "transfer": spec.transfer,
        "lockstep": bool(result.workers and all(w.get("lockstep") for w in result.workers))
        if spec.strategy == "partitioned"
        else None,
        "duration_s": result.duration_s,
        "train_s": result.train_s,
        "models": len(result.models) or 1,
        "bytes_on_links": links.bytes_on_links if links is not None else 0,
        "bytes_by_class": links.by_class() if links is not None else {},
        "hook_bytes_exchanged": result.bytes_exchanged,
        "hook_payload_bytes": result.payload_bytes,
        "pickled_control_bytes": result.control_bytes,
        **metrics,
        "per_partition": per_partition.to_dict("records"),
        **extra,
    }


def run_single(
    task: HostTask, settings: Mapping[str, Any], *, threads: int = 1, return_result: bool = False
) -> Any:
    """Train one model in this process on the whole training set (the reference row).

    With ``threads`` torch threads (default 1: a host's share of the machine, as the workers
    get; more threads on a busy machine can be many times slower, not faster). Returns the row,
    or ``(row, TrainResult)`` with ``return_result=True``.
    """
    torch = lazy_import("torch", purpose="the single-model reference row")
    data = torch.utils.data.TensorDataset(
        torch.from_numpy(task.train.x), torch.from_numpy(task.train.y)
    )
    spec = StrategySpec("single", "single")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = launch_training(_request(task, spec, data, 1, settings))
    finally:
        torch.set_num_threads(before)
    row = _row(task, spec, result, None, {"hosts": 0, "link_rate_mbit": None, "threads": threads})
    return (row, result) if return_result else row


def run_on_hosts(
    cluster: HostCluster,
    task: HostTask,
    strategies: Sequence[StrategySpec] = PAPER_STRATEGIES,
    *,
    settings: Mapping[str, Any],
    timeout: float | None = None,
) -> dict[str, Any]:
    """Stage, then train and score every strategy on ``cluster`` (see the module docstring).

    ``settings`` holds the training settings every strategy shares (``epochs``,
    ``batch_size``, ``lr``, ``seed``).

    Returns
    -------
    dict
        ``network`` (namespaces, hosts, link rate), ``staging`` (one row per partition
        precision), ``rows`` (one per strategy).
    """
    n = len(cluster.hosts)
    if n < 2:
        raise LaunchError(f"the comparison needs at least 2 hosts, the cluster has {n}")
    export = Path(tempfile.mkdtemp(prefix="workbench-export-"))
    try:
        service = cluster.serve(export)
        precisions = sorted({s.precision for s in strategies if s.precision})
        staging = [stage_to_hosts(cluster, task, p, export, service) for p in precisions]
        remote = RemoteChips(_client(service), **export_chips(task.train, export, "ddp/train"))
        launcher = cluster.launcher()
        rows = []
        base = {"hosts": n, "link_rate_mbit": cluster.network.rate_mbit}
        for spec in strategies:
            if spec.strategy == "partitioned":
                data: Any = task.train.refs(task.chipper, subdir=f"stage-p{spec.precision}")
            else:
                data = remote
            request = _request(task, spec, data, n, settings)
            if timeout is not None:
                request = request.replace(timeout=timeout)
            with cluster.network.measure() as m:
                result = launch_training(request, launcher)
            rows.append(_row(task, spec, result, m["bytes"], base))
    finally:
        for svc in [s for s in cluster.services if s.root == export.resolve()]:
            cluster.services.remove(svc)
            svc.close()
        shutil.rmtree(export, ignore_errors=True)
    return {
        "network": {"namespaces": True, "hosts": n, "link_rate_mbit": cluster.network.rate_mbit},
        "staging": staging,
        "rows": rows,
    }


def _client(service: Any) -> Any:
    from workbench.cluster.fileserve import FileClient

    return FileClient(service.url, service.token)
