"""HashRing: SHA-1 placement, prefix co-location, determinism across processes, minimal moves."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from workbench.errors import GeocodeError
from workbench.geo import HashRing, cover, geohash
from workbench.geo.dht import key_position

NODES = [f"node{i:02d}" for i in range(12)]


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    """Real geohash-5 cells: Slovenia and around (about 15k cells)."""
    return np.array(cover((13.3, 45.4, 16.6, 46.9), "geohash", 5))


def _reference_owner(nodes: list[str], tokens: int, key: str) -> str:
    """Placement written out by hand: SHA-1 tokens, clockwise successor."""

    def pos(s: str) -> int:
        return int.from_bytes(hashlib.sha1(s.encode()).digest()[:8], "big")

    ring = sorted((pos(f"{n}#{i}"), n) for n in nodes for i in range(tokens))
    k = pos(key)
    for p, n in ring:
        if p >= k:
            return n
    return ring[0][1]


def test_placement_is_sha1_clockwise_successor(codes: np.ndarray) -> None:
    ring = HashRing(NODES, tokens_per_node=8)
    for code in codes[::500].tolist():
        assert ring.node_for(code) == _reference_owner(NODES, 8, code)
        assert ring.node_for(code, prefix_len=3) == _reference_owner(NODES, 8, code[:3])
    assert key_position("u4pr") == int.from_bytes(hashlib.sha1(b"u4pr").digest()[:8], "big")


def test_prefix_colocation(codes: np.ndarray) -> None:
    ring = HashRing(NODES, tokens_per_node=32)
    placed = ring.nodes_for(codes, prefix_len=3)
    by_prefix: dict[str, set[str]] = {}
    for code, node in zip(codes.tolist(), placed.tolist(), strict=True):
        by_prefix.setdefault(code[:3], set()).add(node)
    assert all(len(nodes) == 1 for nodes in by_prefix.values())
    # finer prefixes spread the same region over more nodes
    assert len(set(ring.nodes_for(codes, prefix_len=5).tolist())) > len(set(placed.tolist()))
    # geohashes of points of one cell land together at any precision
    lat, lon = (
        np.random.default_rng(0).uniform(46.0, 46.04, 200),
        np.random.default_rng(1).uniform(14.5, 14.54, 200),
    )
    fine = geohash.encode(lat, lon, 9)
    assert len(set(ring.nodes_for(fine, prefix_len=4).tolist())) == 1


def test_vectorised_equals_scalar_and_keeps_shape(codes: np.ndarray) -> None:
    ring = HashRing(NODES, tokens_per_node=16, prefix_len=4)
    sample = codes[:300]
    assert ring.nodes_for(sample).tolist() == [ring.node_for(c) for c in sample.tolist()]
    assert ring.nodes_for(sample.reshape(20, 15)).shape == (20, 15)
    assert ring.nodes_for(np.array([], dtype=str)).shape == (0,)


def test_node_order_does_not_matter() -> None:
    a = HashRing(NODES, tokens_per_node=16)
    b = HashRing(list(reversed(NODES)), tokens_per_node=16)
    assert a == b
    assert (
        a.nodes_for(["u4pr", "9q8y", "dr5r"]).tolist()
        == b.nodes_for(["u4pr", "9q8y", "dr5r"]).tolist()
    )


_CHILD = """
import json, sys
from workbench.geo import HashRing
ring = HashRing([f"node{i:02d}" for i in range(12)], tokens_per_node=16)
print(json.dumps(ring.nodes_for(sys.argv[1:], prefix_len=4).tolist()))
"""


def test_same_placement_in_other_processes_whatever_the_hash_seed(codes: np.ndarray) -> None:
    sample = codes[::97].tolist()
    here = HashRing(NODES, tokens_per_node=16).nodes_for(sample, prefix_len=4).tolist()
    # the child gets a hash seed different from this process's (random unless set)
    seed = "1" if os.environ.get("PYTHONHASHSEED") == "12345" else "12345"
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *sample], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == here


def test_adding_a_node_moves_only_its_share(codes: np.ndarray) -> None:
    ring = HashRing(NODES, tokens_per_node=64)
    bigger = ring.add_node("node99")
    before, after = ring.nodes_for(codes), bigger.nodes_for(codes)
    moved = before != after
    assert set(after[moved].tolist()) == {"node99"}  # every moved key went to the new node
    assert (after == "node99").sum() == moved.sum()
    share = bigger.shares()["node99"]
    assert moved.mean() == pytest.approx(share, abs=0.02)  # about its share of the hash space
    assert 0.3 / 13 < moved.mean() < 3 / 13


def test_removing_a_node_moves_only_its_keys(codes: np.ndarray) -> None:
    ring = HashRing(NODES, tokens_per_node=64)
    smaller = ring.remove_node("node03")
    before, after = ring.nodes_for(codes), smaller.nodes_for(codes)
    moved = before != after
    assert set(before[moved].tolist()) == {"node03"}
    assert (before == "node03").sum() == moved.sum()
    assert "node03" not in set(after.tolist())


def test_incremental_rings_equal_fresh_rings() -> None:
    ring = HashRing(NODES, tokens_per_node=32)
    grown = ring.add_node("a-first").remove_node("node05")
    fresh = HashRing([*NODES, "a-first"], tokens_per_node=32).remove_node("node05")
    keys = [f"k{i}" for i in range(2000)]
    assert grown == fresh
    assert grown.nodes_for(keys).tolist() == fresh.nodes_for(keys).tolist()
    assert grown.nodes == tuple(sorted([n for n in NODES if n != "node05"] + ["a-first"]))


def test_shares_and_loads(codes: np.ndarray) -> None:
    ring = HashRing(NODES, tokens_per_node=256)
    shares = np.array(list(ring.shares().values()))
    assert shares.sum() == pytest.approx(1.0)
    assert shares.std() / shares.mean() < 0.15  # ~1/sqrt(256) = 6 %
    loads = ring.loads(codes)
    assert list(loads) == list(ring.nodes)
    assert sum(loads.values()) == codes.size
    sizes = np.arange(codes.size, dtype=float)
    weighted = ring.loads(codes, sizes=sizes)
    assert sum(weighted.values()) == pytest.approx(sizes.sum())
    # more tokens balance better
    cv = {}
    for t in (1, 16, 256):
        counts = np.array(list(HashRing(NODES, tokens_per_node=t).loads(codes).values()))
        cv[t] = counts.std() / counts.mean()
    assert cv[256] < cv[16] < cv[1]


def test_serialisation_round_trips() -> None:
    ring = HashRing(NODES, tokens_per_node=8, prefix_len=4)
    keys = ["u4pruyd", "9q8yykz"]
    clone = pickle.loads(pickle.dumps(ring))
    assert clone == ring
    assert clone.nodes_for(keys).tolist() == ring.nodes_for(keys).tolist()
    spec = json.loads(json.dumps(ring.to_mapping()))
    assert HashRing.from_mapping(spec).nodes_for(keys).tolist() == ring.nodes_for(keys).tolist()
    assert "12 nodes" in repr(ring)
    assert len(ring) == 12
    assert "node00" in ring


def test_single_node_ring_takes_everything() -> None:
    ring = HashRing(["only"], tokens_per_node=1)
    assert set(ring.nodes_for(["a", "b", "c", "zzzz"]).tolist()) == {"only"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"nodes": []}, "at least one node"),
        ({"nodes": ["a", "a"]}, "duplicates"),
        ({"nodes": ["a", 1]}, "non-empty str"),
        ({"nodes": ["a", ""]}, "non-empty str"),
        ({"nodes": ["a"], "tokens_per_node": 0}, "tokens_per_node"),
        ({"nodes": ["a"], "tokens_per_node": 1.5}, "tokens_per_node"),
        ({"nodes": ["a"], "prefix_len": 0}, "prefix_len"),
    ],
)
def test_bad_rings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(GeocodeError, match=match):
        HashRing(**kwargs)  # type: ignore[arg-type]


def test_bad_lookups_and_membership_changes() -> None:
    ring = HashRing(["a", "b"], tokens_per_node=4)
    with pytest.raises(GeocodeError, match="fewer than prefix_len=5"):
        ring.node_for("u4p", prefix_len=5)
    with pytest.raises(GeocodeError, match="shorter than prefix_len=5"):
        ring.nodes_for(["u4pru", "u4p"], prefix_len=5)
    with pytest.raises(GeocodeError, match="non-empty str"):
        ring.node_for("")
    with pytest.raises(GeocodeError, match="strings"):
        ring.nodes_for([1, 2])
    with pytest.raises(GeocodeError, match="already on the ring"):
        ring.add_node("a")
    with pytest.raises(GeocodeError, match="not on the ring"):
        ring.remove_node("c")
    with pytest.raises(GeocodeError, match="last node"):
        HashRing(["a"]).remove_node("a")
