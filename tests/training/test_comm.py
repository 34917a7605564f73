"""Counting the bytes of collectives (ring model) on a real gloo process group."""

from __future__ import annotations

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
import torch.distributed as dist

from workbench.training.comm import (
    CommCounter,
    count_collectives,
    ddp_counting_hook,
    wire_bytes,
)

pytestmark = pytest.mark.torch


@pytest.mark.parametrize(
    ("op", "g", "expected"),
    [
        ("all_reduce", 2, 1000),
        ("all_reduce", 4, 1500),
        ("all_gather", 4, 3000),
        ("reduce_scatter", 4, 750),
        ("broadcast", 2, 500),
        ("all_reduce", 1, 0),
    ],
)
def test_ring_wire_bytes(op, g, expected):
    assert wire_bytes(op, 1000, g) == expected


@pytest.fixture
def gloo_world_of_one(tmp_path):
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


def test_count_collectives_records_and_restores(gloo_world_of_one):
    original = dist.all_reduce
    counter = CommCounter()
    with count_collectives(counter):
        assert dist.all_reduce is not original
        dist.all_reduce(torch.ones(10))
        out = [torch.empty(4)]
        dist.all_gather(out, torch.ones(4))
        dist.broadcast(tensor=torch.ones(3, dtype=torch.float64), src=0)
    assert dist.all_reduce is original
    assert counter.calls == {"all_reduce": 1, "all_gather": 1, "broadcast": 1}
    assert counter.payload == {"all_reduce": 40, "all_gather": 16, "broadcast": 24}
    assert counter.wire_bytes == 0  # a group of one sends nothing


def test_ddp_hook_counts_buckets(gloo_world_of_one):
    model = torch.nn.Linear(10, 2)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    counter = CommCounter()
    ddp.register_comm_hook(None, ddp_counting_hook(counter))
    for _ in range(3):
        ddp(torch.rand(4, 10)).sum().backward()
    assert counter.calls["all_reduce"] >= 3
    assert counter.payload["all_reduce"] == 3 * (10 * 2 + 2) * 4
