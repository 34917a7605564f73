"""MeteredRun: meters + subscribers + record, and metering failures never break the work."""

from __future__ import annotations

import time

import pytest

from workbench.metering import (
    EstimateMeter,
    MeterConfigError,
    MeteredRun,
    MeteringWarning,
    PowerSample,
    RunLog,
    StepEvent,
)


def steps(run, n=5, samples=8):
    for i in range(n):
        t0 = time.time()
        time.sleep(0.01)
        run.update(
            StepEvent(
                step=i,
                samples=samples,
                nbytes=samples * 10,
                t=time.time(),
                duration=time.time() - t0,
                data_wait=0.002,
            )
        )


def test_records_a_run_with_subscribers(tmp_path):
    events, power = [], []
    meter = EstimateMeter(
        cpu_tdp_w=0, ram_gb=0, gpu_w=100, intensity_g_per_kwh=500, sample_interval_s=0
    )
    with MeteredRun(
        "toy",
        log=str(tmp_path / "runs.jsonl"),
        carbon=meter,
        route="zarr",
        strategy="single",
        price_per_hour=2.0,
        callbacks=[events.append],
        power_callbacks=[power.append],
    ) as run:
        steps(run)
    r = run.record
    assert r.status == "ok"
    assert r.samples == 40
    assert r.steps == 5
    assert r.route == "zarr"
    assert r.strategy == "single"
    assert r.estimated
    assert r.measured
    assert r.energy_kwh == pytest.approx(100 * run.carbon_result.duration_s / 3.6e6)
    assert r.cost_usd == pytest.approx(2.0 * r.duration_s / 3600)
    assert len(events) == 5
    assert all(isinstance(p, PowerSample) for p in power)
    assert power
    assert RunLog(tmp_path / "runs.jsonl").last().run_id == r.run_id


def test_a_failing_block_is_recorded_and_reraised(tmp_path):
    log = RunLog(tmp_path / "runs.jsonl")

    def work():
        with MeteredRun("crash", log=log, carbon=EstimateMeter(intensity_g_per_kwh=1)) as run:
            steps(run, n=2)
            raise ZeroDivisionError("user bug")

    with pytest.raises(ZeroDivisionError, match="user bug"):
        work()
    assert log.last().status == "failed"
    assert "ZeroDivisionError" in log.last().error


def test_broken_subscriber_and_unwritable_log_do_not_stop_the_work(tmp_path):
    def broken(event):
        raise RuntimeError("widget closed")

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with (
        pytest.warns(MeteringWarning) as record,
        MeteredRun("w", log=RunLog(blocker / "runs.jsonl"), callbacks=[broken], carbon=None) as run,
    ):
        steps(run, n=3)
    messages = [str(w.message) for w in record]
    assert sum("widget closed" in m for m in messages) == 1  # reported once, then skipped
    assert any("could not record" in m for m in messages)
    assert run.throughput.snapshot().steps == 3


def test_zero_length_run_is_recorded_and_carbon_by_name():
    with MeteredRun("empty", carbon="estimate", country="NZL") as run:
        pass
    assert run.record.steps == 0
    assert run.record.samples_per_s is None
    assert run.record.country == "NZL"
    with pytest.raises(MeterConfigError, match="alpha-3"):
        MeteredRun("x", carbon="codecarbon")
