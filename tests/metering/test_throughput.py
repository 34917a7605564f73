"""ThroughputMeter arithmetic against hand-computed values, ranks, bad events."""

from __future__ import annotations

import math
import threading

import pytest

from workbench.metering import MeterConfigError, MeteringWarning, StepEvent, ThroughputMeter


def ev(
    step, t, *, samples=32, nbytes=4096, duration=0.5, wait=0.1, rank=0, loss=None, kind="train"
):
    return StepEvent(
        step=step,
        samples=samples,
        nbytes=nbytes,
        t=t,
        duration=duration,
        data_wait=wait,
        rank=rank,
        loss=loss,
        kind=kind,
    )


def test_single_rank_rates_match_hand_computation():
    m = ThroughputMeter()
    # steps back to back: [10.0, 10.5], [10.5, 11.0], [11.0, 11.5], [11.5, 12.0]
    for i in range(4):
        m.update(ev(i, 10.5 + 0.5 * i, loss=1.0 / (i + 1)))
    s = m.snapshot()
    assert (s.steps, s.samples, s.nbytes) == (4, 128, 4 * 4096)
    assert s.elapsed_s == pytest.approx(2.0)
    assert s.samples_per_s == pytest.approx(64.0)
    assert s.chips_per_s == s.samples_per_s
    assert s.bytes_per_s == pytest.approx(4 * 4096 / 2.0)
    assert s.step_time_s == pytest.approx(0.5)
    assert s.step_time_p50_s == pytest.approx(0.5)
    assert s.data_wait_share == pytest.approx(0.2)
    assert s.last_loss == pytest.approx(0.25)
    assert "64.0 samples/s" in repr(s)


def test_idle_gaps_count_in_elapsed_but_not_in_busy():
    m = ThroughputMeter()
    m.update(ev(0, 1.0, duration=1.0, wait=0.0))  # [0, 1]
    m.update(ev(1, 4.0, duration=1.0, wait=0.5))  # [3, 4]: 2 s idle in between
    s = m.snapshot()
    assert s.elapsed_s == pytest.approx(4.0)
    assert s.busy_s == pytest.approx(2.0)
    assert s.samples_per_s == pytest.approx(64 / 4.0)
    assert s.data_wait_share == pytest.approx(0.25)


def test_ranks_aggregate_over_the_common_wall_clock_span():
    m = ThroughputMeter()
    for i in range(10):  # two engines, concurrently, 0.1 s steps of 16 samples
        for r in (0, 1):
            m.update(ev(i, 100.1 + 0.1 * i, samples=16, duration=0.1, wait=0.0, rank=r))
    s = m.snapshot()
    assert s.ranks == (0, 1)
    assert s.per_rank[0].samples_per_s == pytest.approx(160.0)
    assert s.per_rank[1].samples_per_s == pytest.approx(160.0)
    assert s.samples_per_s == pytest.approx(320.0)  # concurrent ranks add up
    assert m.snapshot(rank=1).steps == 10
    with pytest.raises(MeterConfigError, match="ranks seen: \\[0, 1\\]"):
        m.snapshot(rank=7)
    d = s.to_dict()
    assert d["per_rank"]["1"]["samples"] == 160


def test_empty_meter_reports_no_steps_not_a_division_error():
    s = ThroughputMeter().snapshot()
    assert s.steps == 0
    assert math.isnan(s.samples_per_s)
    assert math.isnan(s.data_wait_share)
    assert repr(s) == "ThroughputStats(no steps recorded)"


def test_kind_filter_and_dict_events():
    m = ThroughputMeter(kinds=["train"])
    m.update(ev(0, 1.0, kind="io"))
    m.update(ev(1, 1.5).to_dict())
    assert m.steps == 1


def test_bad_events_warn_once_and_are_not_counted():
    m = ThroughputMeter()
    with pytest.warns(MeteringWarning, match="exceeds the step duration"):
        m.update(ev(0, 1.0, duration=0.1, wait=0.5))
    m.update(ev(1, 2.0, duration=-1.0))  # second bad event: counted, not reported again
    m.update(ev(2, 3.0))
    s = m.snapshot()
    assert (s.steps, s.rejected) == (1, 2)
    with pytest.raises(MeterConfigError, match="negative time"):
        ThroughputMeter(strict=True).update(ev(0, 1.0, duration=-1.0))
    with pytest.raises(TypeError, match="StepEvent"):
        m.update(42)


def test_thread_safe_under_concurrent_updates():
    m = ThroughputMeter()

    def worker(rank):
        for i in range(2000):
            m.update(ev(i, 1.0 + i, samples=1, duration=0.5, wait=0.0, rank=rank))

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.snapshot().samples == 8000
