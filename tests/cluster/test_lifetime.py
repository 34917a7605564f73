"""Engines and controllers started from a kernel end with it, however it ends."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = [pytest.mark.torch, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
START = """
%load_ext workbench
%cluster start -n 2
import torch
from torch.utils.data import TensorDataset
x = torch.rand(4096, 3)
train_data = TensorDataset(x, x.sum(dim=1, keepdim=True))
model = torch.nn.Linear(3, 1)
loss_fn = torch.nn.functional.mse_loss
"""
LONG_RUN = "%%train --strategy ddp --engines 2 --epochs 100000 -q --no-live --no-checkpoint\n"


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _wait_gone(procs: list[psutil.Process], timeout: float = 30.0) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


def _start_training(kc) -> None:
    kc.execute_interactive(START, timeout=180)
    kc.execute(LONG_RUN + "model = model")  # runs on while the kernel is stopped
    time.sleep(5)


def _engines(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if "ipyparallel" in " ".join(p.cmdline())]


def test_engines_end_when_the_kernel_is_killed() -> None:
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env={**os.environ, "PYTHONPATH": str(REPO)})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        _start_training(kc)
        kernel = km.provisioner.process.pid
        cluster = _descendants(kernel)
        assert len(_engines(cluster)) >= 3, [p.cmdline() for p in cluster]  # 2 engines, controller
        os.kill(kernel, signal.SIGKILL)  # a hard exit: no clean-up runs in the kernel
        left = _wait_gone(cluster)
        assert not left, [p.cmdline() for p in left]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_engines_end_when_the_jupyter_server_stops(tmp_path) -> None:
    pytest.importorskip("jupyter_server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    runtime = tmp_path / "runtime"
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "PYTHONPATH": str(REPO),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--ServerApp.port_retries=0",
            *(["--allow-root"] if os.getuid() == 0 else []),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/kernels"
        for _ in range(120):
            try:
                req = urllib.request.Request(
                    url, data=b"{}", method="POST", headers={"Authorization": f"token {token}"}
                )
                kernel_id = json.loads(urllib.request.urlopen(req, timeout=10).read())["id"]
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Jupyter server did not start")
        kc = jupyter_client.BlockingKernelClient(
            connection_file=str(runtime / f"kernel-{kernel_id}.json")
        )
        kc.load_connection_file()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            _start_training(kc)
        finally:
            kc.stop_channels()
        everything = _descendants(server.pid)
        assert len(_engines(everything)) >= 3
        server.send_signal(signal.SIGTERM)  # "stop the server" (also what a hub does)
        server.wait(60)
        left = _wait_gone(everything)
        assert not left, [p.cmdline() for p in left]
    finally:
        if server.poll() is None:
            server.kill()
