"""Server-side cost of chip previews and map previews.

Target (issue 6): 64 chips of 64x64 rendered into a gallery in under 0.3 s server-side.
Measured: ``chips.preview(n=64)`` end to end (read the chips, stretch and composite on the
data's device, PNG-encode on the host, build the widget), and its parts side by side,
for an RGB composite and a colormapped single band; plus ``ds.wb.map()`` on a larger cube
(warp to lon/lat + PNG + widget). Everything runs on whatever device holds the data (CPU here).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

TARGET_S = 0.3


def _median_s(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: imports, caches, first-touch allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool) -> dict[str, Any]:
    import workbench  # noqa: F401  # registers the .wb accessor
    from workbench.chips.render import encode_pngs, render
    from workbench.data.synthetic import s2_like
    from workbench.widgets.gallery import ChipGallery

    repeats = 3 if quick else 15
    size = 256 if quick else 512
    n = 64
    ds = s2_like(time=4, y=size, x=size)
    chips = ds.wb.chips({"time": 1, "y": 64, "x": 64}, variables=["reflectance"])
    picked = np.unique(np.linspace(0, len(chips) - 1, n).round().astype(int))
    batch = chips.to_numpy(picked)[:, :, 0]  # (B, bands, 64, 64)
    rgb_images = render(batch, [2, 1, 0])

    results: dict[str, Any] = {
        "chips": int(picked.size),
        "chip_shape": [64, 64],
        "channels": int(batch.shape[1]),
        "device": "cpu (numpy)",
        "target_s": TARGET_S,
    }
    timings = {
        "preview_rgb_total_s": lambda: chips.preview(n=n),
        "preview_single_band_total_s": lambda: chips.preview(n=n, bands="B08"),
        "read_chips_s": lambda: chips.to_numpy(picked),
        "render_rgb_s": lambda: render(batch, [2, 1, 0]),
        "render_single_band_s": lambda: render(batch, 3),
        "encode_png_s": lambda: encode_pngs(rgb_images),
        "widget_from_arrays_s": lambda: ChipGallery.from_arrays(batch, [2, 1, 0]),
    }
    for name, fn in timings.items():
        results[name] = _median_s(fn, repeats)
    gallery = chips.preview(n=n)
    results["png_bytes_total"] = int(sum(len(p) for p in gallery.images))
    results["meets_target"] = bool(results["preview_rgb_total_s"] < TARGET_S)
    results["target_ratio"] = results["preview_rgb_total_s"] / TARGET_S

    big = s2_like(time=1, y=1024 if quick else 2048, x=1024 if quick else 2048)
    results["map_cube_shape"] = [int(big.sizes["y"]), int(big.sizes["x"])]
    results["map_build_s"] = _median_s(lambda: big.wb.map(), max(1, repeats // 3))

    grid = big.wb.chips({"y": 32, "x": 32}, variables=["reflectance"])
    bare = big.wb.map(preview=False)
    results["show_chips_count"] = len(grid)
    results["show_chips_s"] = _median_s(lambda: bare.show_chips(grid), max(1, repeats // 3))
    return results


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
