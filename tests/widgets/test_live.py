"""LivePlot without a browser: buffers, batching, rate limits, per-engine rows, text fallback, and
the notebook view's messages replayed on a bokeh document as the browser applies them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.metering import PowerSample, StepEvent, ThroughputMeter
from workbench.testing import requires
from workbench.widgets.live import POWER_COLUMNS, THROUGHPUT_COLUMNS, LivePlot, has_front_end

pytestmark = requires("holoviews")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def ev(i, t, rank=0, samples=32, duration=0.1, wait=0.02, loss=None):
    return StepEvent(
        step=i,
        samples=samples,
        nbytes=samples * 100,
        t=t,
        duration=duration,
        data_wait=wait,
        rank=rank,
        loss=loss,
    )


def test_events_are_batched_and_pushes_rate_limited():
    clock = Clock()
    live = LivePlot(background=False, interval=0.5, clock=clock)
    for i in range(1000):  # 1000 steps over 10 s of (fake) time: one every 10 ms
        clock.t = i * 0.01
        live.update(ev(i, 1000.0 + (i + 1) * 0.1, duration=0.1))
    live.flush()
    # at most one push per 0.5 s (+ the first and the final flush): never one per step
    assert 2 <= live.push_count <= 10 * 2 + 2
    assert live.event_count == 1000
    buf = live.buffers["throughput"].data
    assert list(buf) == list(THROUGHPUT_COLUMNS)
    # one row per push for the engine, one for all engines together
    assert buf["rank"].tolist() == [0.0, -1.0] * live.push_count
    assert buf["steps"][buf["rank"] == 0].sum() == 1000
    assert buf["steps"][buf["rank"] == -1].sum() == 1000
    # 32 samples every 0.1 s of event time
    assert np.allclose(buf["samples_per_s"], 320.0)
    assert np.allclose(buf["data_wait_share"], 0.2)
    assert np.allclose(buf["step_time_s"], 0.1)
    assert buf["t"][-1] == pytest.approx(100.0)  # seconds since the first step started
    assert np.array_equal(live.throughput["t"], buf["t"])


def test_per_engine_rows_and_all_engines_total():
    clock = Clock()
    live = LivePlot(background=False, interval=0.25, clock=clock)
    live.update(ev(0, 10.1, rank=0))  # first push at once
    for i in range(1, 11):
        for rank in (0, 1):
            live.update(ev(i, 10.1 + 0.1 * i, rank=rank, samples=16, loss=1.0 / i))
    live.flush()
    buf = live.buffers["throughput"].data
    ranks = buf["rank"].tolist()
    assert set(ranks) == {0.0, 1.0, -1.0}
    last = {r: buf["samples_per_s"][np.flatnonzero(buf["rank"] == r)[-1]] for r in (0, 1, -1)}
    assert last[0] == pytest.approx(160.0)  # 16 samples / 0.1 s
    assert last[1] == pytest.approx(160.0)
    assert last[-1] == pytest.approx(320.0)  # both engines together
    assert buf["loss"][-1] == pytest.approx(0.1)


def test_power_samples_and_estimate_flag():
    live = LivePlot(background=False, interval=0.25)
    live.update(PowerSample(t=5.0, power_w=40.0, energy_kwh=2e-5, emissions_kg=1e-5).to_dict())
    live.update({"step": 0, "samples": 4, "nbytes": 0, "t": 6.0, "duration": 1.0})
    live.flush()
    pw = live.buffers["power"].data
    assert list(pw) == list(POWER_COLUMNS)
    assert pw["rank"].tolist() == [0.0, -1.0]  # the sample, and the total of all engines
    assert pw["power_w"].tolist() == [40.0, 40.0]
    assert pw["energy_wh"][0] == pytest.approx(0.02)
    assert pw["co2_g"][0] == pytest.approx(0.01)
    assert pw["estimated"].tolist() == [1.0, 1.0]
    assert "(estimate)" in live.summary()
    assert "40 W" in live.summary()


def test_background_thread_pushes_without_explicit_flush():
    live = LivePlot(interval=0.25)  # background=True by default
    t0 = time.time()
    for i in range(200):
        time.sleep(0.005)
        live.update(ev(i, t0 + 0.005 * (i + 1), duration=0.005, wait=0.0))
    time.sleep(0.6)
    pushed = live.push_count
    assert 2 <= pushed <= 1 + (time.time() - t0) / 0.25 + 1
    data = live.buffers["throughput"].data
    assert data["steps"][data["rank"] == 0].sum() == 200  # nothing lost
    live.close()
    assert live.push_count == pushed  # nothing was pending


def test_slow_pushes_stretch_the_interval_up_to_one_second():
    live = LivePlot(background=False, interval=0.25, max_overhead=0.1)
    live.buffers["throughput"].add_subscriber(lambda **kw: time.sleep(0.05))  # a costly render
    live.update(ev(0, 1.0))
    assert 0.4 <= live.interval <= 1.0  # 50 ms / 10 % = 0.5 s
    live.buffers["throughput"].add_subscriber(lambda **kw: time.sleep(0.2))
    live.update(ev(1, 2.0))
    live.flush()
    assert live.interval == 1.0  # never slower than once a second


def _render(live):
    import holoviews as hv

    hv.extension("bokeh")
    return hv.renderer("bokeh").get_plot(live.layout)


def _figures(plot):
    from bokeh.models import Plot

    return {f.name: f for f in plot.state.select({"type": Plot})}


def test_renders_all_engines_by_default_and_is_findable_by_name():
    clock = Clock()
    live = LivePlot(background=False, interval=0.25, clock=clock)
    plot = _render(live)
    live.update(ev(0, 1.0, rank=0))  # the first event is pushed at once
    for rank in (0, 1):  # then both engines step together: 2 x 32 samples in 0.1 s
        live.update(ev(1, 1.1, rank=rank))
    live.update(PowerSample(t=1.0, power_w=12.0, energy_kwh=1e-6, emissions_kg=5e-7, rank=0))
    live.update(PowerSample(t=1.0, power_w=8.0, energy_kwh=1e-6, emissions_kg=5e-7, rank=1))
    live.flush()
    figs = _figures(plot)
    assert set(figs) == {"wb-liveplot-throughput", "wb-liveplot-loss", "wb-liveplot-power"}
    tp, pw = figs["wb-liveplot-throughput"], figs["wb-liveplot-power"]
    assert "wb-liveplot" in tp.css_classes
    assert "wb-liveplot-throughput" in tp.css_classes
    assert len(tp.renderers) == 1  # one curve: all engines together
    assert tp.renderers[0].data_source.data["samples_per_s"].tolist() == pytest.approx([320, 640])
    assert pw.renderers[0].data_source.data["power_w"].tolist() == [20.0]  # 12 W + 8 W
    assert pw.title.text == "power (estimate): 20 W, 0.001 gCO2eq so far"
    # the title: samples per second of training so far, the figure a TrainResult reports
    meter = ThroughputMeter(kinds=("train",))
    for e in (ev(0, 1.0, rank=0), ev(1, 1.1, rank=0), ev(1, 1.1, rank=1)):
        meter.update(e)
    assert live.samples_per_s == pytest.approx(meter.snapshot().samples_per_s)
    assert tp.title.text.startswith(f"workbench: {live.samples_per_s:,.1f} samples/s of training")


def test_renders_one_curve_per_engine_and_a_co2_panel():
    live = LivePlot(
        background=False, interval=0.25, per_engine=True, panels=("throughput", "power", "co2")
    )
    plot = _render(live)
    for rank in (0, 1):
        live.update(ev(0, 1.0, rank=rank))
        live.update(PowerSample(t=1.0, power_w=10.0, energy_kwh=1e-6, emissions_kg=5e-7, rank=rank))
    live.flush()
    figs = _figures(plot)
    assert set(figs) == {"wb-liveplot-throughput", "wb-liveplot-power", "wb-liveplot-co2"}
    lengths = [len(r.data_source.data["t"]) for r in figs["wb-liveplot-throughput"].renderers]
    assert sorted(lengths) == [1, 1, 2]  # engine 0, engine 1, all (2 pushes)
    assert len(figs["wb-liveplot-power"].renderers) == 3  # engine 0, engine 1, all


def test_plain_script_prints_a_summary(capsys):
    assert not has_front_end()
    live = LivePlot(background=False)
    live.update(ev(0, 1.0))
    live.display()
    out = capsys.readouterr().out
    assert "no notebook front end" in out
    assert "1 steps" in out
    assert live._repr_mimebundle_() == {"text/plain": live.summary()}


def test_without_holoviews_it_still_collects():
    code = (
        "import sys; sys.modules['holoviews'] = None\n"
        "from workbench.widgets.live import LivePlot\n"
        "from workbench.metering import StepEvent\n"
        "live = LivePlot(background=False)\n"
        "live.update(StepEvent(step=0, samples=3, nbytes=0, t=1.0, duration=0.5))\n"
        "live.flush(); live.display()\n"
        "print('rows', len(live.throughput['t']), live.buffers)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "holoviews is not installed" in out
    assert "pip install 'workbench[jupyter]'" in out
    assert "rows 2 {}" in out  # the engine's row and the all-engines row


def test_bad_arguments():
    with pytest.raises(ValueError, match="interval"):
        LivePlot(interval=2.0)
    with pytest.raises(ValueError, match="panels"):
        LivePlot(panels=("gpu",))


def test_a_broken_plot_never_stops_the_loop():
    live = LivePlot(background=False, interval=0.25)

    def broken(**kwargs):
        raise RuntimeError("comm closed")

    live.buffers["throughput"].add_subscriber(broken)
    with pytest.warns(RuntimeWarning, match="comm closed"):
        live.update(ev(0, 1.0))
    live.update(ev(1, 2.0))
    live.flush()
    assert live.buffers == {}
    assert "comm closed" in live.why_no_plot
    with pytest.raises(WorkbenchError, match=r"cannot draw any more.*comm closed"):
        live.view()
    assert live.throughput["rank"].tolist() == [0, -1, 0, -1]  # still collecting


def test_push_gaps_respect_the_interval():
    clock = Clock()
    live = LivePlot(background=False, interval=0.5, clock=clock)
    for i in range(300):
        clock.t = i * 0.01
        live.update(ev(i, 1.0 + 0.01 * i, duration=0.01, wait=0.0))
    gaps = np.diff(list(live.push_times))
    assert len(gaps) >= 4
    assert gaps.min() >= 0.5 - 1e-9


# -- the notebook view (anywidget + bokeh document) -------------------------------------------


class Browser:
    """What the view's front end (``_LIVE_ESM``) does with its messages, replayed with bokeh.

    It builds a document from the widget's ``document`` (again whenever that changes, as a new
    generation) and applies each PATCH-DOC message of the current generation, with its binary
    buffers, as the browser does; patches that come before it has rendered are lost, as they are
    for a view that is not shown yet.
    """

    def __init__(self, view, rendered=True):
        self.log = []
        self.patches = self.renders = 0
        self.initial = view.document
        self.doc, self.generation = self._render(view.document) if rendered else (None, -1)
        # the widget's custom messages and state changes, in the order they are sent
        view.send = lambda content, buffers=None: self.log.append(("msg", content, buffers))
        view.observe(lambda ch: self.log.append(("document", ch["new"], None)), "document")

    @staticmethod
    def _render(document):
        from bokeh.document import Document

        state = json.loads(document)
        return Document.from_json(state["doc"]), state["generation"]

    def render_now(self):
        """The view appears late: it starts from the document the widget was created with."""
        self.doc, self.generation = self._render(self.initial)

    def receive(self):
        from bokeh.core.serialization import Buffer, Serialized

        log, self.log = self.log, []
        for kind, content, buffers in log:
            if kind == "document":
                self.doc, self.generation = self._render(content)
                self.renders += 1
            elif self.doc is not None and content["generation"] == self.generation:
                parts = [Buffer(i, b) for i, b in zip(content["buffers"], buffers, strict=True)]
                self.doc.apply_json_patch(Serialized(json.loads(content["patch"]), parts))
                self.patches += 1

    def figures(self):
        from bokeh.models import Plot

        return {f.name: f for f in self.doc.select({"type": Plot})}


@pytest.fixture
def make_view():
    pytest.importorskip("anywidget", reason="anywidget is not installed")
    made = []

    def make(live, rendered=True):
        view = live.view()
        made.append(view)
        return view, Browser(view, rendered)

    yield make
    for view in made:
        view.close()


def _curve(fig, column):
    (renderer,) = fig.renderers
    return list(renderer.data_source.data[column])


def test_view_sends_each_push_as_one_patch_that_reproduces_the_plot(make_view):
    clock = Clock()
    live = LivePlot(background=False, interval=0.25, clock=clock)
    view, browser = make_view(live)
    assert view.hv_plot.document is view.bokeh_document  # a document of its own
    assert repr(view) == (  # not the whole document
        "LivePlotView(wb-liveplot-loss, wb-liveplot-power, wb-liveplot-throughput)"
    )
    for i in range(8):
        live.update(PowerSample(t=10.0 + 0.1 * i, power_w=5.0 + i, energy_kwh=1e-6 * i,
                                emissions_kg=5e-7 * i))  # fmt: skip
        clock.t = i * 0.3  # every step is pushed (the interval is 0.25 s), with the sample
        live.update(ev(i, 10.0 + 0.1 * (i + 1), samples=32 + i))
        assert len(browser.log) == 1  # one message per push
        browser.receive()
        assert browser.patches == live.push_count == i + 1
    assert browser.renders == 0  # never drawn anew
    figs, kernel_figs = browser.figures(), _figures(view.hv_plot)
    tp = live.throughput
    assert _curve(figs["wb-liveplot-throughput"], "t") == pytest.approx(tp["t"][tp["rank"] == -1])
    assert _curve(figs["wb-liveplot-throughput"], "samples_per_s") == pytest.approx(
        tp["samples_per_s"][tp["rank"] == -1]
    )
    assert _curve(figs["wb-liveplot-power"], "power_w") == [5.0 + i for i in range(8)]
    for name, fig in figs.items():
        assert fig.title.text == kernel_figs[name].title.text
        assert fig.x_range.end == kernel_figs[name].x_range.end
    assert figs["wb-liveplot-throughput"].title.text.startswith(
        f"workbench: {live.samples_per_s:,.1f} samples/s of training"
    )
    assert "wb-liveplot" in figs["wb-liveplot-power"].css_classes


def test_a_view_shown_late_catches_up_with_the_next_push(make_view):
    clock = Clock()
    live = LivePlot(background=False, interval=0.25, clock=clock)
    _, browser = make_view(live, rendered=False)
    for i in range(5):  # pushed before the browser shows the plot: these patches are lost
        clock.t = i * 0.3
        live.update(ev(i, 10.0 + 0.1 * (i + 1)))
    browser.receive()
    browser.render_now()  # the empty plot, as it was when displayed
    assert _curve(browser.figures()["wb-liveplot-throughput"], "t") == []
    clock.t = 10.0
    live.update(ev(5, 10.6))  # one push later the browser holds every point
    browser.receive()
    tp = live.throughput
    assert _curve(browser.figures()["wb-liveplot-throughput"], "t") == pytest.approx(
        tp["t"][tp["rank"] == -1]
    )
    assert len(tp["t"][tp["rank"] == -1]) == 6


def test_close_resends_the_whole_document(make_view):
    live = LivePlot(background=False, interval=0.25)
    view, browser = make_view(live, rendered=False)
    live.update(ev(0, 1.0))
    live.update(ev(1, 2.0))
    live.close()  # pending events are pushed, then the whole document goes out
    browser.receive()
    assert browser.renders == 1
    assert view.generation == browser.generation == 1
    assert len(_curve(browser.figures()["wb-liveplot-throughput"], "t")) == 2


def test_a_new_engine_resends_the_whole_document(make_view):
    clock = Clock()
    live = LivePlot(background=False, interval=0.25, per_engine=True, clock=clock)
    _, browser = make_view(live)
    live.update(ev(0, 1.0, rank=0))
    browser.receive()
    assert (browser.patches, browser.renders) == (1, 0)
    for i in range(1, 4):  # engine 1 appears: its curve is a new bokeh model
        for rank in (0, 1):
            live.update(ev(i, 1.0 + 0.1 * i, rank=rank))
        clock.t = i * 0.3
        live.flush()
        browser.receive()
    assert browser.renders == 1  # once, when engine 1's curve appeared; patches after that
    assert browser.patches == 3 == live.push_count - 1
    fig = browser.figures()["wb-liveplot-throughput"]
    lengths = sorted(len(r.data_source.data["t"]) for r in fig.renderers)
    assert lengths == [3, 4, 4]  # engine 1, engine 0, all


def test_background_pushes_reach_the_view(make_view):
    live = LivePlot(interval=0.1)
    _, browser = make_view(live)
    t0 = time.time()
    for i in range(100):
        time.sleep(0.005)
        live.update(ev(i, t0 + 0.005 * (i + 1), duration=0.005, wait=0.0))
    live.close()
    browser.receive()
    assert browser.patches >= 1
    assert browser.renders == 1  # close()
    tp = live.throughput
    curve = _curve(browser.figures()["wb-liveplot-throughput"], "t")
    assert curve == pytest.approx(tp["t"][tp["rank"] == -1])
    assert tp["steps"][tp["rank"] == 0].sum() == 100


def test_views_made_while_the_thread_pushes(make_view):
    live = LivePlot(interval=0.1, max_overhead=1.0)
    t0 = time.time()
    views = []
    for i in range(60):
        time.sleep(0.005)
        live.update(ev(i, t0 + 0.005 * (i + 1), duration=0.005, wait=0.0))
        if i % 20 == 10:  # displayed again while pushes run on the background thread
            views.append(make_view(live))
    live.close()
    assert live.why_no_plot is None
    tp = live.throughput
    for _, browser in views:
        browser.receive()
        curve = _curve(browser.figures()["wb-liveplot-throughput"], "t")
        assert curve == pytest.approx(tp["t"][tp["rank"] == -1])


def test_without_anywidget_the_view_is_the_holoviews_layout():
    code = (
        "import sys, warnings; sys.modules['anywidget'] = None\n"
        "from workbench.widgets.live import LivePlot\n"
        "live = LivePlot(background=False)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    view = live.view()\n"
        "print(type(view).__name__, view is live.layout)\n"
        "print([str(w.message) for w in caught if w.category is RuntimeWarning])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "Layout True" in out
    assert "anywidget is not installed" in out
    assert "pip install 'workbench[jupyter]'" in out
    assert "later cell" in out


def test_loss_panel_draws_training_curves_and_validation_points():
    """Training loss per step and validation per epoch, per engine, in one rendered panel."""
    live = LivePlot(background=False, interval=0.25, clock=Clock())
    plot = _render(live)
    for rank in (0, 1):
        for i in range(4):
            live.update(ev(i, 1.0 + 0.1 * i, rank=rank, loss=1.0 / (i + 1)))
        live.update(
            StepEvent(step=4, samples=16, nbytes=0, t=1.5, duration=0.05, loss=0.3, rank=rank,
                      kind="val")
        )  # fmt: skip
    live.flush()
    fig = _figures(plot)["wb-liveplot-loss"]
    sizes = sorted(len(r.data_source.data.get("loss", [])) for r in fig.renderers)
    assert [n for n in sizes if n] == [1, 1, 4, 4]  # 2 engines x (train curve, val points)
    assert fig.title.text == "loss: 0.3 (last step)"
    assert live.samples_per_s > 0  # validation events do not count as training throughput
    assert live.meter.snapshot().samples == 2 * 4 * 32
