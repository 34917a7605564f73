"""Geocodes and spatial partitioning: geohashes, quadkeys, bbox covers, a consistent-hash ring.

Pure numpy (plus shapely/pyproj for pixel footprints); nothing here reads pixels.

Examples
--------
>>> from workbench.geo import geohash, cover, HashRing
>>> geohash.encode(46.05, 14.5, 5)
'u24mc'
>>> ring = HashRing(["a", "b", "c"])
>>> ring.node_for("u24mcz", prefix_len=4) == HashRing(["c", "b", "a"]).node_for("u24m")
True
"""

from __future__ import annotations

from workbench.geo import geohash, quadkey
from workbench.geo.cover import SCHEMES, cover
from workbench.geo.dht import HashRing
from workbench.geo.partition import Partitions, partition

__all__ = ["geohash", "quadkey", "cover", "SCHEMES", "HashRing", "partition", "Partitions"]
