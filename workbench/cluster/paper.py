"""The seed paper's comparison on namespaced hosts, for the water-clarity task.

:func:`water_host_task` turns the OLCI North Sea cube into a
:class:`~workbench.cluster.experiment.HostTask` (catalog pieces at geohash 4, chips of
:mod:`workbench.training.olci`, the paper's Fig. 5 CNN on two input bands, MSE of the chip-mean
``log(kd489)``), and reports why the task fits the question: the variance decomposition of the
target and of what a global linear fit leaves unexplained, and the chips per partition.
:func:`run_grid` runs the comparison on 2 and 4 hosts at 1 Gbit/s and 100 Mbit/s, plus the
single-model reference in this process.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench._typing import PathLike
from workbench.chips.staged import ChipTable
from workbench.cluster.experiment import (
    PAPER_STRATEGIES,
    HostTask,
    StrategySpec,
    run_on_hosts,
    run_single,
)
from workbench.cluster.hosts import HostCluster

__all__ = [
    "water_host_task",
    "cloud_host_task",
    "score_regression",
    "score_images",
    "task_diagnostics",
    "run_grid",
    "CLOUD_STRATEGIES",
]

#: SpAGAN rows: one distributed model vs one model per geohash-6 cell (one by one / lockstep).
CLOUD_STRATEGIES = (
    StrategySpec("ddp", "ddp"),
    StrategySpec("partitioned", "partitioned", precision=6),
    StrategySpec("containerised", "partitioned", precision=6, lockstep=True),
)


def score_regression(
    result: Any, table: ChipTable, precision: int | None
) -> tuple[dict[str, float], np.ndarray[Any, Any]]:
    """Return the held-out MSE of one value per chip vs the chip's mean target, and the errors."""
    torch = lazy_import("torch", purpose="scoring")
    x = torch.from_numpy(np.ascontiguousarray(table.x))
    target = table.y.reshape(len(table), -1).mean(axis=1)
    codes = table.codes.tolist() if result.models else None
    pred = result.predict(x, codes).detach().numpy().reshape(-1)
    se = (pred.astype(np.float64) - target) ** 2
    return {"held_out_error": float(se.mean()), "held_out_rmse": float(np.sqrt(se.mean()))}, se


def score_images(
    result: Any, table: ChipTable, precision: int | None
) -> tuple[dict[str, float], np.ndarray[Any, Any]]:
    """Held-out PSNR, SSIM and MSE of generated cloud-free chips; per-chip MSE as the errors."""
    torch = lazy_import("torch", purpose="scoring")
    from workbench.models.spagan import psnr, ssim

    c = table.y.shape[1] - 1
    cloudy = torch.from_numpy(np.ascontiguousarray(table.x[:, :c]))
    clear = torch.from_numpy(np.ascontiguousarray(table.y[:, :c]))
    codes = table.codes.tolist() if result.models else None
    fake = result.predict(cloudy, codes)[:, :c].detach().clamp(0.0, 1.0)
    mse = ((fake - clear) ** 2).flatten(1).mean(dim=1).numpy().astype(np.float64)
    return {
        "held_out_error": float(mse.mean()),
        "psnr": float(psnr(fake, clear).mean()),
        "ssim": float(ssim(fake, clear).mean()),
    }, mse


def task_diagnostics(task: Any, precisions: Sequence[int] = (3, 4)) -> dict[str, Any]:
    """Say why the task can answer the question: variance decomposition, chips per partition."""
    from workbench.training.regions import linear_residuals, variance_decomposition

    y = task.train.y.reshape(len(task.train), -1).mean(axis=1)
    features = task.train.x.mean(axis=(2, 3))
    residual = linear_residuals(features, y)
    out: dict[str, Any] = {
        "target": "chip-mean log(kd489)",
        "train_chips": len(task.train),
        "held_out_chips": len(task.held_out),
        "global_linear_residual_share": float(residual.var() / y.var()),
    }
    for p in precisions:
        codes = np.asarray([c[:p] for c in task.train.codes.tolist()])
        out[f"geohash{p}"] = {
            "target": variance_decomposition(y, codes),
            "linear_residual": variance_decomposition(residual, codes),
        }
    return out


def water_host_task(
    cube: PathLike,
    *,
    root: PathLike | None = None,
    max_records: int | None = None,
    min_chips: int = 150,
    width: int = 16,
    hidden: int = 64,
    seed: int = 0,
) -> HostTask:
    """Build the water-clarity task of :mod:`workbench.training.olci` as a host task.

    ``max_records`` keeps the pieces with the most valid pixels (notebook-sized runs).
    """
    torch = lazy_import("torch", purpose="the water-clarity task")
    from workbench.models import NDVIRegressor
    from workbench.models.cnn import chip_mean_mse
    from workbench.training.olci import olci_catalog, water_task

    catalog = olci_catalog(cube, root or tempfile.mkdtemp(prefix="workbench-olci-"), precision=4)
    task = water_task(catalog, max_records=max_records, min_chips=min_chips, seed=seed)
    torch.manual_seed(seed)
    model = NDVIRegressor(in_channels=2, chip_size=task.chipper.size, width=width, hidden=hidden)
    return HostTask(
        name="water clarity (kd489) from chl and TSM, OLCI North Sea",
        catalog=catalog,
        records=task.records,
        chipper=task.chipper,
        train=task.train,
        held_out=task.held_out,
        model=model,
        loss_fn=chip_mean_mse,
        score=score_regression,
        targets=("log_kd489",),
        error_precision=task.partition_precision,
    )


def cloud_host_task(
    folder: PathLike,
    *,
    root: PathLike | None = None,
    width: int = 16,
    lr: float = 2e-4,
    seed: int = 0,
) -> HostTask:
    """Build the SpAGAN cloud-removal task of :mod:`workbench.training.cloudfree` (host task).

    ``baselines`` holds the PSNR/SSIM of the cloudy input and of the temporal composite.
    """
    import functools

    torch = lazy_import("torch", purpose="the cloud-removal task")
    from workbench.models.spagan import SpAGAN, psnr, spagan_loss, ssim
    from workbench.training.cloudfree import cloud_task, composite_chips, s2_cloud_catalog

    catalog = s2_cloud_catalog(folder, root or tempfile.mkdtemp(prefix="workbench-s2-"))
    task = cloud_task(catalog, seed=seed)
    held = task.held_out
    c = held.y.shape[1] - 1
    clear = torch.from_numpy(np.ascontiguousarray(held.y[:, :c]))
    baselines = {}
    for name, img in (
        ("cloudy_input", torch.from_numpy(np.ascontiguousarray(held.x[:, :c]))),
        ("temporal_composite", torch.from_numpy(composite_chips(task, held))),
    ):
        baselines[name] = {
            "psnr": float(psnr(img, clear).mean()),
            "ssim": float(ssim(img, clear).mean()),
            "held_out_error": float(((img - clear) ** 2).mean()),
        }
    torch.manual_seed(seed)
    return HostTask(
        name="SpAGAN cloud removal, eo-learn Sentinel-2 (Slovenia)",
        catalog=catalog,
        records=task.records,
        chipper=task.chipper,
        train=task.train,
        held_out=held,
        model=SpAGAN(channels=c, width=width, disc_width=width),
        loss_fn=spagan_loss,
        score=score_images,
        targets=("clear", "mask"),
        optimizer=functools.partial(torch.optim.Adam, lr=lr, betas=(0.5, 0.999)),
        error_precision=task.partition_precision,
        baselines={
            **baselines,
            "pairs": len(task.pairs),
            "partitions": task.pairs.geocode.nunique(),
        },
    )


def run_grid(
    task: HostTask,
    *,
    hosts: Sequence[int] = (2, 4),
    rates_mbit: Sequence[float] = (1000.0, 100.0),
    strategies: Sequence[StrategySpec] = PAPER_STRATEGIES,
    settings: Mapping[str, Any],
    single: bool = True,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run the comparison on every (hosts, rate) pair, each on a fresh :class:`HostCluster`."""
    runs = []
    for n in hosts:
        for rate in rates_mbit:
            t0 = time.perf_counter()
            with HostCluster.start(n, rate_mbit=rate) as cluster:
                startup = time.perf_counter() - t0
                cluster.client[:].execute("import torch", block=True)
                run = run_on_hosts(cluster, task, strategies, settings=settings, timeout=timeout)
            run["network"]["startup_s"] = startup
            runs.append(run)
    out: dict[str, Any] = {"runs": runs}
    if single:
        out["single"] = run_single(task, settings)
    return out
