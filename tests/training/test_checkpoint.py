"""Atomic checkpoints: a killed writer leaves the previous checkpoint loadable; resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.errors import DataReadError

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.models import NDVIRegressor
from workbench.training.checkpoint import (
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from workbench.training.strategies import WorkerTask, run_worker

pytestmark = pytest.mark.torch


def test_roundtrip_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "run" / "model.pt"
    save_checkpoint(target, {"epoch": 1, "model": {"w": torch.zeros(3)}})
    save_checkpoint(target, {"epoch": 2, "model": {"w": torch.ones(3)}})
    state = load_checkpoint(target)
    assert state["epoch"] == 2
    assert torch.equal(state["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.pt"]


def test_unpicklable_state_leaves_the_previous_checkpoint(tmp_path):
    target = tmp_path / "model.pt"
    save_checkpoint(target, {"epoch": 1})
    with pytest.raises(Exception):  # noqa: B017,PT011  (whatever pickle raises)
        save_checkpoint(target, {"epoch": 2, "bad": lambda: None})
    assert load_checkpoint(target)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


_WRITER = textwrap.dedent(
    """
    import os, sys, time, torch
    from workbench.training import checkpoint
    target = sys.argv[1]
    checkpoint.save_checkpoint(target, {"epoch": 1, "model": {"w": torch.zeros(4)}})
    real_fsync = os.fsync
    def stall(fd):
        real_fsync(fd)
        print("writing", flush=True)
        time.sleep(60)
    checkpoint.os.fsync = stall   # the second save stalls after writing its temporary file
    checkpoint.save_checkpoint(target, {"epoch": 2, "model": {"w": torch.ones(4_000_000)}})
    """
)


def test_kill_mid_write_leaves_previous_checkpoint_loadable(tmp_path):
    target = tmp_path / "model.pt"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        temps = [p for p in tmp_path.iterdir() if p.name != "model.pt"]
        assert len(temps) == 1
        assert temps[0].stat().st_size > 16_000_000  # the new one, written but not renamed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = load_checkpoint(target)
    assert state["epoch"] == 1
    assert torch.equal(state["model"]["w"], torch.zeros(4))
    assert find_checkpoint(tmp_path) == target
    # the next save removes the dead writer's temporary file
    save_checkpoint(target, {"epoch": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_truncated_or_foreign_files_are_data_read_errors(tmp_path):
    good = save_checkpoint(tmp_path / "a.pt", {"epoch": 1, "model": {"w": torch.ones(1000)}})
    torn = tmp_path / "torn.pt"
    torn.write_bytes(good.read_bytes()[:500])
    with pytest.raises(DataReadError, match=r"torn\.pt.*could not be read"):
        load_checkpoint(torn)
    foreign = tmp_path / "foreign.pt"
    torch.save({"epoch": 1}, foreign)
    with pytest.raises(DataReadError, match="not a workbench checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(DataReadError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(DataReadError, match=r"resume path .* does not exist"):
        find_checkpoint(tmp_path / "nope")


def test_resume_continues_exactly_where_training_stopped(tmp_path, make_data):
    """2 epochs + resume to 4 gives the same weights as 4 epochs straight (Adam state and
    data order are restored)."""
    torch.manual_seed(0)
    data, model = make_data(96), NDVIRegressor()

    def task(epochs, ckdir, resume=None):
        return WorkerTask(
            "single",
            model,
            torch.nn.functional.mse_loss,
            train_data=data,
            epochs=epochs,
            batch_size=32,
            lr=3e-3,
            checkpoint_dir=str(ckdir),
            resume=resume,
        )

    straight = run_worker(task(4, tmp_path / "a"))
    first = run_worker(task(2, tmp_path / "b"))
    assert load_checkpoint(tmp_path / "b" / "model.pt")["epoch"] == 2
    events = []
    resumed = run_worker(
        task(4, tmp_path / "c", resume=str(tmp_path / "b")), callbacks=[events.append]
    )
    assert {e.epoch for e in events} == {2, 3}
    assert [r.epoch for r in resumed.history] == [0, 1, 2, 3]
    assert resumed.history[:2] == first.history
    assert resumed.digests["model"] == straight.digests["model"]
    assert load_checkpoint(tmp_path / "c" / "model.pt")["epoch"] == 4


def test_default_checkpoints_go_to_a_private_per_user_folder(tmp_path, monkeypatch):
    """Never one fixed path shared by everyone on the machine (a hub's second user failed)."""
    from workbench.cluster.orchestrate import default_checkpoint_dir
    from workbench.training.checkpoint import checkpoint_root

    monkeypatch.delenv("WORKBENCH_CHECKPOINT_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    roots = []
    for user in ("ada", "grace"):
        monkeypatch.setenv("HOME", str(tmp_path / user))
        root = checkpoint_root()
        assert root == tmp_path / user / ".cache" / "workbench" / "checkpoints"
        assert oct(root.stat().st_mode & 0o777) == "0o700"
        roots.append(root)
        assert Path(default_checkpoint_dir("ddpx2")).parent == root
    assert roots[0] != roots[1]
    if os.getuid() == 0:  # a folder that belongs to someone else is never used
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        monkeypatch.setenv("WORKBENCH_CHECKPOINT_DIR", str(theirs))
        with pytest.raises(DataReadError, match="WORKBENCH_CHECKPOINT_DIR"):
            checkpoint_root()
