"""AOIMap in Python, without a browser: traits, callbacks, clipping, chip overlay, fallbacks."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

import workbench  # noqa: F401  # registers the .wb accessor
from workbench.data.synthetic import era5_like, s2_like
from workbench.errors import AOIError, MissingDependencyError
from workbench.testing import requires

pytestmark = requires("ipyleaflet")

pytest.importorskip("ipyleaflet", reason="the jupyter extra is not installed")
aoi_mod = pytest.importorskip("workbench.widgets.aoi")
AOIMap = aoi_mod.AOIMap
geojson_mod = pytest.importorskip("workbench.widgets._geojson")


def browser_draw(m, *features):
    """What the front end does when a shape is drawn: a state update of the draw layer."""
    m.draw_control.set_state({"data": [dict(f) for f in features]})


def rect(west, south, east, north):
    feature = aoi_mod.bbox_feature((west, south, east, north))
    feature["properties"] = {"style": {"color": "#e8590c"}}  # as Leaflet.draw sends it
    return feature


@pytest.fixture(scope="module")
def era():
    return era5_like(time=3, lat=32, lon=48)  # (-10, 50, 2, 58) at 0.25 deg


@pytest.fixture(scope="module")
def era_map(era):
    return era.wb.map()


@pytest.fixture
def m(era_map):
    era_map.clear_aoi()
    return era_map


def test_map_draws_footprint_and_offline_preview(m, era):
    kinds = [type(layer).__name__ for layer in m.layers]
    # no TileLayer: nothing fetched from the internet; context under the data, outlines on top
    assert kinds == ["Polyline", "Polyline", "LayerGroup", "ImageOverlay", "GeoJSON"]
    assert [layer.name for layer in m.layers] == [
        "coastlines", "countries", "graticule", "preview", "footprint"
    ]  # fmt: skip
    assert m.preview_layer.url.startswith("data:image/png;base64,")
    (south, west), (north, east) = m.preview_layer.bounds
    assert (west, south, east, north) == pytest.approx(era.wb.bounds)
    assert m.footprint_layer.data["geometry"]["type"] == "Polygon"
    assert -10 < m.center[1] < 2
    assert 50 < m.center[0] < 58
    assert m.zoom >= 4
    assert {type(c).__name__ for c in m.controls} >= {"DrawControl", "WidgetControl"}
    assert m.draw_control.rectangle
    assert m.draw_control.polygon
    assert not m.draw_control.polyline
    assert not m.draw_control.circle
    assert not m.draw_control.marker


def test_basemap_is_opt_in(era):
    with_tiles = AOIMap(era, basemap=True, preview=False)
    kinds = [type(layer).__name__ for layer in with_tiles.layers]
    assert kinds == ["TileLayer", "Polyline", "Polyline", "LayerGroup", "GeoJSON"]
    assert with_tiles.preview_layer is None
    assert with_tiles.legend is None
    bare = AOIMap(era, preview=False, context=False)
    assert [type(layer).__name__ for layer in bare.layers] == ["GeoJSON"]


def test_drawing_updates_traits_and_observers(m):
    seen = []

    def record(change):
        seen.append(change["new"])

    m.observe(record, names="bbox")
    try:
        browser_draw(m, rect(-6.0, 52.0, -2.0, 55.0))
        assert m.bbox == (-6.0, 52.0, -2.0, 55.0)
        assert m.geojson["geometry"]["type"] == "Polygon"
        assert m.aoi["bbox"] == [-6.0, 52.0, -2.0, 55.0]
        assert m.aoi["properties"] == {}
        assert seen == [(-6.0, 52.0, -2.0, 55.0)]
        assert "W -6.0000" in m.status.value
    finally:
        m.unobserve(record, names="bbox")


def test_a_new_shape_replaces_the_old_one(m):
    browser_draw(m, rect(-6.0, 52.0, -2.0, 55.0))
    polygon = {
        "type": "Feature",
        "properties": {"style": {}},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[-8, 51], [-7, 51], [-7.5, 53], [-8, 51]]],
        },
    }
    browser_draw(m, rect(-6.0, 52.0, -2.0, 55.0), polygon)
    assert m.bbox == (-8.0, 51.0, -7.0, 53.0)
    assert len(m.draw_control.data) == 1
    assert m.draw_control.data[0]["geometry"] == polygon["geometry"]
    browser_draw(m)  # the user deletes it
    assert m.bbox is None
    assert m.geojson is None
    with pytest.raises(AOIError, match="draw a rectangle"):
        m.aoi


def test_setting_bbox_in_python_draws_it(m):
    m.bbox = (-4.0, 51.0, 0.0, 53.5)
    assert m.geojson["geometry"]["coordinates"][0][0] == [-4.0, 51.0]
    assert [f["geometry"] for f in m.draw_control.data] == [m.geojson["geometry"]]
    m.bbox = None
    assert m.geojson is None
    assert m.draw_control.data == []


def test_setting_geojson_geometry_in_python(m):
    m.geojson = {"type": "Polygon", "coordinates": [[[0, 55], [1, 55], [1, 56], [0, 55]]]}
    assert m.geojson["type"] == "Feature"
    assert m.bbox == (0.0, 55.0, 1.0, 56.0)


@pytest.mark.parametrize(
    "bad", [(1, 2, 3), (1.0, 50.0, 1.0, 55.0), (0.0, 50.0, 1.0, 95.0), (0, 50, float("nan"), 55)]
)
def test_bad_bbox_is_an_aoi_error(m, bad):
    with pytest.raises(AOIError, match="bbox"):
        m.bbox = bad
    assert m.bbox is None


def test_a_box_across_the_antimeridian_is_drawn_and_read_back(m):
    m.bbox = (170.0, -20.0, -170.0, -10.0)  # Fiji: accepted as by queries, covers and AOIs
    ring = np.asarray(m.geojson["geometry"]["coordinates"][0])
    assert ring[:, 0].min() == 170.0
    assert ring[:, 0].max() == 190.0
    assert m.bbox == (170.0, -20.0, -170.0, -10.0)
    west_copy = [[-190.0, 50.0], [-175.0, 50.0], [-175.0, 52.0], [-190.0, 52.0], [-190.0, 50.0]]
    browser_draw(  # drawn on the copy of the world west of the antimeridian
        m,
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [west_copy]},
        },
    )
    assert m.bbox == (170.0, 50.0, -175.0, 52.0)


def test_bad_geojson_is_an_aoi_error(m):
    with pytest.raises(AOIError, match="GeoJSON"):
        m.geojson = {"type": "Point"}


def test_clip_to_the_drawn_aoi(m, era):
    pytest.importorskip("workbench.data.aoi")
    browser_draw(m, rect(-6.0, 52.0, -2.0, 55.0))
    sub = era.wb.clip(m.aoi)
    assert dict(sub.sizes) == {"time": 3, "lat": 12, "lon": 16}
    west, south, east, north = sub.wb.bounds
    assert (west, south, east, north) == pytest.approx((-6.0, 52.0, -2.0, 55.0))
    assert dict(m.clip().sizes) == dict(sub.sizes)


def test_utm_cube_map_and_clip():
    pytest.importorskip("workbench.data.aoi")
    ds = s2_like(time=2, y=100, x=100)
    m = ds.wb.map(bands=["B04", "B03", "B02"])
    (south, west), (north, east) = m.preview_layer.bounds
    assert (west, south, east, north) == pytest.approx(ds.wb.bounds, abs=1e-9)
    w, s, e, n = ds.wb.bounds
    m.bbox = (w + (e - w) * 0.25, s + (n - s) * 0.25, w + (e - w) * 0.75, s + (n - s) * 0.75)
    sub = ds.wb.clip(m.aoi)
    assert 45 <= sub.sizes["x"] <= 56
    assert 45 <= sub.sizes["y"] <= 56
    sw, _, se, _ = sub.wb.bounds
    assert sw <= m.bbox[0] + 1e-4
    assert se >= m.bbox[2] - 1e-4


def test_show_chips_is_one_layer_with_unique_boxes(era):
    chips_mod = pytest.importorskip("workbench.chips")
    if not hasattr(chips_mod, "ChipSet"):
        pytest.skip("workbench.chips.ChipSet is not there yet")
    m = AOIMap(era, preview=False)
    chips = era.wb.chips({"time": 1, "lat": 8, "lon": 8})
    assert len(chips) == 3 * 4 * 6
    layer = m.show_chips(chips)
    geometry = layer.data["geometry"]
    assert geometry["type"] == "MultiPolygon"
    assert len(geometry["coordinates"]) == 4 * 6
    boxes = np.array(
        [
            aoi_mod.feature_bounds({"type": "Polygon", "coordinates": c})
            for c in geometry["coordinates"]
        ]
    )
    assert boxes[:, 0].min() == pytest.approx(-10.0)
    assert boxes[:, 2].max() == pytest.approx(2.0)
    again = m.show_chips(chips, indices=range(5))
    assert layer not in m.layers
    assert again in m.layers
    assert "chip outlines" in m.status.value


def test_text_fallback_says_what_and_how(m):
    m.bbox = (-6.0, 52.0, -2.0, 55.0)
    text = repr(m)
    assert "EPSG:4326" in text
    assert "footprint (lon/lat): W -10.0000" in text
    assert "AOI: W -6.0000" in text
    assert "pip install 'workbench[jupyter]'" in text
    bundle = m._repr_mimebundle_()
    assert bundle["text/plain"] == text  # not truncated to 110 characters
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_missing_ipyleaflet_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipyleaflet", None)
    monkeypatch.delitem(sys.modules, "workbench.widgets.aoi")
    with pytest.raises(MissingDependencyError, match=r"pip install 'workbench\[jupyter\]'"):
        importlib.import_module("workbench.widgets.aoi")


def test_show_chips_draws_utm_chips_as_their_true_quadrilaterals():
    chips_mod = pytest.importorskip("workbench.chips")
    if not hasattr(chips_mod, "ChipSet"):
        pytest.skip("workbench.chips.ChipSet is not there yet")
    ds = s2_like(time=2, y=256, x=256)
    chips = ds.wb.chips({"time": 1, "y": 64, "x": 64}, variables=["reflectance"])
    m = AOIMap(ds, preview=False)
    rings = m.show_chips(chips).data["geometry"]["coordinates"]
    assert len(rings) == 16  # 32 chips, 16 places
    for i in (0, 5, 15):
        ring = np.asarray(rings[i][0])
        assert ring.shape == (5, 2)
        bbox = (ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max())
        assert bbox == pytest.approx(chips.bounds(i), abs=1e-6)
        assert ring[0, 0] != ring[3, 0]  # UTM grid lines are not meridians here

    class ViewWithoutGrid:  # a duck-typed chip set: only len, obj and selector
        def __init__(self, inner):
            self.inner, self.obj = inner, inner.obj

        def __len__(self):
            return len(self.inner)

        def selector(self, i):
            return self.inner.selector(i)

    assert geojson_mod.chip_polygons(ViewWithoutGrid(chips), range(len(chips))) == rings


def _lines_near(layer, bounds, pad=0.5):
    west, south, east, north = bounds
    points = [p for line in layer.locations for p in line]
    return [
        (lat, lon)
        for lat, lon in points
        if west - pad <= lon <= east + pad and south - pad <= lat <= north + pad
    ]


def test_context_layers_show_the_real_coast_and_borders_offline():
    """Over the UK: Natural Earth's coastline runs through the cube, borders are nearby."""
    ds = era5_like(time=1, lat=48, lon=52)  # (-10, 50, 3, 62)
    ds = ds.assign_coords(lat=np.linspace(61.875, 50.125, 48), lon=np.linspace(-10.875, 1.875, 52))
    m = ds.wb.map()
    layers = {layer.name: layer for layer in m.layers}
    coast = _lines_near(layers["coastlines"], (-5.5, 53.0, -5.0, 58.0))  # west coast of Scotland
    assert len(coast) > 20
    # the Irish border (Northern Ireland / Ireland) crosses about 7.3-8.2 W, 54.0-55.2 N
    border = _lines_near(layers["countries"], (-8.2, 54.0, -6.0, 55.2), pad=0.0)
    assert border
    # all layers are drawn beneath the data: context panes are under Leaflet's overlay pane
    assert m.panes["wb-context"]["zIndex"] < 400
    assert layers["coastlines"].pane == layers["countries"].pane == "wb-context"
    assert m.panes["wb-context"]["pointerEvents"] == "none"


def test_graticule_is_labelled_inside_the_initial_view(era_map):
    group = next(layer for layer in era_map.layers if layer.name == "graticule")
    labels = [layer for layer in group.layers if type(layer).__name__ == "Marker"]
    texts = [marker.title for marker in labels]
    assert any(t.endswith("W") for t in texts)
    assert any(t.endswith("N") for t in texts)
    assert all("°" in t for t in texts)
    # labels lie in what the map shows first, which frames the data with a margin
    west = era_map.footprint.bounds[0]
    lons = [m.location[1] for m in labels]
    assert min(lons) < west
    assert max(lons) > west


def test_initial_view_frames_the_data_with_its_surroundings(era):
    context = pytest.importorskip("workbench.widgets._context")
    m = AOIMap(era, preview=False)
    view = context.view_bounds(m.center, m.zoom, aoi_mod._MAP_SIZE_PX)
    west, south, east, north = era.wb.bounds
    assert view[0] < west
    assert view[2] > east
    assert view[1] < south
    assert view[3] > north
    # the data still fills a good part of it
    assert (east - west) / (view[2] - view[0]) > 0.25


def test_legend_states_variable_units_and_range():
    ds = era5_like(time=2, lat=16, lon=24)
    ds.t2m.attrs.update(units="K", long_name="2 metre temperature")
    m = ds.wb.map()
    text = m.legend.value
    assert "t2m (2 metre temperature)" in text
    assert "[K]" in text
    shown = ds.t2m.isel(time=0).values
    lo, hi = np.nanpercentile(shown, [2, 98])
    low_text = text.split('wb-legend-min">')[1].split("<")[0]
    high_text = text.split('wb-legend-max">')[1].split("<")[0]
    assert float(low_text.replace(",", "")) == pytest.approx(lo, rel=0.02)
    assert float(high_text.replace(",", "")) == pytest.approx(hi, rel=0.02)


def test_an_aoi_given_up_front_is_outlined_and_returned(era):
    m = era.wb.map(aoi=(-6.0, 52.0, -2.0, 55.0), preview=False)
    assert m.aoi["bbox"] == [-6.0, 52.0, -2.0, 55.0]
    assert [f["geometry"] for f in m.draw_control.data] == [m.geojson["geometry"]]
    browser_draw(m, rect(-8.0, 51.0, -7.0, 53.0))  # a drawn shape replaces it
    assert m.aoi["bbox"] == [-8.0, 51.0, -7.0, 53.0]
    with pytest.raises(AOIError, match="aoi must be"):
        era.wb.map(aoi="somewhere", preview=False)
    with pytest.raises(AOIError, match="unknown context layer"):
        era.wb.map(context=["rivers"], preview=False)
