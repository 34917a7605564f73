"""``./dev gpu-check``: the GPU check in one device call, prepared and rehearsed here.

``python -m benchmarks.gpu_check [prepare] [--dry-run]`` (what ``./dev gpu-check`` runs):

1. downloads the wheels the GPU machine lacks (:data:`DEVICE_WHEELS`: CPython 3.12,
   manylinux x86_64) into ``.gpu-wheels/`` (git-ignored), and checks that every
   requirement of them and of workbench is either among them or in the machine's image
   (:data:`DEVICE_IMAGE`), and that they install from that folder alone;
2. checks that the working tree plus the wheels fit the 64 MiB a device call carries;
3. runs the device script's CPU path here (``device --dry-run --quick``: the phases that
   need no GPU run, the others say why they skip) and writes its ``gpu.json``;
4. prints the one call of the device tool to make (command, carry, timeout), also written
   to ``run.json`` beside ``gpu.json``.

On a machine with a CUDA device and the ``gpu`` extra installed, ``prepare`` without
``--dry-run`` runs the check itself and writes ``benchmarks/results/gpu.json``.

``python -m benchmarks.gpu_check device`` is the command the device runs: it installs the
carried wheels into a temporary folder, then runs the phases of :mod:`benchmarks.gpu_bench`
and writes ``gpu.json`` (and the tests' log and JUnit XML, the preview PNG) under ``$OUT``.

``python -m benchmarks.gpu_check report FILE`` copies a device run's ``gpu.json`` to
``benchmarks/results/gpu.json`` and prints the README's table of it
(:mod:`benchmarks.gpu_report`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from benchmarks import gpu_bench, gpu_report

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".gpu-wheels"
DRY_RUN_OUT = ROOT / "artifacts" / "gpu-check"

#: What the GPU machine lacks, pinned to versions checked to install together (Python 3.12,
#: CUDA 13) and to fit the call's 64 MiB with the working tree (about 54 MB of wheels).
DEVICE_WHEELS = (
    "zarr==3.4.2",
    "numcodecs==0.17.1",
    "donfig==0.8.1.post1",
    "google-crc32c==1.9.0",
    "msgspec==0.23.0",
    "pyproj==3.8.0",
    "shapely==2.2.0",
    "xbatcher==0.4.0",
    "dask==2026.8.0",  # xbatcher requires it (and dask partd, partd locket)
    "partd==1.4.2",
    "locket==1.0.0",
    "cupy-xarray==0.1.5",
    "kvikio-cu13==26.10.0",
    "libkvikio-cu13==26.10.0",
    "rapids-logger==0.3.0",
    "nvidia-nvcomp-cu13==6.0.0.12",
    "nvidia-libnvcomp-cu13==6.0.0.12",
)

#: Python packages of the GPU machine's image (the device notes' KINDS.md, read 2026-11-17):
#: its Python is 3.12.3 with torch 2.11 (CUDA 13), CuPy for CUDA 13, xarray, numpy.
_IMAGE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
    botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
    coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython
    diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic
    frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
    hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
    jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator
    lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
    mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx
    ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
    nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand
    nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
    nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
    opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging
    pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf
    psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
    pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
    scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
    shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
    tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz
    torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers
    treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
    werkzeug wheel wrapt xarray xxhash yarl zipp"""
DEVICE_IMAGE = frozenset(_IMAGE.split())

PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
)
TARGET = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
TARGET += [arg for p in PLATFORMS for arg in ("--platform", p)]
#: the device tool's limits: what one call carries, one command's time
CARRY_LIMIT = 64 * 2**20
RUN_TIMEOUT_S = 480
DEVICE_BUDGET_S = 420
RUN_COMMAND = "PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_check device"
#: markers of the device's Python, for the requirements of the wheels
MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _log(message: str) -> None:
    print(f"[gpu-check] {message}", file=sys.stderr, flush=True)


def _pip(*args: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", *args, *(["-q"] if quiet else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        err = "\n".join(line for line in proc.stderr.splitlines() if noise not in line)
        raise SystemExit(f"[gpu-check] pip {args[0]} failed:\n{err[-4000:]}")
    return proc


# -- the wheels ------------------------------------------------------------------------------
def _wheel_name(path: Path) -> tuple[str, str]:
    name, version = path.name.split("-")[:2]
    return _norm(name), version


def download(folder: Path = WHEELS) -> list[Path]:
    """Fetch :data:`DEVICE_WHEELS` into ``folder`` (once), dropping wheels not in the set."""
    folder.mkdir(exist_ok=True)
    wanted = {_norm(r.split("==")[0]): r.split("==")[1] for r in DEVICE_WHEELS}
    have = {_wheel_name(p): p for p in folder.glob("*.whl")}
    for (name, version), path in have.items():
        if wanted.get(name) != version:
            path.unlink()  # one version of each: two stop the device's install
    missing = [f"{n}=={v}" for n, v in wanted.items() if (n, v) not in have]
    if missing:
        _log(f"downloading {len(missing)} wheels for CPython 3.12 manylinux x86_64")
        _pip("download", "--no-deps", *TARGET, "-d", str(folder), *missing)
    wheels = sorted(folder.glob("*.whl"))
    got = {_wheel_name(p) for p in wheels}
    lost = [f"{n}=={v}" for n, v in wanted.items() if (n, v) not in got]
    if lost:
        raise SystemExit(f"[gpu-check] no wheel for {lost} after pip download")
    return wheels


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode("utf-8", "replace")
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def _workbench_requirements() -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10 has no tomllib; the venvs are 3.11+
        return []
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"]["gpu"])


def closure(wheels: list[Path]) -> list[str]:
    """Requirements (device markers) met neither by ``wheels`` nor the image: should be none."""
    from packaging.requirements import Requirement

    present = {_wheel_name(w)[0] for w in wheels} | {_norm(n) for n in DEVICE_IMAGE}
    needed = [(w.name, r) for w in wheels for r in _requirements(w)]
    needed += [("workbench", r) for r in _workbench_requirements()]
    missing = []
    for who, text in needed:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(MARKERS):
            continue
        if _norm(req.name) not in present:
            missing.append(f"{req} (needed by {who})")
    return missing


def check_install(folder: Path = WHEELS) -> None:
    """``pip install --dry-run`` of the set from ``folder`` alone, for the device's tags."""
    with tempfile.TemporaryDirectory() as target:
        _pip(
            "install", "--dry-run", "--no-index", "--no-deps", "--find-links", str(folder),
            "--target", target, *TARGET, *DEVICE_WHEELS,
        )  # fmt: skip


def travel_bytes(carried: list[Path]) -> dict[str, int]:
    """Bytes a device call carries: tracked and untracked-not-ignored files, plus ``carried``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    tree = sum((ROOT / f).stat().st_size for f in listed if f and (ROOT / f).is_file())
    extra = sum(f.stat().st_size for c in carried for f in c.rglob("*") if f.is_file())
    return {"working_tree": tree, "carried": extra, "total": tree + extra, "limit": CARRY_LIMIT}


def run_call() -> dict[str, Any]:
    """The one call of the device tool's ``run`` that performs the check."""
    return {
        "command": RUN_COMMAND,
        "carry": [WHEELS.name],
        "timeout_s": RUN_TIMEOUT_S,
        "then": "./dev gpu-check report <files_at>/gpu.json",
    }


# -- the device side ---------------------------------------------------------------------------
def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a package that does not load is a fact to report
        return f"not importable: {type(exc).__name__}: {str(exc)[:200]}"
    return str(getattr(mod, "__version__", "?"))


def environment() -> dict[str, Any]:
    """Python, packages and the device, as the numbers' reader needs them."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for mod in ("numpy", "xarray", "zarr", "numcodecs", "pandas", "xbatcher", "cupy", "kvikio",
                "nvidia.nvcomp", "torch"):  # fmt: skip
        info[mod] = _version(mod)
    info["gpu_route"] = gpu_bench._gpu_reason() or "available"
    if info["gpu_route"] == "available":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["device"] = (
            props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        )
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
    return info


def _install_and_reexec(argv: list[str]) -> int:
    """Install the carried wheels into a temporary folder, then run ``device`` again with it."""
    site = Path(tempfile.gettempdir()) / "wb-gpu-site"
    wheels = sorted(WHEELS.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"[gpu-check] no wheels in {WHEELS}: carry {WHEELS.name!r} in the call")
    _log(f"installing {len(wheels)} carried wheels into {site}")
    _pip(
        "install", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade",
        "--target", str(site), *map(str, wheels),
    )  # fmt: skip
    env = dict(os.environ, WORKBENCH_GPU_CHECK_SITE=str(site))
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return subprocess.call([sys.executable, "-m", "benchmarks.gpu_check", *argv], cwd=ROOT, env=env)


def device(out: Path, *, dry_run: bool, quick: bool, budget_s: float) -> dict[str, Any]:
    """Run every phase (:mod:`benchmarks.gpu_bench`); return and write ``out/gpu.json``."""
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget_s
    result: dict[str, Any] = {
        "benchmark": "gpu",
        "dry_run": dry_run,
        "quick": quick,
        "environment": environment(),
        "budget_s": budget_s,
    }
    _log(f"phases, {result['environment']['gpu_route']}")
    left = max(30.0, min(240.0, deadline - time.monotonic() - 150))
    size = "quick" if quick else "full"
    phases = {
        "gpu_tests": lambda: gpu_bench.gpu_tests(out, left),
        "read": lambda: gpu_bench.read(size, deadline),
        "zero_copy": gpu_bench.zero_copy,
        "preview": lambda: gpu_bench.preview(out),
    }
    for name, phase in phases.items():
        result[name] = gpu_bench._guard(name, phase)
        result["seconds"] = round(budget_s - (deadline - time.monotonic()), 1)
        # after each phase: a run stopped at its time limit keeps what it measured
        gpu_report.write_json(out / "gpu.json", result)
    print("\n".join(gpu_report.table(result)), flush=True)
    return result


# -- entry points --------------------------------------------------------------------------------
def prepare(out: Path, *, dry_run: bool) -> int:
    """Prepare the device call (and rehearse it), or run the check on a local GPU."""
    if not dry_run and gpu_bench._gpu_reason() is None:
        _log("a CUDA device is here: running the check itself")
        device(out, dry_run=False, quick=False, budget_s=DEVICE_BUDGET_S)
        shutil.copyfile(out / "gpu.json", gpu_report.RESULT)
        _log(f"-> {gpu_report.RESULT}")
        return 0
    wheels = download()
    missing = closure(wheels)
    if missing:
        raise SystemExit("[gpu-check] the device would lack:\n  " + "\n  ".join(missing))
    check_install()
    size = travel_bytes([WHEELS])
    _log(
        f"{len(wheels)} wheels, {size['carried'] / 2**20:.1f} MiB; with the working tree "
        f"{size['total'] / 2**20:.1f} MiB of the {CARRY_LIMIT // 2**20} MiB a call carries"
    )
    if size["total"] > CARRY_LIMIT:
        raise SystemExit("[gpu-check] too large for one device call: drop files or wheels")
    _log("rehearsing the device script's CPU path (--dry-run --quick)")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "device", "--dry-run", "--quick",
         "--out", str(out)],
        cwd=ROOT, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return proc.returncode
    call = {**run_call(), "travel_bytes": size["total"], "wheels": [w.name for w in wheels]}
    gpu_report.write_json(out / "run.json", call)
    print(
        "\nNo GPU here. The check is one call of the device tool:\n"
        f"  run(command={call['command']!r}, carry={call['carry']!r}, "
        f"timeout_s={call['timeout_s']})\n"
        f"then: {call['then']}   (also in {out / 'run.json'})",
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.gpu_check``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv.insert(0, "prepare")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="download, check, rehearse; print the device call")
    p.add_argument("--dry-run", action="store_true", help="never run the GPU phases here")
    p.add_argument("--out", type=Path, default=DRY_RUN_OUT)
    d = sub.add_parser("device", help="run the phases (on the device)")
    d.add_argument("--dry-run", action="store_true", help="no install; GPU phases may skip")
    d.add_argument("--quick", action="store_true", help="toy store size")
    d.add_argument("--out", type=Path, default=None, help="default: $OUT")
    d.add_argument("--budget-s", type=float, default=DEVICE_BUDGET_S)
    r = sub.add_parser("report", help="gpu.json -> benchmarks/results/gpu.json + README table")
    r.add_argument("path", type=Path)
    r.add_argument("--allow-dry-run", action="store_true", help="print a dry run's table too")
    args = parser.parse_args(argv)
    if args.cmd == "prepare":
        return prepare(args.out, dry_run=args.dry_run)
    if args.cmd == "report":
        return gpu_report.report(args.path, allow_dry_run=args.allow_dry_run)
    if not args.dry_run and not os.environ.get("WORKBENCH_GPU_CHECK_SITE"):
        return _install_and_reexec(argv)
    out = args.out or Path(os.environ.get("OUT") or DRY_RUN_OUT)
    device(out, dry_run=args.dry_run, quick=args.quick, budget_s=args.budget_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
