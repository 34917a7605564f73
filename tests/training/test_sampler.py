"""One sampler: streamed epochs are shuffled across the whole store, as a user would check.

The cube is 96 daily dates of a position-coded field (value = date * 10000 + row * 100 + col),
stored one date per chunk, read lazily (larger than the training in-memory limit set here), so
every chip tells which date and place it came from.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

import workbench  # noqa: F401
from workbench.cluster.orchestrate import launch_training
from workbench.data.synthetic import write_zarr
from workbench.options import set_options
from workbench.training.data import epoch_batches
from workbench.training.request import TrainRequest

pytestmark = pytest.mark.torch

DATES, SIZE, CHIP = 96, 16, 8


@pytest.fixture(scope="module")
def store_chips(tmp_path_factory):
    t, i, j = np.meshgrid(np.arange(DATES), np.arange(SIZE), np.arange(SIZE), indexing="ij")
    code = (t * 10_000 + i * 100 + j).astype(np.float32)
    ds = xr.Dataset(
        {"code": (("time", "lat", "lon"), code)},
        coords={
            "time": np.datetime64("2019-01-01", "ns") + np.arange(DATES).astype("timedelta64[D]"),
            "lat": 50.0 - 0.25 * np.arange(SIZE),
            "lon": 0.25 * np.arange(SIZE),
        },
    )
    path = tmp_path_factory.mktemp("sampler") / "daily.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_zarr(ds, path, chunks={"time": 1, "lat": SIZE, "lon": SIZE})
        lazy = xr.open_zarr(path, chunks=None)
    return lazy.wb.chips({"time": 1, "lat": CHIP, "lon": CHIP})


def _dates(batch) -> np.ndarray:
    return (batch[:, 0, 0, 0, 0].numpy() // 10_000).astype(int)


def _ids(batch) -> list[int]:
    return batch[:, 0, 0, 0, 0].numpy().astype(int).tolist()


def _epoch(chips, epoch, rank=0, world=1, batch=16):
    # a cache of a few dates: the store is read tile by tile, as a large one would be
    with set_options(chunk_cache_bytes=8 * SIZE * SIZE * 4):
        return list(
            epoch_batches(chips, batch_size=batch, epoch=epoch, seed=0, rank=rank, world_size=world)
        )


def test_first_tenth_of_every_epoch_spans_the_store(store_chips) -> None:
    assert len(store_chips) == DATES * 4
    firsts = []
    for epoch in range(3):
        batches = _epoch(store_chips, epoch)
        dates = np.concatenate([_dates(b) for b in batches])
        assert sorted(dates.tolist()) == sorted(np.repeat(np.arange(DATES), 4).tolist())
        first = dates[: len(dates) // 10]
        # storage order would give dates 0..9 here, every epoch
        assert first.max() - first.min() > DATES // 2, first
        assert len(np.unique(first)) >= 8
        firsts.append(first.tolist())
    assert firsts[0] != firsts[1] != firsts[2]  # a new order every epoch


def test_ranks_are_disjoint_equally_long_and_replay_the_same_order(store_chips) -> None:
    per_rank = [_epoch(store_chips, 1, rank=r, world=3) for r in range(3)]
    assert len({len(b) for b in per_rank}) == 1
    ids = [list(itertools.chain.from_iterable(map(_ids, b))) for b in per_rank]
    flat = list(itertools.chain.from_iterable(ids))
    assert len(set(flat)) == len(flat) == len(store_chips)
    # resuming at epoch 1 replays exactly the order epoch 1 had
    again = [
        list(itertools.chain.from_iterable(map(_ids, _epoch(store_chips, 1, rank=r, world=3))))
        for r in range(3)
    ]
    assert again == ids
    for r in range(3):  # each rank's share is spread over the store too
        dates = np.array(ids[r]) // 10_000
        assert np.ptp(dates[: len(dates) // 10]) > DATES // 2


def test_train_request_streams_shuffled_epochs(store_chips) -> None:
    """The path %%train takes: a streamed ChipSet (over the in-memory limit), two epochs."""
    seen: list[list[int]] = []

    def record(pred, x):
        seen.append(_dates(x).tolist())
        return (pred - x).pow(2).mean()

    model = torch.nn.Conv3d(1, 1, 1)
    request = TrainRequest(
        model=model,
        train_data=store_chips,
        loss_fn=record,
        epochs=2,
        batch_size=16,
        checkpoint=False,
        in_memory_bytes=0,
    )
    with set_options(chunk_cache_bytes=8 * SIZE * SIZE * 4):
        result = launch_training(request)
    steps = len(store_chips) // 16
    assert len(seen) == 2 * steps
    for epoch in range(2):
        dates = np.concatenate(seen[epoch * steps : (epoch + 1) * steps])
        first = dates[: len(dates) // 10]
        assert first.max() - first.min() > DATES // 2
    assert seen[:steps] != seen[steps:]
    assert [r.samples for r in result.history] == [len(store_chips)] * 2
