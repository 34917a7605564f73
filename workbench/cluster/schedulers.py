"""Engine launchers by name, batch directives from options, and the scheduler's view of a job.

``%cluster start --launcher NAME`` names one of ipyparallel's engine launchers (looked up
case-insensitively, like ipyparallel's ``find_launcher_class``): :data:`LAUNCHERS` maps the
workbench names to ipyparallel's, in one place (a new launcher is one entry: an ipyparallel
entry-point name or a ``package.module.Class`` path). For batch schedulers, the options a
cluster user sets (queue or partition, account, time limit, GPUs and CPUs per engine, extra
directives) become directive lines of the engines' job script (:func:`directives`), inserted
into whatever template the launcher or the user's profile uses; an option a launcher cannot
honour is refused (:func:`check_options`), never ignored. :func:`job_state` asks the
scheduler about a job (Slurm's ``squeue``), so that waiting for engines can say why they are
not there yet, and a finished job's engines count as dead.

Examples
--------
>>> scheduler("SLURM").title
'Slurm'
>>> directives("slurm", queue="debug", time_limit="1:30:00", gpus_per_engine=1)
['#SBATCH --partition=debug', '#SBATCH --time=0-01:30:00', '#SBATCH --gpus-per-task=1']
>>> parse_time_limit("2-00:00:00")
172800
>>> JobState("PENDING", "Resources").waiting
True
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workbench.errors import LaunchError

__all__ = [
    "LAUNCHERS",
    "Scheduler",
    "JobState",
    "WaitProgress",
    "scheduler",
    "check_options",
    "directives",
    "insert_directives",
    "parse_time_limit",
    "job_state",
    "job_of_this_process",
]


def _hms(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _slurm_time(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{days}-{_hms(rest)}"


def _lsf_time(seconds: int) -> str:
    minutes = -(-seconds // 60)  # LSF counts whole minutes: round up
    return f"{minutes // 60}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Scheduler:
    """How one engine launcher is named and, for batch schedulers, how options are written.

    Attributes
    ----------
    name, title : str
        The workbench name (``slurm``) and the one shown to users (``Slurm``).
    ipp : str
        ipyparallel's engine launcher: an entry-point name or a ``module.Class`` path.
    batch : bool
        Whether engines are a job of a batch scheduler (queue, account, time limit...).
    prefix : str
        Directive prefix of the job script (``#SBATCH``); empty for submit descriptions.
    queue, account, gpus, cpus : str or None
        Directive templates (``{}`` is the value); ``None`` where the scheduler has none.
    time : callable or None
        Seconds -> the time-limit directive.
    job_env : str or None
        Environment variable that holds the job id in an engine's process.
    """

    name: str
    title: str
    ipp: str
    batch: bool = False
    prefix: str = ""
    queue: str | None = None
    account: str | None = None
    gpus: str | None = None
    cpus: str | None = None
    time: Callable[[int], str] | None = None
    job_env: str | None = None


#: The engine launchers ``%cluster start --launcher`` knows, by workbench name.
LAUNCHERS: dict[str, Scheduler] = {
    s.name: s
    for s in (
        Scheduler("local", "local processes", "local"),
        Scheduler("mpi", "MPI", "mpi"),
        Scheduler("ssh", "SSH", "ssh"),
        Scheduler(
            "slurm",
            "Slurm",
            "slurm",
            batch=True,
            prefix="#SBATCH",
            queue="--partition={}",
            account="--account={}",
            gpus="--gpus-per-task={}",
            cpus="--cpus-per-task={}",
            time=lambda s: f"--time={_slurm_time(s)}",
            job_env="SLURM_JOB_ID",
        ),
        Scheduler(
            "pbs",
            "PBS",
            "pbs",
            batch=True,
            prefix="#PBS",
            queue="-q {}",
            account="-A {}",
            gpus="-l ngpus={}",
            cpus="-l ncpus={}",
            time=lambda s: f"-l walltime={_hms(s)}",
            job_env="PBS_JOBID",
        ),
        Scheduler(
            "sge",
            "Grid Engine",
            "sge",
            batch=True,
            prefix="#$",
            queue="-q {}",
            account="-A {}",
            gpus="-l gpu={}",
            cpus="-pe smp {}",
            time=lambda s: f"-l h_rt={_hms(s)}",
            job_env="JOB_ID",
        ),
        Scheduler(
            "lsf",
            "LSF",
            "lsf",
            batch=True,
            prefix="#BSUB",
            queue="-q {}",
            account="-P {}",
            gpus='-gpu "num={}"',
            cpus="-n {}",
            time=lambda s: f"-W {_lsf_time(s)}",
            job_env="LSB_JOBID",
        ),
        Scheduler(
            "htcondor",
            "HTCondor",
            "htcondor",
            batch=True,
            account="accounting_group = {}",
            gpus="request_gpus = {}",
            cpus="request_cpus = {}",
            time=lambda s: f"allowed_execute_duration = {s}",
        ),
    )
}


def scheduler(name: str) -> Scheduler:
    """Return the launcher called ``name`` (case-insensitive).

    Raises
    ------
    LaunchError
        For an unknown name (the message lists the known ones).
    """
    found = LAUNCHERS.get(name.lower())
    if found is None:
        raise LaunchError(
            f"unknown engine launcher {name!r}; use one of {', '.join(LAUNCHERS)} "
            "(ipyparallel's launchers)"
        )
    return found


_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time_limit(text: str) -> int:
    """Seconds of a time limit written as Slurm writes them.

    ``MINUTES``, ``MINUTES:SECONDS``, ``HOURS:MINUTES:SECONDS``, ``DAYS-HOURS``,
    ``DAYS-HOURS:MINUTES`` or ``DAYS-HOURS:MINUTES:SECONDS``.

    Raises
    ------
    LaunchError
        If ``text`` is none of these, or zero.
    """
    m = _TIME.match(text.strip())
    if not m:
        raise LaunchError(
            f"time limit {text!r} is not a time: use minutes (90), H:MM:SS (1:30:00) or "
            "D-HH:MM:SS (2-00:00:00)"
        )
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    assert a is not None
    if days is not None:  # D-H, D-H:M, D-H:M:S
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # H:M:S
        seconds = a * 3600 + (b or 0) * 60 + c
    else:  # M or M:S
        seconds = a * 60 + (b or 0)
    if seconds <= 0:
        raise LaunchError(f"time limit {text!r} must be longer than zero")
    return seconds


def check_options(
    name: str,
    *,
    queue: str | None = None,
    account: str | None = None,
    time_limit: str | None = None,
    gpus_per_engine: int | None = None,
    cpus_per_engine: int | None = None,
    directives: Sequence[str] = (),
) -> Scheduler:
    """Return launcher ``name`` if it can honour every option given.

    Raises
    ------
    LaunchError
        For an unknown launcher, an option it has no place for (a queue for local engines,
        a queue on HTCondor), a bad time limit, or a directive spanning lines.
    """
    s = scheduler(name)
    given = {
        "--queue": queue,
        "--account": account,
        "--time-limit": time_limit,
        "--gpus-per-engine": gpus_per_engine,
        "--cpus-per-engine": cpus_per_engine,
        "--directive": list(directives) or None,
    }
    used = [k for k, v in given.items() if v is not None]
    if used and not s.batch:
        batch = ", ".join(k for k, v in LAUNCHERS.items() if v.batch)
        raise LaunchError(
            f"{', '.join(used)} applies to batch schedulers ({batch}), not to the {name!r} "
            "launcher: drop it, or choose the scheduler with --launcher"
        )
    slots = {"--queue": s.queue, "--account": s.account, "--time-limit": s.time}
    slots |= {"--gpus-per-engine": s.gpus, "--cpus-per-engine": s.cpus}
    missing = [k for k in used if k in slots and slots[k] is None]
    if missing:
        raise LaunchError(
            f"{s.title} has no {', '.join(missing)}: drop it, or write the directive "
            "yourself with --directive"
        )
    if time_limit is not None:
        parse_time_limit(time_limit)
    for d in directives:
        if "\n" in d or "\r" in d or not d.strip():
            raise LaunchError(f"a directive is one non-empty line, got {d!r}")
    return s


def directives(
    name: str,
    *,
    queue: str | None = None,
    account: str | None = None,
    time_limit: str | None = None,
    gpus_per_engine: int | None = None,
    cpus_per_engine: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Return the directive lines of a job script for these options (checked first).

    ``extra`` lines are kept as they are if they start with ``#`` (or for HTCondor), and
    get the scheduler's prefix otherwise (``--qos=debug`` -> ``#SBATCH --qos=debug``).
    """
    s = check_options(
        name,
        queue=queue,
        account=account,
        time_limit=time_limit,
        gpus_per_engine=gpus_per_engine,
        cpus_per_engine=cpus_per_engine,
        directives=extra,
    )
    body = []  # check_options made sure the scheduler has a directive for each value given
    if queue is not None and s.queue:
        body.append(s.queue.format(queue))
    if account is not None and s.account:
        body.append(s.account.format(account))
    if time_limit is not None and s.time:
        body.append(s.time(parse_time_limit(time_limit)))
    if gpus_per_engine is not None and s.gpus:
        body.append(s.gpus.format(gpus_per_engine))
    if cpus_per_engine is not None and s.cpus:
        body.append(s.cpus.format(cpus_per_engine))
    lines = [f"{s.prefix} {b}" if s.prefix else b for b in body]
    for d in extra:
        d = d.strip()
        lines.append(d if d.startswith("#") or not s.prefix else f"{s.prefix} {d}")
    return lines


def insert_directives(script: str, name: str, lines: Sequence[str]) -> str:
    """Insert directive ``lines`` into a job script (or HTCondor submit description).

    They go after the script's last directive line (so they win over the template's), or
    after its first line when it has none; for HTCondor, before the ``queue`` statement.
    """
    if not lines:
        return script
    s = scheduler(name)
    rows = script.split("\n")
    if not s.prefix:
        at = next((i for i, r in enumerate(rows) if r.strip().startswith("queue")), len(rows))
    else:
        marks = [i for i, r in enumerate(rows) if r.strip().startswith(s.prefix)]
        at = (marks[-1] + 1) if marks else min(1, len(rows))
    return "\n".join([*rows[:at], *lines, *rows[at:]])


@dataclass(frozen=True)
class JobState:
    """A job as its scheduler sees it: ``state`` (``PENDING``, ``RUNNING``...), ``reason``."""

    state: str
    reason: str = ""

    @property
    def waiting(self) -> bool:
        """Queued or starting: its engines may still come."""
        return self.state in {"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"}

    @property
    def finished(self) -> bool:
        """Ended (completed, cancelled, failed, out of time...): its engines are gone or going.

        ``COMPLETING`` counts: the job has ended and its processes are being killed.
        """
        return not self.waiting and self.state not in {"RUNNING", "SIGNALING", "STOPPED"}

    def __str__(self) -> str:
        reason = self.reason if self.reason not in ("", "None", "(null)") else ""
        return f"{self.state} ({reason})" if reason else self.state


def job_state(name: str, job_id: str, *, timeout_s: float = 10.0) -> JobState | None:
    """Ask the scheduler about ``job_id``; ``None`` when it cannot tell.

    Slurm only (``squeue``); a job Slurm no longer knows is ``GONE``.
    """
    if name != "slurm" or not job_id or shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T|%r"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    if not line:
        if "Invalid job id" in out.stderr:
            return JobState("GONE", "no longer known to the scheduler")
        return None
    state, _, reason = line.partition("|")
    return JobState(state.strip(), reason.strip())


def job_of_this_process() -> tuple[str, str] | None:
    """``(launcher name, job id)`` of the batch job this process runs in, else ``None``."""
    for s in LAUNCHERS.values():
        if s.job_env:
            with contextlib.suppress(KeyError):
                return s.name, os.environ[s.job_env]
    return None


@dataclass(frozen=True)
class WaitProgress:
    """Where a wait for engines stands (shown while ``%cluster`` waits)."""

    registered: int
    wanted: int
    elapsed_s: float
    timeout_s: float
    title: str = ""
    job_id: str | None = None
    job: JobState | None = None

    def __str__(self) -> str:
        job = ""
        if self.job_id:
            job = f"; {self.title} job {self.job_id}" + (f" {self.job}" if self.job else "")
        return (
            f"{self.registered}/{self.wanted} engines registered{job}; "
            f"{self.elapsed_s:.0f} s of {self.timeout_s:g} s"
        )
