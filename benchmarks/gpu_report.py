"""The README table of a GPU check's ``gpu.json``, and its place in the results.

``python -m benchmarks.gpu_check report FILE`` (``./dev gpu-check report FILE``) calls
:func:`report`: a device run's ``gpu.json`` becomes ``benchmarks/results/gpu.json`` and
its numbers the Markdown rows of the README's GPU section (:func:`table`). A dry run has
no GPU numbers: it is refused unless ``allow_dry_run``, and never stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "gpu.json"


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Write ``result`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(path)


def _cell(entry: dict[str, Any] | None, ref: float | None = None) -> tuple[str, str, str]:
    if not entry:
        return "not run", "", ""
    if "seconds" not in entry:
        return str(entry.get("skipped") or entry.get("error") or "not run")[:80], "", ""
    ratio = f"{ref / entry['seconds']:.2f}x" if ref else ""
    rate = f"{entry['gb_per_s']:.2f}" if "gb_per_s" in entry else f"{entry['chips_per_s']:,.0f}"
    return f"{entry['seconds']:.3f}", rate, ratio


def table(result: dict[str, Any]) -> list[str]:
    """Markdown rows of a ``gpu.json``: the routes, chips/s, tests, zero copy, preview."""
    env = {
        k: ("missing" if str(v).startswith("not importable") else v)
        for k, v in result.get("environment", {}).items()
    }
    read = result.get("read", {})
    ref = read.get("cpu_zarr", {}).get("seconds")
    store = read.get("store", {})
    lines = [
        f"GPU check{' (dry run: no GPU numbers)' if result.get('dry_run') else ''}: "
        f"{env.get('device', 'no CUDA device')}, Python {env.get('python')}, "
        f"zarr {env.get('zarr')}, cupy {env.get('cupy')}, kvikio {env.get('kvikio')}, "
        f"nvCOMP {env.get('nvidia.nvcomp')}, "
        f"torch {env.get('torch')}; store {store.get('shape')} chunks {store.get('chunks')}, "
        f"{store.get('decoded_gb', 0):.2f} GB decoded, page cache hot",
        "",
        "| route (whole variables into memory) | median s | GB/s | vs CPU zarr route |",
        "| --- | --- | --- | --- |",
    ]
    rows = [
        ("CPU zarr route (NumPy)", "cpu_zarr"),
        ("CPU zarr route, then copied to the GPU", "cpu_zarr_to_gpu"),
        ("GPU route, nvCOMP decode (`engine='kvikio'`)", "gpu_kvikio"),
        ("GPU route, host decode (`decode='host'`)", "gpu_kvikio_host_decode"),
        ("GPU route, zarr's pipeline (`decode='zarr'`, the blog's)", "gpu_kvikio_zarr_pipeline"),
    ]
    for label, key in rows:
        lines.append("| {} | {} | {} | {} |".format(label, *_cell(read.get(key), ref)))
    lines += ["", "| chips (64 x 64, batches of 64) | s | chips/s | |", "| --- | --- | --- | --- |"]
    for label, key in (
        ("workbench chips, CPU route", "chips_cpu"),
        ("workbench chips, GPU route", "chips_gpu"),
        ("xbatcher, CPU route", "xbatcher_cpu"),
        ("xbatcher, GPU route", "xbatcher_gpu"),
    ):
        lines.append("| {} | {} | {} | {} |".format(label, *_cell(read.get(key))))
    tests = result.get("gpu_tests", {})
    zero = result.get("zero_copy", {})
    prev = result.get("preview", {})
    lines += [
        "",
        f"- gpu tests: {tests.get('passed', '?')} passed, {tests.get('failures', '?')} failed, "
        f"{tests.get('errors', '?')} errors, {tests.get('skipped', '?')} skipped"
        + (f" ({tests['error']})" if "error" in tests else ""),
        f"- decode routes: {read.get('decode_routes', read.get('gpu_routes', 'not run'))}",
        f"- values equal to the CPU read: {read.get('values_equal', 'not run')}; "
        f"goal (GPU route >= 2x CPU zarr route) met: {read.get('goal_met', 'not run')}",
        f"- zero copy (torch batch and CuPy chip share one pointer): "
        f"{zero.get('zero_copy', zero.get('skipped') or zero.get('error'))}",
        f"- GPU preview: {prev.get('shape', prev.get('skipped') or prev.get('error'))}, "
        f"max difference to the CPU render {prev.get('max_abs_diff_vs_cpu', '-')}",
    ]
    return lines


def report(path: Path, *, allow_dry_run: bool = False) -> int:
    """Copy a device run's ``gpu.json`` into the results and print the README table."""
    result = json.loads(path.read_text())
    if result.get("dry_run") and not allow_dry_run:
        print(
            f"{path} is a dry run (no GPU numbers). Run it on the device: "
            "./dev gpu-check prints the call"
        )
        return 1
    if not result.get("dry_run"):
        write_json(RESULT, result)
        print(f"-> {RESULT}")
    print("\n".join(table(result)))
    return 0
