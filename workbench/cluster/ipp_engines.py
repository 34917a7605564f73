"""ipyparallel's engine launchers, configured from a :class:`~workbench.cluster.spec.ClusterSpec`.

* :func:`profile_folder`: the folder of a named IPython profile (refused when missing, so
  ``--profile`` is never ignored); :func:`private_profile_folder`, one for a single cluster.
* :func:`configure_engines`: choose the engine launcher of an ``ipyparallel.Cluster`` (the
  spec's, else the profile's ``c.Cluster.engine_launcher_class``, else local) and, for a
  batch scheduler, write the spec's options into its job script
  (:func:`~workbench.cluster.schedulers.directives`), keep the script in the profile folder,
  and report the scheduler's own error message when a submission fails.
* :func:`engine_job`: the ``(launcher, job id)`` of a cluster's engines, and
  :func:`cancel_command`, the command that ends that job (run by the watchdog when the kernel
  dies).

Like :mod:`workbench.cluster.ipp`, this module imports ipyparallel lazily.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from workbench._optional import lazy_import
from workbench.cluster.schedulers import (
    LAUNCHERS,
    Scheduler,
    check_options,
    directives,
    insert_directives,
)
from workbench.cluster.spec import ClusterSpec
from workbench.errors import LaunchError

__all__ = [
    "ipyparallel",
    "profile_folder",
    "private_profile_folder",
    "configure_engines",
    "engine_job",
    "cancel_command",
]


def ipyparallel() -> Any:
    """Return the ipyparallel module, or raise the error that says how to install it."""
    return lazy_import(
        "ipyparallel", extra="cluster", purpose="engines (%cluster, %%train --engines)"
    )


def _launcher_module() -> Any:
    return lazy_import("ipyparallel.cluster.launcher", extra="cluster", purpose="%cluster start")


def profile_folder(name: str) -> str:
    """Return the folder of the IPython profile ``name`` (``$IPYTHONDIR/profile_NAME``).

    Raises
    ------
    LaunchError
        If there is no such profile: it is never created silently.
    """
    util = lazy_import("ipyparallel.util", extra="cluster")
    try:
        return str(util._locate_profiles([name])[0])
    except Exception as exc:  # IPython's ProfileDirError
        raise LaunchError(
            f"there is no IPython profile named {name!r} ({exc}); create it with `ipython "
            f"profile create --parallel --profile={name}` and set its launcher in "
            "ipcluster_config.py, or give the launcher's options to %cluster start"
        ) from exc


def private_profile_folder(spec: ClusterSpec) -> str:
    """Create a profile folder for one cluster (removed when it stops).

    Local engines get one in the temporary directory. A batch job's engines write their
    output into it from the compute nodes, so theirs is made in the IPython folder
    (``$IPYTHONDIR``, in the home directory that clusters share), not in a node's ``/tmp``.
    """
    s = LAUNCHERS.get(spec.launcher or "local")
    if s is None or not s.batch:
        return tempfile.mkdtemp(prefix="workbench-ipp-")
    util = lazy_import("ipyparallel.util", extra="cluster")
    parent = Path(util.get_ipython_dir()) / "workbench-clusters"
    parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{s.name}-", dir=parent)


def _class_of(s: Scheduler) -> type:
    if ":" in s.ipp or "." in s.ipp:  # a "package.module.Class" path
        module, _, name = s.ipp.replace(":", ".").rpartition(".")
        return getattr(lazy_import(module), name)  # type: ignore[no-any-return]
    return _launcher_module().find_launcher_class(s.ipp, "engine")  # type: ignore[no-any-return]


def _scheduler_of(cls: type) -> Scheduler | None:
    """Return the entry of :data:`LAUNCHERS` whose ipyparallel class ``cls`` is (or extends)."""
    for s in LAUNCHERS.values():
        try:
            if issubclass(cls, _class_of(s)):
                return s
        except Exception:  # noqa: S112 (a launcher whose module is not installed)
            continue
    return None


def _batch_class(base: type, s: Scheduler, lines: list[str]) -> type:
    """Subclass ``base``: its job script gets ``lines``, its submit errors are reported."""

    def write_batch_script(self: Any, n: int = 1) -> None:
        base.write_batch_script(self, n)  # type: ignore[attr-defined]
        path = Path(self.batch_file)
        path.write_text(insert_directives(path.read_text(), s.name, lines))

    def _run_command(self: Any, command: list[str], **kwargs: Any) -> str:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, **kwargs
        )
        if done.returncode:
            said = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()
            raise LaunchError(
                f"{shlex.join(command)} failed (exit status {done.returncode}): "
                + " / ".join(said[-5:])
            )
        return str(done.stdout)

    def stop(self: Any) -> str:
        """Cancel the job; one never submitted, or already ended (walltime), is stopped."""
        output = "no job was submitted"
        if self.job_id:
            try:
                return str(base.stop(self))  # type: ignore[attr-defined]
            except LaunchError as exc:
                output = str(exc)
        self.notify_stop({"job_id": self.job_id, "output": output})
        return output

    return type(
        base.__name__,
        (base,),
        {
            "__module__": __name__,
            "entrypoint_name": s.ipp,  # the cluster file names the launcher as ipyparallel does
            "write_batch_script": write_batch_script,
            "_run_command": _run_command,
            "stop": stop,
        },
    )


def configure_engines(cluster: Any, spec: ClusterSpec) -> Scheduler:
    """Set the engine launcher of ``cluster`` (an ``ipyparallel.Cluster``) from ``spec``.

    Returns the launcher's :class:`~workbench.cluster.schedulers.Scheduler` entry.

    Raises
    ------
    LaunchError
        For options the launcher cannot honour, or a profile launcher workbench does not
        know combined with such options.
    """
    if spec.launcher is not None:
        s = LAUNCHERS[spec.launcher]
        base = _class_of(s)
    else:
        base = cluster.engine_launcher_class  # the profile's, or ipyparallel's local default
        found = _scheduler_of(base)
        if found is None:
            if any(spec.batch_options().values()):
                raise LaunchError(
                    f"the profile's engine launcher {base.__name__} is not one workbench knows "
                    f"({', '.join(LAUNCHERS)}): set its options in the profile's "
                    "ipcluster_config.py, or choose the launcher with --launcher"
                )
            return Scheduler(base.__name__, base.__name__, f"{base.__module__}.{base.__name__}")
        s = found
    options = spec.batch_options()
    check_options(s.name, **options)
    if s.name == "ssh" and not cluster.config.get("SSHEngineSetLauncher", {}).get("engines"):
        raise LaunchError(
            "the ssh launcher needs the hosts to start engines on: set "
            "c.SSHEngineSetLauncher.engines = {'node1': 4, 'node2': 4} in the profile's "
            "ipcluster_config.py and start with --profile NAME"
        )
    if not s.batch:
        cluster.engine_launcher_class = base
        return s
    extra = options.pop("directives")
    lines = directives(s.name, **options, extra=extra)
    script = os.path.join(cluster.profile_dir, f"engines-{cluster.cluster_id}.{s.name}")
    cls = _batch_class(base, s, lines)
    cluster.engine_launcher_class = cls
    config = cluster.config.copy()
    config[cls.__name__]["batch_file_name"] = script  # not the notebook's folder
    cluster.config = config
    return s


def engine_job(cluster: Any) -> tuple[str, str] | None:
    """``(launcher name, job id)`` of the engines' batch job, or ``None`` (no batch job)."""
    engine_set = getattr(cluster, "engine_set", None) if cluster is not None else None
    job_id = str(getattr(engine_set, "job_id", "") or "")
    if not job_id:
        return None
    s = _scheduler_of(type(engine_set))
    return (s.name if s else type(engine_set).__name__), job_id


def cancel_command(cluster: Any) -> list[str] | None:
    """Return the command that ends the engines' batch job (``scancel 12``), or ``None``."""
    engine_set = getattr(cluster, "engine_set", None)
    job_id = str(getattr(engine_set, "job_id", "") or "")
    delete = [str(c) for c in getattr(engine_set, "delete_command", []) if c]
    return [*delete, job_id] if job_id and delete else None
