"""workbench.geo.aoi: parsing every AOI form, reprojection, and the errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import Polygon, box, mapping

from workbench.errors import AOIError
from workbench.geo.aoi import (
    describe_bounds,
    is_rectangle,
    parse_aoi,
    reproject_geometry,
    to_geometry,
)

TRIANGLE = {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [0, 4], [0, 0]]]}


def test_bounds_tuple_and_antimeridian():
    assert to_geometry((-10, 50, 2, 58)).equals(box(-10, 50, 2, 58))
    assert to_geometry(np.array([-10, 50, 2, 58])).equals(box(-10, 50, 2, 58))
    # west > east crosses the antimeridian: one polygon reaching beyond 180
    assert to_geometry((170, -10, -170, 10)).bounds == (170.0, -10.0, 190.0, 10.0)


def test_geojson_forms_give_the_same_geometry():
    feature = {"type": "Feature", "properties": {"name": "t"}, "geometry": TRIANGLE}
    collection = {"type": "FeatureCollection", "features": [feature]}
    for form in (
        TRIANGLE,
        feature,
        collection,
        json.dumps(feature),
        shapely.geometry.shape(TRIANGLE),
    ):
        geom = to_geometry(form)
        assert geom.geom_type == "Polygon"
        assert geom.area == pytest.approx(8.0)


def test_feature_collection_is_the_union():
    a = {"type": "Feature", "properties": {}, "geometry": mapping(box(0, 0, 1, 1))}
    b = {"type": "Feature", "properties": {}, "geometry": mapping(box(2, 0, 3, 1))}
    geom = to_geometry({"type": "FeatureCollection", "features": [a, b]})
    assert geom.geom_type == "MultiPolygon"
    assert geom.area == pytest.approx(2.0)


def test_geo_interface_and_widget_mappings():
    class Drawn:
        __geo_interface__ = TRIANGLE

    assert to_geometry(Drawn()).area == pytest.approx(8.0)
    assert to_geometry({"geojson": TRIANGLE, "bounds": (0, 0, 4, 4)}).area == pytest.approx(8.0)
    assert to_geometry({"bounds": [0, 0, 4, 4]}).equals(box(0, 0, 4, 4))


def test_foreign_crs_by_argument_and_by_geojson_member():
    utm = box(465300, 5079500, 465600, 5079800)
    expected = reproject_geometry(utm, "EPSG:32633", "EPSG:4326")
    by_arg = to_geometry(mapping(utm), crs="EPSG:32633")
    member = dict(
        mapping(utm), crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}
    )
    by_member = to_geometry(member)
    assert by_arg.equals_exact(expected, 1e-12)
    assert by_member.equals_exact(expected, 1e-12)
    geom, crs = parse_aoi(member)
    assert crs.to_epsg() == 32633
    assert geom.equals(utm)


def test_projected_box_without_crs_is_caught():
    with pytest.raises(AOIError, match=r"not in degrees.*projected CRS.*crs='EPSG:32633'"):
        to_geometry((465300, 5079500, 465600, 5079800))


@pytest.mark.parametrize(
    ("aoi", "message"),
    [
        ({"type": "Polygon"}, "malformed GeoJSON Polygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1]]]}, "malformed GeoJSON Polygon"),
        ({"type": "Feature", "properties": {}}, "Feature has no 'geometry'"),
        ({"type": "FeatureCollection", "features": []}, "has no 'features'"),
        ({"type": "Circle", "coordinates": [0, 0]}, "'type' is 'Circle'"),
        ({"coordinates": [0, 0]}, "no 'type' member"),
        ("not json", "must be GeoJSON"),
        ((0, 1, 2), "cannot use tuple"),
        ((0, "a", 1, 2), "4 numbers"),
        ((0, 5, 1, 2), "north of north"),
        ((1, 0, 1, 2), "no area"),
        ((0, 0, float("nan"), 1), "finite"),
        (42, "cannot use int 42 as an AOI"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
    ],
)
def test_malformed_aoi(aoi, message):
    with pytest.raises(AOIError, match=message):
        to_geometry(aoi)


def test_projected_boxes_cannot_cross():
    with pytest.raises(AOIError, match="only for lon/lat boxes"):
        parse_aoi((10, 0, 5, 1), crs="EPSG:32633")


def test_invalid_polygon_is_repaired():
    bowtie = Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    assert not bowtie.is_valid
    geom = to_geometry(bowtie)
    assert geom.is_valid
    assert geom.area == pytest.approx(2.0)


def test_reprojection_follows_curved_edges():
    # a wide lon/lat box in UTM 33N: its south edge (a parallel) sags south at the
    # central meridian (15E), below the corners, which a corners-only transform misses
    wide = box(10.0, 45.0, 20.0, 47.0)
    densified = reproject_geometry(wide, 4326, 32633)
    to_utm = pyproj.Transformer.from_crs(4326, 32633, always_xy=True)
    corners_y = [to_utm.transform(x, y)[1] for x, y in wide.exterior.coords]
    assert densified.bounds[1] < min(corners_y) - 1000  # metres of sag
    _, mid_y = to_utm.transform(15.0, 45.0)
    assert densified.bounds[1] == pytest.approx(mid_y, abs=1.0)


def test_reprojection_outside_area_of_use():
    with pytest.raises(AOIError, match="cannot be transformed"):
        reproject_geometry(box(0, 95, 1, 96), 4326, 32633)


def test_is_rectangle_and_describe():
    assert is_rectangle(box(0, 0, 1, 2))
    assert not is_rectangle(shapely.geometry.shape(TRIANGLE))
    assert not is_rectangle(shapely.Point(0, 0))
    assert describe_bounds((1, 2.5, 3, 4)) == "(1, 2.5, 3, 4)"
