"""The Frontier paper's three measurement modes: IO only, synthetic, real."""

from __future__ import annotations

import time

import numpy as np
import pytest

from workbench.metering import MeterConfigError, measure_modes
from workbench.metering.modes import batch_size_of, random_like
from workbench.testing import requires, shared_data


class SlowLoader:
    """A re-iterable loader whose every batch costs ``delay`` seconds to produce."""

    def __init__(self, n=8, delay=0.0, shape=(16, 3, 8, 8)):
        self.n, self.delay, self.shape = n, delay, shape

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.delay)
            yield np.full(self.shape, i, dtype="float32")


def slow_step(delay):
    def step(batch):
        time.sleep(delay)
        return float(batch.sum())

    return step


def test_input_bound_verdict():
    rep = measure_modes(slow_step(0.001), SlowLoader(delay=0.06), steps=5, warmup=1, min_seconds=0)
    assert rep.bound == "input"
    assert rep.input_bound
    assert rep.images_per_s["synthetic"] > 3 * rep.images_per_s["io"]
    assert rep.images_per_s["real"] <= rep.images_per_s["io"] * 1.5
    assert rep.stats["real"].data_wait_share > 0.7
    assert rep.stats["io"].data_wait_share == pytest.approx(1.0)
    assert rep.stats["synthetic"].data_wait_share < 0.05
    assert rep.verdict.startswith("input-bound: the loader alone delivers")
    assert rep.verdict.endswith("(5 measured steps per mode of 16 samples each)")
    assert "loader" in repr(rep)
    assert rep.batch_size == 16
    assert rep.steps == 5
    assert set(rep.to_frame().index) == {"io", "synthetic", "real"}
    page = rep._repr_html_()
    assert 'class="wb-mode-report"' in page
    assert page.count("input-bound") == 1  # the label once, not "input-bound: input-bound"
    assert "<th>step time (ms)</th>" in page
    assert "e+" not in page
    assert "e-" not in page.replace("mode-report", "")  # no exponents


def test_compute_bound_verdict_and_events():
    events = []
    rep = measure_modes(
        slow_step(0.03), SlowLoader(), steps=4, warmup=1, min_seconds=0, callbacks=[events.append]
    )
    assert rep.bound == "compute"
    assert rep.images_per_s["io"] > 3 * rep.images_per_s["synthetic"]
    assert [e.kind for e in events] == ["io"] * 4 + ["synthetic"] * 4 + ["train"] * 4
    assert all(e.samples == 16 for e in events)
    assert events[0].nbytes == 16 * 3 * 8 * 8 * 4


def test_synthetic_batch_is_random_of_the_same_shape():
    seen = []

    def step(batch):
        seen.append(batch)

    measure_modes(step, SlowLoader(n=3), steps=2, warmup=0, modes=["synthetic"], min_seconds=0)
    x = seen[0]
    assert x.shape == (16, 3, 8, 8)
    assert x.dtype == np.float32
    assert float(x.std()) > 0.5  # random, not the loader's constant batch
    pair = random_like((np.ones((4, 2), "float64"), np.arange(4)))
    assert pair[1].tolist() == [0, 1, 2, 3]
    assert pair[0].dtype == np.float64
    assert batch_size_of({"x": np.zeros((5, 1))}) == 5


def test_bad_inputs_are_explained():
    with pytest.raises(MeterConfigError, match="one-shot iterator"):
        measure_modes(slow_step(0), iter([np.zeros((2, 2))]), steps=1)
    with pytest.raises(MeterConfigError, match="yielded no batch"):
        measure_modes(slow_step(0), [], steps=1)
    with pytest.raises(MeterConfigError, match="unknown mode"):
        measure_modes(slow_step(0), [np.zeros(1)], modes=["gpu"])
    with pytest.raises(MeterConfigError, match="steps >= 1"):
        measure_modes(slow_step(0), [np.zeros(1)], steps=0)
    rep = measure_modes(slow_step(0), [np.zeros((2, 2))] * 3, steps=5, warmup=0, min_seconds=0)
    assert rep.steps == 5  # the loader is iterated again rather than measuring 3 steps
    assert any("ran out and was iterated 2 times" in n for n in rep.notes)


def test_enough_steps_and_time_back_the_verdict():
    """A fast step on a short loader is still timed over min_seconds, and the count is stated."""
    rep = measure_modes(slow_step(0.002), SlowLoader(n=3), steps=4, warmup=1, min_seconds=0.2)
    for stats in rep.stats.values():
        assert stats.steps >= 4
        assert stats.busy_s >= 0.2 or stats.steps == 1000  # the default cap of a fast mode
    assert rep.steps == min(s.steps for s in rep.stats.values())
    assert f"{rep.steps}" in rep.verdict
    assert "measured steps per mode of 16 samples each" in rep.verdict
    capped = measure_modes(slow_step(0), SlowLoader(n=3), steps=2, min_seconds=60, max_steps=7)
    assert {s.steps for s in capped.stats.values()} == {7}
    text = repr(capped)
    assert "images/s" in text
    assert "nan" not in text.lower()


@requires("torch")
@requires("xbatcher")
def test_real_era5_chips_with_a_torch_model():
    import torch
    import xarray as xr
    import xbatcher

    ds = xr.open_dataset(shared_data("era5_reanalysis/era5_t2m_uk_2019-03.nc"), engine="h5netcdf")
    t2m = ds["t2m"].isel(time=slice(0, 96)).load()
    gen = xbatcher.BatchGenerator(t2m, input_dims={"time": 8, "latitude": 16, "longitude": 16})

    class Loader:  # re-iterable: xbatcher batches -> float tensors (B, 1, 16, 16)
        def __iter__(self):
            for b in gen:
                x = torch.from_numpy(b.values.reshape(-1, 1, 16, 16).copy()) - 280.0
                yield x

    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 16 * 16, 1),
    )
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step(x):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()

    rep = measure_modes(step, Loader(), steps=4, warmup=1, min_seconds=0)
    assert all(v > 0 for v in rep.images_per_s.values())
    assert rep.bound in {"input", "compute", "balanced"}
    assert rep.batch_size == batch_size_of(next(iter(Loader())))
    # the synthetic batch was a random torch tensor of the same shape
    assert rep.stats["synthetic"].samples == 4 * rep.batch_size


def test_a_short_last_batch_is_stated_not_taken_for_the_batch_size():
    batches = [np.ones((n, 2), "float32") for n in (16, 16, 10)]
    rep = measure_modes(slow_step(0), batches, steps=6, warmup=0, min_seconds=0)
    assert rep.batch_size == 16
    assert rep.verdict.endswith("(6 measured steps per mode of 10 to 16 samples each)")
