"""Chips across scenes of two UTM zones: the collection stream vs reading each scene by hand.

Scenes: the eo-learn Sentinel-2 dates written as band-per-file GeoTIFFs
(``workbench.data.examples.sentinel2_scenes``; 10 m bands), half of them reprojected into UTM 34N.
One shuffled epoch of 16 x 16 chips in batches of 64 is timed for

* ``collection``: ``open_collection(...).chips(...).batches(...)``: one plan and one stream over
  every scene, each tile decoded once per epoch (``tile_loads`` vs ``tiles``);
* ``per_scene_lazy``: one ChipSet per lazily opened scene, streamed one after another (what a
  user writes by hand, without a shared shuffle);
* ``in_memory``: the same per-scene ChipSets after loading every scene into memory (the limit:
  no file is read during the epoch).

Numbers are chips per second (medians of several epochs, the kinds interleaved) and their
ratios, measured in one run: ``cold`` epochs start a new stream (every tile decoded from its
file), ``warm`` epochs re-iterate one stream (what a training loop does; tiles that fit stay in
the tile cache). ``tile_loads_per_epoch`` counts the tiles one cold epoch decodes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CHIP = {"y": 16, "x": 16}
BANDS = ("B02", "B03", "B04", "B08")


def _epoch_rates(makers: dict[str, Any], repeats: int, fresh: bool) -> dict[str, float]:
    """Median chips/s of one epoch per kind, the kinds interleaved epoch by epoch (fair noise).

    ``fresh``: a new stream each epoch (a cold tile cache: every tile decoded from its file);
    else one stream per kind iterated epoch after epoch (tiles that fit stay in its cache).
    """
    kept = {k: make() for k, make in makers.items()}
    for group in kept.values():  # warm-up epoch: file handles, thread pools, imports
        for stream in group:
            list(stream)
    rates: dict[str, list[float]] = {k: [] for k in makers}
    for _ in range(repeats):
        for kind, make in makers.items():
            group = make() if fresh else kept[kind]
            start = time.perf_counter()
            count = sum(len(b) for stream in group for b in stream)
            rates[kind].append(count / (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in rates.items()}


def run(quick: bool) -> dict[str, Any]:
    import workbench as wb
    from workbench.data import examples

    repeats = 2 if quick else 21
    root = Path(tempfile.mkdtemp(prefix="bench-collection-"))
    dates_33, dates_34 = ([0], [3]) if quick else ([0, 1, 2], [3, 4])
    examples.sentinel2_scenes(root, dates=dates_33, bands=BANDS)
    examples.sentinel2_scenes(root, dates=dates_34, bands=BANDS, crs="EPSG:32634")
    collection = wb.open_collection(root)
    chips = collection.chips(CHIP)
    per_scene = [ds.wb.chips(CHIP) for ds in collection]
    loaded = [ds.load().wb.chips(CHIP) for ds in wb.open_collection(root)]

    makers = {
        "collection": lambda: [chips.batches(64, shuffle=True, seed=0)],
        "per_scene_lazy": lambda: [c.batches(64, shuffle=True, seed=0) for c in per_scene],
        "in_memory": lambda: [c.batches(64, shuffle=True, seed=0) for c in loaded],
    }
    cold = _epoch_rates(makers, repeats, fresh=True)
    warm = _epoch_rates(makers, repeats, fresh=False)
    n = len(chips)
    stream = chips.batches(64, shuffle=True, seed=0)
    list(stream)
    stats = stream.last_stats
    tiles = len({int(t) for t in stream.reader.tile_of(chips.grid.origins(chips.ids))})
    return {
        "scenes": len(collection),
        "crs": sorted({c.to_string() for c in collection.crs}),
        "chips": n,
        "chip": CHIP,
        "bands": list(BANDS),
        "repeats": repeats,
        "cold_epoch_chips_per_s": {k: round(v, 1) for k, v in cold.items()},
        "warm_epoch_chips_per_s": {k: round(v, 1) for k, v in warm.items()},
        "cold_collection_vs_per_scene_lazy": round(cold["collection"] / cold["per_scene_lazy"], 3),
        "warm_collection_vs_per_scene_lazy": round(warm["collection"] / warm["per_scene_lazy"], 3),
        "warm_collection_vs_in_memory": round(warm["collection"] / warm["in_memory"], 3),
        "tiles": tiles,
        "tile_loads_per_epoch": int(stats.get("loads", -1)),  # a fresh stream: one epoch
        "read_routes": stats.get("read_routes"),
    }
