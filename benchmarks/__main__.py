"""Run benchmarks and write one JSON file per benchmark to ``benchmarks/results/``.

Each ``benchmarks/bench_<name>.py`` defines ``run(quick: bool) -> dict`` returning a JSON-able
result (medians, ratios, environment). ``python -m benchmarks`` runs all of them;
``python -m benchmarks chips dht`` runs the named ones; ``--quick`` uses toy sizes (CI smoke).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def environment() -> dict[str, object]:
    """Facts about the machine that a reader of the numbers needs."""
    import os

    import numpy as np

    info: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for mod in ("xarray", "zarr", "xbatcher", "torch"):
        try:
            info[mod] = importlib.import_module(mod).__version__
        except Exception:  # a missing optional package is a fact, not an error
            info[mod] = None
    return info


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {_available()})"
    )
    parser.add_argument("--quick", action="store_true", help="toy sizes, for a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    args = parser.parse_args(argv)
    names = args.names or _available()
    unknown = sorted(set(names) - set(_available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {_available()}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name}", file=sys.stderr, flush=True)
        result = {"benchmark": name, "quick": args.quick, "environment": environment()}
        result.update(module.run(quick=args.quick))
        suffix = "-quick" if args.quick else ""
        path = args.out / f"{name}{suffix}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str))
        tmp.replace(path)
        print(f"   -> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
