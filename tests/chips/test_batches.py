"""chips.batches(): the chip stream as NumPy arrays, its dtype policy and batch transforms."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import workbench  # noqa: F401
from workbench.chips.batches import resolve_dtype
from workbench.errors import ChipSpecError

VARS = ["t2m", "u10", "v10", "msl"]


def test_batches_equal_the_chips_in_plan_order(era5) -> None:
    chips = era5.wb.chips({"time": 1, "lat": 16, "lon": 16}, variables=VARS)
    batches = chips.batches(50, shuffle=True, seed=5)
    got = list(batches)
    assert all(isinstance(b, np.ndarray) for b in got)
    order = np.concatenate(batches.batch_indices(0))
    np.testing.assert_array_equal(np.concatenate(got), chips.to_numpy(order))
    assert batches.epoch == 1
    assert sorted(order.tolist()) == list(range(len(chips)))


def test_float64_sources_arrive_as_float32_integers_keep_their_dtype(era5) -> None:
    ds = xr.Dataset(
        {
            "refl": era5["t2m"].astype("float64"),
            "label": (era5["t2m"] > float(era5["t2m"].mean())).astype("uint8"),
        }
    )
    chips = ds.wb.chips({"time": 1, "lat": 8, "lon": 8})
    x, y = next(iter(chips.batches(4, targets=["label"])))
    assert x.dtype == np.float32
    assert y.dtype == np.uint8
    x64, _ = next(iter(chips.batches(4, targets=["label"], dtype=None)))
    assert x64.dtype == np.float64
    np.testing.assert_array_equal(x64.astype(np.float32), x)
    xh, yh = next(iter(chips.batches(4, targets=["label"], dtype="float16")))
    assert (xh.dtype, yh.dtype) == (np.float16, np.float16)


def test_transform_sees_the_whole_batch_and_returns_what_is_yielded(era5) -> None:
    chips = era5.wb.chips({"time": 4, "lat": 8, "lon": 8}, variables=["t2m"])
    calls = []

    def history_and_next(x):
        calls.append(x.shape)
        return x[:, :, :3], x[:, :, 3:]  # three steps in, the fourth to predict

    pairs = list(chips.batches(16, transform=history_and_next))
    assert len(calls) == len(pairs) == -(-len(chips) // 16)
    x, y = pairs[0]
    assert x.shape == (16, 1, 3, 8, 8)
    assert y.shape == (16, 1, 1, 8, 8)
    np.testing.assert_array_equal(y, chips.to_numpy(range(16))[:, :, 3:])


def test_bad_dtype_and_transform_are_refused(era5) -> None:
    chips = era5.wb.chips({"lat": 8, "lon": 8})
    with pytest.raises(ChipSpecError, match="transform must be a function"):
        chips.batches(4, transform="normalise")
    with pytest.raises(ChipSpecError, match="dtype must be"):
        resolve_dtype(object(), np.dtype("float64"))
