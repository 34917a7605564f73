"""The paper benchmark (--quick) on real namespaced hosts: every promised number, and its sense."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

from workbench.cluster.netns import netns_available

pytest.importorskip("torch", reason="torch is not installed on this leg; the torch leg runs it")
pytest.importorskip("ipyparallel")

OK, REASON = netns_available()
pytestmark = [
    pytest.mark.torch,
    pytest.mark.cluster,
    pytest.mark.skipif(not OK, reason=f"namespaced hosts unavailable: {REASON}"),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def result():
    sys.path.insert(0, str(ROOT))
    try:
        bench = importlib.import_module("benchmarks.bench_paper")
    finally:
        sys.path.remove(str(ROOT))
    return bench.run(quick=True)


def test_a_real_multi_namespace_run(result):
    assert result["network"]["namespaces"] is True
    assert result["network"]["hosts"] == [2]
    assert result["network"]["link_rate_mbit"] == [100.0]
    strategies = result["strategies"]
    assert set(strategies) == {
        "ddp", "partitioned", "partitioned+glcm", "partitioned@3", "containerised", "single"
    }  # fmt: skip
    for name, by_config in strategies.items():
        for row in by_config.values():
            assert row["duration_s"] > 0, name
            assert math.isfinite(row["held_out_error"]), name
            assert row["bytes_on_links"] >= 0


def test_bytes_go_where_the_strategies_send_them(result):
    rows = {r["name"]: r for r in result["water"]["table"]}
    ddp, part = rows["ddp"], rows["partitioned"]
    # DDP: gradients between hosts (counted leaving one and entering the other), reads over
    # the network every epoch; partitioned: no collective and no data read during training
    assert ddp["bytes_by_class"]["training"] >= 1.5 * ddp["hook_bytes_exchanged"]
    assert ddp["bytes_by_class"]["data"] > 0
    assert part["bytes_by_class"]["training"] < 10_000
    assert part["bytes_by_class"]["data"] < 10_000
    assert part["bytes_by_class"]["control"] > 0  # its models come back as results
    assert ddp["bytes_on_links"] > 5 * part["bytes_on_links"]
    assert rows["containerised"]["lockstep"] is True
    assert rows["partitioned"]["lockstep"] is False
    assert rows["single"]["bytes_on_links"] == 0
    for stage in result["water"]["staging"]:
        assert stage["by_class"]["data"] >= sum(stage["received_per_host"].values())
        assert stage["by_class"]["training"] < 10_000


def test_variance_decomposition_and_spagan_scores(result):
    decomposition = result["variance_decomposition"]["geohash4"]["target"]
    assert decomposition["between_share"] + decomposition["within_share"] == pytest.approx(1.0)
    assert decomposition["partitions"] >= 2
    spagan = result["spagan"]
    assert set(spagan["baselines"]) == {"cloudy_input", "temporal_composite"}
    assert (
        spagan["baselines"]["temporal_composite"]["psnr"]
        > spagan["baselines"]["cloudy_input"]["psnr"]
    )
    for row in spagan["table"]:
        assert 0 < row["ssim"] <= 1
        assert row["psnr"] > 0
    assert result["findings"]
    assert all(isinstance(line, str) for line in result["findings"])
