"""Atomic writes: the one home of "temporary next to the target, fsync, replace, fsync the folder".

Every file or folder workbench writes for a user (catalogs, checkpoints, staged stores, STAC
collections, copied tutorials) is first written to a temporary ``.<name>.<pid>.<token>.tmp`` in
the target's folder, flushed to disk, then moved over the target with :func:`os.replace`
(atomic on POSIX and Windows), and the folder is fsynced so the rename itself survives a crash.
After a crash the target holds the old content or the new, never a torn mix, and at worst a
temporary is left, which :func:`remove_stale` clears once its writer is gone.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_write(folder / "a.txt", "w") as f:
...     _ = f.write("hello")
>>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
('hello', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeAlias

__all__ = [
    "atomic_write",
    "atomic_folder",
    "write_text",
    "temporary_path",
    "remove_stale",
    "fsync_dir",
    "pid_alive",
    "writer_pid",
]

TMP_SUFFIX = ".tmp"
PathLike: TypeAlias = "str | os.PathLike[str]"


def temporary_path(target: PathLike) -> Path:
    """Return a fresh temporary name next to ``target``: ``.<name>.<pid>.<token>.tmp``."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (someone else's live process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_pid(tmp: PathLike) -> int | None:
    """Return the pid in a temporary's name ``.<name>.<pid>.<token>.tmp``, else ``None``."""
    parts = Path(tmp).name.split(".")
    return int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None


def remove_stale(target: PathLike, min_age_s: float = 60.0) -> list[Path]:
    """Remove temporaries of ``target`` whose writer is gone (or older than ``min_age_s``).

    Temporaries of live writers in other processes are left alone: they are being written.

    Returns
    -------
    list of Path
        What was removed.
    """
    target = Path(target)
    removed = []
    for tmp in target.parent.glob(f".{glob_escape(target.name)}.*{TMP_SUFFIX}"):
        pid = writer_pid(tmp)
        try:
            old = time.time() - tmp.stat().st_mtime > min_age_s
            if old or pid is None or pid == os.getpid() or not pid_alive(pid):
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue  # another writer removed or is replacing it
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (a file called ``a[1].zarr``)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def fsync_dir(folder: PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where that is impossible."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows, or a folder this user may not open
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(target: PathLike, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary next to ``target`` for writing; on success it replaces ``target``.

    On a clean exit the file is flushed and fsynced, moved over ``target`` and the folder
    fsynced; on an exception (or an interrupt) the temporary is removed and ``target`` is
    untouched. The folder is created if needed.

    Parameters
    ----------
    target : path-like
        The file to write.
    mode : str
        ``"wb"`` or ``"w"`` (text, ``encoding`` in ``open_kwargs``; default UTF-8).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = temporary_path(target)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode.replace("w", "x"), **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def write_text(target: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically; return the target's path."""
    with atomic_write(target, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(target)


@contextlib.contextmanager
def atomic_folder(target: PathLike) -> Iterator[Path]:
    """Yield a new empty folder next to ``target``; on success it replaces ``target``.

    For stores written as folders (Zarr). The swap removes the old folder first, so the
    target is briefly absent, never half-written; on an exception the temporary is removed and
    the old folder kept.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = temporary_path(target)
    try:
        tmp.mkdir()
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(target.parent)
