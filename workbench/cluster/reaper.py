"""Processes that end with this one: engines and controllers never outlive their kernel.

:func:`tie_to_this_process` starts a small watchdog (this file, run as a script, in a session
of its own so that it survives whatever ends its parent). It waits until the process that
started it is gone (a clean shutdown, a crash, ``kill -9``, a stopped Jupyter server or
JupyterHub server), then stops the processes it was given and all their descendants: SIGTERM,
then SIGKILL after a grace period. It exits by itself once all of them are gone (a cluster
stopped the normal way), and :meth:`Reaper.release` stops it at once.

Processes are identified by pid *and* start time, so a pid reused by another program is never
signalled.

Examples
--------
>>> import subprocess, sys, time
>>> child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
>>> reaper = tie_to_this_process([child.pid])
>>> reaper.alive()
True
>>> reaper.release(); child.kill(); _ = child.wait()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["Reaper", "tie_to_this_process"]


class Reaper:
    """Handle of a running watchdog (see the module docstring)."""

    def __init__(self, process: subprocess.Popen[bytes], pids: Sequence[int]) -> None:
        self.process = process
        self.pids = list(pids)

    def alive(self) -> bool:
        """Whether the watchdog still runs."""
        return self.process.poll() is None

    def release(self) -> None:
        """Stop watching (the processes are being stopped the normal way)."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _identity(pid: int) -> str:
    import psutil

    try:
        return f"{pid}:{psutil.Process(pid).create_time():.3f}"
    except psutil.Error:
        return f"{pid}:gone"


def tie_to_this_process(pids: Sequence[int], *, grace_s: float = 5.0) -> Reaper:
    """Stop ``pids`` and their descendants when this process ends, however it ends.

    Parameters
    ----------
    pids : sequence of int
        Processes started by this one (a controller, engines).
    grace_s : float
        Seconds between SIGTERM and SIGKILL.
    """
    watched = [_identity(p) for p in pids]
    cmd = [sys.executable, __file__, _identity(os.getpid()), str(grace_s), *watched]
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # out of the parent's process group: a signal to it spares us
        close_fds=True,
    )
    return Reaper(process, pids)


# ------------------------------------------------------------------------- the watchdog


def _process(identity: str) -> Any:
    """Return the psutil process ``"pid:create_time"`` if that very process still runs.

    A zombie (dead, not yet reaped by its parent) does not run.
    """
    import psutil

    pid, _, created = identity.partition(":")
    try:
        proc = psutil.Process(int(pid))
        same = created != "gone" and abs(proc.create_time() - float(created)) < 0.01
        if same and proc.status() != psutil.STATUS_ZOMBIE:
            return proc
    except (psutil.Error, ValueError):
        pass
    return None


def _stop(identities: Sequence[str], grace_s: float) -> None:
    import psutil

    procs: list[Any] = []
    for ident in identities:
        proc = _process(ident)
        if proc is not None:
            try:
                procs += [proc, *proc.children(recursive=True)]
            except psutil.Error:
                procs.append(proc)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _main(argv: Sequence[str]) -> None:
    parent, grace_s, watched = argv[0], float(argv[1]), list(argv[2:])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # released: stop watching
    while _process(parent) is not None:
        if not any(_process(w) is not None for w in watched):
            return  # stopped the normal way
        time.sleep(1.0)
    _stop(watched, grace_s)


if __name__ == "__main__":
    _main(sys.argv[1:])
