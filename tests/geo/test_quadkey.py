"""Quadkeys against mercantile: every point, tile edges, the Mercator limit, poles, zoom limit."""

from __future__ import annotations

import math

import mercantile
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import GeocodeError
from workbench.geo import quadkey

lats = st.floats(-90.0, 90.0, allow_nan=False)
lons = st.floats(-180.0, 180.0, allow_nan=False)
zooms = st.integers(1, quadkey.MAX_ZOOM)


def _ref(lat: float, lon: float, zoom: int) -> str:
    """mercantile's quadkey; where it raises (at and within an ulp of the poles), the edge row."""
    try:
        return mercantile.quadkey(mercantile.tile(lon, lat, zoom))
    except mercantile.InvalidLatitudeError:
        assert abs(lat) > 89.9999
        return mercantile.quadkey(mercantile.tile(lon, math.copysign(89.0, lat), zoom))


@settings(max_examples=400, deadline=None)
@given(lats, lons, zooms)
def test_encode_matches_mercantile(lat: float, lon: float, zoom: int) -> None:
    assert quadkey.encode(lat, lon, zoom) == _ref(lat, lon, zoom)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(lats, lons), min_size=1, max_size=50), st.integers(1, 30))
def test_vectorised_encode_matches_mercantile(points: list[tuple[float, float]], zoom: int) -> None:
    lat, lon = np.array(points).T
    assert quadkey.encode(lat, lon, zoom).tolist() == [_ref(a, b, zoom) for a, b in points]


@pytest.mark.parametrize("zoom", [1, 2, 7, 16, 23, 30, 38, 45])
def test_tile_edges_and_ulp_neighbours_match_mercantile(zoom: int) -> None:
    rng = np.random.default_rng(zoom)
    n = 1 << zoom
    ty = rng.integers(0, n, 300)
    tx = rng.integers(0, n, 300)
    edge_lat = np.array(
        [mercantile.ul(int(x), int(y), zoom).lat for x, y in zip(tx, ty, strict=True)]
    )
    edge_lon = tx / n * 360.0 - 180.0
    lat = np.concatenate([edge_lat, np.nextafter(edge_lat, 90), np.nextafter(edge_lat, -90)])
    lon = np.concatenate([edge_lon, np.nextafter(edge_lon, -180), np.nextafter(edge_lon, 180)])
    # high latitudes, where the numpy/libm difference in sin/log matters most
    lat = np.concatenate([lat, rng.uniform(84.0, 85.06, 300), rng.uniform(-85.06, -84.0, 300)])
    lon = np.concatenate([lon, rng.uniform(-180, 180, 600)])
    assert quadkey.encode(lat, lon, zoom).tolist() == [
        _ref(a, b, zoom) for a, b in zip(lat, lon, strict=True)
    ]


def test_beyond_mercator_latitudes_are_clamped_like_mercantile() -> None:
    for lat in (85.06, 89.0, 89.999999, -85.06, -89.99):
        assert quadkey.encode(lat, 10.0, 12) == _ref(lat, 10.0, 12)
    assert quadkey.encode(86.0, 0.0, 3) == "100"  # top row
    assert quadkey.encode(-86.0, 0.0, 3) == "322"  # bottom row


def test_poles_clamp_where_mercantile_raises() -> None:
    with pytest.raises(mercantile.InvalidLatitudeError):
        mercantile.tile(0.0, 90.0, 3)
    assert quadkey.encode(90.0, 0.0, 3) == quadkey.encode(89.9, 0.0, 3) == "100"
    assert quadkey.encode(-90.0, 0.0, 3) == quadkey.encode(-89.9, 0.0, 3) == "322"
    codes = quadkey.encode(np.array([90.0, -90.0, 0.0]), np.array([-180.0, 180.0, 0.0]), 2)
    assert codes.tolist() == ["00", "33", "30"]


def test_clamp_false_rejects_beyond_web_mercator() -> None:
    assert quadkey.encode(quadkey.MAX_LATITUDE, 0.0, 5, clamp=False) == _ref(
        quadkey.MAX_LATITUDE, 0.0, 5
    )
    with pytest.raises(GeocodeError, match="clamp=True"):
        quadkey.encode(85.06, 0.0, 5, clamp=False)
    with pytest.raises(GeocodeError, match=r"index \(1,\)"):
        quadkey.encode([0.0, -89.0], [0.0, 0.0], 5, clamp=False)
    assert math.isclose(quadkey.MAX_LATITUDE, 85.0511287798066)


def test_antimeridian() -> None:
    assert quadkey.encode(0.0, 180.0, 4) == _ref(0.0, 180.0, 4) == "3111"
    assert quadkey.encode(0.0, -180.0, 4) == _ref(0.0, -180.0, 4) == "2000"


def test_zoom_limit_is_where_float64_round_trips_end() -> None:
    """At MAX_ZOOM every tile centre re-encodes to its tile; one zoom deeper none does."""
    rng = np.random.default_rng(0)
    for zoom, expect in ((quadkey.MAX_ZOOM, True), (quadkey.MAX_ZOOM + 1, False)):
        z2 = 2.0**zoom
        tx = rng.integers(0, 1 << zoom, 2000)
        ty = np.concatenate([rng.integers(0, 1000, 1000), rng.integers(0, 1 << zoom, 1000)])
        lon = (tx + 0.5) / z2 * 360.0 - 180.0
        lat = np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * (ty + 0.5) / z2))))
        back = [mercantile.tile(a, b, zoom) for a, b in zip(lon, lat, strict=True)]
        same = [(t.x, t.y) == (x, y) for t, x, y in zip(back, tx, ty, strict=True)]
        assert all(same) if expect else not any(same)
    codes = quadkey.encode(0.0, 0.0, quadkey.MAX_ZOOM)
    assert len(codes) == quadkey.MAX_ZOOM
    with pytest.raises(GeocodeError, match=f"1..{quadkey.MAX_ZOOM}"):
        quadkey.encode(0.0, 0.0, quadkey.MAX_ZOOM + 1)


@settings(max_examples=200, deadline=None)
@given(lats, lons, st.integers(1, 30))
def test_bounds_decode_tile_match_mercantile(lat: float, lon: float, zoom: int) -> None:
    code = quadkey.encode(lat, lon, zoom)
    t = mercantile.quadkey_to_tile(code)
    assert quadkey.tile(code) == (t.x, t.y, t.z)
    assert quadkey.from_tile(t.x, t.y, t.z) == code
    assert quadkey.bounds(code) == tuple(mercantile.bounds(t))
    west, south, east, north = quadkey.bounds(code)
    c_lat, c_lon = quadkey.decode(code)
    assert south < c_lat < north
    assert west < c_lon < east
    assert quadkey.encode(c_lat, c_lon, zoom) == code
    # the point is in its tile, up to mercantile's 1e-14 nudge (3.6e-12 degrees of longitude)
    clamped = min(max(lat, -quadkey.MAX_LATITUDE), quadkey.MAX_LATITUDE)
    assert west - 4e-12 <= lon <= east + 4e-12
    assert south - 1e-9 <= clamped <= north + 1e-9


def test_vectorised_decode_and_bounds() -> None:
    lat, lon = quadkey.decode(np.array(["0313", "1202"]))
    assert lat.shape == (2,)
    assert (float(lat[0]), float(lon[0])) == pytest.approx(quadkey.decode("0313"), abs=1e-12)
    w, s, e, n = quadkey.bounds(np.array([["0313"], ["1202"]]))
    assert w.shape == (2, 1)
    assert (float(w[1, 0]), float(s[1, 0]), float(e[1, 0]), float(n[1, 0])) == pytest.approx(
        quadkey.bounds("1202"), abs=1e-12
    )


def test_children_parent_neighbors_match_mercantile() -> None:
    code = quadkey.encode(46.05, 14.5, 10)
    kids = quadkey.children(code)
    assert set(kids) == {
        mercantile.quadkey(t) for t in mercantile.children(mercantile.quadkey_to_tile(code))
    }
    assert all(quadkey.parent(k) == code for k in kids)
    nb = quadkey.neighbors(code)
    assert len(nb) == 8
    assert set(nb.values()) == {
        mercantile.quadkey(t) for t in mercantile.neighbors(mercantile.quadkey_to_tile(code))
    }
    x, y, z = quadkey.tile(code)
    assert quadkey.tile(nb["n"]) == (x, y - 1, z)  # y grows southwards
    assert quadkey.tile(nb["se"]) == (x + 1, y + 1, z)


def test_neighbors_at_top_row_and_antimeridian() -> None:
    code = quadkey.from_tile(0, 0, 5)  # north-west corner tile
    nb = quadkey.neighbors(code)
    assert set(nb) == {"e", "se", "s", "sw", "w"}
    assert quadkey.tile(nb["w"]) == (31, 0, 5)  # wraps across the antimeridian
    assert quadkey.tile(nb["sw"]) == (31, 1, 5)
    # mercantile gives the same tiles minus the wrapped ones
    ref = {mercantile.quadkey(t) for t in mercantile.neighbors(mercantile.Tile(0, 0, 5))}
    assert ref == {nb["e"], nb["se"], nb["s"]}
    bottom = quadkey.neighbors(quadkey.from_tile(7, 31, 5))
    assert set(bottom) == {"n", "ne", "e", "w", "nw"}
    assert quadkey.neighbors("0") == {"e": "1", "se": "3", "s": "2", "sw": "3", "w": "1"}


@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("0124", "invalid character '4' at position 3"),
        ("", "1..45 digits"),
        ("0" * 46, "1..45 digits"),
        ("01a", "invalid character 'a'"),
        (12, "must be( a)? str"),
    ],
)
def test_bad_codes(code: object, match: str) -> None:
    with pytest.raises(GeocodeError, match=match):
        quadkey.decode(code)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lat", "lon", "zoom", "match"),
    [
        (float("nan"), 0.0, 5, "latitude"),
        (91.0, 0.0, 5, "latitude must be within"),
        (0.0, 181.0, 5, "longitude must be within"),
        (0.0, 0.0, 0, "zoom"),
        (0.0, 0.0, 46, "zoom"),
        (0.0, 0.0, 2.5, "integer"),
    ],
)
def test_bad_points(lat: float, lon: float, zoom: object, match: str) -> None:
    with pytest.raises(GeocodeError, match=match):
        quadkey.encode(lat, lon, zoom)  # type: ignore[arg-type]


def test_from_tile_rejects_missing_tiles() -> None:
    with pytest.raises(GeocodeError, match="does not exist at zoom 2"):
        quadkey.from_tile(4, 0, 2)
    with pytest.raises(GeocodeError, match="maximum zoom"):
        quadkey.children("0" * quadkey.MAX_ZOOM)
