"""Engine launchers by name, batch directives, addresses and CPU allocations (no torch needed).

The job scripts of every batch scheduler are rendered by ipyparallel's own launchers (where
ipyparallel is installed); the addressing rules run against this machine's real interfaces.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench.cluster.nodes import (
    controller_addresses,
    cpu_allocation,
    interface_address,
    interfaces,
    loopback_ifname,
    reachable_address,
    threads_per_worker,
)
from workbench.cluster.schedulers import (
    LAUNCHERS,
    JobState,
    WaitProgress,
    check_options,
    directives,
    insert_directives,
    parse_time_limit,
    scheduler,
)
from workbench.cluster.spec import ClusterSpec
from workbench.errors import LaunchError

REPO = Path(__file__).resolve().parents[1]


def _routable() -> dict[str, str]:
    return {k: v for k, v in interfaces().items() if not v.startswith("127.")}


# --------------------------------------------------------------------------- launchers by name
def test_the_launchers_are_ipyparallels_and_found_case_insensitively():
    assert set(LAUNCHERS) == {"local", "mpi", "ssh", "slurm", "pbs", "sge", "lsf", "htcondor"}
    assert scheduler("Slurm") is LAUNCHERS["slurm"]
    assert scheduler("HTCondor").batch
    assert not scheduler("MPI").batch
    with pytest.raises(LaunchError, match="unknown engine launcher 'kubernetes'; use one of local"):
        scheduler("kubernetes")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "slurm",
            [
                "#SBATCH --partition=gpu",
                "#SBATCH --account=proj7",
                "#SBATCH --time=1-02:00:00",
                "#SBATCH --gpus-per-task=2",
                "#SBATCH --cpus-per-task=8",
                "#SBATCH --qos=debug",
            ],
        ),
        (
            "pbs",
            [
                "#PBS -q gpu",
                "#PBS -A proj7",
                "#PBS -l walltime=26:00:00",
                "#PBS -l ngpus=2",
                "#PBS -l ncpus=8",
                "#PBS --qos=debug",
            ],
        ),
        (
            "sge",
            [
                "#$ -q gpu",
                "#$ -A proj7",
                "#$ -l h_rt=26:00:00",
                "#$ -l gpu=2",
                "#$ -pe smp 8",
                "#$ --qos=debug",
            ],
        ),
        (
            "lsf",
            [
                "#BSUB -q gpu",
                "#BSUB -P proj7",
                "#BSUB -W 26:00",
                '#BSUB -gpu "num=2"',
                "#BSUB -n 8",
                "#BSUB --qos=debug",
            ],
        ),
    ],
)
def test_options_become_the_schedulers_directives(name, expected):
    got = directives(
        name,
        queue="gpu",
        account="proj7",
        time_limit="1-02",
        gpus_per_engine=2,
        cpus_per_engine=8,
        extra=["--qos=debug"],
    )
    assert got == expected


def test_htcondor_has_submit_commands_and_no_queue():
    assert directives("htcondor", time_limit="90", gpus_per_engine=1, extra=["+Group = 1"]) == [
        "allowed_execute_duration = 5400",
        "request_gpus = 1",
        "+Group = 1",
    ]
    with pytest.raises(LaunchError, match="HTCondor has no --queue"):
        check_options("htcondor", queue="long")


@pytest.mark.parametrize("name", ["local", "mpi", "ssh"])
def test_batch_options_are_refused_by_launchers_without_a_job(name):
    with pytest.raises(LaunchError, match=r"--queue, --gpus-per-engine applies to batch"):
        check_options(name, queue="debug", gpus_per_engine=1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),
        ("90:30", 5430),
        ("1:30:00", 5400),
        ("2-00", 172800),
        ("2-01:30", 178200),
        ("1-00:00:01", 86401),
    ],
)
def test_time_limits_are_read_as_slurm_reads_them(text, seconds):
    assert parse_time_limit(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "1:2:3:4", "0", "-5", ""])
def test_a_bad_time_limit_is_refused(bad):
    with pytest.raises(LaunchError, match="time limit"):
        parse_time_limit(bad)


def test_a_directive_is_one_line():
    with pytest.raises(LaunchError, match="a directive is one non-empty line"):
        check_options("slurm", directives=["--qos=a\n#SBATCH --qos=b"])


def test_directives_go_after_the_templates_own_and_before_the_command():
    script = "#!/bin/sh\n#SBATCH --ntasks=2\n#SBATCH --export=ALL\nsrun ipengine\n"
    out = insert_directives(script, "slurm", ["#SBATCH --time=0-00:10:00"])
    assert out.splitlines() == [
        "#!/bin/sh",
        "#SBATCH --ntasks=2",
        "#SBATCH --export=ALL",
        "#SBATCH --time=0-00:10:00",
        "srun ipengine",
    ]
    condor = "universe = vanilla\nexecutable = ipengine\nqueue 2\n"
    assert insert_directives(condor, "htcondor", ["request_gpus = 1"]).splitlines()[-2:] == [
        "request_gpus = 1",
        "queue 2",
    ]


def test_job_states_say_whether_engines_may_still_come():
    assert JobState("PENDING", "Resources").waiting
    assert not JobState("RUNNING").finished
    for state in ("CANCELLED", "TIMEOUT", "COMPLETED", "COMPLETING", "FAILED", "GONE"):
        assert JobState(state).finished, state
    assert str(JobState("PENDING", "Priority")) == "PENDING (Priority)"
    assert str(JobState("RUNNING", "None")) == "RUNNING"
    shown = WaitProgress(1, 2, 8.4, 120, "Slurm", "42", JobState("PENDING", "Resources"))
    assert str(shown) == "1/2 engines registered; Slurm job 42 PENDING (Resources); 8 s of 120 s"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"profile": "a", "profile_dir": "/b"}, "a profile name or a profile folder, not both"),
        ({"launcher": "kubernetes"}, "unknown engine launcher 'kubernetes'"),
        ({"launcher": "local", "queue": "debug"}, "--queue applies to batch schedulers"),
        ({"launcher": "slurm", "gpus_per_engine": 0}, "gpus_per_engine must be an integer >= 1"),
        ({"time_limit": "tomorrow"}, "time limit 'tomorrow' is not a time"),
        ({"engine_timeout": 0}, "engine_timeout must be > 0"),
    ],
)
def test_cluster_specs_refuse_what_cannot_be_honoured(kwargs, match):
    with pytest.raises(LaunchError, match=match):
        ClusterSpec(**kwargs)


def test_a_cluster_spec_keeps_its_batch_options():
    spec = ClusterSpec(n=4, launcher="SLURM", queue="gpu", directives=["--qos=debug"])
    assert spec.launcher == "slurm"
    assert spec.batch_options()["directives"] == ("--qos=debug",)


# --------------------------------------------------------------------------- job scripts
@pytest.mark.parametrize("name", ["slurm", "pbs", "sge", "lsf", "htcondor"])
def test_ipyparallels_job_scripts_carry_the_options(name, tmp_path):
    """The job script each batch launcher writes, through ipyparallel's own classes."""
    ipp = pytest.importorskip("ipyparallel")
    from workbench.cluster.ipp_engines import configure_engines

    cluster = ipp.Cluster(n=2, profile_dir=str(tmp_path), log_level=40)
    spec = ClusterSpec(n=2, launcher=name, time_limit="30", account="proj7", gpus_per_engine=1)
    configure_engines(cluster, spec)
    cls = cluster.engine_launcher_class
    launcher = cls(
        work_dir=".", parent=cluster, profile_dir=str(tmp_path), cluster_id=cluster.cluster_id
    )
    launcher.write_batch_script(2)
    script = Path(launcher.batch_file)
    assert script.parent == tmp_path  # the job script lives with the profile, not in the cwd
    text = script.read_text()
    for line in directives(name, time_limit="30", account="proj7", gpus_per_engine=1):
        assert line in text, text
    lines = text.splitlines()
    command = max(i for i, r in enumerate(lines) if "ipyparallel" in r or "ipengine" in r)
    last = max(i for i, r in enumerate(lines) if "proj7" in r)
    assert last < command or name == "htcondor"  # HTCondor: the arguments line comes first
    if name == "htcondor":
        assert lines[-1].startswith("queue")


def test_a_profiles_unknown_launcher_refuses_options_it_cannot_place(tmp_path):
    ipp = pytest.importorskip("ipyparallel")
    from workbench.cluster.ipp_engines import configure_engines

    cluster = ipp.Cluster(n=1, profile_dir=str(tmp_path), log_level=40)
    cluster.engine_launcher_class = ipp.cluster.launcher.WindowsHPCEngineSetLauncher
    with pytest.raises(LaunchError, match="not one workbench knows"):
        configure_engines(cluster, ClusterSpec(n=1, queue="debug"))


# --------------------------------------------------------------------------- addresses
def test_an_unknown_interface_is_refused_with_the_ones_there_are():
    with pytest.raises(LaunchError, match=r"interface 'nosuch0' is not up .*lo \(127\.0\.0\.1\)"):
        interface_address("nosuch0")


def test_the_reachable_address_is_never_loopback():
    """``gethostbyname(gethostname())`` may be loopback (127.0.1.1 on Debian): not this rule."""
    if not _routable():
        pytest.skip("this host has no interface but loopback")
    addr, ifname = reachable_address()
    assert not addr.startswith("127."), (addr, socket.gethostbyname(socket.gethostname()))
    assert interfaces()[ifname] == addr
    name, chosen = next(iter(sorted(_routable().items())))
    assert reachable_address(name) == (chosen, name)


def test_the_controller_advertises_a_reachable_address_not_0_0_0_0():
    assert controller_addresses("127.0.0.1", None) == ("127.0.0.1", "127.0.0.1")
    lo = loopback_ifname()
    assert controller_addresses("127.0.0.1", lo) == ("127.0.0.1", "127.0.0.1")
    if not _routable():
        pytest.skip("this host has no interface but loopback")
    name, addr = next(iter(sorted(_routable().items())))
    assert controller_addresses("0.0.0.0", name) == ("0.0.0.0", addr)
    bind, location = controller_addresses("0.0.0.0", None)
    assert bind == "0.0.0.0"
    assert location not in ("0.0.0.0", "")
    assert not location.startswith("127.")
    assert controller_addresses("127.0.0.1", name) == (addr, addr)  # bind to that interface only
    with pytest.raises(LaunchError, match="is not the address of --interface"):
        controller_addresses("10.255.255.1", name)


# --------------------------------------------------------------------------- CPUs
def test_the_cpus_come_from_the_affinity_mask_and_the_job():
    code = (
        "import os, json; os.sched_setaffinity(0, {0}); "
        "from workbench.cluster.nodes import cpu_allocation; print(json.dumps(cpu_allocation()))"
    )
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no affinity masks on this platform")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURM_CPUS_PER_TASK": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [[0], 3]
    env.pop("SLURM_CPUS_PER_TASK")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == [[0], None]
    cpus, _ = cpu_allocation()
    assert len(cpus) == len(os.sched_getaffinity(0))


def test_threads_per_worker_follow_the_allocation():
    node = tuple(range(64))
    # two engines sharing a node's mask share it; one granted 4 CPUs gets 4, not 64 // n
    assert threads_per_worker([("a", node, None), ("a", node, None)]) == [32, 32]
    assert threads_per_worker([("a", node, 4), ("a", node, 4)]) == [4, 4]
    # engines bound to their own CPUs (task/affinity) do not divide them further
    assert threads_per_worker([("a", (0, 1), None), ("a", (2, 3), None)]) == [2, 2]
    assert threads_per_worker([("a", (0,), 8)]) == [1]  # never more than the mask allows


# --------------------------------------------------------------------------- the watchdog
def test_the_watchdog_runs_its_commands_when_the_kernel_dies(tmp_path):
    """What ends a batch job (``scancel ID``) runs when the process that started it dies."""
    marker = tmp_path / "cancelled"
    code = f"""
import subprocess, sys, time
from workbench.cluster.reaper import tie_to_this_process
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
tie_to_this_process([child.pid], grace_s=1.0, on_exit=[["touch", {str(marker)!r}]])
print(child.pid, flush=True)
time.sleep(120)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        time.sleep(1.5)
        assert not marker.exists()
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        gone, _ = psutil.wait_procs([child], timeout=20)
        assert gone
        assert marker.exists()
    finally:
        parent.kill()
        parent.wait(10)
