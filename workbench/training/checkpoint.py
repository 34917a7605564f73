"""Atomic checkpoints: a crash or a kill mid-write never destroys the previous checkpoint.

:func:`save_checkpoint` writes through :func:`workbench._files.atomic_write` (a temporary in
the target's folder, fsynced, renamed over the target, the folder fsynced), so after a crash
the target holds either the old or the new checkpoint, whole. Leftover temporary files of
killed writers are never read and are removed by the next save of that checkpoint.

Layout used by the strategies: ``<dir>/model.pt`` for one model (single, DDP, FSDP) and
``<dir>/partitions/<geocode>.pt`` for partitioned training. Each file holds a dict with
``format``, ``epoch`` (epochs completed), ``model`` (a state dict), ``optimizer`` (a state
dict or ``None``), ``history`` and ``meta``.

Examples
--------
>>> import tempfile, torch
>>> from pathlib import Path
>>> d = Path(tempfile.mkdtemp())
>>> p = save_checkpoint(d / "model.pt", {"epoch": 1, "model": {"w": torch.ones(2)}})
>>> load_checkpoint(p)["epoch"], sorted(x.name for x in d.iterdir())
(1, ['model.pt'])
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench._files import atomic_write
from workbench._optional import lazy_import
from workbench._typing import PathLike
from workbench.errors import DataReadError

__all__ = [
    "FORMAT",
    "checkpoint_root",
    "save_checkpoint",
    "load_checkpoint",
    "model_checkpoint_path",
    "partition_checkpoint_path",
    "find_checkpoint",
]

#: Format tag stored in every checkpoint.
FORMAT = "workbench.checkpoint/1"


def checkpoint_root() -> Path:
    """Return this user's folder of run checkpoints, created private (mode 0700).

    ``$WORKBENCH_CHECKPOINT_DIR`` if set; else ``workbench/checkpoints`` in the user's cache
    directory (``$XDG_CACHE_HOME`` or ``~/.cache``; ``%LOCALAPPDATA%`` on Windows); where there
    is no usable home, a per-user folder under the temporary directory. Never one path shared
    by the users of a machine.

    Examples
    --------
    >>> import os
    >>> root = checkpoint_root()
    >>> root.is_dir(), os.name != "posix" or oct(root.stat().st_mode & 0o777) == "0o700"
    (True, True)
    """
    import tempfile

    env = os.environ.get("WORKBENCH_CHECKPOINT_DIR")
    if env:
        candidates = [Path(env).expanduser()]
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA")
        home = Path(base) if base else Path.home() / ".cache"
        uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
        candidates = [
            home / "workbench" / "checkpoints",
            Path(tempfile.gettempdir()) / f"workbench-{uid}" / "checkpoints",
        ]
    for root in candidates:
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if hasattr(os, "getuid") and root.stat().st_uid != os.getuid():
                continue  # someone else's folder: never write there
            root.chmod(0o700)
            return root
        except OSError:
            continue
    raise DataReadError(
        f"no private folder for checkpoints could be made (tried {[str(c) for c in candidates]}); "
        "set WORKBENCH_CHECKPOINT_DIR to a folder of yours, or pass --checkpoint DIR"
    )


def save_checkpoint(path: PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + fsync + ``os.replace``).

    Parameters
    ----------
    path : str or path-like
        Target file; its folder is created if needed.
    state : mapping
        Picklable by :func:`torch.save` and loadable with ``weights_only=True``: tensors,
        numbers, strings, lists, tuples and dicts of those.

    Returns
    -------
    pathlib.Path
        The target path.
    """
    torch = lazy_import("torch", purpose="checkpoints")
    target = Path(path)
    payload = {"format": FORMAT, "saved_at": time.time(), **state}
    with atomic_write(target) as f:
        torch.save(payload, f)
    return target


def load_checkpoint(path: PathLike, *, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors only, no code executed).

    Raises
    ------
    DataReadError
        If the file is missing, truncated or not a workbench checkpoint.
    """
    torch = lazy_import("torch", purpose="checkpoints")
    p = Path(path)
    if not p.is_file():
        raise DataReadError(f"checkpoint {str(p)!r} does not exist; check the --resume path")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt archives
        raise DataReadError(
            f"checkpoint {str(p)!r} could not be read ({type(exc).__name__}: {exc}); "
            "it is not a complete workbench checkpoint"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataReadError(
            f"{str(p)!r} is not a workbench checkpoint (format {FORMAT!r} expected)"
        )
    return state


def model_checkpoint_path(directory: PathLike) -> Path:
    """Where a single-model run (single, DDP, FSDP) keeps its checkpoint."""
    return Path(directory) / "model.pt"


def partition_checkpoint_path(directory: PathLike, code: str) -> Path:
    """Where partitioned training keeps the checkpoint of partition ``code``."""
    return Path(directory) / "partitions" / f"{code}.pt"


def find_checkpoint(path: PathLike, code: str | None = None) -> Path | None:
    """Resolve a ``--resume`` path: a checkpoint file, or a run folder.

    For a folder, returns ``model.pt`` (``code=None``) or ``partitions/<code>.pt``, or ``None``
    if that file does not exist (a partition that had not been checkpointed yet).

    Raises
    ------
    DataReadError
        If ``path`` does not exist.
    """
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise DataReadError(
            f"resume path {str(p)!r} does not exist; give a checkpoint file or folder"
        )
    candidate = partition_checkpoint_path(p, code) if code else model_checkpoint_path(p)
    return candidate if candidate.is_file() else None
