"""``./dev gpu-check --dry-run``: the GPU check prepared and rehearsed without a GPU.

It downloads the wheels the GPU machine lacks (from the package registry), checks that
they and the working tree fit one device call and that nothing they need is missing there,
runs the device script's CPU path and prints the device call. The rehearsal runs with this
test's interpreter, so each leg of the suite checks its own stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check, gpu_report

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = dict(os.environ, GPU_CHECK_PYTHON=sys.executable, WORKBENCH_DISABLE_GPU="1")
    proc = subprocess.run(
        [str(ROOT / "dev"), "gpu-check", "--dry-run", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, proc.stdout, proc.stderr


def test_the_wheel_set_fits_one_device_call_and_misses_nothing(dry_run):
    out, stdout, _ = dry_run
    call = json.loads((out / "run.json").read_text())
    assert call["carry"] == [".gpu-wheels"]
    assert len(call["command"]) <= 2000
    assert call["timeout_s"] <= 600
    assert call["travel_bytes"] <= gpu_check.CARRY_LIMIT
    names = {gpu_check._wheel_name(Path(w)) for w in call["wheels"]}
    pinned = {
        (gpu_check._norm(r.split("==")[0]), r.split("==")[1]) for r in gpu_check.DEVICE_WHEELS
    }
    assert names == pinned
    wheels = sorted((ROOT / ".gpu-wheels").glob("*.whl"))
    assert gpu_check.closure(wheels) == []
    assert all(w.name.endswith(("-none-any.whl", "x86_64.whl")) for w in wheels)
    assert any("cp312" in w.name for w in wheels)  # built for the device's Python, not ours
    assert f"run(command={call['command']!r}" in stdout


def test_the_closure_check_names_what_the_device_would_lack(dry_run):
    wheels = [w for w in sorted((ROOT / ".gpu-wheels").glob("*.whl")) if "numcodecs" not in w.name]
    missing = gpu_check.closure(wheels)
    assert any(m.startswith("numcodecs") and "zarr-3.4.2" in m for m in missing)


def test_the_rehearsal_measures_the_cpu_route_and_skips_the_gpu_with_reasons(dry_run):
    out, _, _ = dry_run
    result = json.loads((out / "gpu.json").read_text())
    assert result["dry_run"] is True
    assert result["environment"]["gpu_route"] == (
        "the environment variable WORKBENCH_DISABLE_GPU is set"
    )
    read = result["read"]
    assert "error" not in read, read.get("traceback")
    assert read["cpu_zarr"]["seconds"] > 0
    assert read["chips_cpu"]["chips_per_s"] > 0
    assert read["xbatcher_cpu"]["chips_per_s"] > 0
    assert "WORKBENCH_DISABLE_GPU" in read["gpu_routes"]["skipped"]
    for phase in ("zero_copy", "preview"):
        assert "WORKBENCH_DISABLE_GPU" in result[phase]["skipped"]
    tests = result["gpu_tests"]
    assert tests["returncode"] == 0, tests.get("tail")
    assert tests["tests"] >= 16
    assert tests["skipped"] == tests["tests"]  # every gpu test skips without a device
    assert "tests/data/test_kvikio_engine.py" in tests["files"]
    assert (out / "pytest-gpu.xml").is_file()


def test_report_refuses_a_dry_run_and_prints_its_table_when_asked(dry_run, capsys):
    out, _, _ = dry_run
    assert gpu_report.report(out / "gpu.json") == 1
    assert "Run it on the device" in capsys.readouterr().out
    assert gpu_report.report(out / "gpu.json", allow_dry_run=True) == 0
    table = capsys.readouterr().out
    assert "dry run: no GPU numbers" in table
    assert "| CPU zarr route (NumPy) |" in table
    assert "| GPU route, nvCOMP decode (`engine='kvikio'`) | not run |" in table
