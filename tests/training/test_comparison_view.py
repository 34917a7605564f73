"""%train_compare's table reads well: units, three significant digits, no NaN/inf, a chart."""

from __future__ import annotations

import re

import pytest

from workbench.training.result import Comparison, TrainResult


@pytest.fixture
def comparison():
    c = Comparison()
    c.add(
        TrainResult(
            name="ddp", strategy="ddp", engines=2, duration_s=4.2137, train_s=3.1,
            bytes_exchanged=14_336_000, control_bytes=2_100_000,
            val={"loss": 0.00123, "samples": 9},
        )
    )  # fmt: skip
    c.add(
        TrainResult(
            name="partitioned", strategy="partitioned", partition="geohash:7", engines=2,
            duration_s=2.7, bytes_exchanged=0, control_bytes=3_400_000,
            val={"loss": 0.045, "samples": 9},
        )
    )  # fmt: skip
    return c


def test_the_numbers_stay_numbers(comparison):
    table = comparison.table()
    assert table["bytes_x"].iloc[1] == float("inf")  # what the ratio means is unchanged
    view = comparison.report()
    assert list(view["name"]) == ["ddp", "partitioned"]
    assert "time_x" in view
    assert view.frame.equals(table)


def test_rows_have_units_precision_and_words_for_missing(comparison):
    rows = comparison.report().rows()
    assert rows[0]["time (s)"] == "4.21"
    assert rows[0]["exchanged (MB)"] == "14.3"
    assert rows[1]["exchanged (MB)"] == "0"
    assert rows[1]["less traffic than ddp"] == "none exchanged"
    assert rows[1]["training (s)"] == "–"  # not measured
    assert rows[1]["speed-up vs ddp"] == "1.56×"
    assert "sharding" not in rows[0]  # empty for every run: left out
    assert "partition" in rows[0]


def test_text_and_html_have_no_raw_floats(comparison):
    for text in (repr(comparison), comparison._repr_html_()):
        assert not re.search(r"\bnan\b|\binf\b", text, re.IGNORECASE)
        assert "4.2137" not in text
        assert "e+" not in text
    page = comparison._repr_html_()
    assert page.count("<svg") == 3  # time, bytes, validation loss
    assert page.count('class="wb-bar"') == 6 - 0  # every run has a finite value in each
    assert page.index(">ddp<") < page.index(">time (s)<")  # runs as columns, measures as rows


def test_baseline_is_named_in_the_ratio_headers(comparison):
    view = comparison.report("partitioned")
    assert "speed-up vs partitioned" in view.rows()[0]
    with pytest.raises(KeyError, match="baseline"):
        comparison.report("nope")


def test_empty_comparison():
    assert "No runs" in Comparison().report()._repr_html_()


def test_a_single_result_reads_the_same_way(comparison):
    page = comparison["ddp"]._repr_html_()
    assert '<th style="text-align:left">time (s)</th>' in page
    assert "4.21" in page
    assert "None" not in page
    assert not re.search(r"\de[+-]\d", page)  # no exponents
