"""Lockstep partitioned training is the same training as one model after another.

Real Sentinel-2 NDVI chips, partitioned by geohash; the one-after-another loop is the reference.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from workbench.errors import TrainingError

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.models import NDVIRegressor
from workbench.models.cnn import chip_mean_mse
from workbench.training.checkpoint import load_checkpoint
from workbench.training.data import group_by_code, materialize
from workbench.training.lockstep import run_lockstep, warm_start_levels
from workbench.training.ndvi import holdout_split
from workbench.training.strategies import PartitionJob, WorkerTask, run_worker

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def s2_jobs(s2_chips):
    """Three real geohash-7 partitions of uneven size (8, 15, 15 training chips)."""
    codes = np.asarray([str(c) for c in s2_chips.geocodes("geohash", 7)])
    groups = sorted(group_by_code(codes).items(), key=lambda kv: len(kv[1]))
    picked = [groups[0], groups[-2], groups[-1]]  # 10, 20 and 20 chips
    jobs = []
    for code, idx in picked:
        tr, te = holdout_split([code] * len(idx), fraction=0.25)
        idx = np.asarray(idx)
        jobs.append(PartitionJob(code, tuple(idx[tr].tolist()), tuple(idx[te].tolist())))
    assert len({len(j.train_index) for j in jobs}) == 2  # uneven: some models skip steps
    return jobs


def _task(s2_chips, jobs, *, lockstep, optimizer=None, ckdir=None):
    torch.manual_seed(0)
    mae = lambda p, t: (p - t.flatten(1).mean(dim=1)).abs().mean()  # noqa: E731
    return WorkerTask(
        "partitioned",
        NDVIRegressor(),
        chip_mean_mse,
        train_data=s2_chips,
        val_data=s2_chips,
        targets=("ndvi",),
        metrics={"mae": mae},
        optimizer=optimizer,
        partitions=tuple(jobs),
        epochs=3,
        batch_size=4,
        lr=3e-3,
        lockstep=lockstep,
        checkpoint_dir=ckdir,
    )


def _close(a, b, rel=1e-4, abs_=1e-6):
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


SGD = lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-4)  # noqa: E731
ADAMW = lambda ps: torch.optim.AdamW(ps, lr=3e-3, weight_decay=0.01)  # noqa: E731


@pytest.mark.parametrize(
    ("optimizer", "warm"),
    [(None, False), (None, True), (ADAMW, False), (SGD, True)],
    ids=["adam", "adam-warm-start", "adamw", "sgd-momentum-warm-start"],
)
def test_lockstep_trains_the_same_models_as_one_after_another(
    s2_chips, s2_jobs, warm, optimizer, tmp_path
):
    jobs = list(s2_jobs)
    if warm:  # the large partition starts from the small one's trained weights
        jobs[2] = dataclasses.replace(jobs[2], warm_start=jobs[0].code)
    runs, events = {}, {}
    for mode in (False, True):
        ev: list = []
        task = _task(
            s2_chips, jobs, lockstep=mode, optimizer=optimizer, ckdir=str(tmp_path / str(mode))
        )
        runs[mode], events[mode] = run_worker(task, callbacks=[ev.append]), ev
    ref, got = runs[False], runs[True]
    assert (ref.lockstep, got.lockstep) == (False, True)
    assert list(got.states) == list(ref.states) == [j.code for j in jobs]
    for code in ref.states:
        for name, w in ref.states[code].items():
            # Adam divides by sqrt(v): rounding in near-zero gradients moves a weight by ~lr/100
            torch.testing.assert_close(got.states[code][name], w, rtol=1e-3, atol=1e-4)
    # the same records: partition order, epochs, steps, samples, losses, validation
    assert [(r.partition, r.epoch, r.steps, r.samples) for r in got.history] == [
        (r.partition, r.epoch, r.steps, r.samples) for r in ref.history
    ]
    for a, b in zip(ref.history, got.history, strict=True):
        assert _close(a.loss, b.loss)
        assert set(a.val) == set(b.val) == {"loss", "mae", "samples"}
        assert all(_close(a.val[k], b.val[k]) for k in a.val)
    # the same events: step numbers, partitions, epochs, batch sizes and losses
    key = lambda e: (e.partition, e.step, e.epoch, e.samples)  # noqa: E731
    assert sorted(map(key, events[True])) == sorted(map(key, events[False]))
    ref_loss = {key(e): e.loss for e in events[False]}
    assert all(_close(e.loss, ref_loss[key(e)]) for e in events[True])
    # checkpoints hold the same epoch, weights and optimizer state, loadable by torch.optim
    assert set(got.checkpoints) == set(ref.checkpoints) == {j.code for j in jobs}
    for code in ref.checkpoints:
        a, b = load_checkpoint(ref.checkpoints[code]), load_checkpoint(got.checkpoints[code])
        assert a["epoch"] == b["epoch"] == 3
        model = NDVIRegressor()
        model.load_state_dict(b["model"])
        opt = (optimizer or (lambda ps: torch.optim.Adam(ps, lr=3e-3)))(model.parameters())
        opt.load_state_dict(b["optimizer"])
        for i, state in a["optimizer"]["state"].items():
            for k, v in state.items():
                if isinstance(v, torch.Tensor):
                    torch.testing.assert_close(
                        b["optimizer"]["state"][i][k].float(), v.float(), rtol=1e-3, atol=1e-6
                    )


class _WithBuffer(torch.nn.Module):  # buffers (e.g. BatchNorm statistics) are not stacked
    def __init__(self) -> None:
        super().__init__()
        self.net = NDVIRegressor()
        self.register_buffer("scale", torch.ones(()))

    def forward(self, x):
        return self.net(x) * self.scale


class _WithDropout(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = NDVIRegressor()

    def forward(self, x):
        return self.net(torch.nn.functional.dropout(x, 0.1, training=self.training))


def _sum_loss(p, t):  # a sum over samples, not a mean: per-model batch means would differ
    return ((p - t.flatten(1).mean(dim=1)) ** 2).sum()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"resume": "somewhere"}, "resume"),
        ({"partitions": "one"}, "a single partition"),
        ({"model": _WithBuffer}, "buffers"),
        ({"model": _WithDropout}, "random ops"),
        ({"loss_fn": _sum_loss}, "loss not a mean over samples"),
        ({"optimizer": lambda ps: torch.optim.RMSprop(ps, lr=1e-3)}, "RMSprop"),
        ({"optimizer": lambda ps: torch.optim.Adam(ps, lr=1e-3, amsgrad=True)}, "amsgrad"),
        ({"train_data": "stream"}, "data not in memory"),
    ],
)
def test_falls_back_to_one_after_another(s2_chips, s2_jobs, change, why):
    task = _task(s2_chips, s2_jobs, lockstep=True)
    fields = dict(change)
    if fields.get("partitions") == "one":
        fields["partitions"] = task.partitions[:1]
    if isinstance(fields.get("model"), type):
        fields["model"] = fields["model"]()
    task = dataclasses.replace(task, **fields)
    data = materialize(task.train_data, task.targets)
    if change.get("train_data") == "stream":
        data = torch.utils.data.Subset(data, range(len(data)))  # not a TensorDataset
    val = materialize(task.val_data, task.targets)
    assert run_lockstep(task, data, val) is None, why


def test_run_worker_reports_whether_it_ran_in_lockstep(s2_chips, s2_jobs):
    one = dataclasses.replace(_task(s2_chips, s2_jobs, lockstep=True), epochs=1)
    assert run_worker(one).lockstep
    assert not run_worker(dataclasses.replace(one, lockstep=False)).lockstep
    assert not run_worker(dataclasses.replace(one, model=_WithBuffer())).lockstep


def test_warm_start_levels_orders_jobs_and_rejects_unknown_sources():
    jobs = [
        PartitionJob("a", (0,)),
        PartitionJob("b", (1,), warm_start="a"),
        PartitionJob("c", (2,), warm_start="b"),
        PartitionJob("d", (3,)),
    ]
    assert warm_start_levels(jobs) == [[0, 3], [1], [2]]
    with pytest.raises(TrainingError, match="'b' should warm-start from 'z'"):
        warm_start_levels([PartitionJob("b", (1,), warm_start="z")])


@pytest.mark.parametrize("lockstep", [True, False])
def test_a_warm_start_from_a_later_partition_is_refused_before_training(
    s2_chips, s2_jobs, lockstep, tmp_path
):
    late = dataclasses.replace(s2_jobs[0], warm_start=s2_jobs[1].code)
    task = _task(s2_chips, [late, *s2_jobs[1:]], lockstep=lockstep, ckdir=str(tmp_path))
    with pytest.raises(TrainingError, match="order the jobs with transfer_plan"):
        run_worker(task)
    assert not list(tmp_path.rglob("*.pt"))  # nothing trained, nothing half-saved
