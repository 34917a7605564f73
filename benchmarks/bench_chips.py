"""Chips/s of the chip stream against the anchors, measured side by side in one run.

The stream is ``ChipSet.to_torch(..., device="cpu")`` where torch is installed and
``ChipSet.batches(...)`` (the same plan, reader and arrays, without the zero-copy
hand-over to torch) where it is not: the newest-release leg (Python 3.13, zarr 3.4) has
no CPU torch wheel. ``stream`` in the result says which ran.

In memory (an ERA5-like cube, 4 float32 variables):

* ``limit``: NumPy slicing of the in-memory cube, stacked once as ``(var, time, lat, lon)``,
  into preallocated batches of 64 chips (one slice copy per chip), in the same order;
* ``workbench``: ``ds.wb.chips(...).to_torch(64, device="cpu")`` over the Dataset;
* ``xbatcher``: ``xbatcher.BatchGenerator(ds, input_dims)[i]`` for a bounded number of chips
  (xarray chips only: generous to xbatcher), and ``xbatcher_to_numpy`` (each chip also
  stacked into an array, as a training loop needs).

From a lazily opened zstd Zarr store (``write_zarr``, chunks time 24 x lat 128 x lon 128)
larger than the chunk cache (``chunk_cache_bytes``), each configuration in its own
subprocess (so its peak RSS is its own):

* ``store_read``: the store's own sequential read (time slabs of whole chunks, every
  variable, through xarray: each chunk decoded once), as chip-equivalents/s;
* ``sync_read``: the same slabs decoded by :mod:`workbench.data.zarr_sync` (Zarr's
  synchronous codecs, no event loop): the decode limit of the route the chip stream takes;
* ``store_read_fused`` (where the installed zarr has ``FusedCodecPipeline``, zarr >= 3.2):
  the store's own read with zarr's opt-in fused pipeline, and ``sequential_fused``: the
  chip stream giving way to it (``zarr_sync_reads=False`` on a store opened under it);
* ``workbench`` sequential (storage order) and shuffled (tile order shuffled, ``window``
  tiles interleaved), with mixing metrics for the shuffled order;
* ``xbatcher``: ``BatchGenerator`` over the same lazily opened store, a bounded number of chips.

Numbers are medians of repeats; ratios are taken between numbers of this run only.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 64
CHIP_SIZES = (32, 64)
#: Results are kept per leg (Python and zarr version): see ``benchmarks/__main__.py``.
PER_LEG = True
FUSED = "zarr.core.codec_pipeline.FusedCodecPipeline"


def _has_torch() -> bool:
    from workbench._optional import has_module

    return has_module("torch")


def _stream(chips: Any, shuffle: bool, **kwargs: Any) -> Any:
    """The chip stream: tensors where torch is installed, else the same stream as arrays."""
    if _has_torch():
        return chips.to_torch(BATCH, shuffle=shuffle, seed=0, device="cpu", **kwargs)
    return chips.batches(BATCH, shuffle=shuffle, seed=0, **kwargs)


def _fused_config() -> dict[str, str] | None:
    """The zarr config that selects zarr's own fused pipeline, where the installed zarr has it."""
    try:
        from zarr.core.codec_pipeline import FusedCodecPipeline  # noqa: F401
    except ImportError:
        return None
    return {"codec_pipeline.path": FUSED}


def _paired(
    fns: dict[str, tuple[Any, int]], repeats: int, warmup: bool = True
) -> dict[str, dict[str, float]]:
    """Time ``{name: (function, chips it cuts)}`` alternately, so all share the machine's load.

    Every repeat runs each function once, in turn; rates are medians over the repeats.
    """
    if warmup:
        for fn, _ in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, (fn, _) in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    out = {}
    for key, ts in times.items():
        med = float(np.median(ts))
        count = fns[key][1]
        out[key] = {"chips_per_s": count / med, "seconds": med, "chips": count, "repeats": repeats}
    return out


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; it restarts at exec, unlike ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _limit(cube: np.ndarray, origins: np.ndarray, chip: int) -> None:
    """NumPy slicing into contiguous batches of 64 chips (the batches materialised)."""
    nvar = cube.shape[0]
    for b in range(0, len(origins), BATCH):
        rows = origins[b : b + BATCH].tolist()
        out = np.empty((len(rows), nvar, 1, chip, chip), dtype=cube.dtype)
        for k, (t, y, x) in enumerate(rows):
            out[k] = cube[:, t : t + 1, y : y + chip, x : x + chip]


def _xbatcher_fn(ds: Any, dims: dict[str, int], count: int, to_numpy: bool = False) -> Any:
    """Cut ``count`` chips spread over the data with ``BatchGenerator(ds, dims)[i]``.

    ``to_numpy``: each chip also becomes one array, as a training loop needs.
    """
    import xbatcher

    gen = xbatcher.BatchGenerator(ds, input_dims=dims)
    names = list(ds.data_vars)
    picks = np.linspace(0, len(gen) - 1, num=min(count, len(gen))).astype(int).tolist()

    def run() -> None:
        for i in picks:
            chip = gen[i]
            if to_numpy:
                np.stack([chip[v].values for v in names])

    return run, len(picks)


def _mixing(batches: list[np.ndarray], tiles: np.ndarray) -> dict[str, float]:
    """How well an epoch order mixes the store."""
    order = np.concatenate(batches)
    n = order.size
    per_batch = [len(np.unique(tiles[b])) for b in batches]
    ranks = np.empty(n)
    ranks[np.argsort(order, kind="stable")] = np.arange(n)
    spearman = float(np.corrcoef(np.arange(n), ranks)[0, 1]) if n > 1 else 1.0
    first = order[: max(1, n // 10)]
    return {
        "distinct_tiles_per_batch_mean": float(np.mean(per_batch)),
        "spearman_vs_sequential": spearman,
        "tiles_touched_in_first_10pct": float(len(np.unique(tiles[first])) / len(np.unique(tiles))),
    }


# -- in memory ------------------------------------------------------------------------------
def in_memory(
    shape: tuple[int, int, int],
    repeats: int,
    xb_chips: int,
    chip_sizes: tuple[int, ...] = CHIP_SIZES,
) -> dict[str, Any]:
    import workbench  # noqa: F401  (registers .wb)
    from workbench.data.synthetic import era5_like

    ds = era5_like(time=shape[0], lat=shape[1], lon=shape[2])
    names = list(ds.data_vars)
    cube = np.stack([ds[v].values for v in names])
    out: dict[str, Any] = {"shape": dict(ds.sizes), "variables": names, "batch_size": BATCH}
    for chip in chip_sizes:
        if chip > min(shape[1], shape[2]):
            continue
        dims = {"time": 1, "lat": chip, "lon": chip}
        chips = ds.wb.chips(dims)
        n = len(chips)
        origins = chips.grid.origins(chips.ids)
        perm = np.random.default_rng(0).permutation(n)
        res: dict[str, Any] = {"chips": n}
        for mode, shuffle in (("sequential", False), ("shuffled", True)):
            loader = _stream(chips, shuffle)

            def ours(loader: Any = loader) -> None:
                for _ in loader:
                    pass

            rows = origins if not shuffle else origins[perm]
            fns = {
                "limit": (lambda rows=rows, chip=chip: _limit(cube, rows, chip), n),
                "workbench": (ours, n),
                "xbatcher": _xbatcher_fn(ds, dims, xb_chips),
                "xbatcher_to_numpy": _xbatcher_fn(ds, dims, xb_chips, to_numpy=True),
            }
            timed = _paired(fns, repeats)
            rate = timed["workbench"]["chips_per_s"]
            res[mode] = {
                **timed,
                "ratio_to_limit": rate / timed["limit"]["chips_per_s"],
                "ratio_to_xbatcher": rate / timed["xbatcher"]["chips_per_s"],
                "ratio_to_xbatcher_to_numpy": rate / timed["xbatcher_to_numpy"]["chips_per_s"],
                "limit_over_xbatcher": timed["limit"]["chips_per_s"]
                / timed["xbatcher"]["chips_per_s"],
            }
        out[f"chip{chip}"] = res
    return out


# -- store (each case runs in a subprocess) --------------------------------------------------
def _open(path: str) -> Any:
    import xarray as xr

    return xr.open_zarr(path, chunks=None, consolidated=True)


def _store_fns(
    ds: Any, chip: int, cache_bytes: int, time_chunk: int, fused: Any = None
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The store configurations as functions (a fresh loader, so a fresh cache, per epoch).

    ``fused``: the same store opened under zarr's fused pipeline (or None).
    """
    from workbench.options import set_options

    names = sorted(ds.data_vars)
    dims = {"time": 1, "lat": chip, "lon": chip}
    chips = ds.wb.chips(dims, variables=names)
    info: dict[str, Any] = {}

    def slabs(data: Any) -> Any:
        def read() -> None:
            for t in range(0, data.sizes["time"], time_chunk):
                for name in names:
                    data[name].variable[t : t + time_chunk].load()

        return read

    from workbench.data.zarr_sync import box_reader

    boxes = {name: box_reader(ds[name].variable) for name in names}
    if any(box is None for box in boxes.values()):
        raise RuntimeError("the benchmark store has no synchronous Zarr path")
    shape = ds[names[0]].shape

    def read_sync() -> None:
        for t in range(0, shape[0], time_chunk):
            for name in names:
                boxes[name].read((t, 0, 0), (min(t + time_chunk, shape[0]), *shape[1:]))

    def ours(shuffle: bool, key: str, over: Any = chips, sync: bool = True) -> Any:
        def epoch() -> None:
            with set_options(chunk_cache_bytes=cache_bytes, zarr_sync_reads=sync):
                loader = _stream(over, shuffle)
                for _ in loader:
                    pass
            reader = loader.reader
            stats = {
                "stream": type(loader).__name__,
                "window_tiles": loader.window,
                "reader": reader.stats(),
                "tile_decodes_over_n_tiles": reader.stats()["loads"] / reader.n_tiles,
            }
            if shuffle:
                tiles = reader.tile_of(chips.grid.origins(chips.ids))
                stats["mixing"] = _mixing(loader.batch_indices(0), tiles)
            info[key] = stats

        return epoch

    fns = {
        "store_read": slabs(ds),
        "sync_read": read_sync,
        "sequential": ours(False, "sequential"),
        "shuffled": ours(True, "shuffled"),
    }
    if fused is not None:
        fused_chips = fused.wb.chips(dims, variables=names)
        fns["store_read_fused"] = slabs(fused)
        fns["sequential_fused"] = ours(False, "sequential_fused", fused_chips, sync=False)
    return len(chips), fns, info


def _case(spec: dict[str, Any]) -> dict[str, Any]:
    """Store configurations, in this (child) process."""
    if _has_torch():
        import torch  # noqa: F401  (imported before timing and before the baseline RSS)
    import zarr

    import workbench  # noqa: F401

    ds = _open(spec["path"])
    fused = None
    config = _fused_config()
    if config is not None and spec["kind"] == "timing":
        with zarr.config.set(config):  # the pipeline is chosen when the arrays are opened
            fused = _open(spec["path"])
    chip = spec["chip"]
    rss_open = _peak_rss_mb()
    n, fns, info = _store_fns(ds, chip, spec["cache_bytes"], spec["time_chunk"], fused)
    if spec["kind"] == "timing":
        # all configurations alternately in one process, so they share the machine's load
        timed = {key: (fn, n) for key, fn in fns.items()}
        dims = {"time": 1, "lat": chip, "lon": chip}
        timed["xbatcher"] = _xbatcher_fn(ds[sorted(ds.data_vars)], dims, spec["xb_chips"])
        result: dict[str, Any] = _paired(timed, spec["repeats"], warmup=False)
        for key, stats in info.items():
            result[key].update(stats)
    else:
        # one configuration, one epoch: this process's peak RSS is that configuration's
        fns[spec["kind"]]()
        result = {"peak_rss_mb": _peak_rss_mb(), "rss_after_open_mb": rss_open}
    result["process_peak_rss_mb"] = _peak_rss_mb()
    return result


def _run_case(spec: dict[str, Any]) -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_chips", "--case", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {spec['kind']} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def store(
    shape: tuple[int, int, int],
    cache_bytes: int,
    repeats: int,
    xb_chips: int,
    isolate_rss: bool,
    chip_sizes: tuple[int, ...] = CHIP_SIZES,
) -> dict[str, Any]:
    from workbench.data.synthetic import era5_like, write_zarr

    chunks = {"time": 24, "lat": 128, "lon": 128}
    with tempfile.TemporaryDirectory(prefix="wb-bench-chips-") as tmp:
        path = Path(tmp) / "era5.zarr"
        ds = era5_like(time=shape[0], lat=shape[1], lon=shape[2])
        nbytes = int(ds.nbytes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_zarr(ds, path, chunks=chunks)
        del ds
        store_bytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        out: dict[str, Any] = {
            "shape": {"time": shape[0], "lat": shape[1], "lon": shape[2]},
            "chunks": chunks,
            "codec": "zstd level 1 (write_zarr)",
            "decoded_mb": nbytes / 2**20,
            "on_disk_mb": store_bytes / 2**20,
            "chunk_cache_mb": cache_bytes / 2**20,
            "store_over_cache": nbytes / cache_bytes,
            "page_cache": "hot (the store was just written; same for every configuration)",
        }
        for chip in chip_sizes:
            base = {
                "path": str(path),
                "chip": chip,
                "repeats": repeats,
                "cache_bytes": cache_bytes,
                "time_chunk": chunks["time"],
                "xb_chips": xb_chips,
            }
            res = (
                _run_case({**base, "kind": "timing"})
                if isolate_rss
                else _case({**base, "kind": "timing"})
            )
            read = res["store_read"]["chips_per_s"]
            # the store's own best sequential read with the installed zarr
            best = max(read, res.get("store_read_fused", {}).get("chips_per_s", 0.0))
            for mode in ("sequential", "shuffled", "sequential_fused"):
                if mode not in res:
                    continue
                rate = res[mode]["chips_per_s"]
                res[mode]["ratio_to_store_read"] = rate / read
                res[mode]["ratio_to_best_store_read"] = rate / best
                res[mode]["ratio_to_sync_read"] = rate / res["sync_read"]["chips_per_s"]
                res[mode]["ratio_to_xbatcher"] = rate / res["xbatcher"]["chips_per_s"]
            if isolate_rss:
                for mode in ("store_read", "sequential", "shuffled"):
                    res[mode]["memory"] = _run_case({**base, "kind": mode})
            out[f"chip{chip}"] = res
        out["gpu"] = gpu(path, chip_sizes[0], cache_bytes)
    return out


def gpu(path: Path, chip: int, cache_bytes: int) -> dict[str, Any]:
    """GPU route (kvikio engine, CuPy chips, DLPack) vs the CPU zarr route, one epoch each."""
    from workbench._optional import has_gpu

    if not has_gpu():
        return {
            "skipped": (
                "no CUDA device here: the GPU route vs the CPU zarr route "
                "(the blog's 11.9 s vs 16.0 s) runs only on a GPU machine"
            )
        }
    import torch

    import workbench
    from workbench.options import set_options

    out: dict[str, Any] = {"chip": chip}
    for route, device in (("zarr", "cpu"), ("zarr", "cuda"), ("kvikio", "cuda")):
        try:
            ds = workbench.open_datacube(path, engine=route)
            chips = ds.wb.chips(
                {"time": 1, "lat": chip, "lon": chip}, variables=sorted(ds.data_vars)
            )
            with set_options(chunk_cache_bytes=cache_bytes):
                loader = chips.to_torch(BATCH, device=device)
                t0 = time.perf_counter()
                for _ in loader:
                    pass
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - t0
            out[f"{route}_{device}"] = {"seconds": seconds, "chips_per_s": len(chips) / seconds}
        except Exception as exc:  # a broken route is a result to report, not a crash
            out[f"{route}_{device}"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "seconds" in out.get("kvikio_cuda", {}) and "seconds" in out.get("zarr_cpu", {}):
        out["speedup_gpu_route_vs_cpu_zarr"] = (
            out["zarr_cpu"]["seconds"] / out["kvikio_cuda"]["seconds"]
        )
    return out


def _r0(value: float | None) -> int | None:
    return None if value is None else round(value)


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows: one per (where, chip, order) with chips/s and ratios."""
    rows = []
    for key, res in result["in_memory"].items():
        if not key.startswith("chip"):
            continue
        for mode in ("sequential", "shuffled"):
            r = res[mode]
            rows.append(
                {
                    "where": "memory",
                    "chip": int(key[4:]),
                    "order": mode,
                    "workbench": round(r["workbench"]["chips_per_s"]),
                    "limit": round(r["limit"]["chips_per_s"]),
                    "xbatcher": round(r["xbatcher"]["chips_per_s"]),
                    "xbatcher_to_numpy": round(r["xbatcher_to_numpy"]["chips_per_s"]),
                    "ratio_to_limit": round(r["ratio_to_limit"], 3),
                    "ratio_to_xbatcher": round(r["ratio_to_xbatcher"], 1),
                    "ratio_to_xbatcher_to_numpy": round(r["ratio_to_xbatcher_to_numpy"], 1),
                    "limit_over_xbatcher": round(r["limit_over_xbatcher"], 1),
                }
            )
    for key, res in result["store"].items():
        if not key.startswith("chip"):
            continue
        for mode in ("sequential", "shuffled", "sequential_fused"):
            if mode not in res:
                continue
            r = res[mode]
            rows.append(
                {
                    "where": "zarr",
                    "chip": int(key[4:]),
                    "order": mode,
                    "workbench": round(r["chips_per_s"]),
                    "store_read": round(res["store_read"]["chips_per_s"]),
                    "sync_read": round(res["sync_read"]["chips_per_s"]),
                    "xbatcher": round(res["xbatcher"]["chips_per_s"], 1),
                    "store_read_fused": _r0(res.get("store_read_fused", {}).get("chips_per_s")),
                    "ratio_to_store_read": round(r["ratio_to_store_read"], 3),
                    "ratio_to_best_store_read": round(r["ratio_to_best_store_read"], 3),
                    "ratio_to_sync_read": round(r["ratio_to_sync_read"], 3),
                    "ratio_to_xbatcher": round(r["ratio_to_xbatcher"], 1),
                    "peak_rss_mb": _r0(r.get("memory", {}).get("peak_rss_mb")),
                    "rss_after_open_mb": _r0(r.get("memory", {}).get("rss_after_open_mb")),
                }
            )
    return rows


def run(quick: bool = False) -> dict[str, Any]:
    """Run the chip benchmark; ``quick`` uses toy sizes (well under a minute)."""
    if quick:
        mem_shape, store_shape, cache, repeats = (24, 64, 128), (24, 128, 256), 4 * 2**20, 1
        xb_mem, xb_store = 30, 4
        sizes: tuple[int, ...] = (32,)
    else:
        mem_shape, store_shape, cache, repeats = (240, 128, 256), (192, 256, 512), 64 * 2**20, 5
        xb_mem, xb_store = 400, 24
        sizes = CHIP_SIZES
    result: dict[str, Any] = {
        "batch_size": BATCH,
        "load_average_before": os.getloadavg(),
        "in_memory": in_memory(mem_shape, repeats, xb_mem, sizes),
        "store": store(
            store_shape, cache, repeats, xb_store, isolate_rss=not quick, chip_sizes=sizes
        ),
    }
    result["load_average_after"] = os.getloadavg()
    result["gpu"] = result["store"].pop("gpu")
    result["summary"] = summary(result)
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(_case(json.loads(sys.argv[2])), default=float))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=float))
