"""The seed blog's savings table, reproduced exactly from its inputs, and run comparisons."""

from __future__ import annotations

import pytest

from workbench.metering import (
    BLOG_INPUTS,
    EQUIVALENCES,
    EstimateMeter,
    MeterConfigError,
    RunLog,
    RunRecord,
    compare_runs,
    extrapolate_savings,
)

BLOG_TABLE = [
    # time saved, price, carbon, equivalent (the blog's last table, verbatim numbers)
    ("6 hr (day)", "USD18", "0.29 kgCO₂eq", "35 smartphone charges"),
    ("180 hr (month)", "USD540", "8.72 kgCO₂eq", "44 km of driving a car"),
    ("2190 hr (year)", "USD6570", "106.04 kgCO₂eq", "431 km domestic flight"),
]


def test_blog_table_reproduced_exactly():
    rep = extrapolate_savings(16.0, 11.9, **BLOG_INPUTS)
    assert rep.fraction_saved == pytest.approx(0.25625)  # "about 25% less time"
    assert rep.kg_per_hour == pytest.approx(0.04842)  # 90 W x 538 gCO2eq/kWh
    df = rep.to_display_frame()
    assert list(df.columns) == [
        "Time saved",
        "Price (USD3/hr)",
        "Carbon (0.04842 kgCO₂eq/hr)",
        "CO₂ emissions equivalent to",
    ]
    assert [tuple(row) for row in df.itertuples(index=False)] == BLOG_TABLE


def test_blog_numbers_hand_computed():
    rep = extrapolate_savings(16.0, 11.9, **BLOG_INPUTS)
    num = rep.to_frame()
    assert list(num["hours"]) == [6.0, 180.0, 2190.0]  # 24 h x (1 - 11.9/16) = 6.15 -> "about 6"
    assert list(num["usd"]) == [18.0, 540.0, 6570.0]
    assert num["kg_co2eq"].tolist() == pytest.approx([0.29052, 8.7156, 106.0398])
    # the equivalence factors the blog used
    assert num["equivalent"].tolist() == pytest.approx(
        [0.29052 / 0.00822, 8.7156 / 0.198, 106.0398 / 0.246]
    )
    assert EQUIVALENCES["smartphone_charges"].source.startswith("US EPA")
    assert "Our World in Data" in EQUIVALENCES["domestic_flight_km"].source


def test_unrounded_hours_and_other_inputs():
    rep = extrapolate_savings(
        16.0, 11.9, price_per_hour=2.0, power_w=300, intensity_g_per_kwh=100, busy_hours_per_day=8
    )
    day = rep.row("day")
    assert day.hours == pytest.approx(8 * (1 - 11.9 / 16))
    assert day.usd == pytest.approx(2 * day.hours)
    assert day.kg_co2eq == pytest.approx(day.hours * 0.3 * 0.1)
    assert rep.row("year").hours == pytest.approx(365 * day.hours)
    assert not rep.estimated
    assert "estimate" not in rep._repr_html_().lower()


def test_html_and_text_name_every_source():
    rep = extrapolate_savings(16.0, 11.9, **BLOG_INPUTS)
    html = rep._repr_html_()
    assert 'class="wb-savings-report"' in html
    assert "<table" in html
    for needle in (
        "paperspace.com",
        "cloud.google.com/sustainability",
        "US EPA",
        "Our World in Data",
        "0.09 kWh x 538 gCO₂eq/kWh = 0.04842 kgCO₂eq/hr",
    ):
        assert needle in html
        assert needle in repr(rep)


def test_estimated_report_says_estimate_everywhere():
    inputs = {**BLOG_INPUTS}
    rep = extrapolate_savings(16.0, 11.9, estimated=True, **inputs)
    assert "(estimate)" in rep.to_display_frame().columns[2]
    assert repr(rep).startswith("Estimate:")
    assert "Estimate:" in rep._repr_html_()


def test_country_lookup_and_bad_inputs():
    rep = extrapolate_savings(10, 5, price_per_hour=1, power_w=100, country="AUS")
    assert rep.intensity_g_per_kwh == pytest.approx(548.692)
    assert "Australia" in rep.intensity_source
    for kwargs, match in [
        ({"baseline_s": 0.0}, "zero-length"),
        ({"candidate_s": float("nan")}, "candidate_s"),
        ({"power_w": 0}, "power_w"),
        ({"price_per_hour": -1}, "price_per_hour"),
        ({"intensity_g_per_kwh": None}, "country="),
        ({"equivalences": {"week": "car_km"}}, "unknown period"),
        ({"equivalences": {"day": "horse_km"}}, "unknown equivalence"),
    ]:
        args = {
            "baseline_s": 16.0,
            "candidate_s": 11.9,
            "price_per_hour": 3.0,
            "power_w": 90,
            "intensity_g_per_kwh": 538,
            **kwargs,
        }
        with pytest.raises(MeterConfigError, match=match):
            extrapolate_savings(**args)


def test_slower_candidate_gives_negative_savings_with_a_note():
    rep = extrapolate_savings(10, 12, price_per_hour=1, power_w=100, intensity_g_per_kwh=500)
    assert rep.row("day").hours < 0
    assert any("slower" in n for n in rep.notes)


def test_compare_runs_gpu_vs_cpu_route_from_a_log(tmp_path):
    log = RunLog(tmp_path / "runs.jsonl")
    gpu_power = EstimateMeter(cpu_tdp_w=0, ram_gb=0, gpu_w=90, intensity_g_per_kwh=538)
    log.append(
        RunRecord.build(
            "read ERA5",
            route="zarr",
            duration_s=16.0,
            carbon=gpu_power.estimate(16.0),
            price_per_hour=3.0,
            price_source="paperspace",
        )
    )
    log.append(RunRecord.build("read ERA5 gpu", route="kvikio", duration_s=11.9))
    rep = compare_runs("read ERA5", "read ERA5 gpu", log=log, round_hours_per_day=0)
    assert rep.baseline_label == "read ERA5 [zarr]"
    assert rep.candidate_label == "read ERA5 gpu [kvikio]"
    assert rep.power_w == pytest.approx(90.0)
    assert rep.intensity_g_per_kwh == pytest.approx(538)
    assert rep.estimated  # the power came from an estimate meter
    assert [r.usd for r in rep.rows] == [18.0, 540.0, 6570.0]
    assert rep.row("month").kg_co2eq == pytest.approx(8.7156)


def test_compare_runs_scales_to_the_same_work_partitioned_vs_distributed():
    part = RunRecord.build("train", strategy="ensemble", duration_s=100.0, price_per_hour=2.0)
    dist = RunRecord.build("train", strategy="ddp", duration_s=30.0)
    object.__setattr__(part, "samples", 1000)
    object.__setattr__(dist, "samples", 500)  # half the work in 30 s -> 60 s for the same work
    rep = compare_runs(part, dist, power_w=200, intensity_g_per_kwh=300)
    assert rep.candidate_s == pytest.approx(60.0)
    assert rep.fraction_saved == pytest.approx(0.4)
    assert any("scaled" in n for n in rep.notes)


def test_compare_runs_explains_what_is_missing():
    ok = RunRecord.build("a", duration_s=10.0, price_per_hour=1.0)
    with pytest.raises(MeterConfigError, match="zero-length"):
        compare_runs(ok, RunRecord.build("b", duration_s=0.0), power_w=1, intensity_g_per_kwh=1)
    with pytest.raises(MeterConfigError, match="no power"):
        compare_runs(ok, ok)
    with pytest.raises(MeterConfigError, match="no price"):
        compare_runs(RunRecord.build("c", duration_s=1.0), ok, power_w=1, intensity_g_per_kwh=1)
    with pytest.raises(MeterConfigError, match="log=RunLog"):
        compare_runs("a", "b")
