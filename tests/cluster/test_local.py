"""LocalProcessLauncher: fresh spawned processes, gloo over loopback."""

from __future__ import annotations

import os
import signal

import pytest

from workbench.errors import EngineDiedError

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.cluster import (
    LocalProcessLauncher,
    TrainingTimeoutError,
    TrainRequest,
    find_launcher,
    launch_training,
)
from workbench.models import NDVIRegressor

pytestmark = [pytest.mark.torch, pytest.mark.cluster]
MSE = torch.nn.functional.mse_loss


def _failing_loss(pred, target):
    raise ValueError("this loss is broken on purpose")


def test_entry_point_lookup_is_case_insensitive():
    assert find_launcher("Local") is LocalProcessLauncher
    assert find_launcher("IPYPARALLEL").__name__ == "IpyparallelLauncher"
    with pytest.raises(Exception, match="unknown launcher 'slurm'; known launchers"):
        find_launcher("slurm")


def test_ddp_on_local_processes(make_data, tmp_path):
    torch.manual_seed(0)
    req = TrainRequest(
        NDVIRegressor(),
        make_data(64),
        MSE,
        strategy="ddp",
        engines=2,
        epochs=2,
        batch_size=16,
        lr=3e-3,
        checkpoint_dir=str(tmp_path),
    )
    events = []
    result = launch_training(req, LocalProcessLauncher(2), callbacks=[events.append])
    assert [w["name"] for w in result.workers] == ["worker-0", "worker-1"]
    assert len({d["model"] for d in result.digests.values()}) == 1
    assert {e.rank for e in events} == {0, 1}
    assert result.bytes_exchanged > 0
    assert (tmp_path / "model.pt").is_file()


def test_worker_errors_keep_their_type_and_name_the_worker(make_data):
    req = TrainRequest(
        NDVIRegressor(),
        make_data(32),
        _failing_loss,
        strategy="ddp",
        engines=2,
        checkpoint=False,
    )
    with pytest.raises(ValueError, match="broken on purpose") as err:
        launch_training(req, LocalProcessLauncher(2))
    assert any("raised on worker-" in note for note in err.value.__notes__)


def test_dead_worker_and_timeout(make_data, tmp_path):
    launcher = LocalProcessLauncher(2)
    req = TrainRequest(
        NDVIRegressor(),
        make_data(256),
        MSE,
        strategy="ddp",
        engines=2,
        epochs=1000,
        batch_size=8,
        checkpoint_dir=str(tmp_path),
    )

    def kill_worker_1(event):
        if event.epoch >= 1 and launcher._procs[1].is_alive():
            os.kill(launcher._procs[1].pid, signal.SIGKILL)

    with pytest.raises(
        EngineDiedError, match=r"worker-1 \(pid \d+\) died with exit code -9"
    ) as err:
        launch_training(req, launcher, callbacks=[kill_worker_1])
    assert "after epoch" in str(err.value)
    assert not any(p.is_alive() for p in launcher._procs)  # the other worker was stopped
    with pytest.raises(TrainingTimeoutError, match=r"timeout of 3\.0 s"):
        launch_training(
            req.replace(timeout=3.0, resume=None, checkpoint_dir=str(tmp_path / "t")), launcher
        )
    assert not any(p.is_alive() for p in launcher._procs)
