"""Run benchmarks and write one JSON file per benchmark to ``benchmarks/results/``.

Each ``benchmarks/bench_<name>.py`` defines ``run(quick: bool) -> dict`` returning a JSON-able
result (medians, ratios, environment). ``python -m benchmarks`` runs all of them;
``python -m benchmarks chips dht`` runs the named ones; ``--quick`` uses toy sizes (CI smoke).

A benchmark that sets ``PER_LEG = True`` (the chip benchmark) measures the installed stack, so
its file keeps one result per leg (``legs["python3.11-zarr3.1.6"]``, ...): running it on another
Python or zarr adds or replaces that leg's result and keeps the others. ``./dev bench`` runs it
on both legs of ``./dev test``.
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


def leg_name(env: dict[str, object]) -> str:
    """``"python3.11-zarr3.1.6"``: the stack a per-leg result was measured on."""
    major_minor = ".".join(str(env["python"]).split(".")[:2])
    return f"python{major_minor}-zarr{env.get('zarr')}"


def _with_leg(
    path: Path, name: str, quick: bool, leg: str, result: dict[str, object]
) -> dict[str, object]:
    """The file's content with this leg's result added (other legs' results kept)."""
    legs: dict[str, object] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
            legs = dict(old.get("legs", {})) if isinstance(old, dict) else {}
        except (OSError, ValueError):
            legs = {}
    legs[leg] = result
    return {"benchmark": name, "quick": quick, "legs": dict(sorted(legs.items()))}


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
        env = environment()
        result = {"benchmark": name, "quick": args.quick, "environment": env}
        result.update(module.run(quick=args.quick))
        suffix = "-quick" if args.quick else ""
        path = args.out / f"{name}{suffix}.json"
        if getattr(module, "PER_LEG", False):
            result = _with_leg(path, name, args.quick, leg_name(env), result)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str))
        tmp.replace(path)
        print(f"   -> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
