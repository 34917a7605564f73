"""Requests and cluster specs are validated with messages that name the fix."""

from __future__ import annotations

import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
from workbench.cluster.spec import ClusterSpec, PartitionSpec, TrainRequest
from workbench.errors import LaunchError

pytestmark = pytest.mark.torch


def _req(**kw):
    return TrainRequest(model=None, train_data=[], loss_fn=None, **kw)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "horovod"}, "unknown strategy 'horovod'"),
        ({"strategy": "fsdp", "engines": 2, "sharding": "FULL"}, "unknown sharding 'FULL'"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"strategy": "ddp", "engines": 1}, "needs at least 2 engines"),
        ({"transfer": "glcm"}, "transfer='glcm' applies to strategy 'partitioned', not 'single'"),
        ({"strategy": "single", "engines": 2}, "'single' runs on 1 process"),
        ({"strategy": "ddp", "engines": 2, "lockstep": False}, "lockstep=False applies to"),
        ({"strategy": "partitioned", "transfer": "vgg"}, "unknown transfer 'vgg'"),
        ({"timeout": -1}, "timeout must be a positive number"),
    ],
)
def test_bad_requests(kwargs, match):
    with pytest.raises(LaunchError, match=match):
        _req(**kwargs)


def test_partitioned_defaults_and_labels():
    r = _req(strategy="partitioned", engines=2, transfer="glcm")
    assert r.partition == PartitionSpec("geohash", 5)
    assert r.label == "partitioned[geohash:5]+glcmx2"
    assert _req(strategy="fsdp", engines=2, sharding="no_shard").label == "fsdp[no_shard]x2"
    assert _req(name="mine").label == "mine"
    assert _req(targets=["ndvi"]).targets == ("ndvi",)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("geohash", "scheme:precision"),
        ("h3:5", "unknown geocode scheme 'h3'"),
        ("geohash:13", "geohash precision must be an integer in 1..12"),
        ("quadkey:x", "scheme:precision"),
    ],
)
def test_partition_spec_parsing(text, match):
    with pytest.raises(LaunchError, match=match):
        PartitionSpec.parse(text)
    assert PartitionSpec.parse(" QuadKey:14") == PartitionSpec("quadkey", 14)


def test_cluster_spec_defaults_to_loopback():
    assert ClusterSpec().ip == "127.0.0.1"
    with pytest.raises(LaunchError, match="n >= 1"):
        ClusterSpec(n=0)
