"""The offline context of the AOI map: base-map layers, graticule labels and the colour legend.

Leaflet draws vector layers of one pane in one SVG, in the order they were added; the context
lines therefore get a pane of their own (``wb-context``, z-index 350) between the tile pane
(200) and the overlay pane (400) where the data preview, the footprint, the AOI and the chip
outlines are. Context lines and labels never take the mouse (``pointer-events: none``), so
drawing an AOI on top of them works as before.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench._optional import lazy_import
from workbench.chips.render import COLORMAPS
from workbench.widgets.basemap import (
    LAYERS,
    Graticule,
    context_lines,
    context_window,
    graticule,
    world_lines,
)

if TYPE_CHECKING:
    import ipyleaflet
else:
    ipyleaflet = lazy_import("ipyleaflet", purpose="the AOI map (ds.wb.map())")

__all__ = ["PANES", "STYLES", "context_layers", "view_bounds", "legend_html"]

#: Map panes of the context: under the data (lines) and over it (labels), never clickable.
PANES = {
    "wb-context": {"zIndex": 350, "pointerEvents": "none"},
    "wb-context-labels": {"zIndex": 450, "pointerEvents": "none"},
}
#: Line styles of the context layers (Leaflet path options).
STYLES: dict[str, dict[str, Any]] = {
    "coastlines": {"color": "#2b6cb0", "weight": 1, "opacity": 0.9},
    "countries": {"color": "#6b6b6b", "weight": 1, "opacity": 0.9, "dash_array": "4 3"},
    "graticule": {"color": "#9aa5b1", "weight": 1, "opacity": 0.6, "dash_array": "2 4"},
}
_LABEL_STYLE = (
    "font: 10px/12px var(--jp-ui-font-family, sans-serif); color: #3c4650; white-space: nowrap; "
    "text-align: center"
)


def _locations(lines: Sequence[np.ndarray]) -> list[list[list[float]]]:
    """Leaflet ``[lat, lon]`` lists, rounded to 4 decimals (about 10 m, finer than 1:50m)."""
    return [np.round(line[:, ::-1], 4).tolist() for line in lines]


def _polyline(name: str, lines: Sequence[np.ndarray]) -> Any:
    return ipyleaflet.Polyline(
        locations=_locations(lines), name=name, pane="wb-context", fill=False,
        **STYLES[name],
    )  # fmt: skip


def view_bounds(
    center: Sequence[float], zoom: float, size_px: tuple[int, int]
) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` a Web Mercator map of ``size_px`` shows at a view."""
    lat, lon = center
    scale = 256.0 * 2.0**zoom  # pixels around the world
    half_w, half_h = size_px[0] / 2, size_px[1] / 2
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    def lat_at(dy_px: float) -> float:
        return math.degrees(2 * math.atan(math.exp(y + dy_px * 2 * math.pi / scale)) - math.pi / 2)

    return (
        max(-180.0, lon - half_w * 360.0 / scale),
        max(-85.0, lat_at(-half_h)),
        min(180.0, lon + half_w * 360.0 / scale),
        min(85.0, lat_at(half_h)),
    )


def _label(text: str, lat: float, lon: float, anchor: tuple[int, int]) -> Any:
    width = 7 * len(text) + 6
    icon = ipyleaflet.DivIcon(
        html=f'<div class="wb-graticule-label" style="{_LABEL_STYLE}">{html.escape(text)}</div>',
        icon_size=[width, 14],
        icon_anchor=[anchor[0] if anchor[0] >= 0 else width, anchor[1]],
    )
    return ipyleaflet.Marker(
        location=[lat, lon], icon=icon, draggable=False, keyboard=False, title=text,
        pane="wb-context-labels", name=text,
    )  # fmt: skip


def _graticule_layer(grid: Graticule, view: tuple[float, float, float, float]) -> Any:
    """Build the graticule layer: its lines, and labels just inside ``view``."""
    west, south, east, north = view
    # inside the frame, clear of the draw toolbar (left) and the status line (bottom left)
    at_lon, at_lat = west + 0.07 * (east - west), south + 0.13 * (north - south)
    labels = [
        _label(text, at_lat, lon, (2, 14))
        for lon, text in grid.labels[: len(grid.meridians)]
        if at_lon + 0.05 * (east - west) <= lon <= east - 0.06 * (east - west)
    ]
    labels += [
        _label(text, lat, at_lon, (0, 14))
        for lat, text in grid.labels[len(grid.meridians) :]
        if at_lat + 0.06 * (north - south) <= lat <= north - 0.04 * (north - south)
    ]
    lines = ipyleaflet.Polyline(
        locations=_locations(grid.lines()), name="graticule lines", pane="wb-context",
        fill=False, **STYLES["graticule"],
    )  # fmt: skip
    return ipyleaflet.LayerGroup(layers=[lines, *labels], name="graticule")


def context_layers(
    bounds: Sequence[float],
    view: tuple[float, float, float, float],
    layers: Sequence[str] = (*LAYERS, "graticule"),
) -> list[Any]:
    """Base-map layers around data at ``bounds``: full detail near it, a world outline beyond.

    Parameters
    ----------
    bounds : (west, south, east, north)
        The data's lon/lat bounds.
    view : (west, south, east, north)
        What the map shows initially (graticule spacing and label positions).
    layers : sequence of {"coastlines", "countries", "graticule"}
        Which layers, drawn in this order.

    Returns
    -------
    list of ipyleaflet layers
        Named ``"coastlines"`` and ``"countries"`` (Polylines) and ``"graticule"`` (a
        LayerGroup of lines and labels).
    """
    window = context_window(bounds, margin=2.0, min_span=8.0)
    out = []
    for name in layers:
        if name == "graticule":
            span = max(view[2] - view[0], view[3] - view[1])
            from workbench.widgets.basemap import nice_step

            grid = graticule(window, step=nice_step(span, 5))
            if len(grid.meridians) + len(grid.parallels) > 400:  # a tiny view in a large window
                grid = graticule(context_window(bounds, margin=2.0, min_span=0.0), grid.step)
            out.append(_graticule_layer(grid, view))
        else:
            lines = context_lines(name, window)
            lines += world_lines(name, outside=window)
            out.append(_polyline(name, lines))
    return out


def legend_html(
    title: str,
    units: str | None,
    limits: Sequence[tuple[float, float]],
    cmap: str | None,
    channels: Sequence[str] = (),
    note: str | None = None,
) -> str:
    """Return the preview's colour legend as HTML: what is drawn, its units and colour range.

    One channel gets a colour bar from ``limits[0]``; three (an RGB composite) get one line per
    channel with its stretch limits.

    Examples
    --------
    >>> text = legend_html("t2m (2 metre temperature)", "K", [(271.2, 283.9)], "viridis")
    >>> "271.2" in text and "283.9" in text and "K" in text
    True
    """
    unit = f" [{html.escape(units)}]" if units else ""
    short = title if len(title) <= 60 else title[:57] + "..."
    head = (
        f'<div class="wb-legend-title" style="font-weight:600" title="{html.escape(title)}">'
        f"{html.escape(short)}{unit}</div>"
    )
    if note:
        head += f'<div class="wb-legend-note">{html.escape(note)}</div>'
    if cmap is not None and len(limits) == 1:
        lo, hi = limits[0]
        stops = ", ".join(COLORMAPS.get(cmap, COLORMAPS["viridis"]))
        bar = (
            f'<div class="wb-legend-bar" style="height:10px;width:160px;'
            f'background:linear-gradient(to right, {stops});border:1px solid #999"></div>'
        )
        ticks = (
            '<div style="display:flex;justify-content:space-between;width:162px">'
            f'<span class="wb-legend-min">{_num(lo)}</span>'
            f'<span class="wb-legend-max">{_num(hi)}</span></div>'
        )
        body = bar + ticks
    else:
        colours = ("red", "green", "blue")
        body = "".join(
            f"<div>{colours[i] if i < 3 else i}: {html.escape(name)} "
            f"{_num(limits[i][0])} to {_num(limits[i][1])}{unit}</div>"
            for i, name in enumerate(channels)
        )
    return (
        '<div class="wb-legend" style="padding:3px 6px;font-size:11px;line-height:14px;'
        f'max-width:280px;font-family:var(--jp-ui-font-family, sans-serif)">{head}{body}</div>'
    )


def _num(value: float) -> str:
    """Format a legend number: 4 significant digits, no exponent for everyday magnitudes."""
    if not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
