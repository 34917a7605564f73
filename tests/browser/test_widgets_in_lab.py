"""The widgets in a real JupyterLab + chromium: map, drawn AOI -> clip, chip gallery."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from workbench.testing import shared_data

S2_NC = "eolearn_s2_slovenia/eolearn_s2_slovenia.nc"

MAP_CELLS = [
    "import json\nimport xarray as xr\nimport workbench\nfrom workbench.testing import shared_data",
    f"ds = xr.open_dataset(shared_data({S2_NC!r})).load()\n"
    "m = ds.wb.map(variable='reflectance')\n"
    "events = []\n"
    "m.observe(lambda change: events.append(change['new']), names='bbox')\n"
    "m",
]


def _lat_at(fraction: float, south: float, north: float) -> float:
    """Latitude a fraction of the way down a Web-Mercator image from its top edge."""
    ms, mn = (math.log(math.tan(math.pi / 4 + math.radians(v) / 2)) for v in (south, north))
    return math.degrees(2 * math.atan(math.exp(mn - fraction * (mn - ms))) - math.pi / 2)


def test_map_renders_and_a_drawn_rectangle_clips_the_cube(lab_page):
    page = lab_page.page
    lab_page.open_notebook("aoi_map.ipynb", MAP_CELLS)
    lab_page.run_all()
    overlay = page.wait_for_selector(".leaflet-container img.leaflet-image-layer", state="visible")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=overlay)
    page.wait_for_selector(".leaflet-overlay-pane path.leaflet-interactive")  # the footprint
    page.wait_for_selector(".leaflet-draw-draw-rectangle")
    assert page.locator(".leaflet-tile").count() == 0  # no basemap tiles offline
    # the offline context: coastlines, borders and graticule lines drawn under the data, and
    # the graticule's labels; the colour legend names the variable
    context = page.locator(".leaflet-wb-context-pane path")
    page.wait_for_function(
        "() => document.querySelectorAll('.leaflet-wb-context-pane path').length >= 3"
    )
    assert all(len(d) > 20 for d in context.evaluate_all("ps => ps.map(p => p.getAttribute('d'))"))
    assert page.locator(".wb-graticule-label").count() >= 2
    assert "reflectance" in page.locator(".wb-legend").inner_text()
    lab_page.screenshot("map_rendered", page.locator(".leaflet-container"))

    # draw over the middle half of the preview image, as a user would
    box = overlay.bounding_box()
    x0, y0 = box["x"] + 0.25 * box["width"], box["y"] + 0.25 * box["height"]
    x1, y1 = box["x"] + 0.75 * box["width"], box["y"] + 0.75 * box["height"]
    page.click(".leaflet-draw-draw-rectangle")
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    page.wait_for_selector(".leaflet-overlay-pane path.leaflet-interactive >> nth=1")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wb-aoi-status')]"
        ".some(e => e.textContent.includes('AOI: W'))"
    )
    lab_page.screenshot("map_rectangle_drawn", page.locator(".leaflet-container"))

    got = lab_page.kernel_json(
        "{'bbox': m.bbox, 'events': len(events), 'preview': m.preview_layer.bounds,"
        " 'aoi': m.aoi['bbox']}"
    )
    (south, west), (north, east) = got["preview"]
    expected = (
        west + 0.25 * (east - west),
        _lat_at(0.75, south, north),
        west + 0.75 * (east - west),
        _lat_at(0.25, south, north),
    )
    tol_lon = 3 * (east - west) / box["width"]  # 3 screen pixels
    tol_lat = 3 * (north - south) / box["height"]
    assert got["bbox"] == pytest.approx(expected, abs=max(tol_lon, tol_lat))
    assert got["aoi"] == got["bbox"]
    assert got["events"] >= 1

    clipped = lab_page.kernel_json(
        "(lambda sub: {'sizes': dict(sub.sizes), 'x': [float(sub.x.min()), float(sub.x.max())],"
        " 'y': [float(sub.y.min()), float(sub.y.max())]})(ds.wb.clip(m.aoi))"
    )
    # the expected extent, computed here independently: the pixel cells (centre +- half a
    # pixel) that overlap the AOI's bounding box in the data's UTM zone (the clip rule)
    import xarray as xr
    from pyproj import Transformer

    with xr.open_dataset(shared_data(S2_NC)) as ds:
        xs, ys = ds.x.values, ds.y.values
    half_x, half_y = abs(xs[1] - xs[0]) / 2, abs(ys[1] - ys[0]) / 2
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)
    xmin, ymin, xmax, ymax = to_utm.transform_bounds(*got["bbox"], densify_pts=21)
    inside_x = xs[(xs + half_x > xmin) & (xs - half_x < xmax)]
    inside_y = ys[(ys + half_y > ymin) & (ys - half_y < ymax)]
    assert abs(clipped["sizes"]["x"] - inside_x.size) <= 1
    assert abs(clipped["sizes"]["y"] - inside_y.size) <= 1
    assert xs.size / 3 < clipped["sizes"]["x"] < xs.size / 2 + 4  # about half the cube
    assert clipped["x"][0] == pytest.approx(inside_x.min(), abs=10.5)
    assert clipped["y"][1] == pytest.approx(inside_y.max(), abs=10.5)
    assert set(clipped["sizes"]) >= {"x", "y", "band", "time"}
    assert not [u for u in lab_page.failed_requests if "leaflet" in u or "tile" in u]


GALLERY_CELLS = [
    "import xarray as xr\nimport workbench\nfrom workbench.testing import shared_data",
    f"ds = xr.open_dataset(shared_data({S2_NC!r})).load()\n"
    "chips = ds[['reflectance']].wb.chips({'ref_time': 1, 'y': 25, 'x': 25})\n"
    "g = chips.preview(n=12)\n"
    "g",
]


def test_gallery_shows_the_thumbnails_and_a_click_reaches_the_kernel(lab_page):
    chips_mod = pytest.importorskip("workbench.chips")
    if not hasattr(chips_mod, "ChipSet"):
        pytest.skip("workbench.chips.ChipSet is not there yet")
    page = lab_page.page
    lab_page.open_notebook("gallery.ipynb", GALLERY_CELLS)
    lab_page.run_all()
    thumbs = page.locator(".wb-gallery .wb-thumb img")
    page.wait_for_function(
        """() => {
            const imgs = [...document.querySelectorAll('.wb-gallery .wb-thumb img')];
            return imgs.length === 12 && imgs.every(i => i.complete && i.naturalWidth === 25);
        }"""
    )
    assert thumbs.count() == 12
    assert page.locator(".wb-gallery-title").inner_text().startswith("12 of 80 chips")
    # the location view: a locator (1 km scene) and the chips' map, both over the base map
    maps = page.locator(".wb-gallery-location svg")
    assert maps.count() == 2
    locator_paths = maps.nth(0).locator(".wb-coastlines path, .wb-countries path")
    assert all(len(d) > 50 for d in locator_paths.evaluate_all(
        "ps => ps.map(p => p.getAttribute('d') || '')"
    ))  # fmt: skip
    assert maps.nth(1).locator(".wb-chip").count() == 12
    assert maps.nth(0).locator("text").count() >= 3  # graticule labels
    lab_page.screenshot("gallery", page.locator(".wb-gallery"))

    page.locator(".wb-gallery .wb-thumb").nth(2).click()
    page.wait_for_selector(".wb-gallery .wb-thumb.wb-selected >> nth=0")
    page.wait_for_selector(".wb-gallery-location .wb-chip.wb-selected[data-position='2']")
    assert page.locator(".wb-gallery-location .wb-chip.wb-selected").count() == 1
    bounds = page.wait_for_selector(".wb-gallery-info dd[data-field='bounds']")
    assert bounds.inner_text().startswith("W 14.5")
    lab_page.screenshot("gallery_selected", page.locator(".wb-gallery"))

    got = lab_page.kernel_json("{'selected': g.selected, 'info': g.info, 'n': len(g.images)}")
    assert got["selected"] == 2
    assert got["n"] == 12
    assert got["info"]["label"] == page.locator(".wb-thumb.wb-selected figcaption").inner_text()
    west, south, east, north = got["info"]["bounds"]
    assert 14.5 < west < east < 14.6
    assert 45.8 < south < north < 45.9
    assert np.isfinite(got["info"]["center"]).all()
    assert got["info"]["geocode"].startswith("u2")
    assert got["info"]["time"][0].startswith("2015-")


LIVE_CELLS = [
    "import time\n"
    "from workbench.metering.events import StepEvent\n"
    "from workbench.widgets.live import LivePlot\n"
    "live = LivePlot(interval=0.2, title='browser test')\n"
    "live.display()",
    "for i in range(150):  # about 15 s of 'training'\n"
    "    time.sleep(0.1)\n"
    "    live.update(StepEvent(step=i, samples=32, nbytes=0, t=time.time(), duration=0.1))\n"
    "live.close()",
]

_LIVE_POINTS = """() => {
  if (!window.Bokeh || !Bokeh.documents) return -1;
  const fig = Bokeh.documents.flatMap(d => [...d.all_models])
    .find(m => m.name === 'wb-liveplot-throughput');
  if (!fig) return -1;
  return Math.max(0, ...fig.renderers.map(r => (r.data_source.data.t || []).length));
}"""

_RUNNING = (
    "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount === null"
)
_LIVE_ROWS = "int((live.throughput['rank'] == -1).sum())"  # points of the throughput curve


def _watch_points(
    lab_page, cell: int, seconds: float = 30.0, enough: int | None = 4, stem: str = "live_plot"
) -> list[tuple[float, int]]:
    """(seconds, points on the throughput plot) every 0.25 s while ``cell`` is still running.

    Stops after ``enough`` distinct point counts (or, with ``enough=None``, when the cell ends);
    takes a screenshot ``<stem>_running`` once 4 distinct counts were seen.
    """
    page, seen, shot = lab_page.page, [], False
    start = time.monotonic()
    while time.monotonic() - start < seconds and page.evaluate(_RUNNING, cell):
        seen.append((time.monotonic() - start, page.evaluate(_LIVE_POINTS)))
        distinct = len({p for _, p in seen if p > 0})
        if distinct >= 4 and not shot:
            lab_page.screenshot(f"{stem}_running", page.locator(".jp-Cell").first)
            shot = True
        if enough is not None and distinct >= enough:
            break
        page.wait_for_timeout(250)
    return seen


def test_live_plot_updates_while_the_cell_runs(lab_page):
    """Show the plot in one cell, then start the loop in the next cell."""
    pytest.importorskip("workbench.widgets.live")
    pytest.importorskip("holoviews")
    page = lab_page.page
    lab_page.open_notebook("live_plot.ipynb", LIVE_CELLS)
    lab_page.run_cell(0)
    page.wait_for_function(f"({_LIVE_POINTS})() === 0", timeout=240_000)  # shown, empty
    lab_page.run_cell(1, wait=False)
    page.wait_for_function(_RUNNING, arg=1)
    seen = _watch_points(lab_page, 1)
    assert page.evaluate(_RUNNING, 1), f"the loop ended before 4 updates were seen: {seen}"
    growing = [p for _, p in seen if p > 0]
    assert len(set(growing)) >= 4, f"points while running: {seen}"
    assert growing == sorted(growing), f"points while running: {seen}"
    lab_page.wait_all_ran()
    assert page.evaluate(_LIVE_POINTS) == lab_page.kernel_json(_LIVE_ROWS) >= max(growing)
    lab_page.screenshot("live_plot_done", page.locator(".jp-Cell").first)


def test_live_plot_displayed_in_the_running_cell_updates(lab_page):
    """What %%train does: display the plot and feed it in the same cell."""
    pytest.importorskip("workbench.widgets.live")
    pytest.importorskip("holoviews")
    pytest.importorskip("anywidget", reason="the same-cell live plot needs anywidget")
    page = lab_page.page
    lab_page.open_notebook("live_plot_one_cell.ipynb", ["\n".join(LIVE_CELLS)])
    lab_page.run_cell(0, wait=False)
    page.wait_for_function(f"({_LIVE_POINTS})() >= 0", timeout=240_000)  # shown
    seen = _watch_points(lab_page, 0, seconds=120.0, enough=None, stem="live_plot_one_cell")
    running = [(t, p) for t, p in seen if p > 0]
    points = [p for _, p in running]
    assert len(set(points)) >= 4, f"points while running: {seen}"
    assert points == sorted(points), f"points while running: {seen}"
    # new points keep coming: pushes are at most 1 s apart (sampled every 0.25 s, with slack
    # for a busy machine)
    changes = [running[0][0]] + [t for (_, q), (t, p) in itertools.pairwise(running) if p != q]
    gaps = np.diff(changes)
    assert gaps.max() <= 2.0, f"points while running: {seen}"
    lab_page.wait_all_ran()
    # after the run: every point, also those pushed before the browser showed the plot
    assert page.evaluate(_LIVE_POINTS) == lab_page.kernel_json(_LIVE_ROWS)
    lab_page.screenshot("live_plot_one_cell_done", page.locator(".jp-Cell").first)


LATE_BOKEH_CELLS = [
    "import time\n"
    "import holoviews as hv\n"
    "import workbench.widgets.live as wl\n"
    "from workbench.metering.events import StepEvent\n"
    "wl._EXTENSION_LOADED = True  # show the plot before BokehJS is on the page\n"
    "live = wl.LivePlot(interval=0.2, title='late BokehJS')\n"
    "live.display()\n"
    "def steps(a, b):\n"
    "    for i in range(a, b):\n"
    "        time.sleep(0.1)\n"
    "        live.update(StepEvent(step=i, samples=32, nbytes=0, t=time.time(), duration=0.1))\n"
    "steps(0, 40)",
    "hv.extension('bokeh', inline=True)  # BokehJS comes after the plot and its first pushes\n"
    "steps(40, 150)\n"
    "live.close()",
]


def test_live_plot_shown_before_bokehjs_loads_draws_once_it_does(lab_page):
    """The plot's output may render before BokehJS is on the page: it waits, then draws."""
    pytest.importorskip("anywidget")
    pytest.importorskip("holoviews")
    page = lab_page.page
    lab_page.open_notebook("live_plot_late_bokeh.ipynb", LATE_BOKEH_CELLS)
    lab_page.run_cell(0)
    note = page.wait_for_selector(".wb-liveplot-note")
    assert "waiting for BokehJS" in note.inner_text()
    assert page.evaluate(_LIVE_POINTS) == -1  # nothing drawn, no error
    lab_page.run_cell(1, wait=False)
    page.wait_for_function(f"({_LIVE_POINTS})() > 0", timeout=240_000)
    assert page.evaluate(_RUNNING, 1), "the cell ended before the plot was drawn"
    assert note.inner_text() == ""
    seen = _watch_points(lab_page, 1, seconds=120.0, enough=None, stem="live_plot_late_bokeh")
    points = [p for _, p in seen if p > 0]
    assert len(set(points)) >= 3, f"points while running: {seen}"
    assert points == sorted(points), f"points while running: {seen}"
    lab_page.wait_all_ran()
    assert page.evaluate(_LIVE_POINTS) == lab_page.kernel_json(_LIVE_ROWS)
    lab_page.screenshot("live_plot_late_bokeh_done", page.locator(".jp-Cell").first)
