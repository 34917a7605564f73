"""The tutorial-models modes benchmark runs at toy sizes: no tutorial model is input-bound."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="torch is not installed on this leg; the torch leg runs it")
pytestmark = [pytest.mark.torch, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_bench_modes_quick(data_dir) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        bench = importlib.import_module("benchmarks.bench_modes")
    finally:
        sys.path.remove(str(ROOT))
    result = bench.run(quick=True)
    assert set(result["cases"]) == {"01_nowcast", "04_ndvi", "05_ndmi", "06_mae"}
    for name, case in result["cases"].items():
        rates = case["images_per_s"]
        assert set(rates) == {"io", "synthetic", "real"}, name
        assert all(r > 0 for r in rates.values()), name
        # the chip stream with the batch transform feeds every model faster than it trains
        assert not case["input_bound"], (name, case["verdict"])
        assert "measured steps per mode" in case["verdict"]
