"""RunRecord / RunLog: durable appends (crash, torn lines, concurrent writers), arithmetic."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pytest

from workbench.metering import (
    EstimateMeter,
    MeterConfigError,
    MeteringWarning,
    RunLog,
    RunRecord,
    StepEvent,
    ThroughputMeter,
)


def stats(n=10, samples=64, duration=0.2):
    m = ThroughputMeter()
    for i in range(n):
        m.update(
            StepEvent(
                step=i,
                samples=samples,
                nbytes=samples * 1000,
                t=100 + duration * (i + 1),
                duration=duration,
                data_wait=duration / 4,
            )
        )
    return m.snapshot()


def test_build_from_meters_hand_computed():
    carbon = EstimateMeter(cpu_tdp_w=0, ram_gb=0, gpu_w=90, intensity_g_per_kwh=538).estimate(
        7200, started_at=1_700_000_000.0
    )
    r = RunRecord.build(
        "read ERA5",
        throughput=stats(),
        carbon=carbon,
        route="kvikio",
        strategy="single",
        price_per_hour=3.0,
        price_source="paperspace 2023",
        device="cuda:0 test",
    )
    assert r.duration_s == pytest.approx(2.0)  # from the steps, not from the carbon meter
    assert (r.steps, r.samples, r.nbytes) == (10, 640, 640_000)
    assert r.samples_per_s == pytest.approx(320.0)
    assert r.data_wait_share == pytest.approx(0.25)
    assert r.energy_kwh == pytest.approx(0.18)  # 90 W x 2 h
    assert r.emissions_kg == pytest.approx(0.18 * 0.538)
    assert r.power_w == pytest.approx(90.0)
    assert r.cost_usd == pytest.approx(3.0 * 2.0 / 3600)
    assert r.estimated
    assert r.measured
    assert r.carbon_method == "estimate"
    assert r.host
    assert r.device == "cuda:0 test"
    assert r.world_size == 1
    assert r.started_at.endswith("+00:00")
    assert len(r.run_id) == 32
    assert "(estimate)" in repr(r)
    assert json.loads(json.dumps(r.to_dict()))["route"] == "kvikio"


def test_zero_length_and_missing_duration():
    r = RunRecord.build("nothing", duration_s=0.0)
    assert r.duration_s == 0
    assert r.samples_per_s is None
    assert not r.measured
    with pytest.raises(MeterConfigError, match="no duration"):
        RunRecord.build("unknown")
    with pytest.raises(MeterConfigError, match="duration_s must be >= 0"):
        RunRecord.build("neg", duration_s=-1)
    with pytest.raises(MeterConfigError, match="price_per_hour"):
        RunRecord.build("x", duration_s=1, price_per_hour=-3)


def test_append_read_roundtrip_and_lookup(tmp_path):
    log = RunLog(tmp_path / "deep" / "runs.jsonl")
    assert log.read() == []
    assert len(log) == 0
    a = log.append(RunRecord.build("cpu", duration_s=16.0, route="zarr"))
    b = log.append(RunRecord.build("gpu", duration_s=11.9, route="kvikio", extra={"epochs": 3}))
    rows = log.read()
    assert [r.name for r in rows] == ["cpu", "gpu"]
    assert rows[1] == b
    assert rows[0].run_id == a.run_id
    assert log.get("gpu").extra == {"epochs": 3}
    assert log.get(a.run_id).route == "zarr"
    assert log.last().name == "gpu"
    with pytest.raises(MeterConfigError, match="names: \\['cpu', 'gpu'\\]"):
        log.get("tpu")
    df = log.to_frame()
    assert list(df["duration_s"]) == [16.0, 11.9]
    assert "2 runs" in repr(log)


def test_torn_last_line_is_skipped_and_next_append_starts_clean(tmp_path):
    log = RunLog(tmp_path / "runs.jsonl")
    log.append(RunRecord.build("one", duration_s=1.0))
    with open(log.path, "ab") as f:  # what a crash in the middle of a write leaves behind
        f.write(b'{"run_id": "abc", "name": "tor')
    with pytest.warns(MeteringWarning, match="skipped 1 unreadable line"):
        assert [r.name for r in log.read()] == ["one"]
    log.append(RunRecord.build("two", duration_s=2.0))
    with pytest.warns(MeteringWarning):
        assert [r.name for r in log.read()] == ["one", "two"]


def writer(path, prefix, n):
    log = RunLog(path)
    for i in range(n):
        log.append(RunRecord.build(f"{prefix}-{i}", duration_s=float(i), extra={"pad": "x" * 2000}))


FORK = multiprocessing.get_context("fork")  # no re-import: the child writes at once


def test_killed_writer_never_corrupts_earlier_rows(tmp_path):
    path = tmp_path / "runs.jsonl"
    proc = FORK.Process(target=writer, args=(path, "k", 1_000_000))
    proc.start()
    deadline = time.time() + 60
    while time.time() < deadline and (not path.exists() or path.stat().st_size < 100_000):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # a crash: no cleanup, no flush
    proc.join()
    rows = RunLog(path).read()  # whole rows only (a torn last line would warn, not fail)
    assert len(rows) > 10
    assert [r.name for r in rows] == [f"k-{i}" for i in range(len(rows))]


def test_concurrent_writers_keep_every_row(tmp_path):
    path = tmp_path / "runs.jsonl"
    procs = [FORK.Process(target=writer, args=(path, f"w{w}", 40)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    rows = RunLog(path).read()
    assert len(rows) == 120
    for w in range(3):
        assert [r.name for r in rows if r.name.startswith(f"w{w}-")] == [
            f"w{w}-{i}" for i in range(40)
        ]
