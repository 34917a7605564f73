"""Rebuild ``ne_50m.npz`` from the ``world-atlas`` npm package (Natural Earth 1:50m, v4.1.0).

Run from the repository root after ``npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz``::

    python workbench/widgets/naturalearth/make.py package/countries-50m.json

The TopoJSON's quantised arcs are kept as they are (a 100 000 x 100 000 grid over the
globe, about 400 m x 190 m at the equator: Natural Earth's 1:50m detail is coarser), split
into two line sets:

* ``coastlines``: arcs that belong to one country only (the outline of the merged land);
* ``countries``: arcs shared by two countries (land borders).

Straight edges along the map frame (antimeridian, -90) are cut out. Each set is stored as
int32 coordinate deltas along each line (the first point absolute) plus line offsets, which
deflate compresses to a few hundred kB; :mod:`workbench.widgets.basemap` decodes them.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build"]


def _arc_ids(geometry: dict[str, Any]) -> list[int]:
    arcs = geometry.get("arcs", [])
    if geometry["type"] == "Polygon":
        return [a for ring in arcs for a in ring]
    if geometry["type"] == "MultiPolygon":
        return [a for poly in arcs for ring in poly for a in ring]
    return []


def _split_edges(arc: list[list[int]], top: int) -> list[np.ndarray]:
    """Absolute coordinates of an arc, cut where it runs along the antimeridian or the pole.

    Natural Earth closes land that crosses 180 degrees (and Antarctica at -90) with straight
    edges along the map frame: they are not coastlines.
    """
    xy = np.cumsum(np.asarray(arc, dtype=np.int64), axis=0)
    on_frame = (xy[:, 0] == 0) | (xy[:, 0] == top) | (xy[:, 1] == 0)
    frame_segment = on_frame[:-1] & on_frame[1:]
    pieces, start = [], 0
    for i in np.flatnonzero(frame_segment).tolist():
        if i + 1 - start >= 2:
            pieces.append(xy[start : i + 1])
        start = i + 1
    if len(xy) - start >= 2:
        pieces.append(xy[start:])
    return pieces


def _pack(lines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Delta-encode each line (first point absolute) and concatenate; offsets per line."""
    deltas = np.concatenate([np.diff(line, axis=0, prepend=0) for line in lines]).astype(np.int32)
    offsets = np.cumsum([0] + [len(line) for line in lines]).astype(np.int32)
    return deltas, offsets


def build(source: Path, target: Path) -> dict[str, int]:
    """Write ``target`` (npz) from a world-atlas ``countries-50m.json``; return point counts."""
    topo = json.loads(source.read_text(encoding="utf-8"))
    uses: Counter[int] = Counter()
    for geometry in topo["objects"]["countries"]["geometries"]:
        for a in set(_arc_ids(geometry)):
            uses[a if a >= 0 else ~a] += 1
    arcs = topo["arcs"]
    top = round(360.0 / topo["transform"]["scale"][0])  # the grid index of +180 degrees
    coast = [p for i in range(len(arcs)) if uses[i] == 1 for p in _split_edges(arcs[i], top)]
    borders = [p for i in range(len(arcs)) if uses[i] >= 2 for p in _split_edges(arcs[i], top)]
    coast_xy, coast_off = _pack(coast)
    border_xy, border_off = _pack(borders)
    np.savez_compressed(
        target,
        coastlines_deltas=coast_xy,
        coastlines_offsets=coast_off,
        countries_deltas=border_xy,
        countries_offsets=border_off,
        scale=np.asarray(topo["transform"]["scale"], dtype=np.float64),
        translate=np.asarray(topo["transform"]["translate"], dtype=np.float64),
    )
    return {"coastlines": len(coast_xy), "countries": len(border_xy)}


if __name__ == "__main__":
    counts = build(Path(sys.argv[1]), Path(__file__).with_name("ne_50m.npz"))
    print(counts)
