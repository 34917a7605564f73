"""Engines on a real Slurm: %cluster start --launcher slurm, DDP and partitioned %%train, a queue
that makes the engines wait, a job killed mid-run (scancel, as a walltime kill) and --resume.

The module starts a private single-node Slurm (Debian's ``slurm-wlm`` and ``munge``, installed
here if missing): a generated munge key, its own state, spool and log folders under the test's
temporary folder, free ports for slurmctld and slurmd. It needs root (the daemons run as root)
and skips with the reason elsewhere. Everything it starts is stopped by job id and PID at the
end, daemons included, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path

import psutil
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
jupyter_client = pytest.importorskip("jupyter_client")
from IPython.core.error import UsageError

from workbench.errors import LaunchError
from workbench.training.checkpoint import load_checkpoint

pytestmark = [pytest.mark.torch, pytest.mark.cluster, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- a private Slurm
class Slurm:
    """A single-node Slurm of this test module: its configuration, jobs, and the node's CPUs."""

    def __init__(self, root: Path, conf: Path, cpus: int) -> None:
        self.root, self.conf, self.cpus = root, conf, cpus
        self.seen: set[str] = set()

    def run(self, *cmd: str, check: bool = True) -> str:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False)
        if check and out.returncode:
            raise AssertionError(f"{cmd} failed: {out.stderr}")
        return out.stdout

    def jobs(self) -> dict[str, tuple[str, str]]:
        """``{job id: (state, name)}`` of every job Slurm still knows."""
        out = self.run("squeue", "-h", "-t", "all", "-o", "%i|%T|%j")
        rows = [line.split("|") for line in out.split()]
        found = {r[0]: (r[1], r[2]) for r in rows if len(r) == 3}
        self.seen |= set(found)
        return found

    def state(self, job: str) -> str:
        return self.jobs().get(job, ("GONE", ""))[0]

    def wait_state(self, job: str, states: set[str], timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while (state := self.state(job)) not in states:
            assert time.monotonic() < end, f"job {job} is {state}, not {states}"
            time.sleep(0.3)
        return state

    def processes(self) -> list[psutil.Process]:
        """Processes started with this Slurm's configuration (engines, controllers), not daemons."""
        daemons = {"slurmctld", "slurmd", "munged", "slurmstepd"}
        found = []
        for proc in psutil.process_iter(["name"]):
            try:
                mine = proc.environ().get("SLURM_CONF") == str(self.conf)
            except psutil.Error:
                continue
            if mine and proc.pid != os.getpid() and proc.info["name"] not in daemons:
                found.append(proc)
        return found

    def leftovers(self, timeout: float = 20.0) -> list[str]:
        """Engines, controllers and watchdogs of these tests still running after ``timeout`` s."""

        def ours() -> list[str]:
            found = [_cmd(p) + " @" + _started_in(p) for p in self.processes()]
            return [c for c in found if "ipyparallel" in c or "reaper.py" in c]

        end = time.monotonic() + timeout
        while (left := ours()) and time.monotonic() < end:
            time.sleep(0.5)
        return left

    def hold_node(self) -> str:
        """Submit a job that takes every CPU of the node, and wait until it runs."""
        job = self.run(
            "sbatch",
            "--parsable",
            f"--ntasks={self.cpus}",
            f"--output={self.root / 'hold-%j.out'}",  # not slurm-ID.out in the working folder
            "--wrap",
            "sleep 600",
        )
        job = job.strip().split(";")[0]
        self.seen.add(job)
        self.wait_state(job, {"RUNNING"})
        return job

    def release_when_engines_queue(self, blocker: str, timeout: float = 60.0) -> threading.Thread:
        """In a thread: once an engine job is pending behind ``blocker``, cancel ``blocker``."""

        def release() -> None:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                jobs = self.jobs()
                if any(s == "PENDING" and n.startswith("ipengine") for s, n in jobs.values()):
                    time.sleep(2.0)  # let the wait report the pending job
                    break
                time.sleep(0.3)
            self.run("scancel", blocker, check=False)

        thread = threading.Thread(target=release, daemon=True)
        thread.start()
        return thread


def _stop_pid(pidfile: Path) -> None:
    try:
        proc = psutil.Process(int(pidfile.read_text().strip()))
    except (OSError, ValueError, psutil.Error):
        return
    proc.terminate()
    _, alive = psutil.wait_procs([proc], timeout=10)
    for p in alive:
        p.kill()


def _cmd(proc: psutil.Process) -> str:
    """The command line of ``proc``, or ``""`` when it is gone (or a zombie)."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _started_in(proc: psutil.Process) -> str:
    """The test that started ``proc`` (its PYTEST_CURRENT_TEST), for the failure message."""
    try:
        return proc.environ().get("PYTEST_CURRENT_TEST", "")
    except psutil.Error:
        return ""


def _stop_mine(cluster: Slurm) -> None:
    """Stop, by pid, what still runs with this Slurm's configuration (but the daemons)."""
    procs = cluster.processes()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _install() -> str | None:
    """Install Slurm and munge if missing; return why not, or ``None``."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        return None
    if shutil.which("apt-get") is None:
        return "Slurm is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300, env=env)
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "slurm-wlm", "munge"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    if done.returncode or not shutil.which("slurmctld"):
        return f"apt-get install slurm-wlm munge failed: {done.stderr[-500:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a private Slurm runs its daemons as root: run the test suite as root")
    why = _install()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge" / "munge.sock"
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    host = re.search(r"NodeName=(\S+)", node).group(1)
    cpus = int(re.search(r"CPUs=(\d+)", node).group(1))
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=workbench-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=2
MinJobAge=300
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
    )
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    cluster = Slurm(root, conf, cpus)
    try:
        subprocess.run(
            [
                "munged",
                "--force",
                f"--socket={sock}",
                f"--key-file={key}",
                f"--pid-file={root / 'munge' / 'munged.pid'}",
                f"--log-file={root / 'munge' / 'munged.log'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
            ],
            check=True,
            timeout=30,
        )
        subprocess.run(["slurmctld", "-f", str(conf), "-i"], check=True, timeout=30)
        subprocess.run(["slurmd", "-f", str(conf), "-N", host], check=True, timeout=30)
        end = time.monotonic() + 60
        while "idle" not in cluster.run("sinfo", "-h", "-o", "%T", check=False):
            assert time.monotonic() < end, (root / "log" / "slurmctld.log").read_text()[-2000:]
            time.sleep(0.5)
        yield cluster
    finally:
        for job in sorted(cluster.seen | set(cluster.jobs() if conf.exists() else {})):
            subprocess.run(["scancel", job], capture_output=True, timeout=30, check=False)
        for left in cluster.leftovers(timeout=10.0) if conf.exists() else []:
            warnings.warn(f"stopping a process the Slurm tests left: {left}", stacklevel=1)
        _stop_mine(cluster)
        for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            _stop_pid(root / pidfile)
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved


# --------------------------------------------------------------------------- a real kernel
class Kernel:
    """A real IPython kernel, driven as a notebook drives it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.km = jupyter_client.KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.process.pid)

    def run(self, code: str, timeout: float = 300) -> tuple[str, dict]:
        """Run a cell; return its text output and its reply (``status``, ``ename``, ``evalue``)."""
        out: list[str] = []

        def keep(msg: dict) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(content["text"])
            elif "data" in content:
                out.append(content["data"].get("text/plain", "") + "\n")

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=keep)
        return "".join(out), reply["content"]

    def ok(self, code: str, timeout: float = 300) -> str:
        text, reply = self.run(code, timeout)
        assert reply["status"] == "ok", f"{reply.get('ename')}: {reply.get('evalue')}\n{text}"
        return text

    def value(self, expr: str) -> object:
        return json.loads(self.ok(f"print(json.dumps({expr}))").strip().splitlines()[-1])

    def close(self) -> None:
        self.kc.stop_channels()
        with contextlib.suppress(Exception):  # a kernel killed by the test is gone already
            self.km.shutdown_kernel(now=True)


SETUP = """
%load_ext workbench
import json
import torch
from torch.utils.data import TensorDataset
from workbench.models import NDVIRegressor
from workbench.models.cnn import chip_mean_mse
from workbench.testing import shared_data
from workbench.training.ndvi import s2_ndvi_chips
chips = s2_ndvi_chips(shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc"), chip=8)
g = torch.Generator().manual_seed(0)
x = torch.rand(256, 3, 8, 8, generator=g)
data = TensorDataset(x, x[:, 0].mean(dim=(1, 2)) - 0.5 * x[:, 2].mean(dim=(1, 2)))
def status():
    return get_ipython().run_line_magic("cluster", "status")
"""
DDP = """
torch.manual_seed(0)
model = NDVIRegressor()
train_data = data
loss_fn = torch.nn.functional.mse_loss
"""


def _started_job(text: str) -> str:
    found = re.search(r"started \d+ engines \(Slurm job (\d+)\)", text)
    assert found, text
    return found.group(1)


def test_a_notebook_trains_on_slurm_engines_survives_scancel_and_resumes(slurm, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "SLURM_CONF": str(slurm.conf),
    }
    kernel = Kernel(env)
    try:
        kernel.ok(SETUP)
        job = _started_job(kernel.ok("%cluster start --launcher slurm -n 2 --time-limit 20"))
        slurm.seen.add(job)
        assert slurm.state(job) == "RUNNING"
        status = kernel.value("status()")
        assert status["launcher"] == "slurm"
        assert status["job"] == {"id": job, "state": "RUNNING"}
        assert [e["job_id"] for e in status["engines"]] == [job, job]
        engine_pids = sorted(e["pid"] for e in status["engines"])
        # the job's output goes to a profile folder in the (shared) IPython folder, not /tmp
        folder = Path(status["profile_dir"])
        assert folder.parent == tmp_path / "ipython" / "workbench-clusters"

        # DDP on the job's engines: the same weights as on fresh local processes
        kernel.ok(
            "%%train --strategy ddp --engines 2 --epochs 2 --batch-size 32 -q --no-live "
            "--no-checkpoint -o on_slurm\n" + DDP
        )
        kernel.ok(
            "%%train --launcher local --strategy ddp --engines 2 --epochs 2 --batch-size 32 -q "
            "--no-live --no-checkpoint -o on_local\n" + DDP
        )
        ran = kernel.value(
            "{'pids': sorted(w['pid'] for w in on_slurm.workers),"
            " 'slurm': sorted({d['model'] for d in on_slurm.digests.values()}),"
            " 'local': sorted({d['model'] for d in on_local.digests.values()}),"
            " 'losses': [r.loss for r in on_slurm.history if r.rank == 0],"
            " 'local_losses': [r.loss for r in on_local.history if r.rank == 0]}"
        )
        assert ran["pids"] == engine_pids  # it ran in the Slurm job's processes
        assert len(ran["slurm"]) == 1
        assert ran["slurm"] == ran["local"]
        assert ran["losses"] == ran["local_losses"]

        # partitioned training of the real S2 chips: one model per geohash cell, both engines
        kernel.ok(
            "%%train --strategy partitioned --engines 2 --partition geohash:6 --epochs 1 "
            "--batch-size 64 -q --no-live --no-checkpoint -o parts\n"
            "model = NDVIRegressor()\ntrain_data = chips\ntargets = ['ndvi']\n"
            "loss_fn = chip_mean_mse"
        )
        parts = kernel.value(
            "{'owners': sorted(set(parts.trained_on.values())), 'n': len(parts.models)}"
        )
        assert parts["owners"] == ["engine-0", "engine-1"]
        assert parts["n"] >= 2

        # the job is killed mid-run (scancel, as at the walltime): a clear error at once
        ckdir = tmp_path / "run"
        killed: list[float] = []

        def kill_after_first_checkpoint() -> None:
            end = time.monotonic() + 240
            while not (ckdir / "model.pt").exists() and time.monotonic() < end:
                time.sleep(0.2)
            slurm.run("scancel", job)
            killed.append(time.monotonic())

        threading.Thread(target=kill_after_first_checkpoint, daemon=True).start()
        text, reply = kernel.run(
            "%%train --strategy ddp --engines 2 --epochs 100000 --batch-size 8 -q --no-live "
            f"--checkpoint {ckdir}\n" + DDP
        )
        assert killed, "the run ended before its first checkpoint"
        assert reply["status"] == "error"
        assert reply["ename"] == "EngineDiedError", (reply["ename"], reply["evalue"])
        message = reply["evalue"]
        assert re.search(
            rf"engine-\d \(engine id \d+, pid \d+ on \S+, Slurm job {job}\) died", message
        )
        assert "No engine of the cluster is alive" in message
        assert f"--resume {ckdir}" in message
        assert "%cluster start --launcher slurm -n 2" in message
        assert "%cluster start -n" not in message  # never local engines to a Slurm user
        assert time.monotonic() - killed[0] < 60  # not the controller's half-minute heartbeat

        # the next cell, before engines are back: the same clear error, not a raw RemoteError
        started = time.monotonic()
        _, reply = kernel.run(
            "%%train --strategy ddp --engines 2 -q --no-live --no-checkpoint\n" + DDP
        )
        assert reply["ename"] == "EngineDiedError", (reply["ename"], reply["evalue"])
        assert "Slurm job" in reply["evalue"]
        assert time.monotonic() - started < 30

        status = kernel.value("status()")
        assert status["engines"] == []
        assert len(status["dropped"]) == 2
        assert {d["state"] for d in status["dropped"]} == {"dead"}

        # %cluster start brings engines back (a new job) and --resume continues the run
        text = kernel.ok("%cluster start --launcher slurm -n 2 --time-limit 20")
        assert "replacing the active cluster" in text
        second = _started_job(text)
        slurm.seen.add(second)
        assert second != job
        saved = load_checkpoint(ckdir / "model.pt")["epoch"]
        kernel.ok(
            f"%%train --strategy ddp --engines 2 --epochs {saved + 1} --batch-size 8 -q --no-live "
            f"--resume {ckdir} --checkpoint {tmp_path / 'again'} -o resumed\n" + DDP
        )
        epochs = kernel.value("[r.epoch for r in resumed.history if r.rank == 0]")
        assert epochs[-1] == saved
        assert len(epochs) == saved + 1  # the checkpoint's history, then one more epoch

        # %cluster stop ends the job
        second_folder = Path(kernel.value("status()['profile_dir']"))
        kernel.ok("%cluster stop")
        assert slurm.wait_state(second, {"COMPLETED", "CANCELLED", "COMPLETING", "GONE"}, 30)
        assert not second_folder.exists()
        assert not folder.exists()  # the replaced cluster's too

        # a job started from a kernel ends with the kernel, however it ends
        third = _started_job(kernel.ok("%cluster start --launcher slurm -n 1"))
        slurm.seen.add(third)
        controller = [p for p in psutil.Process(kernel.pid).children() if "ipyparallel" in _cmd(p)]
        os.kill(kernel.pid, signal.SIGKILL)
        slurm.wait_state(third, {"CANCELLED", "COMPLETED", "GONE"}, 30)
        _, alive = psutil.wait_procs(controller, timeout=30)
        assert not alive
        assert not slurm.leftovers()  # no engine, controller or watchdog outlives the kernel
    finally:
        kernel.close()


# --------------------------------------------------------------------------- an IPython shell
CELL = """
import torch
from torch.utils.data import TensorDataset
from workbench.models import NDVIRegressor
torch.manual_seed(0)
_x = torch.rand(64, 3, 8, 8)
model = NDVIRegressor()
train_data = TensorDataset(_x, _x[:, 0].mean(dim=(1, 2)))
loss_fn = torch.nn.functional.mse_loss
"""


@pytest.fixture(scope="module")
def ip(slurm, ip):
    """The shared test shell with the magics, once this module's Slurm runs."""
    return ip


def _engine_jobs(slurm) -> dict[str, str]:
    return {j: s for j, (s, n) in slurm.jobs().items() if n.startswith("ipengine")}


def test_a_queued_job_is_waited_for_with_progress(ip, slurm, capsys):
    blocker = slurm.hold_node()
    before = set(_engine_jobs(slurm))
    release = slurm.release_when_engines_queue(blocker)
    ip.run_line_magic("cluster", "start --launcher slurm -n 2 --timeout 120")
    try:
        release.join(60)
        out = capsys.readouterr().out
        assert re.search(r"0/2 engines registered; Slurm job \d+ PENDING", out), out
        assert "2/2 engines registered; Slurm job" in out
        (job,) = set(_engine_jobs(slurm)) - before
        assert ip.run_line_magic("cluster", "status")["job"] == {"id": job, "state": "RUNNING"}
    finally:
        ip.run_line_magic("cluster", "stop")
        slurm.run("scancel", blocker, check=False)


def test_a_job_still_queued_at_the_timeout_is_cancelled(ip, slurm):
    blocker = slurm.hold_node()
    before = set(_engine_jobs(slurm))
    try:
        with pytest.raises(LaunchError, match=r"not ready within the timeout of 6 s .*PENDING"):
            ip.run_line_magic("cluster", "start --launcher slurm -n 2 --timeout 6")
        (job,) = set(_engine_jobs(slurm)) - before
        assert slurm.wait_state(job, {"CANCELLED", "GONE"}, 30)  # not left in the queue
        assert ip.run_line_magic("cluster", "status")["engines"] == []
    finally:
        slurm.run("scancel", blocker, check=False)


def test_a_job_cancelled_in_the_queue_ends_the_wait_at_once(ip, slurm):
    blocker = slurm.hold_node()

    def cancel_the_engines() -> None:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            queued = [j for j, s in _engine_jobs(slurm).items() if s == "PENDING"]
            if queued:
                slurm.run("scancel", *queued)
                return
            time.sleep(0.3)

    threading.Thread(target=cancel_the_engines, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(LaunchError, match=r"did not register: the job ended \(CANCELLED"):
            ip.run_line_magic("cluster", "start --launcher slurm -n 2 --timeout 120")
        assert time.monotonic() - started < 60  # not the whole timeout
        assert not slurm.leftovers()
    finally:
        slurm.run("scancel", blocker, check=False)


def test_connect_waits_for_the_engines_of_a_queued_job(ip, slurm, tmp_path, capsys, monkeypatch):
    import ipyparallel as ipp

    monkeypatch.chdir(tmp_path)  # ipyparallel writes its job script into the working directory
    blocker = slurm.hold_node()
    profile = tmp_path / "profile_batch"
    other = ipp.Cluster(  # as `ipcluster start --profile-dir ... --engines=slurm --n=2` makes
        profile_dir=str(profile),
        cluster_id="",
        engines="slurm",
        n=2,
        controller_ip="127.0.0.1",
        delay=0,
    )
    other.start_cluster_sync()  # someone else's cluster, its engines queued
    try:
        slurm.seen.add(other.engine_set.job_id)
        capsys.readouterr()
        ip.run_line_magic("cluster", f"connect --profile-dir {profile}")
        out = capsys.readouterr().out
        assert (
            f"no engine has registered yet (Slurm job {other.engine_set.job_id} is PENDING" in out
        )
        with pytest.raises(UsageError) as err:
            ip.run_cell_magic(
                "train", "--strategy ddp --engines 2 -q --no-live --no-checkpoint", CELL
            )
        assert "%cluster start" not in str(err.value)  # no local engines for a Slurm user
        assert f"%cluster connect --profile-dir {profile} --wait 2" in str(err.value)
        ip.run_line_magic("cluster", "stop")  # disconnects only
        release = slurm.release_when_engines_queue(blocker)
        ip.run_line_magic("cluster", f"connect --profile-dir {profile} --wait 2 --timeout 120")
        release.join(60)
        out = capsys.readouterr().out
        assert re.search(r"0/2 engines registered; Slurm job \d+ PENDING", out), out
        assert "connected to engines [0, 1]" in out
        ip.run_cell_magic(
            "train", "--strategy ddp --engines 2 -q --no-live --no-checkpoint -o connected", CELL
        )
        assert ip.user_ns["connected"].engines == 2
        ip.run_line_magic("cluster", "stop")
    finally:
        other.stop_cluster_sync()
        slurm.run("scancel", blocker, check=False)


def test_a_named_profile_is_honoured_or_refused(ip, slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    profile = tmp_path / "ipython" / "profile_batch"
    profile.mkdir(parents=True)
    (profile / "ipcluster_config.py").write_text(
        "c.Cluster.engine_launcher_class = 'slurm'\nc.SlurmEngineSetLauncher.timelimit = '7'\n"
    )
    with pytest.raises(LaunchError, match="there is no IPython profile named 'nosuch'"):
        ip.run_line_magic("cluster", "start --profile nosuch -n 1")
    ip.run_line_magic("cluster", "start --profile batch -n 1 --queue debug")
    try:
        status = ip.run_line_magic("cluster", "status")
        assert status["launcher"] == "slurm"  # from the profile, not local engines
        assert status["profile_dir"] == str(profile)
        assert list((profile / "security").glob("ipcontroller-*-engine.json"))
        script = next(profile.glob("engines-*.slurm")).read_text()
        assert "#SBATCH --time=7" in script  # the profile's option
        assert "#SBATCH --partition=debug" in script  # and the cell's
    finally:
        ip.run_line_magic("cluster", "stop")


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ("--gpus-per-engine 1", "Invalid generic resource"),
        ("--queue nosuch", "invalid partition"),
    ],
)
def test_a_refused_submission_says_why_at_once(ip, slurm, options, said):
    started = time.monotonic()
    with pytest.raises(LaunchError, match=f"sbatch .* failed .*{said}"):
        ip.run_line_magic("cluster", f"start --launcher slurm -n 1 {options}")
    assert time.monotonic() - started < 30
    assert ip.run_line_magic("cluster", "status")["engines"] == []
    assert not slurm.leftovers()  # the controller (and its children) was stopped


def test_threads_per_engine_come_from_the_job(ip, slurm):
    from workbench.cluster import IpyparallelLauncher

    ip.run_line_magic("cluster", "start --launcher slurm -n 1 --cpus-per-engine 1")
    try:
        magics = ip.magics_manager.registry["WorkbenchMagics"]
        (worker,) = IpyparallelLauncher(magics.active).workers(1)
        assert worker.cpus == slurm.cpus  # task/none: the engine may run on every CPU...
        assert worker.threads == 1  # ...but the job granted it one
        # more engines than the job has: advice for this Slurm cluster, not local engines
        with pytest.raises(UsageError) as err:
            ip.run_cell_magic("train", "--strategy ddp --engines 3 -q --no-live", CELL)
        assert "%cluster start --launcher slurm -n 3 --cpus-per-engine 1" in str(err.value)
        assert "%cluster start -n" not in str(err.value)
    finally:
        ip.run_line_magic("cluster", "stop")
