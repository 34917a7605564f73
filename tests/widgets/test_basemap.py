"""The packaged offline base map: Natural Earth lines decode to the right places, stay small."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import AOIError
from workbench.widgets import basemap


def test_the_packaged_file_is_small_and_documented():
    assert basemap.DATA_FILE.stat().st_size < 400_000
    provenance = (basemap.DATA_FILE.parent / "PROVENANCE.md").read_text()
    assert "Natural Earth" in provenance
    assert "public domain" in provenance.lower()


@pytest.mark.parametrize("name", basemap.LAYERS)
def test_world_lines_are_lon_lat_without_frame_edges(name):
    lines = basemap.world_lines(name, tolerance=0.0)
    points = np.concatenate(lines)
    assert len(points) > 10_000
    assert points[:, 0].min() >= -180
    assert points[:, 0].max() <= 180
    assert points[:, 1].min() >= -90
    assert points[:, 1].max() <= 84
    for line in lines:  # no straight edge along the antimeridian or the pole closes land
        frame = (np.abs(line[:, 0]) > 179.99) | (line[:, 1] < -89.99)
        assert not (frame[:-1] & frame[1:]).any()


def test_lines_are_where_the_coast_and_borders_are():
    # Slovenia's coast (Gulf of Trieste, about 13.6 E 45.5 N) and its land borders
    window = (13.3, 45.3, 16.7, 46.9)
    coast = np.concatenate(basemap.context_lines("coastlines", window))
    assert ((np.abs(coast[:, 0] - 13.65) < 0.3) & (np.abs(coast[:, 1] - 45.55) < 0.2)).any()
    borders = np.concatenate(basemap.context_lines("countries", window))
    assert len(borders) > 50
    # clipped to the window, simplified but not to nothing
    assert borders[:, 0].min() >= window[0] - 1e-9
    assert borders[:, 1].max() <= window[3] + 1e-9
    none = basemap.context_lines("coastlines", (20.0, 48.0, 21.0, 49.0))  # inland Slovakia
    assert none == []


def test_world_lines_leave_out_a_window():
    window = (-12.0, 48.0, 4.0, 62.0)
    outside = np.concatenate(basemap.world_lines("coastlines", outside=window))
    inside = (
        (outside[:, 0] > window[0] + 0.01)
        & (outside[:, 0] < window[2] - 0.01)
        & (outside[:, 1] > window[1] + 0.01)
        & (outside[:, 1] < window[3] - 0.01)
    )
    assert not inside.any()


def test_graticule_steps_and_labels():
    grid = basemap.graticule((-14.0, 47.0, 10.0, 56.0))
    assert grid.step == 5.0
    assert grid.meridians == (-10.0, -5.0, 0.0, 5.0, 10.0)
    assert grid.parallels == (50.0, 55.0)
    texts = [t for _, t in grid.labels]
    assert texts == ["10°W", "5°W", "0°", "5°E", "10°E", "50°N", "55°N"]
    fine = basemap.graticule((14.54, 45.86, 14.58, 45.88))
    assert fine.step == 0.01
    assert basemap.format_lat(45.87, fine.step) == "45.87°N"
    feature = grid.geojson()
    assert feature["geometry"]["type"] == "MultiLineString"
    assert len(feature["geometry"]["coordinates"]) == 7


@pytest.mark.parametrize(
    "window", [(1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 1.0, 1.0), (0.0, 0.0, float("nan"), 1.0)]
)
def test_bad_windows_are_aoi_errors(window):
    with pytest.raises(AOIError, match="west < east"):
        basemap.context_lines("coastlines", window)


def test_unknown_layer_is_an_aoi_error():
    with pytest.raises(AOIError, match="rivers"):
        basemap.context_lines("rivers", (0.0, 0.0, 1.0, 1.0))
