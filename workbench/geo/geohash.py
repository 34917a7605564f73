"""Geohashes: encode, decode, bounds, children and neighbours, vectorised with numpy.

A geohash of precision ``p`` interleaves ``5 p`` bits, longitude first, each bit halving the
current longitude or latitude interval; a point on a midpoint goes to the upper half, so cells
are half-open ``[west, east) x [south, north)`` except the last column and row, which also hold
``lon == 180`` and ``lat == 90``. This is exactly what :mod:`pygeohash` computes, and the tests
check the agreement point by point (poles, antimeridian and cell edges included).

The vectorised encoder computes each axis's integer cell index with one floating-point division,
then corrects it against the exactly representable cell edges (``-180 + 360 i / 2**k`` is exact in
float64 for ``k <= 30``), so the result equals the bit-by-bit bisection, without a Python loop per
point.

Examples
--------
>>> from workbench.geo import geohash
>>> geohash.encode(57.64911, 10.40744, 11)
'u4pruydqqvj'
>>> geohash.bounds("u4pr")
(10.1953125, 57.48046875, 10.546875, 57.65625)
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from workbench.errors import GeocodeError

__all__ = [
    "BASE32",
    "MAX_PRECISION",
    "DIRECTIONS",
    "encode",
    "decode",
    "bounds",
    "children",
    "parent",
    "neighbors",
    "cell_size",
]

#: The geohash alphabet (no ``a``, ``i``, ``l``, ``o``).
BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"
#: Longest geohash: 60 bits (30 per axis), about 3.7 cm x 1.9 cm at the equator.
MAX_PRECISION = 12
#: Order of the keys returned by :func:`neighbors`.
DIRECTIONS: tuple[str, ...] = ("n", "ne", "e", "se", "s", "sw", "w", "nw")
#: ``(dlat, dlon)`` in cells for each direction.
_STEPS: dict[str, tuple[int, int]] = {
    "n": (1, 0),
    "ne": (1, 1),
    "e": (0, 1),
    "se": (-1, 1),
    "s": (-1, 0),
    "sw": (-1, -1),
    "w": (0, -1),
    "nw": (1, -1),
}

_ENCODE_TABLE = np.frombuffer(BASE32.encode("ascii"), dtype=np.uint8)
_ENCODE_TABLE_U32 = _ENCODE_TABLE.astype(np.uint32)  # code points, viewed as UCS4 str
_DECODE_TABLE = np.full(256, -1, dtype=np.int16)
_DECODE_TABLE[_ENCODE_TABLE] = np.arange(32)
_DECODE_TABLE[np.frombuffer(BASE32.upper().encode("ascii"), dtype=np.uint8)] = np.arange(32)


# --------------------------------------------------------------------------------------------
# shared helpers (also used by quadkey, cover and partition)
# --------------------------------------------------------------------------------------------
def _as_float_array(value: Any, name: str) -> NDArray[np.float64]:
    """Return ``value`` as a float64 numpy array (CuPy arrays are copied to the host)."""
    if hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):
        value = value.get()
    if isinstance(value, bool | np.bool_):
        raise GeocodeError(f"{name} must be a number in degrees, got the boolean {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GeocodeError(f"{name} must be numeric degrees, got {value!r}") from exc
    return arr


def _check_range(arr: NDArray[np.float64], name: str, lo: float, hi: float, fix: str) -> None:
    """Raise :class:`GeocodeError` naming the first value outside ``[lo, hi]`` (or NaN)."""
    bad = ~((arr >= lo) & (arr <= hi))  # NaN compares False, so it is bad too
    if bad.any():
        flat = np.flatnonzero(bad.ravel())
        first = float(arr.ravel()[flat[0]])
        where = (
            ""
            if arr.ndim == 0
            else f" at index {tuple(int(i) for i in np.unravel_index(flat[0], arr.shape))}"
        )
        count = "" if arr.ndim == 0 else f" ({flat.size} invalid value(s))"
        raise GeocodeError(
            f"{name} must be within [{lo}, {hi}], got {first!r}{where}{count}. {fix}"
        )


def _check_precision(precision: Any, maximum: int, what: str = "precision") -> int:
    if isinstance(precision, bool | np.bool_) or not isinstance(precision, int | np.integer):
        raise GeocodeError(f"{what} must be an integer in 1..{maximum}, got {precision!r}")
    if not 1 <= int(precision) <= maximum:
        raise GeocodeError(f"{what} must be in 1..{maximum}, got {int(precision)}")
    return int(precision)


def _axis_index(value: NDArray[np.float64], lo: float, hi: float, bits: int) -> NDArray[np.int64]:
    """Cell index of ``value`` on ``[lo, hi]`` cut into ``2**bits`` cells by repeated halving.

    Equal to bisection with ``value >= mid -> upper half``; ``hi`` falls in the last cell.
    """
    n = 1 << bits
    width = hi - lo
    with np.errstate(invalid="ignore"):
        guess = np.floor((value - lo) / width * n)
    idx = np.clip(guess, 0, n - 1).astype(np.int64)
    # Cell edges lo + width * i / n are exact in float64 for bits <= 30: correct the guess.
    edge = lo + width * idx.astype(np.float64) / n
    idx -= value < edge
    upper = lo + width * (idx + 1).astype(np.float64) / n
    idx += (value >= upper) & (idx < n - 1)
    return idx


def _bits(precision: int) -> tuple[int, int]:
    """Return the ``(latitude, longitude)`` bit counts of a geohash of ``precision`` characters."""
    total = 5 * precision
    return total // 2, (total + 1) // 2


def _spread(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Insert a zero bit between each of the 32 low bits of ``x`` (Morton spreading)."""
    x = x & np.uint64(0x00000000FFFFFFFF)
    x = (x | (x << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    x = (x | (x << np.uint64(2))) & np.uint64(0x3333333333333333)
    x = (x | (x << np.uint64(1))) & np.uint64(0x5555555555555555)
    return x


def _compact(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Inverse of :func:`_spread`: keep the even bits of ``x``, packed."""
    x = x & np.uint64(0x5555555555555555)
    x = (x | (x >> np.uint64(1))) & np.uint64(0x3333333333333333)
    x = (x | (x >> np.uint64(2))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    x = (x | (x >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    x = (x | (x >> np.uint64(16))) & np.uint64(0x00000000FFFFFFFF)
    return x


def _interleave(
    ilat: NDArray[np.int64], ilon: NDArray[np.int64], precision: int
) -> NDArray[np.uint64]:
    """Return the ``5 * precision``-bit geohash integer of cell ``(ilat, ilon)``."""
    lat = _spread(ilat.astype(np.uint64))
    lon = _spread(ilon.astype(np.uint64))
    if (5 * precision) % 2 == 0:  # the top bit (a longitude bit) sits on an odd position
        return (lon << np.uint64(1)) | lat
    return lon | (lat << np.uint64(1))


def _deinterleave(
    code: NDArray[np.uint64], precision: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    if (5 * precision) % 2 == 0:
        lon, lat = _compact(code >> np.uint64(1)), _compact(code)
    else:
        lon, lat = _compact(code), _compact(code >> np.uint64(1))
    return lat.astype(np.int64), lon.astype(np.int64)


def _chars_to_str(chars: NDArray[np.uint32]) -> NDArray[np.str_]:
    """``(..., n)`` code points -> ``(...)`` array of ``str`` of length ``n`` (a zero-copy view)."""
    n = chars.shape[-1]
    ucs4 = np.ascontiguousarray(chars, dtype=np.uint32)
    return ucs4.view(f"<U{n}").reshape(chars.shape[:-1])


def _str_to_chars(codes: Any, what: str) -> tuple[NDArray[np.uint8], int]:
    """Array of equal-length ASCII codes -> ``(N, n)`` uint8 matrix and ``n``."""
    arr = np.asarray(codes)
    if arr.dtype.kind not in "US":
        raise GeocodeError(
            f"{what} codes must be str, got {type(codes).__name__} of dtype {arr.dtype}"
        )
    flat = arr.ravel()
    if flat.size == 0:
        return np.zeros((0, 0), dtype=np.uint8), 0
    lengths = np.char.str_len(flat)
    n = int(lengths[0])
    if n == 0 or (lengths != n).any():
        raise GeocodeError(
            f"{what} codes in one array must be non-empty and of equal length; got lengths "
            f"{sorted(set(lengths.tolist()))[:5]}. Group the codes by length first."
        )
    try:
        raw = flat.astype(f"S{n}")
    except UnicodeEncodeError as exc:
        raise GeocodeError(f"{what} codes must be ASCII, got {flat!r}") from exc
    return np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(flat.size, n), n


def _format(ilat: NDArray[np.int64], ilon: NDArray[np.int64], precision: int) -> NDArray[np.str_]:
    """Geohash strings of the cells ``(ilat, ilon)`` (any shape)."""
    code = _interleave(ilat, ilon, precision)
    shifts = np.uint64(5) * np.arange(precision - 1, -1, -1, dtype=np.uint64)
    digits = ((code[..., None] >> shifts) & np.uint64(31)).astype(np.intp)
    return _chars_to_str(_ENCODE_TABLE_U32[digits])


def _cell_index(
    lat: NDArray[np.float64], lon: NDArray[np.float64], precision: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Integer ``(row, column)`` of the cells holding the points (validated input)."""
    lat_bits, lon_bits = _bits(precision)
    return _axis_index(lat, -90.0, 90.0, lat_bits), _axis_index(lon, -180.0, 180.0, lon_bits)


def _parse(code: str) -> tuple[int, int, int]:
    """``(row, column, precision)`` of one geohash string."""
    if not isinstance(code, str):
        raise GeocodeError(f"a geohash must be a str, got {type(code).__name__} {code!r}")
    if not 1 <= len(code) <= MAX_PRECISION:
        raise GeocodeError(
            f"a geohash has 1..{MAX_PRECISION} characters, got {code!r} ({len(code)})"
        )
    value = 0
    for pos, char in enumerate(code):
        digit = _DECODE_TABLE[ord(char)] if ord(char) < 256 else -1
        if digit < 0:
            raise GeocodeError(
                f"invalid character {char!r} at position {pos} of geohash {code!r}; "
                f"valid characters are {BASE32!r}"
            )
        value = (value << 5) | int(digit)
    lat, lon = _deinterleave(np.array([value], dtype=np.uint64), len(code))
    return int(lat[0]), int(lon[0]), len(code)


def _parse_array(codes: Any) -> tuple[NDArray[np.int64], NDArray[np.int64], int, tuple[int, ...]]:
    arr = np.asarray(codes)
    chars, n = _str_to_chars(arr, "geohash")
    if n > MAX_PRECISION:
        raise GeocodeError(f"a geohash has 1..{MAX_PRECISION} characters, got length {n}")
    digits = _DECODE_TABLE[chars]
    if (digits < 0).any():
        row, pos = (int(v[0]) for v in np.nonzero(digits < 0))
        raise GeocodeError(
            f"invalid character {chr(chars[row, pos])!r} at position {pos} of geohash "
            f"{str(arr.ravel()[row])!r}; valid characters are {BASE32!r}"
        )
    code = np.zeros(chars.shape[0], dtype=np.uint64)
    for j in range(n):
        code = (code << np.uint64(5)) | digits[:, j].astype(np.uint64)
    lat, lon = _deinterleave(code, n)
    return lat.reshape(arr.shape), lon.reshape(arr.shape), n, arr.shape


def _edges(ilat: Any, ilon: Any, precision: int) -> tuple[Any, Any, Any, Any]:
    """Exact ``(west, south, east, north)`` of cells (scalars or arrays)."""
    lat_bits, lon_bits = _bits(precision)
    dlat, dlon = 180.0 / (1 << lat_bits), 360.0 / (1 << lon_bits)
    west, south = -180.0 + ilon * dlon, -90.0 + ilat * dlat
    return west, south, west + dlon, south + dlat


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
@overload
def encode(lat: float, lon: float, precision: int) -> str: ...
@overload
def encode(lat: ArrayLike, lon: ArrayLike, precision: int) -> str | NDArray[np.str_]: ...
def encode(lat: ArrayLike, lon: ArrayLike, precision: int) -> str | NDArray[np.str_]:
    """Geohash of points, vectorised.

    Parameters
    ----------
    lat, lon : float or array_like
        Latitude in ``[-90, 90]`` and longitude in ``[-180, 180]`` degrees (broadcast together).
    precision : int
        Number of characters, 1..12.

    Returns
    -------
    str or numpy.ndarray of str
        A ``str`` for scalar input, else an array of the broadcast shape (dtype ``<U{precision}``).

    Raises
    ------
    GeocodeError
        For NaN or out-of-range coordinates (wrap longitudes with ``(lon + 180) % 360 - 180``
        first) and a precision outside 1..12.

    Examples
    --------
    >>> encode(0.0, 0.0, 5), encode(90.0, 180.0, 3), encode(-90.0, -180.0, 3)
    ('s0000', 'zzz', '000')
    >>> encode([46.05, 46.06], [14.5, 14.51], 6).tolist()
    ['u24mcz', 'u24q40']
    """
    precision = _check_precision(precision, MAX_PRECISION)
    la, lo = np.broadcast_arrays(
        _as_float_array(lat, "latitude"), _as_float_array(lon, "longitude")
    )
    _check_range(la, "latitude", -90.0, 90.0, "Drop or clip invalid latitudes first.")
    _check_range(lo, "longitude", -180.0, 180.0, "Wrap longitudes with (lon + 180) % 360 - 180.")
    codes = _format(*_cell_index(la, lo, precision), precision)
    if codes.ndim == 0:
        return str(codes[()])
    return codes


@overload
def decode(code: str) -> tuple[float, float]: ...
@overload
def decode(
    code: list[str] | tuple[str, ...] | NDArray[np.str_],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def decode(code: Any) -> tuple[Any, Any]:
    """Centre ``(lat, lon)`` of geohash cells.

    Parameters
    ----------
    code : str or array_like of str
        One geohash, or an array of geohashes of equal length.

    Returns
    -------
    tuple
        ``(lat, lon)`` floats for a ``str``, arrays for an array.

    Raises
    ------
    GeocodeError
        For an empty or too long code or a character outside :data:`BASE32`.

    Examples
    --------
    >>> decode("s0")
    (2.8125, 5.625)
    """
    west, south, east, north = bounds(code)
    return (south + north) * 0.5, (west + east) * 0.5


def bounds(code: Any) -> Any:
    """``(west, south, east, north)`` of geohash cells, in degrees (exact).

    Parameters
    ----------
    code : str or array_like of str
        One geohash, or an array of equal-length geohashes (then four arrays are returned).

    Returns
    -------
    tuple
        ``(west, south, east, north)``.

    Examples
    --------
    >>> bounds("s")
    (0.0, 0.0, 45.0, 45.0)
    """
    if isinstance(code, str):
        ilat, ilon, n = _parse(code)
        w, s, e, nn = _edges(ilat, ilon, n)
        return (float(w), float(s), float(e), float(nn))
    ilat_a, ilon_a, n, _ = _parse_array(code)
    return _edges(ilat_a, ilon_a, n)


def children(code: str) -> list[str]:
    """Return the 32 cells one character longer than ``code``, in sorted (Z) order.

    Raises
    ------
    GeocodeError
        If ``code`` is invalid or already has :data:`MAX_PRECISION` characters.

    Examples
    --------
    >>> children("u")[:3], len(children("u"))
    (['u0', 'u1', 'u2'], 32)
    """
    _parse(code)
    if len(code) >= MAX_PRECISION:
        raise GeocodeError(
            f"geohash {code!r} has the maximum precision {MAX_PRECISION}: no children"
        )
    code = code.lower()
    return [code + c for c in BASE32]


def parent(code: str, precision: int | None = None) -> str:
    """Return the enclosing cell: ``code`` cut to ``precision`` characters (default: one less).

    Examples
    --------
    >>> parent("u4pruyd"), parent("u4pruyd", 2)
    ('u4pruy', 'u4')
    """
    _parse(code)
    precision = len(code) - 1 if precision is None else precision
    if not 1 <= precision < len(code):
        raise GeocodeError(
            f"parent precision must be in 1..{len(code) - 1} for {code!r}, got {precision}"
        )
    return code[:precision].lower()


def neighbors(code: str) -> dict[str, str]:
    """Return the up to 8 adjacent cells, keyed by direction (:data:`DIRECTIONS` order).

    Longitude is cyclic: east of the last column is the first column (across the antimeridian).
    Latitude is not: cells of the top (bottom) row have no ``n``, ``ne``, ``nw`` (``s``, ``se``,
    ``sw``) neighbour, so the dict holds 5 entries there, 8 everywhere else. This matches
    :func:`pygeohash.get_adjacent`, which wraps across the antimeridian and raises at the poles.

    Examples
    --------
    >>> neighbors("u4pruyd")["n"], neighbors("u4pruyd")["e"]
    ('u4pruyf', 'u4pruye')
    >>> neighbors("z")  # the north-east corner cell: wraps east, stops at the pole
    {'e': 'b', 'se': '8', 's': 'x', 'sw': 'w', 'w': 'y'}
    """
    ilat, ilon, n = _parse(code)
    lat_bits, lon_bits = _bits(n)
    rows, cols = 1 << lat_bits, 1 << lon_bits
    out_lat, out_lon, keys = [], [], []
    for key in DIRECTIONS:
        dlat, dlon = _STEPS[key]
        if 0 <= ilat + dlat < rows:
            keys.append(key)
            out_lat.append(ilat + dlat)
            out_lon.append((ilon + dlon) % cols)
    codes = _format(np.array(out_lat, dtype=np.int64), np.array(out_lon, dtype=np.int64), n)
    return dict(zip(keys, codes.tolist(), strict=True))


def cell_size(precision: int) -> tuple[float, float]:
    """``(height, width)`` of a cell in degrees of latitude and longitude.

    Examples
    --------
    >>> cell_size(5)
    (0.0439453125, 0.0439453125)
    """
    precision = _check_precision(precision, MAX_PRECISION)
    lat_bits, lon_bits = _bits(precision)
    return 180.0 / (1 << lat_bits), 360.0 / (1 << lon_bits)
