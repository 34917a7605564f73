"""The device half of ``./dev gpu-check``: what runs on the GPU machine, phase by phase.

Every phase returns a JSON-able dict and never raises: a phase that cannot run here
(no CUDA device, a package missing, out of time) says ``{"skipped": reason}``, one that
breaks says ``{"error": ...}``; both are results to report. The phases:

* ``gpu_tests``: the ``gpu``-marked tests (pytest, JUnit XML and log under the output folder);
* ``read``: the seed blog's read benchmark on an ERA5-like Zarr store (zstd): the GPU route
  (``engine="kvikio"``, CuPy; decoding with nvCOMP, on the host, or through zarr's pipeline)
  against the CPU zarr route (NumPy; and that route plus the copy to the GPU), whole
  variables, medians of alternating repeats, page cache hot (the store was just written);
  then chips/s of the workbench chip stream (CPU and GPU route) and of xbatcher over the
  same store (a bounded number of chips);
* ``zero_copy``: a CuPy batch of the chip stream handed to torch: one device pointer;
* ``preview``: a chip batch rendered on the GPU (:func:`workbench.chips.render.render` is
  device-agnostic) against the same batch rendered on the CPU, PNG written out.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCH = 64

#: store shape (time, lat, lon) and chunks: full size on the device, toy size in the dry run
SIZES = {
    "full": {"shape": (240, 512, 1024), "chunks": (24, 128, 128), "repeats": 3, "xb_chips": 64},
    "quick": {"shape": (24, 64, 128), "chunks": (12, 32, 64), "repeats": 1, "xb_chips": 4},
}


def _gpu_reason() -> str | None:
    """Why the GPU route cannot run here (None: it can), workbench failing to import included."""
    try:
        from workbench.data.kvikio_engine import gpu_unavailable_reason
    except Exception as exc:  # a missing package on the device is the result to report
        return f"workbench.data does not import: {type(exc).__name__}: {exc}"
    return gpu_unavailable_reason()


def _sync() -> None:
    import cupy

    cupy.cuda.get_current_stream().synchronize()


def _guard(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a phase; an exception becomes its result."""
    t0 = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:  # a broken phase is a result to report, not a crash
        import traceback

        out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    out["phase_seconds"] = round(time.perf_counter() - t0, 3)
    status = out.get("error") or (out["skipped"] if isinstance(out.get("skipped"), str) else "done")
    print(f"   {name}: {status}", flush=True)
    return out


# -- the gpu-marked tests ------------------------------------------------------------------
def gpu_test_files() -> list[str]:
    """Test files that hold ``gpu``-marked tests (so a bare device collects nothing else)."""
    files = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        if "pytest.mark.gpu" in text:
            files.append(str(path.relative_to(ROOT)))
    return files


def gpu_tests(out: Path, timeout_s: float) -> dict[str, Any]:
    """Run the ``gpu``-marked tests in a subprocess; counts from its JUnit XML."""
    import xml.etree.ElementTree as ET

    files = gpu_test_files()
    xml = out / "pytest-gpu.xml"
    cmd = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "gpu", "-q", "-rs",
        f"--junitxml={xml}", *files,
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        log = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        (out / "pytest-gpu.log").write_text(log)
        return {"error": f"the gpu tests ran past {timeout_s:.0f} s", "files": files}
    (out / "pytest-gpu.log").write_text(proc.stdout + proc.stderr)
    result: dict[str, Any] = {"returncode": proc.returncode, "files": files}
    if xml.exists():
        suites = ET.parse(xml).getroot()
        suite = suites if suites.tag == "testsuite" else suites[0]
        for key in ("tests", "failures", "errors", "skipped"):
            result[key] = int(suite.get(key, 0))
        result["passed"] = (
            result["tests"] - result["failures"] - result["errors"] - result["skipped"]
        )
        result["not_passed"] = [
            f"{case.get('classname')}::{case.get('name')}: {child.tag}: "
            f"{(child.get('message') or '')[:300]}"
            for case in suite.iter("testcase")
            for child in case
            if child.tag in ("failure", "error", "skipped")
        ]
    result["tail"] = (proc.stdout + proc.stderr)[-2000:]
    return result


# -- the read benchmark ----------------------------------------------------------------------
def _median_times(
    fns: dict[str, Callable[[], Any]], repeats: int, deadline: float
) -> dict[str, Any]:
    """Time the functions alternately (one warm-up each), so they share the machine's state.

    Returns each function's times, or ``{"error": ...}`` for one that raised in its
    warm-up. Stops repeating when another round would end within a minute of ``deadline``.
    """
    t0 = time.monotonic()
    broken: dict[str, str] = {}
    for key, fn in fns.items():
        try:
            fn()
        except Exception as exc:  # a broken route is a result: the others still run
            broken[key] = f"{type(exc).__name__}: {exc}"
    fns = {k: fn for k, fn in fns.items() if k not in broken}
    round_s = time.monotonic() - t0
    times: dict[str, Any] = {k: {"error": e} for k, e in broken.items()}
    times.update({k: [] for k in fns})
    for i in range(repeats):
        if i and time.monotonic() + round_s > deadline - 60:
            break
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return times


def _chips_per_s(ds: Any, dims: dict[str, int], limit: int, gpu: bool) -> dict[str, Any]:
    """One pass of the chip stream (``batches``), at most ``limit`` chips."""
    chips = ds.wb.chips(dims)
    chips = chips.select(np.arange(min(limit, len(chips))))
    t0 = time.perf_counter()
    n = 0
    for batch in chips.batches(BATCH, dtype=None):
        n += int(batch.shape[0])
    if gpu:
        _sync()
    seconds = time.perf_counter() - t0
    return {"chips": n, "seconds": seconds, "chips_per_s": n / seconds}


def _xbatcher_per_s(ds: Any, dims: dict[str, int], count: int, gpu: bool) -> dict[str, Any]:
    """``xbatcher.BatchGenerator(ds, dims)[i]`` for ``count`` chips spread over the data."""
    import xbatcher

    gen = xbatcher.BatchGenerator(ds, input_dims=dims)
    picks = np.linspace(0, len(gen) - 1, num=min(count, len(gen))).astype(int).tolist()
    names = list(ds.data_vars)
    t0 = time.perf_counter()
    for i in picks:
        chip = gen[i]
        for v in names:
            _ = chip[v].data if gpu else chip[v].values
    if gpu:
        _sync()
    seconds = time.perf_counter() - t0
    return {"chips": len(picks), "seconds": seconds, "chips_per_s": len(picks) / seconds}


def read(size: str, deadline: float) -> dict[str, Any]:
    """The blog's read benchmark, on an ERA5-like zstd store written here."""
    import workbench
    from workbench.data.kvikio_engine import decode_routes
    from workbench.data.synthetic import era5_like, write_zarr

    spec = SIZES[size]
    t, y, x = spec["shape"]
    ct, cy, cx = spec["chunks"]
    reason = _gpu_reason()
    out: dict[str, Any] = {
        "store": {
            "shape": {"time": t, "lat": y, "lon": x},
            "chunks": {"time": ct, "lat": cy, "lon": cx},
        },
        "codec": "zstd level 1 (write_zarr), Zarr v3",
        "page_cache": "hot (the store was just written; same for every route)",
        "blog": {"gpu_kvikio_s": 11.9, "cpu_zarr_s": 16.0, "speedup": round(16.0 / 11.9, 3)},
        "goal": "GPU route at least 2x the CPU zarr route (whole variables into memory)",
    }
    with tempfile.TemporaryDirectory(prefix="wb-gpu-check-") as tmp:
        path = Path(tmp) / "era5.zarr"
        ds = era5_like(time=t, lat=y, lon=x)
        out["store"]["decoded_gb"] = ds.nbytes / 1e9
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_zarr(ds, path, chunks={"time": ct, "lat": cy, "lon": cx})
        del ds
        out["store"]["on_disk_gb"] = (
            sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9
        )
        names = ["t2m", "u10", "v10", "msl"]
        nbytes = out["store"]["decoded_gb"] * 1e9

        def cpu() -> Any:
            ds = workbench.open_datacube(path, engine="zarr")
            return [ds[v].values for v in names]

        fns: dict[str, Callable[[], Any]] = {"cpu_zarr": cpu}
        if reason is None:
            import cupy

            def cpu_to_gpu() -> Any:
                arrays = [cupy.asarray(a) for a in cpu()]
                _sync()
                return arrays

            def gpu(decode: str) -> Callable[[], Any]:
                def run() -> Any:
                    ds = workbench.open_datacube(path, engine="kvikio", decode=decode)
                    arrays = [ds[v].data for v in names]
                    _sync()
                    return arrays

                return run

            fns.update(
                cpu_zarr_to_gpu=cpu_to_gpu,
                gpu_kvikio=gpu("auto"),
                gpu_kvikio_host_decode=gpu("host"),
                gpu_kvikio_zarr_pipeline=gpu("zarr"),
            )
        else:
            out["gpu_routes"] = {"skipped": reason}
        times = _median_times(fns, spec["repeats"], deadline)
        for key, ts in times.items():
            if isinstance(ts, dict):
                out[key] = ts
                continue
            med = float(np.median(ts))
            out[key] = {"seconds": med, "gb_per_s": nbytes / med / 1e9, "runs": ts}
        if reason is None and "seconds" in out.get("gpu_kvikio", {}):

            def check() -> dict[str, Any]:
                gpu_ds = workbench.open_datacube(path, engine="kvikio")
                cpu_ds = workbench.open_datacube(path, engine="zarr")
                equal = [bool((gpu_ds[v].data.get() == cpu_ds[v].values).all()) for v in names]
                return {"decode_routes": decode_routes(gpu_ds), "values_equal": all(equal)}

            out.update(_guard("values", check))
            for key in ("gpu_kvikio", "gpu_kvikio_host_decode", "gpu_kvikio_zarr_pipeline"):
                if "seconds" in out[key]:
                    speedup = out["cpu_zarr"]["seconds"] / out[key]["seconds"]
                    out[f"speedup_{key}_vs_cpu_zarr"] = speedup
            out["goal_met"] = out["speedup_gpu_kvikio_vs_cpu_zarr"] >= 2.0
        # chips and xbatcher: the blog's slicing stage, bounded
        dims = {"time": 1, "lat": 64, "lon": 64}
        limit = 4096 if size == "full" else 64
        cpu_ds = workbench.open_datacube(path, engine="zarr")
        gpu_ds = None
        if reason is None and "seconds" in out.get("gpu_kvikio", {}):
            gpu_ds = workbench.open_datacube(path, engine="kvikio")
        stages = {
            "chips_cpu": lambda: _chips_per_s(cpu_ds, dims, limit, gpu=False),
            "xbatcher_cpu": lambda: _xbatcher_per_s(cpu_ds, dims, spec["xb_chips"], gpu=False),
            "chips_gpu": lambda: _chips_per_s(gpu_ds, dims, limit, gpu=True),
            "xbatcher_gpu": lambda: _xbatcher_per_s(gpu_ds, dims, spec["xb_chips"], gpu=True),
        }
        for key, stage in stages.items():
            if key.endswith("_gpu") and gpu_ds is None:
                continue
            if time.monotonic() > deadline - 45:
                out[key] = {"skipped": "out of time (the check's budget)"}
                continue
            out[key] = _guard(key, stage)
        for key in ("chips_cpu", "chips_gpu"):
            for ref in ("xbatcher_cpu", "xbatcher_gpu"):
                if "chips_per_s" in out.get(key, {}) and "chips_per_s" in out.get(ref, {}):
                    out[f"{key}_over_{ref}"] = out[key]["chips_per_s"] / out[ref]["chips_per_s"]
    return out


# -- zero copy and preview -------------------------------------------------------------------
def _gpu_batch() -> Any:
    """A CuPy batch ``(B, C, H, W)`` of the chip stream over an in-memory CuPy cube."""
    import cupy

    import workbench  # noqa: F401  (registers .wb)
    from workbench.data.synthetic import era5_like

    ds = era5_like(time=2, lat=128, lon=128)
    ds = ds.map(lambda v: v.copy(data=cupy.asarray(v.values)), keep_attrs=True)
    ds["t2m"][0, :8, :8] = np.nan  # a transparent corner in the preview
    batch = next(iter(ds.wb.chips({"time": 1, "lat": 64, "lon": 64}).batches(8, dtype=None)))
    return batch[:, :, 0] if batch.ndim == 5 else batch


def zero_copy() -> dict[str, Any]:
    """The torch batch and the CuPy chip batch share one device pointer."""
    reason = _gpu_reason()
    if reason is not None:
        return {"skipped": reason}
    from workbench._optional import has_module

    if not has_module("torch"):
        return {"skipped": "torch is not installed"}
    import torch

    from workbench.chips.collate import to_tensor

    batch = _gpu_batch()
    tensor = to_tensor(batch, torch.device("cuda"))
    return {
        "cupy_type": type(batch).__name__,
        "cupy_ptr": int(batch.data.ptr),
        "torch_ptr": int(tensor.data_ptr()),
        "torch_device": str(tensor.device),
        "shape": list(tensor.shape),
        "zero_copy": int(batch.data.ptr) == int(tensor.data_ptr()),
    }


def preview(out: Path) -> dict[str, Any]:
    """Render a chip batch on the GPU and on the CPU; write the GPU one as a PNG."""
    reason = _gpu_reason()
    if reason is not None:
        return {"skipped": reason}
    import cupy

    from workbench.chips.render import encode_png, render

    batch = _gpu_batch()
    on_gpu = render(batch, bands=0)
    _sync()
    t0 = time.perf_counter()
    for _ in range(5):
        render(batch, bands=0)
    _sync()
    gpu_s = (time.perf_counter() - t0) / 5
    host = cupy.asnumpy(batch)
    t0 = time.perf_counter()
    for _ in range(5):
        on_cpu = render(host, bands=0)
    cpu_s = (time.perf_counter() - t0) / 5
    images = cupy.asnumpy(on_gpu)
    diff = np.abs(images.astype(np.int16) - on_cpu.astype(np.int16))
    png = encode_png(images[0])
    (out / "preview.png").write_bytes(png)
    return {
        "device_array": type(on_gpu).__module__.split(".")[0],
        "shape": list(images.shape),
        "max_abs_diff_vs_cpu": int(diff.max()),
        "pixels_differing": int((diff > 0).any(axis=-1).sum()),
        "render_s_gpu": gpu_s,
        "render_s_cpu": cpu_s,
        "png_bytes": len(png),
        "png": "preview.png",
    }
