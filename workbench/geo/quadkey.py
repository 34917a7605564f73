"""Quadkeys (Bing / Web Mercator quad-tiles): encode, decode, bounds, children and neighbours.

A quadkey of length ``z`` names the Web Mercator tile ``(x, y)`` at zoom ``z``: digit ``i`` is
``bit_x + 2 * bit_y`` of the tile indices, most significant first. :func:`encode` reproduces
:func:`mercantile.tile` bit for bit (same float64 formula, including its ``1e-14`` nudge that puts
points within ``1e-14`` of a tile's east or south edge in the next tile), vectorised with numpy.

Latitudes beyond Web Mercator's limit ``+-85.0511287798066`` (:data:`MAX_LATITUDE`) are clamped to
the first or last row, as mercantile does. mercantile raises at exactly ``+-90`` (the projection
diverges there); we clamp the poles too, so every valid latitude has a quadkey. Pass
``clamp=False`` to get a :class:`~workbench.errors.GeocodeError` instead. Longitudes must lie in
``[-180, 180]`` (mercantile would clamp them silently).

Zoom limit: :data:`MAX_ZOOM` is 45, the float64 limit of mercantile's arithmetic: up to zoom 45
every tile's centre decodes and re-encodes to the same tile and tile edges stay distinct; at zoom
46 the ``1e-14`` nudge exceeds half a tile and no centre maps back to its own tile (measured on
200,000 tiles per zoom, near the poles, the equator and the south edge). The nudge moves a
``1e-14 * 2**z`` share of each tile's points into the next tile: ~1e-7 at zoom 23 (Bing's
deepest level), 2e-5 at 31, 7e-4 at 36 and a third of the tile at 45, so zooms past ~36 agree
with mercantile but hardly name "the tile containing the point" any more. The numpy ``sin`` and
``log`` can differ from libm's in the last ulp, so points within that error of a tile edge are
recomputed with :mod:`math`; at zooms past ~40 that is most points and the encoder slows down.

Examples
--------
>>> from workbench.geo import quadkey
>>> quadkey.encode(51.5, -0.12, 10)
'0313131311'
>>> quadkey.bounds("0")
(-180.0, 0.0, 0.0, 85.0511287798066)
"""

from __future__ import annotations

import math
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from workbench.errors import GeocodeError
from workbench.geo.geohash import (
    DIRECTIONS,
    _as_float_array,
    _chars_to_str,
    _check_precision,
    _check_range,
    _spread,
    _str_to_chars,
)

__all__ = [
    "MAX_ZOOM",
    "MAX_LATITUDE",
    "DIRECTIONS",
    "encode",
    "decode",
    "bounds",
    "children",
    "parent",
    "neighbors",
    "tile",
    "from_tile",
]

#: Deepest supported zoom (see the module docstring for why).
MAX_ZOOM = 45
#: Northern edge of Web Mercator, ``atan(sinh(pi))`` in degrees.
MAX_LATITUDE = math.degrees(math.atan(math.sinh(math.pi)))
#: mercantile's nudge towards the next tile (``mercantile.EPSILON``).
_EPSILON = 1e-14
#: ``(dy, dx)`` in tiles for each direction; y grows southwards.
_STEPS: dict[str, tuple[int, int]] = {
    "n": (-1, 0),
    "ne": (-1, 1),
    "e": (0, 1),
    "se": (1, 1),
    "s": (1, 0),
    "sw": (1, -1),
    "w": (0, -1),
    "nw": (-1, -1),
}


def _tile_axis(t: NDArray[np.float64], z2: float) -> NDArray[np.int64]:
    """Mercantile's ``xtile``/``ytile`` rule: clamp at 0 and 1, else floor((t + eps) * 2**z)."""
    with np.errstate(invalid="ignore"):
        scaled = np.floor((t + _EPSILON) * z2)
    out = np.where(t <= 0, 0.0, np.where(t >= 1, z2 - 1, scaled))
    return np.nan_to_num(out, nan=0.0).astype(np.int64)


def _merc_y_scalar(lat: float) -> float:
    """Mercantile's ``y`` of one latitude with the :mod:`math` functions it uses."""
    sinlat = math.sin(math.radians(lat))
    try:
        return 0.5 - 0.25 * math.log((1.0 + sinlat) / (1.0 - sinlat)) / math.pi
    except (ValueError, ZeroDivisionError):  # the poles: y is -inf (north) or +inf (south)
        return -math.inf if lat > 0 else math.inf


def _tile_index(
    lat: NDArray[np.float64], lon: NDArray[np.float64], zoom: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Tile ``(y, x)`` of points (validated input), exactly as :func:`mercantile.tile`."""
    z2 = math.pow(2, zoom)
    x = lon / 360.0 + 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        sinlat = np.sin(np.radians(lat))
        y = 0.5 - 0.25 * np.log((1.0 + sinlat) / (1.0 - sinlat)) / math.pi
    y = np.where(lat >= 90.0, -np.inf, np.where(lat <= -90.0, np.inf, y))
    # numpy's sin/log may differ from libm's in the last ulps: redo points next to a tile edge.
    # The error of y grows like 1 / (1 - |sin(lat)|) towards the poles.
    frac = (y + _EPSILON) * z2
    with np.errstate(divide="ignore", invalid="ignore"):
        tol = 1e-9 + z2 * 1e-15 / np.maximum(1.0 - np.abs(sinlat), 1e-3)
        near = np.isfinite(frac) & (np.abs(frac - np.round(frac)) < tol)
    if near.any():
        y = y.copy()
        y[near] = [_merc_y_scalar(float(v)) for v in lat[near]]
    return _tile_axis(y, z2), _tile_axis(x, z2)


def _format(ty: NDArray[np.int64], tx: NDArray[np.int64], zoom: int) -> NDArray[np.str_]:
    """Quadkey strings of tiles (any shape)."""
    if zoom <= 32:  # interleave x (even bits) and y (odd bits): one base-4 digit per level
        code = _spread(tx.astype(np.uint64)) | (_spread(ty.astype(np.uint64)) << np.uint64(1))
        shifts = np.uint64(2) * np.arange(zoom - 1, -1, -1, dtype=np.uint64)
        digits = ((code[..., None] >> shifts) & np.uint64(3)).astype(np.uint32)
    else:
        levels = np.arange(zoom - 1, -1, -1, dtype=np.int64)
        digits = (((tx[..., None] >> levels) & 1) + 2 * ((ty[..., None] >> levels) & 1)).astype(
            np.uint32
        )
    return _chars_to_str(digits + np.uint32(ord("0")))


def _parse(code: str) -> tuple[int, int, int]:
    """``(y, x, zoom)`` of one quadkey."""
    if not isinstance(code, str):
        raise GeocodeError(f"a quadkey must be a str, got {type(code).__name__} {code!r}")
    if not 1 <= len(code) <= MAX_ZOOM:
        raise GeocodeError(f"a quadkey has 1..{MAX_ZOOM} digits, got {code!r} ({len(code)})")
    x = y = 0
    for pos, char in enumerate(code):
        if char not in "0123":
            raise GeocodeError(
                f"invalid character {char!r} at position {pos} of quadkey {code!r}; "
                "valid digits are '0', '1', '2', '3'"
            )
        d = ord(char) - 48
        x, y = (x << 1) | (d & 1), (y << 1) | (d >> 1)
    return y, x, len(code)


def _parse_any(code: Any) -> tuple[Any, Any, int]:
    """``(y, x, zoom)``: ints for a ``str``, int64 arrays for an array of quadkeys."""
    if isinstance(code, str):
        return _parse(code)
    return _parse_array(code)


def _parse_array(codes: Any) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    arr = np.asarray(codes)
    chars, n = _str_to_chars(arr, "quadkey")
    if n > MAX_ZOOM:
        raise GeocodeError(f"a quadkey has 1..{MAX_ZOOM} digits, got length {n}")
    digits = chars.astype(np.int64) - ord("0")
    bad = (digits < 0) | (digits > 3)
    if bad.any():
        row, pos = (int(v[0]) for v in np.nonzero(bad))
        raise GeocodeError(
            f"invalid character {chr(chars[row, pos])!r} at position {pos} of quadkey "
            f"{str(arr.ravel()[row])!r}; valid digits are '0', '1', '2', '3'"
        )
    weights = np.int64(1) << np.arange(n - 1, -1, -1, dtype=np.int64)
    x = ((digits & 1) * weights).sum(axis=-1)
    y = ((digits >> 1) * weights).sum(axis=-1)
    return y.reshape(arr.shape), x.reshape(arr.shape), n


def _validate_points(
    lat: ArrayLike, lon: ArrayLike, clamp: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    la, lo = np.broadcast_arrays(
        _as_float_array(lat, "latitude"), _as_float_array(lon, "longitude")
    )
    _check_range(la, "latitude", -90.0, 90.0, "Drop or clip invalid latitudes first.")
    _check_range(lo, "longitude", -180.0, 180.0, "Wrap longitudes with (lon + 180) % 360 - 180.")
    if not clamp:
        _check_range(
            la,
            "latitude",
            -MAX_LATITUDE,
            MAX_LATITUDE,
            "Web Mercator ends there; pass clamp=True to use the edge row.",
        )
    return la, lo


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
@overload
def encode(lat: float, lon: float, precision: int, *, clamp: bool = ...) -> str: ...
@overload
def encode(
    lat: ArrayLike, lon: ArrayLike, precision: int, *, clamp: bool = ...
) -> str | NDArray[np.str_]: ...
def encode(
    lat: ArrayLike, lon: ArrayLike, precision: int, *, clamp: bool = True
) -> str | NDArray[np.str_]:
    """Quadkey of the zoom-``precision`` tile holding each point, vectorised.

    Parameters
    ----------
    lat, lon : float or array_like
        Latitude in ``[-90, 90]`` and longitude in ``[-180, 180]`` degrees (broadcast together).
    precision : int
        Zoom level, 1..:data:`MAX_ZOOM`; also the quadkey's length.
    clamp : bool, default True
        Put latitudes beyond ``+-MAX_LATITUDE`` in the edge row (mercantile's behaviour);
        ``False`` raises for them.

    Returns
    -------
    str or numpy.ndarray of str
        A ``str`` for scalar input, else an array of the broadcast shape.

    Raises
    ------
    GeocodeError
        For NaN or out-of-range coordinates, or a zoom outside 1..MAX_ZOOM.

    Examples
    --------
    >>> encode(0.0, 0.0, 1), encode(90.0, -180.0, 2), encode(-90.0, 180.0, 2)
    ('3', '00', '33')
    """
    zoom = _check_precision(precision, MAX_ZOOM, "zoom (precision)")
    la, lo = _validate_points(lat, lon, clamp)
    codes = _format(*_tile_index(la, lo, zoom), zoom)
    if codes.ndim == 0:
        return str(codes[()])
    return codes


def tile(code: str) -> tuple[int, int, int]:
    """``(x, y, z)`` of a quadkey, as :func:`mercantile.quadkey_to_tile`.

    Examples
    --------
    >>> tile("0313131311")
    (511, 340, 10)
    """
    y, x, z = _parse(code)
    return x, y, z


def from_tile(x: int, y: int, z: int) -> str:
    """Quadkey of tile ``(x, y, z)``, as :func:`mercantile.quadkey`.

    Examples
    --------
    >>> from_tile(511, 340, 10)
    '0313131311'
    """
    zoom = _check_precision(z, MAX_ZOOM, "zoom")
    if not (0 <= x < 1 << zoom and 0 <= y < 1 << zoom):
        raise GeocodeError(
            f"tile ({x}, {y}) does not exist at zoom {zoom}: indices are 0..{(1 << zoom) - 1}"
        )
    return str(_format(np.array(y, dtype=np.int64), np.array(x, dtype=np.int64), zoom)[()])


def _lat_of_y(ty: Any, z2: float) -> Any:
    if isinstance(ty, np.ndarray):
        return np.degrees(np.arctan(np.sinh(math.pi * (1 - 2 * ty / z2))))
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * ty / z2))))


def bounds(code: Any) -> Any:
    """``(west, south, east, north)`` of quadkey tiles in degrees, as :func:`mercantile.bounds`.

    Parameters
    ----------
    code : str or array_like of str
        One quadkey, or an array of equal-length quadkeys (then four arrays are returned).

    Examples
    --------
    >>> bounds("3")
    (0.0, -85.0511287798066, 180.0, 0.0)
    """
    ty, tx, z = _parse_any(code)
    z2 = math.pow(2, z)
    west = tx / z2 * 360.0 - 180.0
    east = (tx + 1) / z2 * 360.0 - 180.0
    return west, _lat_of_y(ty + 1, z2), east, _lat_of_y(ty, z2)


@overload
def decode(code: str) -> tuple[float, float]: ...
@overload
def decode(
    code: list[str] | tuple[str, ...] | NDArray[np.str_],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def decode(code: Any) -> tuple[Any, Any]:
    """Centre ``(lat, lon)`` of quadkey tiles: the Web Mercator centre of the tile.

    The latitude is that of the tile's middle row of pixels on a web map, not the mean of its
    north and south edges (tiles are square in Mercator, not in degrees).

    Examples
    --------
    >>> decode("3")
    (-66.51326044311186, 90.0)
    """
    ty, tx, z = _parse_any(code)
    z2 = math.pow(2, z)
    return _lat_of_y(ty + 0.5, z2), (tx + 0.5) / z2 * 360.0 - 180.0


def children(code: str) -> list[str]:
    """Return the 4 tiles one zoom deeper, in quadkey (sorted) order.

    mercantile orders them top-left, top-right, bottom-right, bottom-left; the set is the same.

    Examples
    --------
    >>> children("03")
    ['030', '031', '032', '033']
    """
    _parse(code)
    if len(code) >= MAX_ZOOM:
        raise GeocodeError(f"quadkey {code!r} has the maximum zoom {MAX_ZOOM}: no children")
    return [code + d for d in "0123"]


def parent(code: str, precision: int | None = None) -> str:
    """Return the enclosing tile: ``code`` cut to ``precision`` digits (default: one less).

    Examples
    --------
    >>> parent("0313"), parent("0313", 1)
    ('031', '0')
    """
    _parse(code)
    precision = len(code) - 1 if precision is None else precision
    if not 1 <= precision < len(code):
        raise GeocodeError(
            f"parent zoom must be in 1..{len(code) - 1} for {code!r}, got {precision}"
        )
    return code[:precision]


def neighbors(code: str) -> dict[str, str]:
    """Return the up to 8 adjacent tiles, keyed by direction (``n``, ``ne``, ... ``nw``).

    x is cyclic (across the antimeridian the last column touches the first); y is not, so tiles
    of the top (bottom) row have no northern (southern) neighbours: 5 entries there. At zoom 1
    east and west are the same tile. mercantile's ``neighbors`` gives the same tiles except it
    does not wrap across the antimeridian.

    Examples
    --------
    >>> neighbors("0")
    {'e': '1', 'se': '3', 's': '2', 'sw': '3', 'w': '1'}
    """
    ty, tx, z = _parse(code)
    n = 1 << z
    keys, ys, xs = [], [], []
    for key in DIRECTIONS:
        dy, dx = _STEPS[key]
        if 0 <= ty + dy < n:
            keys.append(key)
            ys.append(ty + dy)
            xs.append((tx + dx) % n)
    codes = _format(np.array(ys, dtype=np.int64), np.array(xs, dtype=np.int64), z)
    return dict(zip(keys, codes.tolist(), strict=True))
