"""Per-rank batches and per-sample geocodes, from Datasets and from the real S2 ChipSet."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import GeocodeError, TrainingError

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.training.data import (
    epoch_batches,
    group_by_code,
    rank_batches,
    sample_geocodes,
    subset,
)

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("world", [1, 2, 3])
def test_rank_batches_are_disjoint_equally_many_and_reshuffled(world):
    shards = [
        np.concatenate(rank_batches(101, batch_size=8, rank=r, world_size=world, epoch=0, seed=7))
        for r in range(world)
    ]
    counts = [len(rank_batches(101, batch_size=8, rank=r, world_size=world)) for r in range(world)]
    assert len(set(counts)) == 1  # every rank runs the same number of steps
    flat = np.concatenate(shards)
    assert len(np.unique(flat)) == len(flat) == 101
    again = rank_batches(101, batch_size=8, rank=0, world_size=world, epoch=0, seed=7)
    other = rank_batches(101, batch_size=8, rank=0, world_size=world, epoch=1, seed=7)
    assert np.array_equal(np.concatenate(again), shards[0])
    assert not np.array_equal(np.concatenate(other), shards[0])


def test_bad_rank_is_rejected():
    with pytest.raises(TrainingError, match="rank=2, world_size=2"):
        rank_batches(10, batch_size=2, rank=2, world_size=2)


def test_chipset_batches_per_rank(s2_chips):
    counts = []
    for rank in range(2):
        batches = list(
            epoch_batches(
                s2_chips, batch_size=64, epoch=0, seed=0, rank=rank, world_size=2, targets=["ndvi"]
            )
        )
        counts.append(len(batches))
        x, y = batches[0]
        assert tuple(x.shape) == (64, 3, 1, 8, 8)
        assert tuple(y.shape) == (64, 1, 1, 8, 8)
        assert sum(len(b[0]) for b in batches) == 360
    assert counts[0] == counts[1]


def test_chipset_without_targets_yields_inputs_alone(s2_chips):
    batches = list(epoch_batches(s2_chips, batch_size=64, epoch=0, seed=0))
    assert all(isinstance(b, torch.Tensor) for b in batches)
    assert sum(len(b) for b in batches) == len(s2_chips)
    # the inputs are every variable of the ChipSet: RGB and NDVI as channels
    assert tuple(batches[0].shape[1:]) == (4, 1, 8, 8)


def test_subset_of_a_dataset_and_of_a_chipset(make_data, s2_chips):
    data = make_data(10)
    sub = subset(data, [2, 5])
    assert torch.equal(sub[1][0], data[5][0])
    view = subset(s2_chips, [3, 700])
    assert len(view) == 2
    assert np.array_equal(view.to_numpy([1]), s2_chips.to_numpy([700]))


def test_geocodes_from_a_chipset_match_its_own(s2_chips):
    codes = sample_geocodes(s2_chips, scheme="geohash", precision=7)
    assert codes.tolist() == [str(c) for c in s2_chips.geocodes("geohash", 7)]
    groups = group_by_code(codes)
    assert sum(len(v) for v in groups.values()) == len(s2_chips)
    assert len(groups) == 54


def test_geocodes_given_or_by_function(make_data):
    data = make_data(4)
    got = sample_geocodes(data, scheme="geohash", precision=2, geocodes=["u2a", "u2b", "u3", "u3x"])
    assert got.tolist() == ["u2", "u2", "u3", "u3"]
    fn = sample_geocodes(data, scheme="geohash", precision=1, partition_fn=lambda i: "uv"[i % 2])
    assert fn.tolist() == ["u", "v", "u", "v"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "define `geocodes`"),
        ({"geocodes": ["u2"] * 3}, "got 3 geocodes for 4 samples"),
        ({"geocodes": ["u2", "u2", "u", "u2"]}, "'u' is shorter than the partition precision 2"),
    ],
)
def test_geocode_errors(make_data, kwargs, match):
    with pytest.raises(GeocodeError, match=match):
        sample_geocodes(make_data(4), scheme="geohash", precision=2, **kwargs)
