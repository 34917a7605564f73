"""Geocode encoding throughput and HashRing balance / membership moves on realistic geocodes.

What is measured, side by side in one run:

* ``encode``: points/s of the vectorised :func:`workbench.geo.geohash.encode` and
  :func:`workbench.geo.quadkey.encode` on 1M points (100k with ``--quick``), against the reference
  libraries called per point (pygeohash, mercantile) on a subset; the ratio is the speed-up.
* ``balance``: the geohash-5 cells of the continental US (as in the paper's Table II, ~436k cells)
  placed on 50 nodes by :class:`workbench.geo.HashRing` for several ``tokens_per_node``: std/mean
  of the per-node key counts and of per-node bytes (each cell carries a size: area x acquisitions,
  a model of July 2019 Sentinel-2 data), the max/mean ratio, and the floor that perfectly random
  placement of the same keys would give (sampling noise, sqrt(N/K)-ish). The paper reports
  139.5 GB +- 1.5 GB per node, i.e. ~1.1 % std/mean.
* ``membership``: the share of keys (and bytes) that move when a 51st node joins (ideal ~1/51,
  all to the new node) and when one of the 50 leaves (ideal: exactly that node's keys).

Run: ``python -m benchmarks dht [--quick]``. The CONUS outline is Natural Earth 1:110m (public
domain), simplified to 0.25 degrees.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.geo import HashRing, cover, geohash, quadkey

# Natural Earth 1:110m admin-0, United States, largest polygon (CONUS), simplified (0.25 deg).
CONUS = [
    (-122.84, 49.0),
    (-95.16, 49.0),
    (-95.16, 49.38),
    (-94.82, 49.39),
    (-94.33, 48.67),
    (-91.64, 48.14),
    (-88.38, 48.3),
    (-84.88, 46.9),
    (-82.55, 45.35),
    (-82.14, 43.57),
    (-83.12, 42.08),
    (-82.69, 41.68),
    (-78.94, 42.86),
    (-79.17, 43.47),
    (-78.72, 43.63),
    (-76.82, 43.63),
    (-74.87, 45.0),
    (-71.51, 45.01),
    (-70.66, 45.46),
    (-69.24, 47.45),
    (-67.79, 47.07),
    (-67.79, 45.7),
    (-66.96, 44.81),
    (-70.12, 43.68),
    (-70.82, 42.33),
    (-70.49, 41.81),
    (-70.08, 41.78),
    (-70.19, 42.15),
    (-69.88, 41.92),
    (-69.97, 41.64),
    (-73.71, 40.93),
    (-71.94, 40.93),
    (-73.95, 40.75),
    (-74.18, 39.71),
    (-74.91, 38.94),
    (-75.53, 39.5),
    (-75.06, 38.4),
    (-75.94, 37.22),
    (-75.72, 37.94),
    (-76.23, 38.32),
    (-76.35, 39.15),
    (-76.33, 38.08),
    (-76.99, 38.24),
    (-76.3, 37.92),
    (-75.73, 35.55),
    (-76.36, 34.81),
    (-79.06, 33.49),
    (-81.34, 31.44),
    (-81.31, 30.04),
    (-80.06, 26.88),
    (-80.38, 25.21),
    (-81.17, 25.2),
    (-81.71, 25.87),
    (-82.86, 27.89),
    (-82.65, 28.55),
    (-83.71, 29.94),
    (-85.11, 29.64),
    (-86.4, 30.4),
    (-89.59, 30.16),
    (-89.41, 29.16),
    (-93.23, 29.78),
    (-94.69, 29.48),
    (-97.14, 27.83),
    (-97.14, 25.87),
    (-97.53, 25.84),
    (-99.02, 26.37),
    (-100.96, 29.38),
    (-102.48, 29.76),
    (-103.11, 28.97),
    (-103.94, 29.27),
    (-106.51, 31.75),
    (-108.24, 31.75),
    (-108.24, 31.34),
    (-111.02, 31.33),
    (-114.72, 32.72),
    (-117.13, 32.54),
    (-118.52, 34.03),
    (-120.62, 34.61),
    (-124.4, 40.31),
    (-124.21, 42.0),
    (-124.53, 42.77),
    (-123.9, 45.52),
    (-124.69, 48.18),
    (-123.12, 48.04),
    (-122.59, 47.1),
    (-122.34, 47.36),
    (-122.84, 49.0),
]

NODES = 50


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conus_geohash5(quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """Geohash-5 cells whose centre lies in CONUS, and a byte size for each."""
    import shapely

    outline = shapely.Polygon(CONUS)
    codes = np.array(cover(outline.bounds, "geohash", 5, max_cells=2_000_000))
    lat, lon = geohash.decode(codes)
    inside = shapely.contains_xy(outline, lon, lat)
    codes, lat, lon = codes[inside], lat[inside], lon[inside]
    if quick:
        keep = np.random.default_rng(0).random(codes.size) < 0.25
        codes, lat, lon = codes[keep], lat[keep], lon[keep]
    # Bytes of one month of Sentinel-2 L1C over the cell: 10 m pixels x 13 bands x 2 bytes x
    # acquisitions; a 5-day revisit gives ~6 per month, twice that where orbits overlap
    # (stripes ~30 % of each 2.4-degree orbit spacing), a little less where no-data cuts scenes.
    height, width = geohash.cell_size(5)
    area_m2 = (height * 111_320.0) * (width * 111_320.0 * np.cos(np.radians(lat)))
    overlap = (np.mod(lon, 2.4) / 2.4) < 0.3
    rng = np.random.default_rng(1)
    acquisitions = np.where(overlap, 12, 6) - rng.integers(0, 2, lat.size)
    sizes = area_m2 / 100.0 * 13 * 2 * acquisitions
    return codes, sizes


def _cv(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


def bench_encode(quick: bool) -> dict[str, Any]:
    import mercantile
    import pygeohash

    n = 100_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    lat = rng.uniform(-85.0, 85.0, n)
    lon = rng.uniform(-180.0, 180.0, n)
    ref_n = 20_000 if quick else 100_000
    repeats = 3 if quick else 5
    out: dict[str, Any] = {"points": n, "reference_points": ref_n, "repeats": repeats}
    cases = [
        ("geohash", 5, lambda a, b, p: pygeohash.encode(a, b, p)),
        ("geohash", 12, lambda a, b, p: pygeohash.encode(a, b, p)),
        ("quadkey", 16, lambda a, b, p: mercantile.quadkey(mercantile.tile(b, a, p))),
        ("quadkey", 23, lambda a, b, p: mercantile.quadkey(mercantile.tile(b, a, p))),
    ]
    for scheme, precision, ref in cases:
        module = geohash if scheme == "geohash" else quadkey
        ours = _median_time(lambda m=module, p=precision: m.encode(lat, lon, p), repeats)
        sub_lat, sub_lon = lat[:ref_n].tolist(), lon[:ref_n].tolist()

        def loop(
            r: Callable[..., str] = ref,
            p: int = precision,
            la: list[float] = sub_lat,
            lo: list[float] = sub_lon,
        ) -> list[str]:
            return [r(a, b, p) for a, b in zip(la, lo, strict=True)]

        theirs = _median_time(loop, max(1, repeats // 2))
        same = module.encode(lat[:ref_n], lon[:ref_n], precision).tolist() == loop()
        ours_rate, ref_rate = n / ours, ref_n / theirs
        out[f"{scheme}{precision}"] = {
            "vectorised_s": ours,
            "vectorised_points_per_s": ours_rate,
            "reference_points_per_s": ref_rate,
            "speedup": ours_rate / ref_rate,
            "identical_to_reference": same,
        }
    return out


def bench_balance(codes: np.ndarray, sizes: np.ndarray, tokens: list[int]) -> dict[str, Any]:
    nodes = [f"node{i:02d}" for i in range(NODES)]
    out: dict[str, Any] = {
        "nodes": NODES,
        "keys": int(codes.size),
        "total_gb": float(sizes.sum() / 1e9),
    }
    # What uniformly random placement of the same keys would give (the sampling-noise floor).
    rng = np.random.default_rng(2)
    floors = []
    for _ in range(20):
        pick = rng.integers(0, NODES, codes.size)
        floors.append(
            (_cv(np.bincount(pick, minlength=NODES)), _cv(np.bincount(pick, sizes, NODES)))
        )
    out["random_placement_floor"] = {
        "count_std_over_mean": float(np.median([f[0] for f in floors])),
        "bytes_std_over_mean": float(np.median([f[1] for f in floors])),
    }
    rows = []
    for t in tokens:
        t0 = time.perf_counter()
        ring = HashRing(nodes, tokens_per_node=t)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        placed = ring.nodes_for(codes, prefix_len=5)
        lookup = time.perf_counter() - t0
        idx = np.searchsorted(np.asarray(ring.nodes), placed)
        counts = np.bincount(idx, minlength=NODES)
        nbytes = np.bincount(idx, weights=sizes, minlength=NODES)
        shares = np.array(list(ring.shares().values()))
        # Coarser co-location: prefix 4 puts the 32 geohash-5 children of a cell together.
        idx4 = np.searchsorted(np.asarray(ring.nodes), ring.nodes_for(codes, prefix_len=4))
        bytes4 = np.bincount(idx4, weights=sizes, minlength=NODES)
        rows.append(
            {
                "tokens_per_node": t,
                "hash_space_share_std_over_mean": _cv(shares),
                "count_std_over_mean": _cv(counts.astype(float)),
                "bytes_std_over_mean": _cv(nbytes),
                "bytes_max_over_mean": float(nbytes.max() / nbytes.mean()),
                "gb_per_node_mean": float(nbytes.mean() / 1e9),
                "gb_per_node_std": float(nbytes.std() / 1e9),
                "prefix4_bytes_std_over_mean": _cv(bytes4),
                "build_s": build,
                "nodes_for_s": lookup,
                "nodes_for_keys_per_s": codes.size / lookup,
            }
        )
    out["by_tokens_per_node"] = rows
    return out


def bench_membership(
    codes: np.ndarray, sizes: np.ndarray, tokens: list[int]
) -> list[dict[str, Any]]:
    nodes = [f"node{i:02d}" for i in range(NODES)]
    rows = []
    for t in tokens:
        ring = HashRing(nodes, tokens_per_node=t)
        before = ring.nodes_for(codes, prefix_len=5)
        grown = ring.add_node("node50")
        after_add = grown.nodes_for(codes, prefix_len=5)
        moved_add = before != after_add
        shrunk = ring.remove_node("node07")
        after_remove = shrunk.nodes_for(codes, prefix_len=5)
        moved_remove = before != after_remove
        rows.append(
            {
                "tokens_per_node": t,
                "add_moved_key_fraction": float(moved_add.mean()),
                "add_moved_byte_fraction": float(sizes[moved_add].sum() / sizes.sum()),
                "add_ideal_fraction": 1 / (NODES + 1),
                "add_all_moves_to_new_node": bool((after_add[moved_add] == "node50").all()),
                "remove_moved_key_fraction": float(moved_remove.mean()),
                "remove_removed_node_fraction": float((before == "node07").mean()),
                "remove_only_its_keys_moved": bool(
                    (before[moved_remove] == "node07").all()
                    and moved_remove.sum() == (before == "node07").sum()
                ),
            }
        )
    return rows


def run(quick: bool) -> dict[str, Any]:
    """Entry point for ``python -m benchmarks dht``."""
    tokens = [1, 16, 256, 1024] if quick else [1, 4, 16, 64, 256, 1024, 4096]
    t0 = time.perf_counter()
    codes, sizes = conus_geohash5(quick)
    prep = time.perf_counter() - t0
    result: dict[str, Any] = {
        "paper_table_ii": {
            "gb_per_node_mean": 139.5,
            "gb_per_node_std": 1.5,
            "std_over_mean": 1.5 / 139.5,
        },
        "geocodes": {
            "scheme": "geohash",
            "precision": 5,
            "region": "CONUS",
            "count": int(codes.size),
            "prep_s": prep,
        },
        "encode": bench_encode(quick),
        "balance": bench_balance(codes, sizes, tokens),
        "membership": bench_membership(codes, sizes, [16, 256] if quick else [16, 256, 1024]),
    }
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
