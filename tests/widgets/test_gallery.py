"""ChipGallery in Python, without a browser: bytes on the wire, selection, chip metadata."""

from __future__ import annotations

import io

import numpy as np
import pytest

import workbench  # noqa: F401  # registers the .wb accessor
from workbench.chips.render import PreviewError
from workbench.data.synthetic import era5_like, s2_like
from workbench.testing import requires

pytestmark = requires("anywidget")

pytest.importorskip("anywidget", reason="the jupyter extra is not installed")
gallery_mod = pytest.importorskip("workbench.widgets.gallery")
ChipGallery = gallery_mod.ChipGallery
PIL_Image = pytest.importorskip("PIL.Image")


def needs_chipset():
    chips = pytest.importorskip("workbench.chips")
    if not hasattr(chips, "ChipSet"):
        pytest.skip("workbench.chips.ChipSet is not there yet")


@pytest.fixture
def batch():
    return np.random.default_rng(0).random((6, 3, 16, 16), dtype=np.float32)


def test_images_travel_as_binary_buffers_not_base64(batch):
    from ipywidgets.widgets.widget import _remove_buffers

    g = ChipGallery.from_arrays(batch, bands=[0, 1, 2])
    state, paths, buffers = _remove_buffers(g.get_state())
    assert len(buffers) == 6
    assert paths[0] == ["images", 0]
    assert all(bytes(b).startswith(b"\x89PNG") for b in buffers)
    assert state["images"] == [None] * 6 or all(i is None for i in state["images"])
    img = np.asarray(PIL_Image.open(io.BytesIO(g.images[0])))
    assert img.shape == (16, 16, 3)


def test_selection_sets_info_and_fires_observers(batch):
    meta = [
        {"index": 10 + i, "bounds": [i, 0.0, i + 1.0, 1.0], "geocode": f"u0{i}"} for i in range(6)
    ]
    g = ChipGallery.from_arrays(batch, labels=[f"#{10 + i}" for i in range(6)], meta=meta)
    seen = []
    g.observe(lambda change: seen.append(change["new"]), names="info")
    g.set_state({"selected": 3})  # what a click in the browser sends
    assert g.selected == 3
    assert g.selected_index == 13
    assert g.info == {
        "position": 3,
        "index": 13,
        "bounds": [3, 0.0, 4.0, 1.0],
        "geocode": "u03",
        "label": "#13",
    }
    assert seen[-1] == g.info
    g.set_state({"selected": None})
    assert g.info == {}
    assert g.selected_index is None


def test_invalid_input_is_a_preview_error(batch):
    with pytest.raises(PreviewError, match="labels has 2 entries but there are 6 images"):
        ChipGallery.from_arrays(batch, labels=["a", "b"])
    with pytest.raises(PreviewError, match="not a PNG"):
        ChipGallery(images=[b"GIF89a..."])
    g = ChipGallery.from_arrays(batch)
    with pytest.raises(PreviewError, match="selected=6 is not a thumbnail position"):
        g.selected = 6


def test_text_fallback_and_standalone_html(batch):
    g = ChipGallery.from_arrays(batch, title="six chips")
    text = repr(g)
    assert "6 thumbnails (16x16 px): six chips" in text
    assert "pip install 'workbench[jupyter]'" in text
    g.selected = 1
    assert "selected 1" in repr(g)
    page = g.to_html()
    assert page.count("<img") == 6
    assert "data:image/png;base64," in page


def test_from_chips_on_an_era5_cube():
    needs_chipset()
    ds = era5_like(time=4, lat=32, lon=64)
    chips = ds.wb.chips({"time": 1, "lat": 16, "lon": 16})
    g = ChipGallery.from_chips(chips, n=10, stretch="global")
    assert len(g.images) == 10
    assert g.labels[0] == "#0"
    assert g.labels[-1] == f"#{len(chips) - 1}"
    assert g.title.startswith(f"10 of {len(chips)} chips")
    assert "t2m" in g.title
    assert all(np.asarray(PIL_Image.open(io.BytesIO(p))).shape[:2] == (16, 16) for p in g.images)
    lon, lat = g.meta[1]["center"]
    assert -10 < lon < 2
    assert 50 < lat < 58
    assert "bounds" not in g.meta[1]
    g.selected = 0
    west, south, east, north = g.info["bounds"]
    assert (west, south, east, north) == pytest.approx(tuple(chips.bounds(0)))
    assert len(g.info["time"]) >= 1
    assert g.info["time"][0].startswith("2019-03-01")
    assert isinstance(g.info.get("geocode"), str)
    assert len(g.info["geocode"]) == 6


def test_from_chips_picks_true_colour_for_sentinel2_bands():
    needs_chipset()
    ds = s2_like(time=2, y=32, x=32)
    chips = ds.wb.chips({"y": 16, "x": 16}, variables=["reflectance"])
    g = ChipGallery.from_chips(chips, n=4)
    assert "B04 / " in g.title
    assert g.title.endswith("B02")
    g2 = ChipGallery.from_chips(chips, n=4, bands="B08")
    assert g2.title.endswith("B08")
    with pytest.raises(PreviewError, match="B99"):
        ChipGallery.from_chips(chips, n=4, bands="B99")


def test_chips_preview_is_the_gallery():
    needs_chipset()
    ds = era5_like(time=2, lat=16, lon=16)
    preview = ds.wb.chips({"time": 1, "lat": 8, "lon": 8}).preview(n=3)
    assert isinstance(preview, ChipGallery)
    assert len(preview.images) == 3


@pytest.mark.gpu
def test_gallery_from_cupy_chips_renders_on_the_device(batch):
    from workbench.testing import has_gpu

    if not has_gpu():
        pytest.skip("no CUDA device (and cupy) available")
    import cupy as cp

    on_gpu = ChipGallery.from_arrays(cp.asarray(batch), bands=[0, 1, 2])
    on_cpu = ChipGallery.from_arrays(batch, bands=[0, 1, 2])
    assert on_gpu.images == on_cpu.images


def test_location_view_draws_the_context_and_every_shown_chip():
    import xml.etree.ElementTree as ET

    ChipGallery = gallery_mod.ChipGallery
    ds = era5_like(time=2, lat=32, lon=48)  # (-10, 50, 2, 58): big enough for one map
    chips = ds.wb.chips({"time": 1, "lat": 8, "lon": 8})
    g = ChipGallery.from_chips(chips, n=6)
    root = ET.fromstring(f"<root>{g.location}</root>")
    maps = root.findall("{http://www.w3.org/2000/svg}svg")
    assert len(maps) == 1
    svg = g.location
    assert 'class="wb-coastlines"' in svg
    assert 'class="wb-countries"' in svg
    assert 'class="wb-graticule"' in svg
    assert "°W" in svg  # labelled
    assert all(f'data-position="{i}"' in svg for i in range(len(g.images)))
    coast = root.find(".//{http://www.w3.org/2000/svg}g[@class='wb-coastlines']/")
    assert len(coast.get("d")) > 200  # Britain and Ireland's coasts are in this window

    tiny = s2_like(time=1, y=100, x=100)  # a 1 km scene: a locator map comes first
    g2 = ChipGallery.from_chips(tiny.wb.chips({"time": 1, "y": 50, "x": 50}), n=4)
    maps = ET.fromstring(f"<root>{g2.location}</root>").findall("{http://www.w3.org/2000/svg}svg")
    assert len(maps) == 2
    assert 'class="wb-marker"' in g2.location

    plain = ChipGallery.from_arrays(np.zeros((2, 1, 4, 4)))
    assert plain.location == ""
