"""A consistent-hash ring with SHA-1 virtual nodes: geocode prefix -> node, with no coordination.

Each node owns ``tokens_per_node`` points on a 64-bit ring; token ``i`` of node ``name`` sits at
the first 8 bytes (big-endian) of ``SHA-1(f"{name}#{i}")``. A geocode is placed by hashing its
first ``prefix_len`` characters the same way and walking clockwise to the next token (the token
at or after the key's position, wrapping past the top). So:

* placement is a pure function of (node names, tokens_per_node, prefix): any process, any
  machine, any ``PYTHONHASHSEED`` computes the same owner without talking to the others;
* all geocodes sharing their first ``k`` characters land on one node (``prefix_len=k``); a
  shorter prefix co-locates larger, spatially contiguous regions;
* adding a node moves only the keys its new tokens take over (about ``1 / (n + 1)`` of them), all
  to the new node; removing a node moves only that node's keys, spread over the others.

This is the multi-token DHT of the "small is beautiful" paper (section II-A). Rings are
immutable: :meth:`HashRing.add_node` and :meth:`HashRing.remove_node` return new rings, so the
old and the new placement can be compared side by side (see ``benchmarks/bench_dht.py``).

Examples
--------
>>> ring = HashRing([f"node{i}" for i in range(4)], tokens_per_node=64)
>>> ring.node_for("9q8yyk", prefix_len=4) == ring.node_for("9q8yzz", prefix_len=4)
True
>>> bigger = ring.add_node("node4")
>>> moved = [c for c in ["9q8y", "dr5r", "u4pr", "u24m"] if ring.node_for(c) != bigger.node_for(c)]
>>> all(bigger.node_for(c) == "node4" for c in moved)
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from workbench.errors import GeocodeError

__all__ = ["HashRing", "DEFAULT_TOKENS_PER_NODE", "key_position"]

#: Tokens (virtual nodes) per node unless told otherwise. ``benchmarks/bench_dht.py`` measures the
#: balance (std/mean of per-node bytes, 436k CONUS geohash-5 cells on 50 nodes): 26 % with 16
#: tokens, 6.8 % with 256, 3.2 % with 1024, 1.7 % with 4096 (~1/sqrt(tokens_per_node)); 1024
#: costs ~0.1-0.2 s to build for 50 nodes and 16 bytes per token.
DEFAULT_TOKENS_PER_NODE = 1024
_MAX_TOKENS_PER_NODE = 1 << 16


def key_position(key: str) -> int:
    """Position of ``key`` on the ring: the first 8 bytes of its SHA-1, big-endian.

    Examples
    --------
    >>> key_position("u4pr")
    7442579027700118024
    """
    return int.from_bytes(
        hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).digest()[:8], "big"
    )


def _positions(keys: Iterable[str]) -> NDArray[np.uint64]:
    """Ring positions of many keys (one SHA-1 each, in C; no Python hash())."""
    sha1 = hashlib.sha1
    raw = b"".join(sha1(k.encode("utf-8"), usedforsecurity=False).digest()[:8] for k in keys)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


class HashRing:
    """Consistent-hash ring of nodes with several SHA-1 tokens each.

    Parameters
    ----------
    nodes : iterable of str
        Unique node names (host names, ranks as strings...). Their order does not matter.
    tokens_per_node : int, default 1024
        Virtual nodes per node. More tokens balance better (std/mean of the per-node share is
        about ``1 / sqrt(tokens_per_node)``) and cost memory and build time linearly.
    prefix_len : int, optional
        Default number of leading geocode characters that decide the placement; ``None`` uses
        the whole geocode.

    Raises
    ------
    GeocodeError
        For no nodes, duplicate or non-string names, or ``tokens_per_node`` outside 1..65536.

    Examples
    --------
    >>> ring = HashRing(["a", "b", "c"], tokens_per_node=16, prefix_len=3)
    >>> ring.node_for("u4pruyd") == ring.node_for("u4p")
    True
    >>> ring.nodes_for(["u4pruyd", "u4pzzzz"]).tolist() == [ring.node_for("u4p")] * 2
    True
    >>> sorted(ring.remove_node("b").nodes)
    ['a', 'c']
    """

    __slots__ = ("_nodes", "_owners", "_positions", "_prefix_len", "_tokens_per_node")

    def __init__(
        self,
        nodes: Iterable[str],
        tokens_per_node: int = DEFAULT_TOKENS_PER_NODE,
        *,
        prefix_len: int | None = None,
    ) -> None:
        names = tuple(nodes) if not isinstance(nodes, str) else (nodes,)
        if not names:
            raise GeocodeError("a HashRing needs at least one node, got none")
        bad = [n for n in names if not isinstance(n, str) or not n]
        if bad:
            raise GeocodeError(
                f"node names must be non-empty str, got {bad[0]!r}; use e.g. str(rank)"
            )
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise GeocodeError(f"node names must be unique, got duplicates {dupes}")
        if (
            isinstance(tokens_per_node, bool)
            or not isinstance(tokens_per_node, int | np.integer)
            or not 1 <= tokens_per_node <= _MAX_TOKENS_PER_NODE
        ):
            raise GeocodeError(
                f"tokens_per_node must be an integer in 1..{_MAX_TOKENS_PER_NODE}, "
                f"got {tokens_per_node!r}"
            )
        self._prefix_len = self._check_prefix_len(prefix_len)
        self._tokens_per_node = int(tokens_per_node)
        self._nodes = tuple(sorted(names))
        positions = _positions(self._token_names(self._nodes))
        owners = np.repeat(np.arange(len(self._nodes), dtype=np.int64), self._tokens_per_node)
        self._set_tokens(positions, owners)

    def _token_names(self, nodes: Iterable[str]) -> Iterable[str]:
        return (f"{name}#{i}" for name in nodes for i in range(self._tokens_per_node))

    def _set_tokens(self, positions: NDArray[np.uint64], owners: NDArray[np.int64]) -> None:
        # Sort by position, ties (astronomically rare) by node name: placement stays deterministic.
        order = np.lexsort((owners, positions))
        self._positions = positions[order]
        self._owners = owners[order]

    def _with_nodes(
        self, nodes: tuple[str, ...], positions: NDArray[np.uint64], owner_names: NDArray[Any]
    ) -> HashRing:
        """Build a ring over ``nodes`` (sorted) from already hashed tokens (no SHA-1 redone)."""
        ring = object.__new__(HashRing)
        ring._nodes = nodes
        ring._tokens_per_node = self._tokens_per_node
        ring._prefix_len = self._prefix_len
        owners = np.searchsorted(np.asarray(nodes), owner_names).astype(np.int64)
        ring._set_tokens(positions, owners)
        return ring

    # -- properties -----------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[str, ...]:
        """Node names, sorted."""
        return self._nodes

    @property
    def tokens_per_node(self) -> int:
        """Virtual nodes per node."""
        return self._tokens_per_node

    @property
    def prefix_len(self) -> int | None:
        """Default number of leading characters hashed (``None``: the whole geocode)."""
        return self._prefix_len

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HashRing):
            return NotImplemented
        return (self._nodes, self._tokens_per_node, self._prefix_len) == (
            other._nodes,
            other._tokens_per_node,
            other._prefix_len,
        )

    def __hash__(self) -> int:
        return hash((self._nodes, self._tokens_per_node, self._prefix_len))

    def __repr__(self) -> str:
        shown = ", ".join(self._nodes[:4]) + (", ..." if len(self._nodes) > 4 else "")
        return (
            f"HashRing([{shown}] ({len(self._nodes)} nodes), "
            f"tokens_per_node={self._tokens_per_node}, "
            f"prefix_len={self._prefix_len})"
        )

    # -- membership -----------------------------------------------------------------------
    def add_node(self, node: str) -> HashRing:
        """Return a new ring with ``node`` added; only keys its tokens take over move (to it)."""
        if not isinstance(node, str) or not node:
            raise GeocodeError(f"node names must be non-empty str, got {node!r}")
        if node in self._nodes:
            raise GeocodeError(f"node {node!r} is already on the ring {self!r}")
        new_positions = _positions(self._token_names([node]))
        names = np.asarray(self._nodes)[self._owners]
        return self._with_nodes(
            tuple(sorted((*self._nodes, node))),
            np.concatenate([self._positions, new_positions]),
            np.concatenate([names, np.full(new_positions.size, node)]),
        )

    def remove_node(self, node: str) -> HashRing:
        """Return a new ring without ``node``; only its keys move, to the next tokens clockwise."""
        if node not in self._nodes:
            raise GeocodeError(f"node {node!r} is not on the ring; nodes are {list(self._nodes)}")
        if len(self._nodes) == 1:
            raise GeocodeError(f"cannot remove {node!r}, the last node of the ring")
        keep = self._owners != self._nodes.index(node)
        names = np.asarray(self._nodes)[self._owners[keep]]
        return self._with_nodes(
            tuple(n for n in self._nodes if n != node), self._positions[keep], names
        )

    # -- placement ------------------------------------------------------------------------
    @staticmethod
    def _check_prefix_len(prefix_len: Any) -> int | None:
        if prefix_len is None:
            return None
        if (
            isinstance(prefix_len, bool)
            or not isinstance(prefix_len, int | np.integer)
            or prefix_len < 1
        ):
            raise GeocodeError(f"prefix_len must be a positive integer or None, got {prefix_len!r}")
        return int(prefix_len)

    def _resolve(self, prefix_len: int | None) -> int | None:
        return self._prefix_len if prefix_len is None else self._check_prefix_len(prefix_len)

    def _owner_index(self, positions: NDArray[np.uint64]) -> NDArray[np.int64]:
        slot = np.searchsorted(self._positions, positions, side="left") % self._positions.size
        return self._owners[slot]

    def node_for(self, geocode: str, prefix_len: int | None = None) -> str:
        """Return the node holding ``geocode``: the owner of its first ``prefix_len`` characters.

        Parameters
        ----------
        geocode : str
            A geohash or quadkey (hashed as given: keep one case).
        prefix_len : int, optional
            Leading characters that decide placement; defaults to the ring's ``prefix_len``,
            then to the whole code.

        Raises
        ------
        GeocodeError
            If ``geocode`` is not a non-empty str or is shorter than ``prefix_len``.
        """
        k = self._resolve(prefix_len)
        if not isinstance(geocode, str) or not geocode:
            raise GeocodeError(f"a geocode must be a non-empty str, got {geocode!r}")
        if k is not None and len(geocode) < k:
            raise GeocodeError(
                f"geocode {geocode!r} has {len(geocode)} characters, fewer than prefix_len={k}; "
                "encode at a higher precision or lower prefix_len"
            )
        key = geocode if k is None else geocode[:k]
        pos = np.array([key_position(key)], dtype=np.uint64)
        return self._nodes[int(self._owner_index(pos)[0])]

    def nodes_for(self, geocodes: ArrayLike, prefix_len: int | None = None) -> NDArray[np.str_]:
        """Vectorised :meth:`node_for`: one node name per geocode, same shape.

        Each distinct prefix is hashed once; the ring lookup is a numpy ``searchsorted``.

        Examples
        --------
        >>> ring = HashRing(["a", "b"], tokens_per_node=8)
        >>> ring.nodes_for([["u4pr", "u4pq"]], prefix_len=3).shape
        (1, 2)
        """
        arr = np.asarray(geocodes)
        if arr.size == 0:
            return np.empty(arr.shape, dtype="<U1")
        return np.asarray(self._nodes)[self._node_index(arr, prefix_len)]

    def _node_index(self, arr: NDArray[Any], prefix_len: int | None) -> NDArray[np.int64]:
        """Index into :attr:`nodes` of the owner of each geocode of ``arr`` (same shape)."""
        k = self._resolve(prefix_len)
        if arr.dtype.kind != "U":
            raise GeocodeError(f"geocodes must be strings, got an array of dtype {arr.dtype}")
        lengths = np.char.str_len(arr)
        if k is not None and lengths.min() < k:
            short = arr.ravel()[int(np.argmin(lengths.ravel()))]
            raise GeocodeError(f"geocode {short!r} is shorter than prefix_len={k}")
        if lengths.min() == 0:
            raise GeocodeError("geocodes must be non-empty strings, got ''")
        keys = arr if k is None else arr.astype(f"<U{k}")  # astype to a shorter str truncates
        unique, inverse = np.unique(keys.ravel(), return_inverse=True)
        owners = self._owner_index(_positions(unique.tolist()))
        return owners[inverse].reshape(arr.shape)

    # -- balance --------------------------------------------------------------------------
    def shares(self) -> dict[str, float]:
        """Fraction of the 64-bit hash space each node owns (sums to 1).

        Examples
        --------
        >>> round(sum(HashRing(["a", "b", "c"]).shares().values()), 12)
        1.0
        """
        pos = self._positions.astype(np.float64)
        arcs = np.diff(pos, prepend=pos[-1] - 2.0**64)  # token i owns (pos[i-1], pos[i]]
        per_node = np.bincount(self._owners, weights=arcs, minlength=len(self._nodes))
        return dict(zip(self._nodes, (per_node / 2.0**64).tolist(), strict=True))

    def loads(
        self,
        geocodes: ArrayLike,
        prefix_len: int | None = None,
        sizes: ArrayLike | None = None,
    ) -> dict[str, float]:
        """Per-node count (or total ``sizes``) of the given geocodes; every node is listed.

        Examples
        --------
        >>> ring = HashRing(["a", "b"], tokens_per_node=8)
        >>> sum(ring.loads(["u4pr", "u4pq", "9q8y"], sizes=[1.0, 2.0, 3.0]).values())
        6.0
        """
        arr = np.asarray(geocodes)
        idx = self._node_index(arr, prefix_len).ravel() if arr.size else np.zeros(0, np.int64)
        weights = None
        if sizes is not None:
            weights = np.broadcast_to(np.asarray(sizes, dtype=np.float64), arr.shape).ravel()
        totals = np.bincount(idx, weights=weights, minlength=len(self._nodes))
        return dict(zip(self._nodes, totals.astype(float).tolist(), strict=True))

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> HashRing:
        """Rebuild a ring from :meth:`to_mapping` output (e.g. read from JSON on another host)."""
        return cls(spec["nodes"], spec["tokens_per_node"], prefix_len=spec.get("prefix_len"))

    def to_mapping(self) -> dict[str, Any]:
        """Return the JSON-able description that rebuilds this exact ring anywhere.

        Examples
        --------
        >>> ring = HashRing(["a", "b"], tokens_per_node=8, prefix_len=4)
        >>> HashRing.from_mapping(ring.to_mapping()) == ring
        True
        """
        return {
            "nodes": list(self._nodes),
            "tokens_per_node": self._tokens_per_node,
            "prefix_len": self._prefix_len,
        }
