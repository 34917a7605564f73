"""An offline base map: Natural Earth coastlines and country borders, and a labelled graticule.

The lines come from Natural Earth's 1:50m *Admin 0* countries (public domain), packaged with
workbench in ``naturalearth/ne_50m.npz`` (see its ``PROVENANCE.md``): nothing is downloaded,
ever. The widgets draw them under their data: :class:`~workbench.widgets.aoi.AOIMap` as
Leaflet vector layers named ``"coastlines"``, ``"countries"`` and ``"graticule"``, the chip
gallery's location view as SVG (:mod:`workbench.widgets._svgmap`).

Everything here is plain NumPy and shapely, in lon/lat degrees: lines are clipped to a
window and simplified to the scale they are drawn at, so a map sends the browser only what
it can show.

Examples
--------
>>> window = context_window((-6.0, 50.0, 2.0, 53.0))
>>> [round(v) for v in window]
[-14, 47, 10, 56]
>>> coast = context_lines("coastlines", window)
>>> len(coast) > 10, all(line.shape[1] == 2 for line in coast)
(True, True)
>>> grid = graticule(window)
>>> grid.step, grid.labels[:2]
(5.0, [(-10.0, '10°W'), (-5.0, '5°W')])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import AOIError

__all__ = [
    "LAYERS",
    "DATA_FILE",
    "Graticule",
    "context_window",
    "context_lines",
    "world_lines",
    "graticule",
    "nice_step",
    "format_lon",
    "format_lat",
]

#: The Natural Earth line sets packaged with workbench.
LAYERS = ("coastlines", "countries")
#: The packaged lines (Natural Earth 1:50m, quantised; see ``PROVENANCE.md`` beside it).
DATA_FILE = Path(__file__).parent / "naturalearth" / "ne_50m.npz"

_STEPS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
    15.0, 30.0, 60.0,
)  # fmt: skip
_MAX_LAT = 85.0


Bounds = tuple[float, float, float, float]


@functools.cache
def _geometries(name: str) -> Any:
    """Load one packaged line set: a NumPy array of shapely LineStrings, and their STRtree."""
    import shapely

    if name not in LAYERS:
        raise AOIError(f"no base-map layer {name!r}; the packaged ones are {list(LAYERS)}")
    with np.load(DATA_FILE, allow_pickle=False) as archive:
        deltas = archive[f"{name}_deltas"].astype(np.int64)
        offsets = archive[f"{name}_offsets"]
        scale, translate = archive["scale"], archive["translate"]
    total = np.cumsum(deltas, axis=0)
    starts = offsets[:-1]
    before = np.zeros((len(starts), 2), dtype=np.int64)
    before[1:] = total[starts[1:] - 1]
    counts = np.diff(offsets)
    absolute = total - np.repeat(before, counts, axis=0)
    coords = absolute * scale + translate
    lines = shapely.linestrings(coords, indices=np.repeat(np.arange(len(counts)), counts))
    return lines, shapely.STRtree(lines)


def _check_window(window: Sequence[float]) -> Bounds:
    west, south, east, north = (float(v) for v in window)
    if not (west < east and south < north) or not all(
        math.isfinite(v) for v in (west, south, east, north)
    ):
        raise AOIError(
            f"a map window is (west, south, east, north) with west < east and south < north, "
            f"got {tuple(window)!r}"
        )
    return west, south, east, north


def context_window(
    bounds: Sequence[float], *, margin: float = 1.0, min_span: float = 8.0
) -> Bounds:
    """Return a window around ``bounds`` that shows where they are: data plus surroundings.

    Parameters
    ----------
    bounds : (west, south, east, north)
        The data's lon/lat bounds.
    margin : float
        Added on each side, as a multiple of the data's extent.
    min_span : float
        The window spans at least this many degrees each way (a 1 km scene still gets its
        country around it).

    Returns
    -------
    (west, south, east, north)
        Inside [-180, 180] x [-85, 85] (Web Mercator's limit).

    Examples
    --------
    >>> [round(v, 3) for v in context_window((14.55, 45.86, 14.56, 45.87))]
    [10.555, 41.865, 18.555, 49.865]
    """
    west, south, east, north = _check_window(bounds)
    half_w = max((east - west) * (0.5 + margin), min_span / 2)
    half_h = max((north - south) * (0.5 + margin), min_span / 2)
    cx, cy = (west + east) / 2, (south + north) / 2
    return (
        max(-180.0, cx - half_w),
        max(-_MAX_LAT, cy - half_h),
        min(180.0, cx + half_w),
        min(_MAX_LAT, cy + half_h),
    )


def _to_arrays(geoms: Any) -> list[np.ndarray]:
    import shapely

    parts = shapely.get_parts(geoms[~shapely.is_empty(geoms)])
    parts = parts[shapely.get_type_id(parts) == 1]  # LineStrings (clipping may leave points)
    return [shapely.get_coordinates(p) for p in parts if shapely.get_num_points(p) >= 2]


def context_lines(
    name: str, window: Sequence[float], *, tolerance: float | None = None
) -> list[np.ndarray]:
    """Lines of a packaged layer inside ``window``, simplified for drawing at its scale.

    Parameters
    ----------
    name : {"coastlines", "countries"}
        Which line set.
    window : (west, south, east, north)
        Lon/lat window; lines are clipped to it.
    tolerance : float, optional
        Douglas-Peucker tolerance in degrees; default 1/1500 of the window's larger span
        (under a pixel on a map of that window).

    Returns
    -------
    list of numpy.ndarray
        ``(N, 2)`` lon/lat arrays, one per line piece.
    """
    import shapely

    west, south, east, north = _check_window(window)
    lines, tree = _geometries(name)
    hits = lines[tree.query(shapely.box(west, south, east, north))]
    clipped = shapely.clip_by_rect(hits, west, south, east, north)
    tol = max(east - west, north - south) / 1500.0 if tolerance is None else tolerance
    if tol > 0:
        clipped = shapely.simplify(clipped, tol, preserve_topology=False)
    return _to_arrays(clipped)


def world_lines(
    name: str, *, tolerance: float = 0.25, outside: Sequence[float] | None = None
) -> list[np.ndarray]:
    """Return the whole world's lines of a layer, coarsely simplified, optionally minus a window.

    The maps pair it with :func:`context_lines`: full detail around the data, a light world
    outline beyond it for when one zooms out.
    """
    import shapely

    lines, _ = _geometries(name)
    geoms = shapely.simplify(lines, tolerance, preserve_topology=False)
    if outside is not None:
        geoms = shapely.difference(geoms, shapely.box(*_check_window(outside)))
    return _to_arrays(geoms)


def nice_step(span: float, lines: int = 6) -> float:
    """Return the graticule spacing (degrees) that draws at most ``lines`` lines over ``span``.

    Examples
    --------
    >>> nice_step(24.0), nice_step(0.01), nice_step(360.0)
    (5.0, 0.002, 60.0)
    """
    for step in _STEPS:
        if span / step <= lines:
            return step
    return _STEPS[-1]


def _decimals(step: float) -> int:
    for decimals in range(6):
        if abs(round(step, decimals) - step) < 1e-9:
            return decimals
    return 6


def _fmt(value: float, step: float, positive: str, negative: str) -> str:
    text = f"{abs(value):.{_decimals(step)}f}"
    if float(text) == 0.0:
        return f"{text}°"
    return f"{text}°{positive if value > 0 else negative}"


def format_lon(value: float, step: float = 1.0) -> str:
    """Longitude as a label, e.g. ``5°W``, ``0°``, ``14.55°E`` (decimals from ``step``).

    Examples
    --------
    >>> format_lon(-5.0), format_lon(0.0), format_lon(14.55, 0.05), format_lon(180.0)
    ('5°W', '0°', '14.55°E', '180°E')
    """
    return _fmt(value, step, "E", "W")


def format_lat(value: float, step: float = 1.0) -> str:
    """Latitude as a label, e.g. ``50°N``, ``0°``, ``45.87°N``.

    Examples
    --------
    >>> format_lat(50.0), format_lat(-33.5, 0.5)
    ('50°N', '33.5°S')
    """
    return _fmt(value, step, "N", "S")


@dataclass(frozen=True)
class Graticule:
    """Meridians and parallels every ``step`` degrees across a window, with their labels.

    Attributes
    ----------
    window : (west, south, east, north)
    step : float
        Spacing in degrees.
    meridians, parallels : tuple of float
        Longitudes and latitudes of the lines.
    """

    window: Bounds
    step: float
    meridians: tuple[float, ...]
    parallels: tuple[float, ...]

    @property
    def labels(self) -> list[tuple[float, str]]:
        """``(value, text)`` of every meridian, then every parallel."""
        return [(v, format_lon(v, self.step)) for v in self.meridians] + [
            (v, format_lat(v, self.step)) for v in self.parallels
        ]

    def lines(self) -> list[np.ndarray]:
        """Return the lines as ``(2, 2)`` lon/lat arrays (straight on lon/lat or Mercator maps)."""
        west, south, east, north = self.window
        out = [np.array([[lon, south], [lon, north]]) for lon in self.meridians]
        out += [np.array([[west, lat], [east, lat]]) for lat in self.parallels]
        return out

    def geojson(self) -> dict[str, Any]:
        """Return the lines as a GeoJSON MultiLineString Feature."""
        return {
            "type": "Feature",
            "properties": {"name": "graticule", "step_deg": self.step},
            "geometry": {
                "type": "MultiLineString",
                "coordinates": [line.tolist() for line in self.lines()],
            },
        }


def graticule(window: Sequence[float], step: float | None = None, lines: int = 6) -> Graticule:
    """Lay a graticule over ``window`` (default spacing: :func:`nice_step` of its larger span).

    Examples
    --------
    >>> g = graticule((14.4, 45.8, 14.7, 45.95), lines=4)
    >>> g.step, g.meridians, g.parallels
    (0.1, (14.4, 14.5, 14.6, 14.7), (45.8, 45.9))
    """
    west, south, east, north = _check_window(window)
    step = step or nice_step(max(east - west, north - south), lines)

    def values(lo: float, hi: float) -> tuple[float, ...]:
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        return tuple(round(k * step, 6) for k in range(first, last + 1))

    return Graticule((west, south, east, north), step, values(west, east), values(south, north))
