"""%%train in a real kernel: a cell that fails is a failed cell, so Run All stops there."""

from __future__ import annotations

import queue
import sys
import time

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupyter_client = pytest.importorskip("jupyter_client")

pytestmark = [pytest.mark.torch, pytest.mark.notebook]

SETUP = """
%load_ext workbench
import torch
from torch.utils.data import TensorDataset
torch.manual_seed(0)
x = torch.rand(256, 3)
train_data = TensorDataset(x, x.sum(dim=1, keepdim=True))
model = torch.nn.Linear(3, 1)
loss_fn = torch.nn.functional.mse_loss
"""


def _run_all(*cells: str) -> tuple[nbformat.NotebookNode, Exception | None]:
    """Run All on a notebook of ``cells`` in a fresh kernel; return it and the error, if any."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3")
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        return nb, exc
    return nb, None


def _ran(cell: nbformat.NotebookNode) -> bool:
    return cell.get("execution_count") is not None


@pytest.mark.parametrize(
    ("body", "ename"),
    [
        ("model = torch.nn.Linear(3, 1)\nloss_fn = undefined_loss", "UsageError"),
        ("model = (", "UsageError"),
        ("train_dat = train_data", "UsageError"),
    ],
)
def test_a_failing_train_cell_stops_run_all(body: str, ename: str) -> None:
    nb, error = _run_all(SETUP, "%%train -q --no-live --no-checkpoint\n" + body, "after = 1")
    assert error is not None
    assert error.ename == ename, error
    assert not _ran(nb.cells[2])  # Run All stopped at the %%train cell
    shown = "".join(
        o.get("text", "") + "".join(o.get("traceback", [])) for o in nb.cells[1].outputs
    )
    assert "%%train" in shown


def test_a_failure_on_an_engine_fails_the_cell() -> None:
    body = (
        "def loss_fn(p, t):\n"
        "    raise ValueError('bad loss on the worker')\n"
        "model = torch.nn.Linear(3, 1)\n"
    )
    nb, error = _run_all(
        SETUP,
        "%%train --strategy ddp --engines 2 --launcher local -q --no-live --no-checkpoint\n" + body,
        "after = 1",
    )
    assert error is not None
    assert "bad loss on the worker" in str(error)
    assert not _ran(nb.cells[2])


def test_an_interrupted_run_fails_the_cell() -> None:
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive(SETUP, timeout=120)
        msg_id = kc.execute(
            "%%train --epochs 100000 --no-live --no-checkpoint\nmodel = torch.nn.Linear(3, 1)"
        )
        started = time.monotonic()
        while time.monotonic() - started < 60:  # wait for the progress line: training runs
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if "epoch" in str(msg["content"].get("data", {}).get("text/plain", "")):
                break
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=120)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_kernel_is_this_python() -> None:
    """The kernel the tests start runs this interpreter (so it imports this checkout)."""
    spec = jupyter_client.kernelspec.get_kernel_spec("python3")
    assert spec.argv[0] in (sys.executable, "python", "python3") or "python" in spec.argv[0]
