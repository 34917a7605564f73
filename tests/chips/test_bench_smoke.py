"""The chip benchmark runs end to end at toy sizes and reports every number it promises."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_chips_quick() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        bench = importlib.import_module("benchmarks.bench_chips")
    finally:
        sys.path.remove(str(ROOT))
    result = bench.run(quick=True)
    memory = result["in_memory"]["chip32"]
    for mode in ("sequential", "shuffled"):
        assert memory[mode]["limit"]["chips_per_s"] > 0
        assert memory[mode]["workbench"]["chips_per_s"] > 0
        assert memory[mode]["ratio_to_xbatcher"] > 1
    store = result["store"]["chip32"]
    assert store["store_read"]["chips_per_s"] > 0
    assert store["sync_read"]["chips_per_s"] > 0
    assert store["sequential"]["tile_decodes_over_n_tiles"] == 1.0
    routes = store["sequential"]["reader"]["read_routes"]
    assert set(routes.values()) == {"zarr-sync"}, routes
    mixing = store["shuffled"]["mixing"]
    assert set(mixing) == {
        "distinct_tiles_per_batch_mean",
        "spearman_vs_sequential",
        "tiles_touched_in_first_10pct",
    }
    assert result["store"]["store_over_cache"] > 1
    assert "skipped" in result["gpu"] or "gpu_route" in result["gpu"]
    assert result["summary"]
    assert all("ratio_to_xbatcher" in row for row in result["summary"])
