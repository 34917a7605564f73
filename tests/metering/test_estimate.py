"""EstimateMeter arithmetic, grid intensity lookup and country validation (offline)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from workbench.metering import (
    CarbonResult,
    EstimateMeter,
    MeterConfigError,
    MeteringWarning,
    PowerSample,
    StepEvent,
    combine_results,
    grid_intensity,
    validate_location,
)
from workbench.metering.grid import WORLD_AVERAGE_G_PER_KWH, known_countries


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_power_model_hand_computed():
    # CPU 100 W TDP, 4 of 16 threads at 50 %: 12.5 W; RAM 32 GB x 0.375 W/GB = 12 W; GPU 90 W
    m = EstimateMeter(
        cpu_tdp_w=100,
        cores=4,
        total_threads=16,
        utilisation=0.5,
        ram_gb=32,
        gpu_w=90,
        intensity_g_per_kwh=400,
    )
    assert m.model.cpu_w == pytest.approx(12.5)
    assert m.model.ram_w == pytest.approx(12.0)
    assert m.model.total_w == pytest.approx(114.5)
    r = m.estimate(1800)  # half an hour
    assert r.energy_kwh == pytest.approx(114.5 * 0.5 / 1000)
    assert r.emissions_kg == pytest.approx(0.05725 * 0.4)
    assert r.cpu_energy_kwh + r.ram_energy_kwh + r.gpu_energy_kwh == pytest.approx(r.energy_kwh)
    assert r.power_w == pytest.approx(114.5)
    assert r.estimated
    assert r.measured
    assert "estimate" in repr(r)
    assert all("estimate" in v for v in r.power_sources.values())


def test_pue_scales_every_component():
    a = EstimateMeter(cpu_tdp_w=10, cores=1, total_threads=1, ram_gb=0, intensity_g_per_kwh=1)
    b = EstimateMeter(
        cpu_tdp_w=10, cores=1, total_threads=1, ram_gb=0, intensity_g_per_kwh=1, pue=1.5
    )
    assert b.estimate(3600).energy_kwh == pytest.approx(1.5 * a.estimate(3600).energy_kwh)


def test_default_cpu_power_is_codecarbons_per_thread_figure():
    m = EstimateMeter(total_threads=8, cores=2, ram_gb=0)
    assert m.model.cpu_tdp_w == 32.0  # 4 W x 8 threads
    assert m.model.cpu_w == pytest.approx(8.0)
    assert m.grid.g_per_kwh == WORLD_AVERAGE_G_PER_KWH
    assert "IEA" in m.grid.source


def test_live_samples_follow_event_time_and_are_rate_limited():
    clock = FakeClock()
    m = EstimateMeter(
        cpu_tdp_w=0, ram_gb=0, gpu_w=36, intensity_g_per_kwh=500, sample_interval_s=1.0, clock=clock
    )
    got: list[PowerSample] = []
    m.subscribe(got.append)
    for i in range(40):  # 0.1 s steps, events from t=1000.1 to 1004.0
        m.update(StepEvent(step=i, samples=1, nbytes=0, t=1000.1 + 0.1 * i, duration=0.1))
    assert 4 <= len(got) <= 5  # about one per second of event time, not one per step
    last = got[-1]
    assert last.power_w == 36
    assert last.energy_kwh == pytest.approx(36 * (last.t - 1000.0) / 3.6e6)
    clock.t = 1010.0
    r = m.stop()
    assert r.duration_s == pytest.approx(10.0)
    assert r.energy_kwh == pytest.approx(0.0001)  # 36 W x 10 s
    assert r.emissions_kg == pytest.approx(0.00005)
    assert got[-1].energy_kwh == pytest.approx(r.energy_kwh)


def test_zero_length_and_unstarted_runs_are_explained():
    clock = FakeClock()
    m = EstimateMeter(intensity_g_per_kwh=100, clock=clock)
    m.start()
    r = m.stop()
    assert r.duration_s == 0
    assert r.energy_kwh == 0
    assert math.isnan(r.power_w)
    assert any("zero-length" in n for n in r.notes)
    with pytest.warns(MeteringWarning, match="without start"):
        r2 = EstimateMeter(intensity_g_per_kwh=100).stop()
    assert not r2.measured
    assert "NOT MEASURED" in repr(r2)


def test_broken_subscriber_does_not_stop_the_loop():
    m = EstimateMeter(intensity_g_per_kwh=100, sample_interval_s=0)

    def broken(sample):
        raise RuntimeError("plot gone")

    m.subscribe(broken)
    with pytest.warns(MeteringWarning, match="plot gone"):
        m.update(StepEvent(step=0, samples=1, nbytes=0, t=5.0, duration=1.0))
    m.update(StepEvent(step=1, samples=1, nbytes=0, t=6.0, duration=1.0))  # no second warning


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"utilisation": 1.5}, "utilisation"),
        ({"gpu_w": -1}, "gpu_w"),
        ({"pue": 0.5}, "pue"),
        ({"intensity_g_per_kwh": float("nan")}, "intensity_g_per_kwh"),
        ({"cores": 9, "total_threads": 8}, "cores"),
    ],
)
def test_bad_parameters_name_the_value(kwargs, match):
    with pytest.raises(MeterConfigError, match=match):
        EstimateMeter(**kwargs)


def test_combine_results_of_engines():
    """Engines on two machines: energies add up, the span covers both."""
    a = EstimateMeter(
        cpu_tdp_w=10, cores=1, total_threads=1, ram_gb=0, intensity_g_per_kwh=500, rank=0
    ).estimate(3600, started_at=0.0)
    b = EstimateMeter(
        cpu_tdp_w=20, cores=1, total_threads=1, ram_gb=0, intensity_g_per_kwh=500, rank=1
    ).estimate(1800, started_at=900.0)
    b = dataclasses.replace(b, host="node-2")
    c = combine_results([a, b])
    assert c.energy_kwh == pytest.approx(0.01 + 0.01)
    assert c.emissions_kg == pytest.approx(0.01)
    assert c.duration_s == pytest.approx(3600)
    assert c.measured
    assert c.estimated
    failed = CarbonResult.not_measured("codecarbon", "boom", rank=2)
    c2 = combine_results([a, failed])
    assert not c2.measured
    assert "rank 2: boom" in c2.error
    assert c2.energy_kwh == pytest.approx(a.energy_kwh)
    with pytest.raises(MeterConfigError):
        combine_results([])


def test_grid_intensity_from_codecarbon_files():
    aus = grid_intensity("AUS")
    assert aus.country_name == "Australia"
    assert aus.g_per_kwh == pytest.approx(548.692)
    assert "global_energy_mix.json" in aus.source
    ca = grid_intensity("USA", "California")
    assert ca.region == "california"
    assert 50 < ca.g_per_kwh < 600
    assert grid_intensity("SWE", "se1").region == "SE1"
    m = EstimateMeter(country="FRA", ram_gb=0)
    assert m.grid.country_iso_code == "FRA"
    assert m.grid.g_per_kwh < 200
    assert len(known_countries()) > 200


@pytest.mark.parametrize(
    ("country", "suggestion"),
    [
        ("AU", "'AUS' (Australia)"),
        ("UK", "'GBR' (United Kingdom)"),
        ("Autralia", "'AUS'"),
        ("fr", "'FRA' (France)"),
    ],
)
def test_unknown_country_lists_close_matches(country, suggestion):
    with pytest.raises(MeterConfigError, match=f"unknown country code '{country}'") as info:
        validate_location(country)
    assert suggestion in str(info.value)
    assert isinstance(info.value, ValueError)


def test_country_names_and_regions():
    assert validate_location(" australia ") == ("AUS", None)
    with pytest.raises(MeterConfigError, match="close matches: 'california'"):
        validate_location("USA", "Califonia")
    with pytest.raises(MeterConfigError, match="no regional data for AUS"):
        validate_location("AUS", "NSW")
    with pytest.raises(MeterConfigError, match="alpha-3"):
        validate_location("")


def test_two_engines_on_one_host_count_the_machine_once():
    """codecarbon's users double count engines that share a host (codecarbon #936)."""
    whole = dict(cpu_tdp_w=8, total_threads=2, ram_gb=16, intensity_g_per_kwh=400)
    a = EstimateMeter(cores=2, rank=0, **whole).estimate(3600, started_at=0.0)
    b = EstimateMeter(cores=2, rank=1, **whole).estimate(3600, started_at=0.0)
    assert a.host == b.host is not None
    assert a.cpu_scope == "machine"
    once = combine_results([a, b])
    assert once.energy_kwh == pytest.approx(a.energy_kwh)
    assert once.emissions_kg == pytest.approx(a.emissions_kg)
    assert any("counted once per host" in n for n in once.notes)
    # per-process CPU shares add up; the RAM of the machine still counts once
    half = dict(whole, cores=1)
    p0 = EstimateMeter(rank=0, **half).estimate(3600, started_at=0.0)
    p1 = EstimateMeter(rank=1, **half).estimate(3600, started_at=0.0)
    assert p0.cpu_scope == "process"
    both = combine_results([p0, p1])
    assert both.cpu_energy_kwh == pytest.approx(2 * p0.cpu_energy_kwh)
    assert both.ram_energy_kwh == pytest.approx(p0.ram_energy_kwh)
    assert both.energy_kwh == pytest.approx(a.energy_kwh)
    # engines on two machines add up
    elsewhere = dataclasses.replace(b, host="node-2")
    assert combine_results([a, elsewhere]).energy_kwh == pytest.approx(2 * a.energy_kwh)
