"""Engines as hosts: ipyparallel engines inside namespaces, training across shaped links."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from workbench.cluster.netns import netns_available

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
pytest.importorskip("ipyparallel")

from workbench.cluster import TrainRequest, launch_training
from workbench.cluster.fileserve import FileClient
from workbench.cluster.hosts import HostCluster, host_environment
from workbench.cluster.spec import PartitionSpec
from workbench.errors import HostNetworkError
from workbench.models import NDVIRegressor

OK, REASON = netns_available()
pytestmark = [
    pytest.mark.torch,
    pytest.mark.cluster,
    pytest.mark.skipif(not OK, reason=f"namespaced hosts unavailable: {REASON}"),
]


@pytest.fixture(scope="module")
def hosts():
    with HostCluster.start(2, rate_mbit=1000) as cluster:
        cluster.client[:].execute("import torch", block=True)
        yield cluster
    assert not [n for n in os.popen("ip netns list").read().split() if cluster.network.run_id in n]


def _where():
    import os

    from workbench.cluster.hosts import host_environment

    return {**host_environment(), "netns": os.readlink("/proc/self/ns/net")}


def test_each_engine_lives_in_its_own_host(hosts):
    replies = hosts.client[:].apply_sync(_where)
    by_host = {r["WORKBENCH_HOST"]: r for r in replies}
    assert sorted(by_host) == ["host-0", "host-1"]
    assert len({r["netns"] for r in replies} | {os.readlink("/proc/self/ns/net")}) == 3
    for h in hosts.hosts:
        assert by_host[h.name]["WORKBENCH_HOST_ADDR"] == h.address
        assert by_host[h.name]["WORKBENCH_HOST_DATA"] == str(h.data_dir)
    status = hosts.status()
    assert status["network"] == {
        "namespaces": True,
        "hosts": 2,
        "link_rate_mbit": 1000.0,
        "bridge_address": hosts.network.address,
        "host_addresses": {h.name: h.address for h in hosts.hosts},
    }
    with pytest.raises(HostNetworkError, match="not an engine"):
        host_environment()


def test_the_controller_listens_on_the_bridge_address_and_loopback_only(hosts):
    info_file = next(Path(hosts.status()["profile_dir"], "security").glob("*-client.json"))
    assert json.loads(info_file.read_text())["location"] == hosts.network.address
    root = psutil.Process(hosts.cluster.controller.process.pid)
    procs = [root, *root.children(recursive=True)]
    listening = {
        c.laddr.ip for p in procs for c in p.net_connections("tcp") if c.status == "LISTEN"
    }
    # the engines reach it on the bridge; its internal schedulers talk over loopback only
    assert hosts.network.address in listening
    assert listening <= {hosts.network.address, "127.0.0.1"}


def _pull(url, token, dest):
    from workbench.cluster.fileserve import FileClient

    return FileClient(url, token).fetch_tree("outbox", dest)


def test_hosts_pull_from_the_file_service_and_it_counts_as_data(hosts, tmp_path):
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / "blob.bin").write_bytes(os.urandom(3_000_000))
    service = hosts.serve(tmp_path)
    assert service.host == hosts.network.address
    h0 = hosts.hosts[0]
    eid = next(e for e, i in hosts.info(hosts.engine_ids()).items() if i["host"] == h0.name)
    with hosts.network.measure() as m:
        n = hosts.client[eid].apply_sync(_pull, service.url, service.token, str(h0.data_dir / "in"))
    assert (h0.data_dir / "in" / "blob.bin").stat().st_size == 3_000_000
    classes = m["bytes"].to_dict()["hosts"]["host-0"]["classes"]
    assert classes["data"]["rx"] >= n >= 3_000_000
    assert classes["control"]["rx"] < 200_000
    with pytest.raises(Exception, match="403"):
        FileClient(service.url, "nope").read("outbox/blob.bin")


def _data(n=256):
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 8, 8, generator=g)
    return TensorDataset(x, x[:, 0].mean(dim=(1, 2)))


def test_ddp_gradients_cross_the_links_partitioned_sends_none(hosts):
    launcher = hosts.launcher()
    assert [w.name for w in launcher.workers(2)] == ["host-0", "host-1"]
    addr, port, ifname = launcher.rendezvous()
    assert (addr, ifname) == (hosts.hosts[0].address, "eth0")
    assert port > 0
    torch.manual_seed(0)
    common = dict(model=NDVIRegressor(), train_data=_data(), loss_fn=torch.nn.functional.mse_loss,
                  epochs=2, batch_size=32, checkpoint=False)  # fmt: skip
    with hosts.network.measure() as ddp:
        result = launch_training(TrainRequest(**common, strategy="ddp", engines=2), launcher)
    training = ddp["bytes"].by_class()["training"]
    # each byte of a collective leaves one host and enters the other: counted twice
    assert training >= 2 * 0.9 * result.payload_bytes / 2
    assert result.bytes_exchanged > 0
    codes = ["u0bh" if i % 2 else "u0bk" for i in range(256)]
    with hosts.network.measure() as part:
        launch_training(
            TrainRequest(**common, strategy="partitioned", engines=2, geocodes=codes,
                         partition=PartitionSpec("geohash", 4)),
            launcher,
        )  # fmt: skip
    assert part["bytes"].by_class()["training"] < 5_000  # no collective: ARP-sized at most
    assert part["bytes"].by_class()["control"] > 0
