"""cover(bbox): against pygeohash.geohashes_in_box and mercantile.tiles, edges and antimeridian."""

from __future__ import annotations

import mercantile
import numpy as np
import pygeohash as pgh
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from workbench.errors import GeocodeError
from workbench.geo import cover, geohash, quadkey


@st.composite
def boxes(draw: st.DrawFn, max_width: float = 30.0, max_height: float = 20.0) -> tuple[float, ...]:
    west = draw(st.floats(-180.0, 180.0))
    width = draw(st.floats(0.0, max_width))
    south = draw(st.floats(-90.0, 90.0))
    north = min(90.0, south + draw(st.floats(0.0, max_height)))
    east = west + width
    if east > 180.0:
        east -= 360.0  # crosses the antimeridian
    return (west, south, east, north)


def _near_geohash_edge(value: float, step: float, origin: float) -> bool:
    k = (value - origin) / step
    return abs(k - round(k)) * step < 1e-9


@settings(max_examples=150, deadline=None)
@given(boxes(), st.integers(1, 4))
def test_geohash_cover_matches_pygeohash_for_generic_boxes(
    bbox: tuple[float, ...], precision: int
) -> None:
    west, south, east, north = bbox
    assume(west <= east)  # pygeohash has no antimeridian support
    height, width = geohash.cell_size(precision)
    # pygeohash also lists cells that only touch the box; we do not (tested separately)
    assume(not any(_near_geohash_edge(v, width, -180) for v in (west, east)))
    assume(not any(_near_geohash_edge(v, height, -90) for v in (south, north)))
    ref = pgh.geohashes_in_box(pgh.BoundingBox(south, west, north, east), precision=precision)
    assert cover(bbox, "geohash", precision) == sorted(set(ref))


@settings(max_examples=150, deadline=None)
@given(boxes(), st.integers(1, 6))
def test_quadkey_cover_matches_mercantile_tiles(bbox: tuple[float, ...], zoom: int) -> None:
    west, south, east, north = bbox
    ours = cover(bbox, "quadkey", zoom)
    try:
        ref = sorted(
            {mercantile.quadkey(t) for t in mercantile.tiles(west, south, east, north, zoom)}
        )
    except mercantile.InvalidLatitudeError:  # a box wholly beyond +-85.05: mercantile fails
        assert abs(north) > 85 or abs(south) > 85
        edge = quadkey.encode(85.0 if south > 0 else -85.0, 0.0, zoom)
        assert {quadkey.tile(c)[1] for c in ours} == {quadkey.tile(edge)[1]}
        return
    if ref:
        assert ours == ref
    else:  # mercantile gives nothing for a degenerate box on a tile edge; we give its tile
        assert len(ours) >= 1


@settings(max_examples=100, deadline=None)
@given(boxes(max_width=5.0, max_height=5.0), st.integers(1, 4), st.data())
def test_every_point_of_the_box_encodes_into_the_cover(
    bbox: tuple[float, ...], precision: int, data: st.DataObject
) -> None:
    west, south, east, north = bbox
    codes = set(cover(bbox, "geohash", precision))
    lat = data.draw(st.floats(south, north))
    if west <= east:
        lon = data.draw(st.floats(west, east))
    else:
        lon = data.draw(st.one_of(st.floats(west, 180.0), st.floats(-180.0, east)))
    code = geohash.encode(lat, lon, precision)
    # a point on the east/north edge may fall in a cell that only touches the box
    w, s, _e, _n = geohash.bounds(code)
    touching_only = (lon == w and lon == east and west != east) or (
        lat == s and lat == north and south != north
    )
    assert code in codes or touching_only
    # and every listed cell really overlaps the box
    for c in codes:
        _cw, cs, _ce, cn = geohash.bounds(c)
        assert cs <= north
        assert cn >= south


def test_box_equal_to_a_cell_gives_that_cell_only() -> None:
    for code in ("u4pr", "s", "9q8yy", "zzz", "000"):
        assert cover(geohash.bounds(code), "geohash", len(code)) == [code]
    for code in ("0313", "3", "1202"):
        assert cover(quadkey.bounds(code), "quadkey", len(code)) == [code]


def test_touching_cells_are_left_out_but_points_and_lines_are_kept() -> None:
    w, s, e, n = geohash.bounds("u4pr")
    assert cover((w, s, e, n), "geohash", 3) == ["u4p"]
    # a line on the cell's east edge: the cell east of it (the line's points encode there)
    assert cover((e, s, e, n), "geohash", 4) == [geohash.neighbors("u4pr")["e"]]
    point = cover((10.0, 50.0, 10.0, 50.0), "geohash", 6)
    assert point == [geohash.encode(50.0, 10.0, 6)]


def test_antimeridian_geohash() -> None:
    codes = cover((179.0, -1.0, -179.0, 1.0), "geohash", 2)
    assert codes == sorted(codes)
    east_side = cover((179.0, -1.0, 180.0, 1.0), "geohash", 2)
    west_side = cover((-180.0, -1.0, -179.0, 1.0), "geohash", 2)
    assert codes == sorted(set(east_side) | set(west_side))
    assert geohash.encode(0.0, 179.5, 2) in codes
    assert geohash.encode(0.0, -179.5, 2) in codes


def test_world_and_poles() -> None:
    assert len(cover((-180, -90, 180, 90), "geohash", 2)) == 32 * 32
    assert len(cover((-180, -90, 180, 90), "quadkey", 4)) == 4**4
    assert cover((-180, 89.9, 180, 90), "quadkey", 1) == ["0", "1"]  # clamped to the Mercator edge
    assert set(cover((-180, 89.0, 180, 90), "geohash", 1)) == set("bcfguvyz")
    assert cover((0.0, -90.0, 0.0, -90.0), "quadkey", 1) == ["3"]  # mercantile.tiles raises here
    assert cover((0.0, 86.0, 10.0, 90.0), "quadkey", 2) == ["10"]


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ((0, 0, 1), "4 numbers"),
        ((0, 1, 1, 0), "south"),
        ((0, -91, 1, 0), "south must be within"),
        ((0, 0, 181, 1), "antimeridian is written with west > east"),
        ((0, float("nan"), 1, 1), "finite"),
        (("a", 0, 1, 1), "4 numbers"),
    ],
)
def test_bad_boxes(bbox: tuple[float, ...], match: str) -> None:
    with pytest.raises(GeocodeError, match=match):
        cover(bbox, "geohash", 3)


def test_bad_scheme_precision_and_too_many_cells() -> None:
    with pytest.raises(GeocodeError, match="unknown geocode scheme 'h3'"):
        cover((0, 0, 1, 1), "h3", 3)
    with pytest.raises(GeocodeError, match=r"precision must be in 1\.\.12"):
        cover((0, 0, 1, 1), "geohash", 13)
    with pytest.raises(GeocodeError, match="max_cells"):
        cover((-180, -90, 180, 90), "geohash", 6)
    assert len(cover((0, 0, 1, 1), "geohash", 5, max_cells=1_000)) == len(
        np.unique(geohash.encode(*np.meshgrid(np.linspace(0, 1, 200), np.linspace(0, 1, 200)), 5))
    )
