"""One box validator: queries, covers, AOIs and the map widget accept and refuse the same boxes."""

from __future__ import annotations

import pytest

from workbench.errors import AOIError, GeocodeError, QueryError
from workbench.geo.aoi import to_geometry
from workbench.geo.bbox import check_bbox
from workbench.geo.cover import cover

FIJI = (177.0, -19.0, -179.0, -16.0)  # across the antimeridian, west > east


def test_every_caller_takes_a_box_across_the_antimeridian():
    assert check_bbox(FIJI) == FIJI
    assert check_bbox(FIJI, error=QueryError) == FIJI
    cells = cover(FIJI, "geohash", 2)
    assert cells
    assert all(c[0] in "r2" for c in cells)
    west, _south, east, _north = to_geometry(FIJI).bounds
    assert (west, east) == (177.0, 181.0)  # one polygon, on past 180 degrees east


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        ((0, 1, 2), "4 numbers"),
        (("a", 0, 1, 1), "4 numbers"),
        ((0, float("nan"), 1, 1), "finite"),
        ((14, 46, 15, 45), r"south 46.0 is north of north 45.0.*\(14.0, 45.0, 15.0, 46.0\)"),
        ((200, 45, 210, 46), r"west must be within \[-180, 180\].*west > east"),
        ((465300, 5079500, 465600, 5079800), r"not in degrees.*projected CRS"),
        ((0, -91, 1, 0), r"south must be within \[-90, 90\]"),
    ],
)
@pytest.mark.parametrize("error", [QueryError, GeocodeError, AOIError])
def test_bad_boxes_are_refused_alike_with_each_callers_error(bbox, message, error):
    with pytest.raises(error, match=message):
        check_bbox(bbox, error=error)
    assert issubclass(error, ValueError)


def test_projected_boxes_and_boxes_without_area():
    assert check_bbox((500_000, 5e6, 510_000, 5.01e6), geographic=False) == (
        500_000.0, 5e6, 510_000.0, 5.01e6,
    )  # fmt: skip
    with pytest.raises(AOIError, match="only for lon/lat boxes"):
        check_bbox((510_000, 5e6, 500_000, 5.01e6), geographic=False)
    assert check_bbox((1, 2, 1, 2)) == (1.0, 2.0, 1.0, 2.0)  # a point: fine for a query
    with pytest.raises(AOIError, match="no area"):
        check_bbox((1, 2, 1, 2), require_area=True)
