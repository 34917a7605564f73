"""Variance between and within partitions; the water and cloud tasks built from real data."""

from __future__ import annotations

import numpy as np
import pytest

import workbench
from workbench.errors import DimensionError
from workbench.testing import shared_data
from workbench.training.regions import linear_residuals, partition_errors, variance_decomposition


def test_variance_decomposition_matches_the_definition():
    rng = np.random.default_rng(0)
    groups = np.repeat(["a", "b", "c"], [50, 30, 20])
    y = rng.normal(size=100) + (groups == "b") * 3.0
    d = variance_decomposition(y, groups)
    means = {g: y[groups == g].mean() for g in "abc"}
    between = sum((groups == g).sum() * (m - y.mean()) ** 2 for g, m in means.items())
    assert d["between_share"] == pytest.approx(between / ((y - y.mean()) ** 2).sum())
    assert d["between_share"] + d["within_share"] == pytest.approx(1.0)
    assert d["samples_per_partition"] == {"min": 20, "median": 30.0, "max": 50}
    assert variance_decomposition(np.ones(4), list("aabb"))["between_share"] == 0.0
    with pytest.raises(DimensionError, match="one partition per value"):
        variance_decomposition([1.0, 2.0], ["a"])


def test_residuals_and_errors_per_partition():
    x = np.arange(10.0)
    assert np.allclose(linear_residuals(x[:, None], 3 * x - 2), 0)
    table = partition_errors([1.0, 3.0, 4.0], ["b", "b", "a"], lon=[1, 3, 5], lat=[0, 2, 4])
    assert table.to_dict("records") == [
        {"partition": "a", "n": 1, "error": 4.0, "lon": 5.0, "lat": 4.0},
        {"partition": "b", "n": 2, "error": 2.0, "lon": 2.0, "lat": 1.0},
    ]


@pytest.fixture(scope="module")
def water(tmp_path_factory):
    from workbench.training.olci import olci_catalog, water_task

    with workbench.set_options(progress=False):
        cat = olci_catalog(
            shared_data("xcube_olci_northsea/cube-1-250-250.zarr"),
            tmp_path_factory.mktemp("olci"),
            precision=4,
        )
    return water_task(cat, max_records=40, min_chips=80)


def test_water_task_holds_out_whole_blocks_and_keeps_big_partitions(water):
    train_blocks = {c[:5] for c in water.train.codes}
    held_blocks = {c[:5] for c in water.held_out.codes}
    assert train_blocks.isdisjoint(held_blocks)
    assert 0.1 < len(water.held_out) / (len(water.train) + len(water.held_out)) < 0.35
    parts, counts = np.unique([c[:4] for c in water.train.codes], return_counts=True)
    assert counts.min() >= 80
    assert {c[:4] for c in water.held_out.codes} <= set(parts)
    assert set(water.records.id) == set(water.train.record_ids) | set(water.held_out.record_ids)
    x = water.train.x
    assert abs(float(x.mean())) < 0.2
    assert 0.8 < float(x.std()) < 1.2  # standardised with the training chips' statistics


def test_water_task_regions_differ(water):
    y = water.train.y.reshape(len(water.train), -1).mean(axis=1)
    parts = [c[:4] for c in water.train.codes]
    residual = linear_residuals(water.train.x.mean(axis=(2, 3)), y)
    # the target is regional, and so is what chl and TSM leave unexplained
    assert variance_decomposition(y, parts)["between_share"] > 0.1
    assert variance_decomposition(residual, parts)["between_share"] > 0.1


def test_cloud_task_pairs_chips_and_composite_baseline(tmp_path):
    torch = pytest.importorskip("torch")
    from workbench.models.spagan import psnr
    from workbench.training.cloudfree import cloud_task, composite_chips, s2_cloud_catalog

    with workbench.set_options(progress=False):
        cat = s2_cloud_catalog(shared_data("eolearn_s2_slovenia/geotiff"), tmp_path)
    task = cloud_task(cat)
    assert len(task.pairs) == 18  # 6 geohash-6 cells x 3 clear dates
    assert task.chipper.augment
    assert len(task.train) % 8 == 0
    assert {c for c in task.train.codes}.isdisjoint(set(task.held_out.codes))
    assert task.train.x.shape[1:] == (7, 16, 16)
    assert task.held_out.y.shape[1:] == (4, 16, 16)
    assert task.train.x.min() >= 0.0
    assert task.train.x.max() <= 1.0
    assert set(np.unique(task.train.x[:, 6])) <= {0.0, 1.0}  # the mask channel
    assert set(task.records.dataset) == {"S2_L1C", "S2_CLM"}
    comp = torch.from_numpy(composite_chips(task, task.held_out))
    clear = torch.from_numpy(task.held_out.y[:, :3])
    cloudy = torch.from_numpy(task.held_out.x[:, :3])
    assert float(psnr(comp, clear).mean()) > float(psnr(cloudy, clear).mean()) + 10
