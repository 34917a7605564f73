"""Addressing for engines on several hosts, and engine death at any point, on real engines.

The controller never advertises ``0.0.0.0``; DDP's rendezvous and gloo/NCCL use the interface
the user chose; an engine found dead before or during the rendezvous is an EngineDiedError
naming it and what survives (not ipyparallel's RemoteError half a minute later); %cluster
refuses options that do not apply instead of ignoring them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
from IPython.core.error import UsageError

from workbench.cluster import ClusterSpec, IpyparallelCluster, IpyparallelLauncher, TrainRequest
from workbench.cluster.nodes import interfaces, reachable_address
from workbench.cluster.orchestrate import launch_training
from workbench.errors import EngineDiedError, LaunchError
from workbench.models import NDVIRegressor
from workbench.training.strategies import find_strategy
from workbench.training.strategies.base import Workers

pytestmark = [pytest.mark.torch, pytest.mark.cluster]
MSE = torch.nn.functional.mse_loss


def _routable() -> tuple[str, str]:
    found = sorted((k, v) for k, v in interfaces().items() if not v.startswith("127."))
    if not found:
        pytest.skip("this host has no interface but loopback")
    return found[0]


def _listening(pids):
    out = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections("tcp")
        except psutil.NoSuchProcess:
            continue
        out |= {c.laddr.ip for c in conns if c.status == "LISTEN"}
    return out


def test_a_controller_on_all_interfaces_advertises_a_reachable_address(ip):
    _routable()
    ip.run_line_magic("cluster", "start -n 1 --ip 0.0.0.0")
    try:
        status = ip.run_line_magic("cluster", "status")
        files = Path(status["profile_dir"], "security").glob("ipcontroller-*-engine.json")
        info = json.loads(next(iter(files)).read_text())
        assert info["location"] != "0.0.0.0"
        assert info["location"] == reachable_address()[0]  # the host's, never loopback
        assert len(status["engines"]) == 1  # the engine reached it
    finally:
        ip.run_line_magic("cluster", "stop")


def test_ddp_rendezvous_and_gloo_use_the_chosen_interface():
    name, addr = _routable()
    cluster = IpyparallelCluster.start(ClusterSpec(n=2, interface=name))
    try:
        files = Path(cluster.status()["profile_dir"], "security").glob("*-client.json")
        info = json.loads(next(iter(files)).read_text())
        assert info["interface"] == f"tcp://{addr}"  # the controller listens there only
        launcher = IpyparallelLauncher(cluster)
        workers = launcher.workers(2)
        request = TrainRequest(
            NDVIRegressor(), _data(64), MSE, strategy="ddp", engines=2, checkpoint=False
        )
        plan = find_strategy("ddp").plan(
            request, Workers(workers, [1, 1], launcher.rendezvous, list), None
        )
        # engines on several hosts without a chosen interface: a reachable address, never the
        # loopback address ``gethostbyname(gethostname())`` may give
        from workbench.cluster.ipp_launcher import _engine_rendezvous

        ids = cluster.engine_ids()[:1]
        ((auto, _, auto_if),) = cluster.ask(ids, _engine_rendezvous, False, None, during="asked")
        assert not auto.startswith("127."), auto
        assert interfaces()[auto_if] == auto
        for call in plan.calls:
            assert call.env["MASTER_ADDR"] == addr
            assert call.env["GLOO_SOCKET_IFNAME"] == name
            assert call.env["NCCL_SOCKET_IFNAME"] == name
        pids = [e["pid"] for e in cluster.status()["engines"]]
        idle = _listening(pids)
        seen: set[str] = set()
        launch_training(
            request.replace(epochs=2, batch_size=16),
            launcher,
            callbacks=[lambda e: seen.update(_listening(pids))],
        )
        opened = seen - idle
        assert opened == {addr}, opened  # the rendezvous and gloo, on that interface only
    finally:
        cluster.stop()


def _data(n):
    from torch.utils.data import TensorDataset

    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return TensorDataset(x, x[:, 0].mean(dim=(1, 2)))


def test_an_engine_dead_at_the_rendezvous_is_named_at_once(tmp_path):
    cluster = IpyparallelCluster.start(ClusterSpec(n=2))
    try:
        launcher = IpyparallelLauncher(cluster)
        workers = launcher.workers(2)
        first = cluster.engine_ids()[0]
        victim = cluster.info([first])[first]["pid"]
        os.kill(victim, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(victim)], timeout=10)
        started = time.monotonic()
        with pytest.raises(EngineDiedError) as err:
            launcher.rendezvous()
        assert time.monotonic() - started < 10  # not the controller's half-minute heartbeat
        message = str(err.value)
        host = workers[0].host
        assert f"engine-0 (engine id {first}, pid {victim} on {host})" in message
        assert "died during the rendezvous of the process group" in message
        assert "(its process is gone)" in message or "(the controller unregistered it)" in message
        assert "Engines still alive: engine-1" in message
        # the next run: the same error, with the checkpoint note, and the fitting advice
        request = TrainRequest(
            NDVIRegressor(), _data(64), MSE, strategy="ddp", engines=2, checkpoint_dir=str(tmp_path)
        )
        with pytest.raises(EngineDiedError, match="died before this run") as err:
            launch_training(request, launcher)
        assert "No checkpoint had been written yet" in str(err.value)
        assert "%cluster start -n 2 (it replaces this cluster)" in str(err.value)
    finally:
        cluster.stop()


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("connect --launcher slurm", "--launcher does not apply to %cluster connect"),
        ("start --wait 2", "--wait does not apply to %cluster start"),
        ("status -n 3", "--engines does not apply to %cluster status"),
        ("start --launcher local --queue debug", "--queue applies to batch schedulers"),
        ("start --launcher kubernetes", "unknown engine launcher 'kubernetes'"),
        ("start --launcher slurm --time-limit soon", "time limit 'soon' is not a time"),
        ("start --profile a --profile-dir b", "a profile name or a profile folder, not both"),
    ],
)
def test_cluster_options_that_do_not_apply_are_refused(ip, line, match):
    with pytest.raises(UsageError, match=match):
        ip.run_line_magic("cluster", line)


def test_a_missing_profile_is_refused_not_created(ip, tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    with pytest.raises(LaunchError, match="there is no IPython profile named 'batch'"):
        ip.run_line_magic("cluster", "start --profile batch")
    with pytest.raises(LaunchError, match="there is no IPython profile named 'batch'"):
        ip.run_line_magic("cluster", "connect --profile batch --wait 2")
    assert not (tmp_path / "profile_batch").exists()


def test_train_launcher_names_where_scheduler_engines_come_from(ip):
    with pytest.raises(UsageError, match="start them with %cluster start --launcher slurm -n N"):
        ip.run_cell_magic("train", "--launcher slurm --strategy ddp", "model = 1")
    with pytest.raises(UsageError, match="--interface applies to engines"):
        ip.run_cell_magic(
            "train",
            "--launcher local --interface lo --strategy ddp --engines 2 -q --no-live",
            "import torch\nfrom torch.utils.data import TensorDataset\n"
            "model = torch.nn.Linear(1, 1)\n"
            "train_data = TensorDataset(torch.rand(8, 1), torch.rand(8, 1))\n"
            "loss_fn = torch.nn.functional.mse_loss",
        )


def test_launchers_that_cannot_run_here_say_why_and_leave_nothing(ip):
    import shutil

    before = psutil.Process().children(recursive=True)
    if shutil.which("mpiexec") is None:
        with pytest.raises(LaunchError, match=r"MPI launcher.*No such file .*'mpiexec'"):
            ip.run_line_magic("cluster", "start --launcher mpi -n 2 --timeout 20")
    with pytest.raises(LaunchError, match="the ssh launcher needs the hosts"):
        ip.run_line_magic("cluster", "start --launcher ssh -n 2")
    assert psutil.Process().children(recursive=True) == before
    assert ip.run_line_magic("cluster", "status")["engines"] == []
