"""Namespaced hosts for real: shaped links, counted bytes, engines inside, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench.cluster.netns import HostNetwork, netns_available, sweep_leftovers
from workbench.errors import HostNetworkError

OK, REASON = netns_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"namespaced hosts unavailable: {REASON}")
PY = sys.executable

SERVER = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
    c, _ = s.accept(); block = b"x" * 65536; n = 0
    while n < int(sys.argv[3]):
        c.sendall(block); n += len(block)
    c.close()
    """
)
CLIENT = textwrap.dedent(
    """
    import socket, sys, time
    c = socket.create_connection((sys.argv[1], int(sys.argv[2]))); t = time.perf_counter(); n = 0
    while (b := c.recv(1 << 20)):
        n += len(b)
    print(n, time.perf_counter() - t)
    """
)


def _ours(run_id: str) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [w for w in (names + links).replace(":", " ").split() if run_id in w]


def _transfer(net, server_host, client_host, nbytes, port=9100):
    """Send ``nbytes`` from a server (a host, or None: the controller) to a client host."""
    address = server_host.address if server_host else net.address
    argv = [PY, "-c", SERVER, address, str(port), str(nbytes)]
    if server_host is None:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    else:
        proc = net.popen(server_host, argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    n, seconds = net.run(client_host, PY, "-c", CLIENT, address, str(port)).split()
    proc.wait(30)
    return int(n), float(seconds)


def test_links_are_shaped_and_bytes_are_counted_by_class():
    with HostNetwork(2, rate_mbit=100) as net:
        h0, h1 = net.hosts
        assert h0.address != h1.address
        assert net.address.endswith(".1")
        assert net.run(h0, "ip", "-4", "-o", "addr", "show", "eth0").count(h0.address) == 1
        net.classify_data_port(9000)
        before = net.counters()
        n, seconds = _transfer(net, h1, h0, 8_000_000)
        mbit = n * 8 / seconds / 1e6
        assert n >= 8_000_000
        assert mbit < 110, f"a 100 Mbit/s link carried {mbit:.0f} Mbit/s"
        _transfer(net, None, h0, 4_000_000, port=9000)  # the controller's data service port
        delta = (net.counters() - before).to_dict()
    # host-to-host bytes: sent by host-1, received by host-0, both in the training class
    assert delta["hosts"]["host-1"]["tx"] >= 8_000_000
    assert delta["hosts"]["host-0"]["rx"] >= 12_000_000
    classes = delta["hosts"]["host-0"]["classes"]
    assert classes["training"]["rx"] >= 8_000_000
    assert 4_000_000 <= classes["data"]["rx"] < 5_000_000
    assert classes["control"]["rx"] < 10_000
    assert delta["bytes_on_links"] >= 20_000_000  # 8 MB counted at both hosts, 4 MB at one
    assert delta["controller_link"]["tx"] >= 4_000_000
    assert _ours(net.run_id) == []


def test_a_faster_link_is_faster():
    times = {}
    for rate in (100, 1000):
        with HostNetwork(2, rate_mbit=rate) as net:
            times[rate] = _transfer(net, net.hosts[1], net.hosts[0], 12_000_000)[1]
    assert times[100] > 2 * times[1000], times


def test_everything_is_removed_on_failure_too(tmp_path):
    net = HostNetwork(2, rate_mbit=1000, root=tmp_path)
    procs = []

    def fail():
        with net:
            assert len(_ours(net.run_id)) >= 2 * 2 + 1  # 2 namespaces, 2 veths, a bridge
            procs.append(net.popen(net.hosts[0], ["sleep", "60"]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    proc = procs[0]
    assert _ours(net.run_id) == []
    assert proc.poll() is not None
    assert tmp_path.is_dir()  # a folder given by the caller is kept


def _orphan(sig):
    code = textwrap.dedent(
        """
        import sys, time
        from workbench.cluster.netns import HostNetwork
        net = HostNetwork(2, rate_mbit=100).start()
        net.popen(net.hosts[0], ["sleep", "600"])
        print(net.run_id, flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    run_id = proc.stdout.readline().strip()
    assert len(_ours(run_id)) >= 5
    proc.send_signal(sig)
    proc.wait(30)
    return run_id


def test_sigterm_removes_everything():
    run_id = _orphan(signal.SIGTERM)
    assert _ours(run_id) == []


def test_a_killed_owner_leaves_leftovers_that_the_sweep_removes():
    run_id = _orphan(signal.SIGKILL)
    assert _ours(run_id)  # SIGKILL runs no handler
    removed = sweep_leftovers()
    assert any(run_id in r for r in removed)
    assert _ours(run_id) == []


def test_bad_arguments_are_clear():
    with pytest.raises(HostNetworkError, match="rate_mbit"):
        HostNetwork(2, rate_mbit=0)
    with pytest.raises(HostNetworkError, match="prefix"):
        HostNetwork(2, prefix="Bad-Prefix")
    with pytest.raises(HostNetworkError, match="n must be"):
        HostNetwork(0)


def test_unavailable_reason_names_the_missing_piece(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    ok, reason = netns_available()
    assert not ok
    assert "root" in reason
    with pytest.raises(HostNetworkError, match="need root"):
        HostNetwork(2).start()


def test_processes_run_inside_the_namespace():
    with HostNetwork(1) as net:
        inside = net.run(net.hosts[0], "readlink", "/proc/self/ns/net").strip()
        assert inside != os.readlink("/proc/self/ns/net")
        routes = net.run(net.hosts[0], "ip", "-4", "route", "show")
        assert "default" not in routes  # no way out of the test subnet
        time.sleep(0)
