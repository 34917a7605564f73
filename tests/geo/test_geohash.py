"""Geohashes against pygeohash: every point, cell edges, poles, antimeridian, bad input."""

from __future__ import annotations

import math

import numpy as np
import pygeohash as pgh
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import GeocodeError
from workbench.geo import geohash

lats = st.floats(-90.0, 90.0, allow_nan=False)
lons = st.floats(-180.0, 180.0, allow_nan=False)
precisions = st.integers(1, 12)


def _edge_points(precision: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points exactly on cell edges and one ulp either side of them."""
    rng = np.random.default_rng(seed)
    height, width = geohash.cell_size(precision)
    lat = -90.0 + rng.integers(0, round(180 / height) + 1, n) * height
    lon = -180.0 + rng.integers(0, round(360 / width) + 1, n) * width
    lat_all = np.concatenate([lat, np.nextafter(lat, -np.inf), np.nextafter(lat, np.inf)])
    lon_all = np.concatenate([lon, np.nextafter(lon, np.inf), np.nextafter(lon, -np.inf)])
    return np.clip(lat_all, -90, 90), np.clip(lon_all, -180, 180)


@settings(max_examples=300, deadline=None)
@given(lats, lons, precisions)
def test_encode_matches_pygeohash(lat: float, lon: float, precision: int) -> None:
    assert geohash.encode(lat, lon, precision) == pgh.encode(lat, lon, precision)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(lats, lons), min_size=1, max_size=50), precisions)
def test_vectorised_encode_matches_scalar(
    points: list[tuple[float, float]], precision: int
) -> None:
    lat, lon = np.array(points).T
    codes = geohash.encode(lat, lon, precision)
    assert codes.shape == lat.shape
    assert codes.tolist() == [pgh.encode(float(a), float(b), precision) for a, b in points]


@pytest.mark.parametrize("precision", range(1, 13))
def test_cell_edges_and_ulp_neighbours_match_pygeohash(precision: int) -> None:
    lat, lon = _edge_points(precision, 400, seed=precision)
    ours = geohash.encode(lat, lon, precision)
    ref = [pgh.encode(float(a), float(b), precision) for a, b in zip(lat, lon, strict=True)]
    assert ours.tolist() == ref


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (90.0, 180.0, "zzzzzz"),  # north-east corner: the last row and column
        (-90.0, -180.0, "000000"),
        (90.0, -180.0, "bpbpbp"),
        (-90.0, 180.0, "pbpbpb"),
        (0.0, 0.0, "s00000"),  # a midpoint goes to the upper half on both axes
        (-0.0, -0.0, "s00000"),
        (0.0, -1e-300, "ebpbpb"),  # just west of Greenwich on the equator
        (5e-324, 180.0, "xbpbpb"),
    ],
)
def test_poles_antimeridian_and_origin(lat: float, lon: float, expected: str) -> None:
    assert geohash.encode(lat, lon, 6) == expected == pgh.encode(lat, lon, 6)


def test_scalar_in_str_out_array_in_array_out() -> None:
    assert type(geohash.encode(1.0, 2.0, 5)) is str
    assert type(geohash.encode(np.float32(1.0), np.int64(2), 5)) is str
    out = geohash.encode(np.zeros((2, 3)), 10.0, 4)  # broadcasting
    assert isinstance(out, np.ndarray)
    assert out.shape == (2, 3)
    assert out.dtype == np.dtype("<U4")
    assert geohash.encode([], [], 3).shape == (0,)


@settings(max_examples=200, deadline=None)
@given(lats, lons, precisions)
def test_decode_and_bounds_match_pygeohash(lat: float, lon: float, precision: int) -> None:
    code = geohash.encode(lat, lon, precision)
    assert geohash.decode(code) == tuple(pgh.decode(code))
    west, south, east, north = geohash.bounds(code)
    ref = pgh.get_bounding_box(code)
    assert (south, west, north, east) == (ref.min_lat, ref.min_lon, ref.max_lat, ref.max_lon)
    # the point lies in its (half-open, except at 90/180) cell
    assert south <= lat <= north
    assert west <= lon <= east
    assert lat < north or lat == 90.0
    assert lon < east or lon == 180.0


def test_vectorised_decode_and_bounds() -> None:
    codes = np.array([["u4pr", "s000"], ["zzzz", "0000"]])
    lat, lon = geohash.decode(codes)
    assert lat.shape == (2, 2)
    for code, a, b in zip(codes.ravel(), lat.ravel(), lon.ravel(), strict=True):
        assert (a, b) == geohash.decode(str(code))
    west, south, east, north = geohash.bounds(codes)
    assert np.all(east > west)
    assert np.all(north > south)


def test_decode_is_case_insensitive_like_pygeohash() -> None:
    assert geohash.decode("U4PRUYD") == geohash.decode("u4pruyd") == tuple(pgh.decode("U4PRUYD"))


def test_children_and_parent() -> None:
    kids = geohash.children("u4p")
    assert len(kids) == 32
    assert kids == sorted(kids)
    west, south, east, north = geohash.bounds("u4p")
    for kid in kids:
        w, s, e, n = geohash.bounds(kid)
        assert west <= w < e <= east
        assert south <= s < n <= north
        assert geohash.parent(kid) == "u4p"
    # the children tile the parent: total area equals the parent's
    area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in map(geohash.bounds, kids))
    assert math.isclose(area, (east - west) * (north - south))
    assert geohash.parent("u4pruyd", 2) == "u4"
    with pytest.raises(GeocodeError, match="maximum precision"):
        geohash.children("u4pruydqqvjz")
    with pytest.raises(GeocodeError, match="parent precision"):
        geohash.parent("u4", 2)


_PGH_DIRECTION = {"n": "top", "s": "bottom", "e": "right", "w": "left"}


def _pgh_neighbor(code: str, key: str) -> str | None:
    out = code
    try:
        for letter in key:
            out = pgh.get_adjacent(out, _PGH_DIRECTION[letter])
    except ValueError:  # beyond a pole
        return None
    return out


@settings(max_examples=200, deadline=None)
@given(lats, lons, precisions)
def test_neighbors_match_pygeohash(lat: float, lon: float, precision: int) -> None:
    code = geohash.encode(lat, lon, precision)
    ours = geohash.neighbors(code)
    expected = {k: _pgh_neighbor(code, k) for k in geohash.DIRECTIONS}
    assert ours == {k: v for k, v in expected.items() if v is not None}
    assert list(ours) == [k for k in geohash.DIRECTIONS if k in ours]


def test_neighbors_at_poles_and_antimeridian() -> None:
    # top-right cell at precision 2: wraps east across 180, nothing north of the pole row
    top_east = geohash.encode(89.0, 179.0, 2)
    nb = geohash.neighbors(top_east)
    assert set(nb) == {"e", "se", "s", "sw", "w"}
    assert nb["e"] == geohash.encode(89.0, -179.0, 2)
    assert nb["se"] == geohash.encode(80.0, -179.0, 2)
    bottom_west = geohash.encode(-89.0, -179.0, 3)
    nb = geohash.neighbors(bottom_west)
    assert set(nb) == {"n", "ne", "e", "w", "nw"}
    assert nb["w"] == geohash.encode(-89.0, 179.99, 3)
    # an ordinary cell has 8 distinct neighbours around it
    nb = geohash.neighbors("u4pruyd")
    assert len(set(nb.values())) == 8
    assert "u4pruyd" not in nb.values()


@pytest.mark.parametrize(
    ("lat", "lon", "precision", "match"),
    [
        (float("nan"), 0.0, 5, "latitude must be within"),
        (0.0, float("nan"), 5, "longitude must be within"),
        (90.000001, 0.0, 5, r"got 90.000001"),
        (0.0, 180.5, 5, "Wrap longitudes"),
        (0.0, -math.inf, 5, "longitude"),
        (0.0, 0.0, 0, r"precision must be in 1..12, got 0"),
        (0.0, 0.0, 13, "got 13"),
        (0.0, 0.0, 5.0, "must be an integer"),
        (0.0, 0.0, True, "must be an integer"),
        (True, 0.0, 5, "boolean"),
        ("north", 0.0, 5, "numeric"),
    ],
)
def test_encode_rejects_bad_input(lat: object, lon: object, precision: object, match: str) -> None:
    with pytest.raises(GeocodeError, match=match):
        geohash.encode(lat, lon, precision)  # type: ignore[arg-type]


def test_array_errors_name_the_first_bad_value_and_count() -> None:
    with pytest.raises(GeocodeError, match=r"got 95.0 at index \(2,\) \(2 invalid value"):
        geohash.encode([0.0, 1.0, 95.0, np.nan], 0.0, 5)
    assert issubclass(GeocodeError, ValueError)


@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("u4pa", "invalid character 'a' at position 3"),
        ("", "1..12 characters"),
        ("u4pruydqqvjzz", "1..12 characters"),
        ("u4 p", "invalid character ' '"),
        ("u4é", "invalid character"),
        (42, "must be str"),
    ],
)
def test_decode_rejects_bad_codes(code: object, match: str) -> None:
    with pytest.raises(GeocodeError, match=match):
        geohash.decode(code)  # type: ignore[arg-type]
    if isinstance(code, str) and code:
        with pytest.raises(GeocodeError):
            geohash.neighbors(code)


def test_array_decode_rejects_bad_codes() -> None:
    with pytest.raises(GeocodeError, match="invalid character 'o' at position 1 of geohash 'uo'"):
        geohash.decode(np.array(["u4", "uo"]))
    with pytest.raises(GeocodeError, match="equal length"):
        geohash.decode(np.array(["u4", "u4p"]))
    with pytest.raises(GeocodeError, match="must be str"):
        geohash.bounds(np.array([1, 2]))


def test_cell_size() -> None:
    assert geohash.cell_size(1) == (45.0, 45.0)
    assert geohash.cell_size(12) == (180 / 2**30, 360 / 2**30)
    with pytest.raises(GeocodeError):
        geohash.cell_size(0)
