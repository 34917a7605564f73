"""Small static maps as SVG: the chip gallery's location view (no Leaflet, no tiles, no network).

A map is a Web Mercator frame of a lon/lat window with the offline base map of
:mod:`workbench.widgets.basemap` (coastlines, country borders, a labelled graticule) under
the data's footprint and chip outlines. Each outline carries ``data-position`` (its
thumbnail's position), so the front end can highlight the selected chip without asking the
kernel. Everything is drawn from numbers; the only text is escaped.

Examples
--------
>>> svg = location_svg((-6.0, 50.0, 2.0, 53.0), boxes=[(-5.0, 50.5, -4.0, 51.5)])
>>> svg.startswith("<svg") and 'class="wb-coastlines"' in svg and 'data-position="0"' in svg
True
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from workbench.widgets.basemap import (
    LAYERS,
    context_lines,
    context_window,
    format_lat,
    format_lon,
    graticule,
)

__all__ = ["svg_map", "location_svg"]

_CSS = (
    ".wb-map-bg{fill:#f4f6f8}.wb-coastlines path{fill:none;stroke:#2b6cb0;stroke-width:0.8}"
    ".wb-countries path{fill:none;stroke:#6b6b6b;stroke-width:0.7;stroke-dasharray:3 2}"
    ".wb-graticule path{fill:none;stroke:#9aa5b1;stroke-width:0.5;stroke-dasharray:2 3}"
    ".wb-graticule text{font:9px sans-serif;fill:#52606d}"
    ".wb-footprint{fill:#1c7ed6;fill-opacity:0.08;stroke:#1c7ed6;stroke-width:1.2}"
    ".wb-chip{fill:none;stroke:#e8590c;stroke-width:0.8;stroke-opacity:0.7}"
    ".wb-chip.wb-selected{stroke:#d6336c;stroke-width:2.5;stroke-opacity:1;fill:#d6336c;"
    "fill-opacity:0.25}.wb-map-title{font:10px sans-serif;fill:#3c4650}"
    ".wb-marker{fill:#d6336c;stroke:white;stroke-width:1}"
)


def _merc(lat: np.ndarray | float) -> np.ndarray:
    lat = np.clip(np.asarray(lat, dtype=float), -85.0, 85.0)
    return np.asarray(np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)))


class _Frame:
    """Project lon/lat to SVG pixels inside a window (Web Mercator, north up)."""

    def __init__(self, window: Sequence[float], width: float, max_height: float) -> None:
        self.west, self.south, self.east, self.north = (float(v) for v in window)
        self.top, bottom = float(_merc(self.north)), float(_merc(self.south))
        aspect = (self.top - bottom) / math.radians(self.east - self.west)
        self.width, self.height = width, min(max_height, width * aspect)
        if width * aspect > max_height:  # too tall: keep the height, narrow the frame
            self.width = max_height / aspect
        self.bottom = bottom

    def xy(self, lonlat: np.ndarray) -> np.ndarray:
        x = (lonlat[:, 0] - self.west) / (self.east - self.west) * self.width
        y = (self.top - _merc(lonlat[:, 1])) / (self.top - self.bottom) * self.height
        return np.column_stack([x, y])

    def path(self, lines: Sequence[np.ndarray]) -> str:
        parts = []
        for line in lines:
            pts = self.xy(np.asarray(line, dtype=float))
            if len(pts) > 1:
                parts.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in pts))
        return "".join(parts)


def _box_ring(box: Sequence[float]) -> np.ndarray:
    w, s, e, n = box
    return np.array([[w, s], [e, s], [e, n], [w, n], [w, s]], dtype=float)


def svg_map(
    window: Sequence[float],
    *,
    width: float = 260,
    max_height: float = 220,
    footprint: np.ndarray | None = None,
    boxes: Sequence[Sequence[float]] = (),
    title: str | None = None,
    layers: Sequence[str] = LAYERS,
    marker: bool = False,
) -> str:
    """Draw one map of ``window`` as an SVG string.

    Parameters
    ----------
    window : (west, south, east, north)
        What the map shows, in degrees.
    width, max_height : float
        Size in pixels (the height follows the window's Mercator aspect, up to ``max_height``).
    footprint : (N, 2) array, optional
        The data's lon/lat outline.
    boxes : sequence of (west, south, east, north)
        Chip outlines, drawn with ``data-position`` = their index in ``boxes``.
    title : str, optional
        A caption in the top-left corner.
    layers : sequence of {"coastlines", "countries"}
        Base-map layers to draw.
    marker : bool
        Mark the footprint's centre with a dot (when it is too small to see at this scale).

    Returns
    -------
    str
        ``<svg ...>...</svg>``
    """
    frame = _Frame(window, width, max_height)
    w, h = frame.width, frame.height
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="wb-map" width="{w:.0f}" '
        f'height="{h:.0f}" viewBox="0 0 {w:.1f} {h:.1f}"><style>{_CSS}</style>',
        f'<rect class="wb-map-bg" width="{w:.1f}" height="{h:.1f}"/>',
    ]
    for name in layers:
        lines = context_lines(name, window, tolerance=(frame.east - frame.west) / max(w, 1))
        out.append(f'<g class="wb-{name}"><path d="{frame.path(lines)}"/></g>')
    grid = graticule(window, lines=4)
    texts = []
    for lon in grid.meridians:
        x = float(frame.xy(np.array([[lon, frame.south]]))[0, 0])
        if 40 < x < w - 45:  # clear of the parallels' labels and the right edge
            text = format_lon(lon, grid.step)
            texts.append(f'<text x="{x + 2:.1f}" y="{h - 3:.1f}">{text}</text>')
    for lat in grid.parallels:
        y = float(frame.xy(np.array([[frame.west, lat]]))[0, 1])
        if 22 < y < h - 12:  # clear of the title and the meridians' labels
            texts.append(f'<text x="2" y="{y - 2:.1f}">{format_lat(lat, grid.step)}</text>')
    lines_d = frame.path(grid.lines())
    out.append(f'<g class="wb-graticule"><path d="{lines_d}"/>{"".join(texts)}</g>')
    if footprint is not None:
        ring = frame.xy(np.asarray(footprint, dtype=float))
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in ring)
        out.append(f'<polygon class="wb-footprint" points="{points}"/>')
        if marker:
            cx, cy = ring[:-1].mean(axis=0)
            out.append(f'<circle class="wb-marker" cx="{cx:.1f}" cy="{cy:.1f}" r="4"/>')
    if boxes:
        shapes = []
        for i, box in enumerate(boxes):
            ring = frame.xy(_box_ring(box))
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in ring[:-1])
            shapes.append(f'<polygon class="wb-chip" data-position="{i}" points="{points}"/>')
        out.append(f'<g class="wb-chips">{"".join(shapes)}</g>')
    if title:
        out.append(f'<text class="wb-map-title" x="4" y="11">{html.escape(title)}</text>')
    out.append("</svg>")
    return "".join(out)


def location_svg(
    bounds: Sequence[float],
    *,
    footprint: np.ndarray | None = None,
    boxes: Sequence[Sequence[float]] = (),
    width: float = 260,
) -> str:
    """Draw the location view: data and chips over the base map, and where on Earth they are.

    Data spanning less than 2 degrees gets a second, wider map (a locator with the country
    around it) before the detailed one.

    Parameters
    ----------
    bounds : (west, south, east, north)
        The data's lon/lat bounds.
    footprint : (N, 2) array, optional
        The data's outline (default: the bounds' box).
    boxes : sequence of (west, south, east, north)
        Chip outlines, by thumbnail position.
    width : float
        Width of each map in pixels.
    """
    west, south, east, north = (float(v) for v in bounds)
    ring = _box_ring(bounds) if footprint is None else np.asarray(footprint, dtype=float)
    detail = context_window(bounds, margin=0.15, min_span=0.0)
    maps = []
    if max(east - west, north - south) < 2.0:
        locator = context_window(bounds, margin=1.0, min_span=8.0)
        maps.append(svg_map(locator, width=width, footprint=ring, marker=True, title="where"))
    maps.append(svg_map(detail, width=width, footprint=ring, boxes=boxes, title="chips"))
    return "".join(maps)
