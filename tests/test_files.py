"""Atomic writes: the old content survives a failed write; leftovers of dead writers go."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workbench._files import atomic_folder, atomic_write, remove_stale, temporary_path, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "catalog.parquet"
    write_text(target, "old")

    def die_mid_write() -> None:
        with atomic_write(target, "w") as fh:
            fh.write("half of the new")
            raise RuntimeError("the writer died")

    with pytest.raises(RuntimeError, match="died"):
        die_mid_write()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.parquet"]


def test_temporaries_of_dead_writers_go_those_of_live_writers_stay(tmp_path):
    target = tmp_path / "model.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    left = target.with_name(f".model.pt.{dead.stdout.strip()}.abc.tmp")
    left.write_bytes(b"torn")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        busy = target.with_name(f".model.pt.{live.pid}.def.tmp")
        busy.write_bytes(b"being written")
        assert remove_stale(target) == [left]
        assert busy.exists()
        os.utime(busy, (0, 0))  # an hour-old temporary is stale whoever wrote it
        assert remove_stale(target) == [busy]
    finally:
        live.kill()
        live.wait()


def test_a_name_with_glob_characters_is_matched_literally(tmp_path):
    target = tmp_path / "a[1].zarr"
    other = tmp_path / ".a1.zarr.1.x.tmp"
    other.write_text("not ours")
    ours = temporary_path(target)
    ours.write_text("ours")
    os.utime(ours, (0, 0))
    assert remove_stale(target) == [ours]
    assert other.exists()


def test_a_folder_is_swapped_whole_or_not_at_all(tmp_path):
    target = tmp_path / "node-0"
    with atomic_folder(target) as tmp:
        (tmp / "a").write_text("1")
    assert (target / "a").read_text() == "1"

    def fill_the_disk() -> None:
        with atomic_folder(target) as tmp:
            (tmp / "b").write_text("2")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fill_the_disk()
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node-0"]
