"""The tutorials as a person sees them: Run All in JupyterLab + Chromium, then look.

Each test runs a tutorial top to bottom (toy sizes), takes screenshots of its key outputs
(``artifacts/browser_tutorial_*.png``, never committed) and checks what a reader would: no
error or warning text anywhere, the map's offline context drawn under the data with its
legend, the gallery's thumbnails and location view, a live plot whose panels have lines, and a
comparison table without raw numbers.
"""

from __future__ import annotations

import re

import pytest

#: Warnings that are not the tutorial's to fix, each with where it is fixed. Keep it empty.
KNOWN_NOISE: tuple[str, ...] = ()

_PLOT_POINTS = """(name) => {
  if (!window.Bokeh || !Bokeh.documents) return -1;
  const fig = Bokeh.documents.flatMap(d => [...d.all_models]).find(m => m.name === name);
  if (!fig) return -1;
  return Math.max(0, ...fig.renderers.map(r => {
    const data = (r.data_source && r.data_source.data) || {};
    const cols = Object.values(data).filter(c => c && c.length !== undefined);
    return cols.length ? Math.min(...cols.map(c => c.length)) : 0;
  }));
}"""


def _noise(texts: list[str]) -> list[str]:
    """Output texts a reader would take for an error or a warning."""
    bad = re.compile(r"Traceback|Error:|Warning:|warnings\.warn|\bnan\b|\binf\b")
    found = []
    for text in texts:
        lines = [line for line in text.splitlines() if bad.search(line)]
        lines = [line for line in lines if not any(k in line for k in KNOWN_NOISE)]
        lines = [line for line in lines if line.strip() != "warnings.warn("]  # a warning's 2nd line
        found += lines
    return found


def _check_map(lab_page, stem: str) -> None:
    page = lab_page.page
    container = page.locator(".leaflet-container").first
    container.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => document.querySelectorAll('.leaflet-wb-context-pane path').length >= 3"
    )
    lengths = page.locator(".leaflet-wb-context-pane path").evaluate_all(
        "ps => ps.map(p => (p.getAttribute('d') || '').length)"
    )
    assert sum(1 for n in lengths if n > 100) >= 2  # coastlines and borders really drawn
    overlay = page.wait_for_selector(".leaflet-container img.leaflet-image-layer", state="visible")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=overlay)
    legend = page.locator(".wb-legend").first.inner_text()
    assert re.search(r"\[K\]", legend), legend  # variable and units
    assert page.locator(".wb-graticule-label").count() >= 2
    assert page.locator(".leaflet-tile").count() == 0  # offline: no tiles
    lab_page.screenshot(f"tutorial_{stem}_map", container)


def _check_gallery(lab_page, stem: str) -> None:
    page = lab_page.page
    gallery = page.locator(".wb-gallery").first
    gallery.scroll_into_view_if_needed()
    page.wait_for_function(
        """() => {
            const imgs = [...document.querySelectorAll('.wb-gallery .wb-thumb img')];
            return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
        }"""
    )
    svg = gallery.locator(".wb-gallery-location svg").last
    assert svg.locator(".wb-chip").count() >= 1
    assert svg.locator("path").count() >= 2
    lab_page.screenshot(f"tutorial_{stem}_gallery", gallery)


def _check_live_plot(lab_page, stem: str) -> None:
    page = lab_page.page
    page.wait_for_function(f"({_PLOT_POINTS})('wb-liveplot-power') > 0", timeout=20_000)
    assert page.evaluate(_PLOT_POINTS, "wb-liveplot-throughput") > 0
    plot = page.locator(".jp-OutputArea-output:has(.wb-liveplot)").first
    plot.scroll_into_view_if_needed()
    lab_page.screenshot(f"tutorial_{stem}_live_plot", plot)


@pytest.mark.notebook
@pytest.mark.torch
def test_quickstart_reads_well(lab_page):
    pytest.importorskip("torch")
    lab_page.open_tutorial("01_", EPOCHS=60)  # seconds of training: power is sampled each second
    lab_page.run_all()
    _check_map(lab_page, "01")
    _check_gallery(lab_page, "01")
    _check_live_plot(lab_page, "01")
    assert not _noise(lab_page.output_texts())
    texts = "\n".join(lab_page.output_texts())
    assert "already loaded" not in texts
    assert "np.str_" not in texts
    assert "measured steps per mode" in texts  # measure_modes says what its verdict rests on
    assert "seed blog" in texts  # the savings table's two columns


@pytest.mark.notebook
@pytest.mark.torch
@pytest.mark.cluster
def test_ndvi_tutorial_reads_well(lab_page):
    pytest.importorskip("torch")
    pytest.importorskip("ipyparallel")
    page = lab_page.page
    lab_page.open_tutorial("04_", EPOCHS=60)  # seconds of DDP training: power samples
    lab_page.run_all()
    _check_live_plot(lab_page, "04")
    table = page.locator(".wb-comparison").first
    table.scroll_into_view_if_needed()
    text = table.inner_text()
    # it fits: no horizontal scrollbar on its output
    assert page.evaluate(
        "(el) => { const o = el.closest('.jp-OutputArea-output');"
        " return o.scrollWidth <= o.clientWidth + 1; }",
        table.element_handle(),
    )
    assert "time (s)" in text
    assert "exchanged (MB)" in text
    assert not re.search(r"\bnan\b|\binf\b|e[+-]\d", text, re.IGNORECASE)
    bars = page.locator(".wb-comparison-chart .wb-bar")
    assert bars.count() >= 5
    lab_page.screenshot("tutorial_04_comparison", page.locator(".wb-comparison-view").first)
    assert not _noise(lab_page.output_texts())
    texts = "\n".join(lab_page.output_texts())
    assert "paper's finding" in texts  # the reading is computed, not written in prose
    # the progress of every run is shown (no silent minutes)
    assert texts.count("%%train: rank 0") >= 7
