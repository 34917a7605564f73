"""Processes that end with this one: engines and controllers never outlive their kernel.

:func:`tie_to_this_process` starts a small watchdog (this file, run as a script, in a session
of its own so that it survives whatever ends its parent). It waits until the process that
started it is gone (a clean shutdown, a crash, ``kill -9``, a stopped Jupyter server or
JupyterHub server), then stops the processes it was given and all their descendants: SIGTERM,
then SIGKILL after a grace period. Commands given as ``on_exit`` run first: they end what is
not a child process, such as the batch job of a cluster's engines (``scancel 12``). It exits
by itself once all of the processes are gone (a cluster stopped the normal way), and
:meth:`Reaper.release` stops it at once.

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
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["Reaper", "tie_to_this_process", "process_tree", "stop_processes"]


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


def tie_to_this_process(
    pids: Sequence[int], *, grace_s: float = 5.0, on_exit: Sequence[Sequence[str]] = ()
) -> Reaper:
    """Stop ``pids`` and their descendants when this process ends, however it ends.

    Parameters
    ----------
    pids : sequence of int
        Processes started by this one (a controller, engines).
    grace_s : float
        Seconds between SIGTERM and SIGKILL.
    on_exit : sequence of argv lists
        Commands to run first when this process has ended (e.g. ``["scancel", "12"]``).
    """
    watched = [_identity(p) for p in pids]
    commands = json.dumps([list(map(str, c)) for c in on_exit])
    cmd = [sys.executable, __file__, _identity(os.getpid()), str(grace_s), commands, *watched]
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


def process_tree(pids: Sequence[int]) -> list[str]:
    """Identities (``"pid:start time"``) of ``pids`` and of all their descendants now.

    Taken before stopping a process whose children could outlive it (a controller stopped
    while it starts), so that :func:`stop_processes` finds them once they are orphans.
    """
    import psutil

    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            found += [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
    return [_identity(p.pid) for p in found]


def stop_processes(identities: Sequence[str], grace_s: float = 5.0) -> None:
    """Stop the processes of ``identities`` that still run, their descendants and groups.

    SIGTERM, then SIGKILL after ``grace_s``; a pid now used by another process is spared. The
    process group a stopped process led is stopped too: a controller's children forked after
    a :func:`process_tree` snapshot, or orphaned when it died.
    """
    _stop(identities, grace_s)


def _group(identity: str) -> list[Any]:
    """Return the processes of the group ``identity`` leads, started after it.

    A session leader such as a controller: its children, orphaned or not.
    """
    import psutil

    pid, _, created = identity.partition(":")
    if created == "gone":
        return []
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == int(pid) and proc.create_time() >= float(created) - 0.01:
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


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
        procs += _group(ident)  # children forked late, or orphaned when their parent died
    procs = list({p.pid: p for p in procs if p.pid != os.getpid()}.values())
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _run(commands: Sequence[Sequence[str]]) -> None:
    for command in commands:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            )


def _main(argv: Sequence[str]) -> None:
    parent, grace_s, commands = argv[0], float(argv[1]), json.loads(argv[2])
    watched = list(argv[3:])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # released: stop watching
    while _process(parent) is not None:
        if not any(_process(w) is not None for w in watched):
            return  # stopped the normal way
        time.sleep(1.0)
    _run(commands)
    _stop(watched, grace_s)


if __name__ == "__main__":
    _main(sys.argv[1:])
