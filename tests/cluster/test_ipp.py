"""Real engines, real process groups: DDP, FSDP modes, partitioned placement, failures."""

from __future__ import annotations

import _thread
import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from workbench.errors import EngineDiedError, LaunchError
from workbench.geo import HashRing

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.cluster import TrainingTimeoutError, TrainRequest, launch_training
from workbench.cluster.spec import PartitionSpec
from workbench.models import NDVIRegressor
from workbench.models.cnn import chip_mean_mse
from workbench.training.checkpoint import load_checkpoint

pytestmark = [pytest.mark.torch, pytest.mark.cluster]
MSE = torch.nn.functional.mse_loss


def _model(seed=0):
    torch.manual_seed(seed)
    return NDVIRegressor()


def test_cluster_is_bound_to_loopback(ipp_cluster):
    status = ipp_cluster.status()
    assert status["owned"]
    assert status["ip"] == "127.0.0.1"
    assert len(status["engines"]) == 2
    assert all(e["pid"] > 0 for e in status["engines"])
    files = list(Path(status["profile_dir"], "security").glob("ipcontroller-*-client.json"))
    info = json.loads(files[0].read_text())
    assert info["interface"] == "tcp://127.0.0.1"
    assert info["location"] == "127.0.0.1"
    # every listening socket of the controller and the engines is on loopback
    root = psutil.Process(ipp_cluster.cluster.controller.process.pid)
    procs = [root, *root.children(recursive=True)]
    procs += [psutil.Process(e["pid"]) for e in status["engines"]]
    listening = [
        c.laddr.ip for p in procs for c in p.net_connections("tcp") if c.status == "LISTEN"
    ]
    assert listening
    assert set(listening) == {"127.0.0.1"}


def _listening(pids):
    """``{(ip, port)}`` of the TCP sockets the processes ``pids`` listen on."""
    out = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections("tcp")
        except psutil.NoSuchProcess:
            continue
        out |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == "LISTEN"}
    return out


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_process_groups_listen_on_loopback_only_and_close(
    launcher, ipp_cluster, make_data, strategy
):
    """The rendezvous store and gloo listen on 127.0.0.1 while training, and stop after it."""
    pids = [e["pid"] for e in ipp_cluster.status()["engines"]]
    idle = _listening(pids)
    seen = set()

    def watch(event):
        seen.update(_listening(pids))

    req = TrainRequest(
        _model(),
        make_data(128),
        MSE,
        strategy=strategy,
        engines=2,
        epochs=2,
        batch_size=16,
        checkpoint=False,
    )
    launch_training(req, launcher, callbacks=[watch])
    opened = seen - idle
    assert opened, "the run opened no listening socket while it ran"
    assert {ip for ip, _ in opened} == {"127.0.0.1"}, opened
    time.sleep(0.5)
    left = _listening(pids) - idle
    # The rendezvous port is closed. torch's DDP reducer keeps its gloo group alive in C++
    # after the group is destroyed, and with it one loopback socket of gloo's per engine.
    assert len(left) <= (len(pids) if strategy == "ddp" else 0), left
    assert opened - left, "the rendezvous store is still listening"


def test_connect_to_an_existing_cluster_and_disconnect(ipp_cluster):
    from workbench.cluster import ClusterSpec, IpyparallelCluster

    status = ipp_cluster.status()
    spec = ClusterSpec(profile_dir=status["profile_dir"], cluster_id=status["cluster_id"])
    other = IpyparallelCluster.connect(spec)
    assert not other.owned
    assert other.engine_ids() == ipp_cluster.engine_ids()
    assert sorted(other.client[:].apply_sync(os.getpid)) == sorted(
        e["pid"] for e in status["engines"]
    )
    other.stop()  # disconnects only: the cluster keeps running
    assert len(ipp_cluster.engine_ids()) == 2
    with pytest.raises(LaunchError, match="could not connect"):
        IpyparallelCluster.connect(
            ClusterSpec(profile_dir=status["profile_dir"], cluster_id="nope")
        )


def test_ddp_replicas_end_identical_and_bytes_are_counted(launcher, make_data, tmp_path):
    events = []
    req = TrainRequest(
        _model(),
        make_data(128),
        MSE,
        val_data=make_data(32, seed=1),
        strategy="ddp",
        engines=2,
        epochs=3,
        batch_size=16,
        lr=3e-3,
        checkpoint_dir=str(tmp_path),
    )
    result = launch_training(req, launcher, callbacks=[events.append])
    digests = [d["model"] for d in result.digests.values()]
    assert len(digests) == 2
    assert digests[0] == digests[1]
    # the returned model is that replica
    from workbench.training.distributed import state_digest

    assert state_digest(result.model.state_dict()) == digests[0]
    r0 = [r for r in result.history if r.rank == 0]
    assert r0[-1].loss < r0[0].loss
    assert r0[-1].val["samples"] == 32
    # gradient all-reduce: one bucket of all parameters per step (64 samples per rank / 16)
    param_bytes = sum(p.numel() * 4 for p in result.model.parameters())
    steps = 3 * (128 // 2 // 16)
    comm = result.comm["engine-0"]
    val_bytes = 3 * 2 * 8  # one all-reduce of [loss, samples] (float64) per epoch
    assert comm["payload"]["all_reduce"] == steps * param_bytes + val_bytes
    assert result.bytes_exchanged == 2 * comm["wire_bytes"] > steps * param_bytes
    # events streamed live from both engines
    assert {e.rank for e in events} == {0, 1}
    assert len([e for e in events if e.kind == "train"]) == 2 * steps
    val = [e for e in events if e.kind == "val"]  # one per epoch and rank: the live loss panel
    assert sorted((e.rank, e.epoch) for e in val) == [(r, k) for r in (0, 1) for k in range(3)]
    assert all(e.samples == 32 for e in val)
    assert load_checkpoint(tmp_path / "model.pt")["epoch"] == 3


def test_every_step_event_arrives_once_in_order_while_the_kernel_is_busy(launcher, make_data):
    events, busy = [], []

    def slow_kernel(event):  # a kernel busy for 8 s while the engine runs on to the end
        events.append(event)
        if not busy:
            busy.append(True)
            time.sleep(8.0)

    req = TrainRequest(
        _model(), make_data(2500), MSE, strategy="single", engines=1, epochs=1, batch_size=1
    )
    launch_training(req, launcher, callbacks=[slow_kernel])
    steps = [e.step for e in events if e.kind == "train"]
    assert steps == sorted(steps)
    assert len(steps) == len(set(steps)) == 2500  # none lost, none twice


def test_the_engine_publishes_each_event_once():
    import pickle

    from workbench.cluster.ipp_launcher import _Publisher

    sent = []
    pub = _Publisher(lambda data: sent.append(len(pickle.dumps(data))))
    event = {"step": 0, "samples": 16, "nbytes": 4096, "t": 0.0, "duration": 1e-3, "loss": 0.5}
    for step in range(5000):
        pub({**event, "step": step})
        if step % 10 == 9:
            pub.last = 0.0  # as if 0.1 s had passed: publish now
    pub.flush()
    once = len(pickle.dumps([{**event, "step": s} for s in range(5000)]))
    assert len(sent) > 400  # published as it went
    assert sum(sent) < 1.5 * once  # not a window of past events again with every publication


@pytest.mark.parametrize("sharding", ["no_shard", "shard_grad_op", "full_shard", "hybrid_shard"])
def test_fsdp_trains_in_every_sharding_mode(launcher, make_data, sharding):
    req = TrainRequest(
        _model(),
        make_data(128),
        MSE,
        strategy="fsdp",
        engines=2,
        epochs=3,
        batch_size=16,
        lr=3e-3,
        sharding=sharding,
        checkpoint_dir=None,
        checkpoint=False,
    )
    result = launch_training(req, launcher)
    losses = [r.loss for r in result.history if r.rank == 0]
    assert losses[-1] < losses[0]
    assert len({d["model"] for d in result.digests.values()}) == 1
    calls = result.comm["engine-0"]["calls"]
    if sharding == "no_shard":
        assert "all_reduce" in calls
        assert "reduce_scatter" not in calls
    else:
        assert calls["all_gather"] > 0
        assert calls["reduce_scatter"] > 0
    assert result.bytes_exchanged > 0
    assert result.sharding == sharding


def test_fsdp_resumes_from_its_gathered_checkpoint(launcher, make_data, tmp_path):
    req = TrainRequest(
        _model(),
        make_data(64),
        MSE,
        strategy="fsdp",
        engines=2,
        epochs=1,
        batch_size=16,
        sharding="full_shard",
        checkpoint_dir=str(tmp_path),
    )
    first = launch_training(req, launcher)
    state = load_checkpoint(tmp_path / "model.pt")
    assert state["epoch"] == 1
    assert set(state["model"]) == set(first.model.state_dict())  # full, unsharded names
    assert state["optimizer"]["state"]  # Adam moments, gathered
    again = launch_training(
        req.replace(epochs=3, resume=str(tmp_path), checkpoint_dir=str(tmp_path / "b")), launcher
    )
    assert [r.epoch for r in again.history if r.rank == 0] == [0, 1, 2]
    assert [r.epoch for r in again.history if r.rank == 1] == [1, 2]


def test_partitioned_trains_one_model_per_partition_on_its_owner(launcher, s2_chips, tmp_path):
    events = []
    req = TrainRequest(
        _model(),
        s2_chips,
        chip_mean_mse,
        targets=("ndvi",),
        strategy="partitioned",
        engines=2,
        epochs=1,
        batch_size=64,
        lr=3e-3,
        partition=PartitionSpec("geohash", 7),
        checkpoint_dir=str(tmp_path),
    )
    result = launch_training(req, launcher, callbacks=[events.append])
    codes = sorted({str(c) for c in s2_chips.geocodes("geohash", 7)})
    assert sorted(result.models) == codes  # exactly one model per partition
    ring = HashRing(["engine-0", "engine-1"], tokens_per_node=256)
    expected = {c: ring.node_for(c, prefix_len=7) for c in codes}
    assert result.placement == expected
    assert result.trained_on == expected
    assert set(expected.values()) == {"engine-0", "engine-1"}
    assert result.bytes_exchanged == 0
    by_partition = {e.partition: e.rank for e in events}
    assert {c: f"engine-{r}" for c, r in by_partition.items()} == expected
    assert len(list((tmp_path / "partitions").glob("*.pt"))) == len(codes)
    # predictions are routed by geocode to the partition's own model
    idx = [0, 1, 400]
    x = torch.as_tensor(s2_chips.to_numpy(idx)[:, :3])
    got = result.predict(x, [str(s2_chips.geocodes("geohash", 7)[i]) for i in idx])
    own = [
        result.models[str(s2_chips.geocodes("geohash", 7)[i])](x[k : k + 1])
        for k, i in enumerate(idx)
    ]
    assert torch.allclose(got, torch.cat(own).detach())


def test_glcm_transfer_warm_starts_within_texture_cluster(launcher, s2_chips):
    req = TrainRequest(
        _model(),
        s2_chips,
        chip_mean_mse,
        targets=("ndvi",),
        strategy="partitioned",
        engines=2,
        epochs=1,
        batch_size=64,
        partition=PartitionSpec("geohash", 7),
        transfer="glcm",
        checkpoint=False,
    )
    result = launch_training(req, launcher)
    assert set(result.clusters) == set(result.models)
    sources = {c: s for c, s in result.warm_start.items() if s is not None}
    assert sources  # some partitions were warm-started
    for code, src in sources.items():
        assert result.clusters[src] == result.clusters[code]
        assert result.trained_on[src] == result.trained_on[code]


def test_timeout_stops_the_engines(launcher, ipp_cluster, make_data):
    req = TrainRequest(
        _model(),
        make_data(512),
        MSE,
        strategy="ddp",
        engines=2,
        epochs=500,
        batch_size=8,
        timeout=4.0,
        checkpoint=False,
    )
    start = time.monotonic()
    with pytest.raises(TrainingTimeoutError, match=r"timeout of 4\.0 s"):
        launch_training(req, launcher)
    assert time.monotonic() - start < 4.0 + launcher.grace_s + 60  # + a restart at worst
    assert len(ipp_cluster.engine_ids()) == 2
    assert sorted(ipp_cluster.client[:].apply_sync(lambda: 7)) == [7, 7]  # usable again


def test_kernel_interrupt_stops_the_engines_cleanly(launcher, ipp_cluster, make_data):
    req = TrainRequest(
        _model(),
        make_data(512),
        MSE,
        strategy="ddp",
        engines=2,
        epochs=500,
        batch_size=8,
        checkpoint=False,
    )
    fired = threading.Event()

    def interrupt_after_first_steps(event):
        if event.step >= 3 and not fired.is_set():
            fired.set()
            threading.Timer(0.2, _thread.interrupt_main).start()

    with pytest.raises(KeyboardInterrupt):
        launch_training(req, launcher, callbacks=[interrupt_after_first_steps])
    assert fired.is_set()
    queues = ipp_cluster.client.queue_status()
    assert all(
        queues[e]["tasks"] == 0 and queues[e]["queue"] == 0 for e in ipp_cluster.engine_ids()
    )
    # the engines left their process groups: a new DDP run works at once
    quick = req.replace(epochs=1, batch_size=64, timeout=120)
    assert launch_training(quick, launcher).strategy == "ddp"


def test_dead_engine_is_named_and_the_checkpoint_survives(
    launcher, ipp_cluster, make_data, tmp_path
):
    ids = ipp_cluster.engine_ids()
    victim = ipp_cluster.info(ids)[ids[1]]["pid"]
    req = TrainRequest(
        _model(),
        make_data(512),
        MSE,
        strategy="ddp",
        engines=2,
        epochs=500,
        batch_size=8,
        checkpoint_dir=str(tmp_path),
    )
    killed = []

    def kill_after_first_checkpoint(event):
        if not killed and (tmp_path / "model.pt").exists():
            killed.append(victim)
            os.kill(victim, signal.SIGKILL)

    with pytest.raises(
        EngineDiedError, match=r"engine-1 \(engine id \d+, pid \d+ on .*\) died"
    ) as err:
        launch_training(req, launcher, callbacks=[kill_after_first_checkpoint])
    assert killed
    assert "The last checkpoint survives" in str(err.value)
    assert f"--resume {tmp_path}" in str(err.value)
    state = load_checkpoint(tmp_path / "model.pt")
    assert state["epoch"] >= 1
    assert "features.0.weight" in state["model"]
    assert len(ipp_cluster.engine_ids()) == 2  # a cluster started here is restarted
    # and the run resumes from the checkpoint that survived
    resumed = launch_training(
        req.replace(
            epochs=state["epoch"] + 1, resume=str(tmp_path), checkpoint_dir=str(tmp_path / "again")
        ),
        launcher,
    )
    assert [r.epoch for r in resumed.history if r.rank == 0][-1] == state["epoch"]


def test_too_many_engines_is_a_launch_error(launcher, make_data):
    req = TrainRequest(_model(), make_data(16), MSE, strategy="ddp", engines=3)
    with pytest.raises(LaunchError, match="asked for 3 engines but the cluster has 2"):
        launch_training(req, launcher)
