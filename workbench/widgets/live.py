"""LivePlot: throughput, loss and power/CO2 curves that update while a cell runs.

A :class:`LivePlot` subscribes to a loop's events through a callback (``live.update`` or
``live.callback``; it never polls). It takes :class:`~workbench.metering.events.StepEvent` and
:class:`~workbench.metering.carbon.PowerSample` objects (or their ``to_dict()``, as published
by ipyparallel engines), batches them, and pushes one row per engine into holoviews
``hv.streams.Buffer`` streams at most every ``interval`` seconds (never one push per step).
HoloViews ``DynamicMap`` views over those buffers draw all engines together, or one curve per
engine with ``per_engine=True``, with the bokeh backend, loaded offline (``inline=True``).

A push re-renders the plot, which costs tens of milliseconds once the plot is displayed, so
by default pushes run on a background thread (the loop only appends to a list) and the
interval stretches until pushing takes at most ``max_overhead`` of the time, never beyond one
second.

In a notebook, :meth:`LivePlot.display` shows the layout rendered by holoviews to a bokeh
document of its own, inside a small anywidget (:meth:`LivePlot.view`), so the cell that
displays the plot can also feed it (``%%train`` does both). A widget's comm is opened by the
kernel, and the kernel's messages to the browser go out while the cell runs; holoviews' own
notebook comm is opened by the browser, a message the kernel only handles once the cell ends,
so a plot shown that way stays empty while its own cell runs. Each push changes the document
on the push thread under the plot's lock and its changes go to the browser as one bokeh
PATCH-DOC message; every push carries whole columns, so a view that missed patches (shown late)
catches up with the next push, and :meth:`LivePlot.close` sends the whole document once more.
The browser waits for BokehJS (loaded inline by ``hv.extension``) before it draws.

Without a notebook front end (a plain script) the plot still collects everything and
:meth:`LivePlot.display` prints a text summary.

The throughput panel's title shows the run's training throughput so far: samples per second
of training time, from the first step's start to the last step's end over all engines
(:class:`~workbench.metering.throughput.ThroughputMeter`), the same figure as
:attr:`workbench.training.result.TrainResult.samples_per_s`; its curve shows the rate of each
push interval. The loss panel has one curve per engine of the training loss of every step and
the validation loss of every epoch (``kind="val"`` events). The power panel starts with the
first sample and says where its numbers come from (a measured counter, or an estimate).

Observing it from a page: the bokeh figures are named ``wb-liveplot-throughput``,
``wb-liveplot-loss``, ``wb-liveplot-power`` (and ``wb-liveplot-co2`` if asked for) and carry
the CSS classes
``wb-liveplot`` and ``wb-liveplot-<panel>`` (on the figure's host element). In the browser,
``Bokeh.documents.flatMap(d => [...d.all_models]).find(m => m.name === 'wb-liveplot-throughput')
.renderers.map(r => r.data_source.data.t.length)`` grows as pushes arrive.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench.errors import MissingDependencyError, WorkbenchError
from workbench.metering.carbon import PowerSample
from workbench.metering.events import StepEvent
from workbench.metering.throughput import ThroughputMeter

__all__ = ["LivePlot", "THROUGHPUT_COLUMNS", "POWER_COLUMNS", "LOSS_COLUMNS", "has_front_end"]

#: Columns of :attr:`LivePlot.throughput`: a row per engine and one for all engines (rank -1)
#: per push.
THROUGHPUT_COLUMNS = (
    "t", "rank", "samples_per_s", "bytes_per_s", "step_time_s", "data_wait_share", "loss", "steps",
)  # fmt: skip
#: Columns of :attr:`LivePlot.power`: a row per sample and a total (rank -1) per push.
POWER_COLUMNS = ("t", "rank", "power_w", "energy_wh", "co2_g", "estimated")
#: Columns of :attr:`LivePlot.losses`: a row per training step and per validation (val = 1).
LOSS_COLUMNS = ("t", "rank", "epoch", "loss", "val")
PANELS = ("throughput", "loss", "power", "co2")

_EXTENSION_LOADED = False


def has_front_end() -> bool:
    """Whether code runs in a Jupyter kernel that can display plots (no IPython import)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _empty(columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {c: np.zeros(0) for c in columns}


class LivePlot:
    """Live throughput and power/CO2 curves fed by step events and power samples.

    Parameters
    ----------
    interval : float
        Minimum seconds between two pushes to the plot (default 0.5).
    max_overhead : float
        Largest share of wall time pushes may take; the interval grows to honour it, up to 1 s.
    backlog : int
        Rows kept per buffer (older rows scroll out).
    background : bool
        Push from a background thread (default) or inline in :meth:`update` (deterministic).
    per_engine : bool
        One curve per engine (plus "all") instead of one curve of all engines together. Each
        extra curve costs render time on every push; the buffers hold per-engine rows anyway.
    panels : sequence of {"throughput", "loss", "power", "co2"}
        Panels to draw (default throughput, loss and power; the power title shows the CO2 so
        far).
    title : str
        Title prefix of the panels.
    clock : callable
        Monotonic time source (inject one in tests).

    Examples
    --------
    >>> from workbench.metering.events import StepEvent
    >>> live = LivePlot(background=False, interval=0.5)
    >>> for i in range(10):
    ...     live.update(StepEvent(step=i, samples=32, nbytes=0, t=100.0 + i, duration=1.0))
    >>> live.flush()
    >>> live.push_count <= 2, int(live.throughput["samples_per_s"][-1])
    (True, 32)
    """

    def __init__(
        self,
        *,
        interval: float = 0.5,
        max_overhead: float = 0.1,
        backlog: int = 2000,
        background: bool = True,
        per_engine: bool = False,
        panels: tuple[str, ...] | list[str] = ("throughput", "loss", "power"),
        title: str = "workbench",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (0 < interval <= 1.0) or not 0 < max_overhead <= 1:
            raise ValueError(
                f"need 0 < interval <= 1 s and 0 < max_overhead <= 1, got interval={interval!r}, "
                f"max_overhead={max_overhead!r}"
            )
        unknown = sorted(set(panels) - set(PANELS))
        if unknown or not panels:
            raise ValueError(f"panels must name some of {PANELS}, got {panels!r}")
        self.per_engine = per_engine
        self.panels = tuple(panels)
        self.interval = self.base_interval = interval
        self.max_overhead = max_overhead
        self.backlog = backlog
        self.background = background
        self.title = title
        self.clock = clock
        self.meter = ThroughputMeter(kinds=("train",))
        self.push_count = 0
        self.event_count = 0
        self.push_seconds = 0.0
        #: Clock times of the last 1000 pushes (to check the rate limit).
        self.push_times: deque[float] = deque(maxlen=1000)
        self._lock = threading.Lock()  # pending lists and counters
        self._push_lock = threading.Lock()  # one push at a time; guards the views' documents
        self._steps: list[StepEvent] = []
        self._vals: list[StepEvent] = []
        self._power: list[PowerSample] = []
        self._last_push = -math.inf
        self._t0: float | None = None
        self._prev_t: dict[int, float] = {}
        self._prev_all: float | None = None
        self._last_power: dict[int, PowerSample] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False
        self._hv: Any = None
        self.why_no_plot: str | None = None
        try:
            self._hv = lazy_import("holoviews", purpose="LivePlot")
        except MissingDependencyError as exc:
            self.why_no_plot = str(exc)
        self._tp_data = _empty(THROUGHPUT_COLUMNS)
        self._pw_data = _empty(POWER_COLUMNS)
        self._loss_data = _empty(LOSS_COLUMNS)
        self.buffers: dict[str, Any] = {}
        self._layout: Any = None
        #: Displayed views (widgets), one bokeh document each.
        self._views: list[Any] = []
        if self._hv is not None:
            buffer = self._hv.streams.Buffer
            self.buffers = {
                "throughput": buffer(_empty(THROUGHPUT_COLUMNS), length=backlog, index=False),
                "loss": buffer(_empty(LOSS_COLUMNS), length=backlog, index=False),
                "power": buffer(_empty(POWER_COLUMNS), length=backlog, index=False),
            }

    # -- input ---------------------------------------------------------------------------------
    def update(self, event: StepEvent | PowerSample | Mapping[str, Any]) -> None:
        """Take one step event or power sample (cheap: an append; pushes are rate limited)."""
        kind = type(event)
        if kind is not StepEvent and kind is not PowerSample:
            if not isinstance(event, Mapping):
                raise TypeError(
                    f"LivePlot takes StepEvent or PowerSample objects, got {kind.__name__}"
                )
            d = dict(event)
            event = PowerSample.from_dict(d) if "power_w" in d else StepEvent.from_dict(d)
            kind = type(event)
        with self._lock:
            self.event_count += 1
            if kind is PowerSample:
                self._power.append(event)  # type: ignore[arg-type]
            elif event.kind == "val":  # type: ignore[union-attr]
                self._vals.append(event)  # type: ignore[arg-type]
            else:
                self._steps.append(event)  # type: ignore[arg-type]
        if self.background:
            if self._thread is None:
                self._start_thread()
            if not self._wake.is_set():
                self._wake.set()
        elif self.clock() - self._last_push >= self.interval:
            self.flush()

    __call__ = update

    @property
    def callback(self) -> Callable[[Any], None]:
        """The function to register with a loop or a meter (same as :meth:`update`)."""
        return self.update

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wb-liveplot", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            wait = self._last_push + self.interval - self.clock()
            if wait > 0:
                time.sleep(wait)
            try:
                self.flush()
            except Exception as exc:  # the plot must never take the work down
                self._plot_failed(exc)
                self.background = False  # keep collecting, inline and without drawing
                return

    def _plot_failed(self, exc: BaseException) -> None:
        self.why_no_plot = f"live updates stopped: {exc!r}"
        self.buffers = {}
        self._views = []
        warnings.warn(
            f"LivePlot stopped drawing ({exc!r}); it keeps collecting", RuntimeWarning, stacklevel=2
        )

    # -- pushing -------------------------------------------------------------------------------
    def flush(self) -> None:
        """Push everything pending now (called by the rate limiter, and at the end of a run)."""
        with self._push_lock:
            with self._lock:
                steps, self._steps = self._steps, []
                vals, self._vals = self._vals, []
                power, self._power = self._power, []
            if not steps and not power and not vals:
                return
            started = self.clock()
            tp_rows, pw_rows = self._rows(steps), self._power_rows(power)
            loss_rows = self._loss_rows(steps, vals)
            self._views = [v for v in self._views if v.comm is not None]  # not closed
            try:
                with contextlib.ExitStack() as batches:
                    for view in self._views:  # each document's changes go out as one patch
                        batches.enter_context(view.batch())
                    self._send("throughput", tp_rows)
                    self._send("loss", loss_rows)
                    self._send("power", pw_rows)
            except Exception as exc:  # a broken plot must never take the work down
                self._plot_failed(exc)
            cost = self.clock() - started
            self.push_count += 1
            self.push_seconds += cost
            self._last_push = self.clock()
            self.push_times.append(self._last_push)
            # Stretch the interval so pushes take at most max_overhead of the time (<= 1 s).
            self.interval = min(1.0, max(self.base_interval, cost / self.max_overhead))

    def _rows(self, steps: list[StepEvent]) -> dict[str, np.ndarray] | None:
        if not steps:
            return None
        rows: list[tuple[float, ...]] = []
        by_rank: dict[int, list[StepEvent]] = {}
        for e in steps:
            by_rank.setdefault(e.rank, []).append(e)
        if self._t0 is None:
            self._t0 = min(e.t - e.duration for e in steps)
        spans = []
        for rank, evs in sorted(by_rank.items()):
            last = max(e.t for e in evs)
            first = min(e.t - e.duration for e in evs)
            start = self._prev_t.get(rank, first)
            span = last - start if last > start else sum(e.duration for e in evs)
            spans.append((start, last))
            self._prev_t[rank] = last
            row = self._row(rank, evs, last, span)
            rows.append(row)
            # the summary's meter gets the batch totals (cheap, off the loop's thread)
            busy = row[4] * len(evs)
            self.meter.add_totals(
                rank, steps=len(evs), samples=sum(e.samples for e in evs),
                nbytes=sum(e.nbytes for e in evs), busy_s=busy,
                data_wait_s=sum(e.data_wait for e in evs), first_start=first, last_t=last,
                last_loss=None if math.isnan(row[6]) else row[6],
            )  # fmt: skip
        # all engines together (the only row shown unless per_engine=True)
        start = self._prev_all if self._prev_all is not None else min(a for a, _ in spans)
        last = max(b for _, b in spans)
        self._prev_all = last
        span = last - start if last > start else sum(e.duration for e in steps)
        rows.append(self._row(-1, steps, last, span))
        cols = np.array(rows, dtype=float).T
        return dict(zip(THROUGHPUT_COLUMNS, cols, strict=True))

    def _row(self, rank: int, evs: list[StepEvent], last: float, span: float) -> tuple[float, ...]:
        samples = sum(e.samples for e in evs)
        nbytes = sum(e.nbytes for e in evs)
        busy = sum(e.duration for e in evs)
        wait = sum(e.data_wait for e in evs)
        losses = [e.loss for e in evs if e.loss is not None]
        rate = samples / span if span > 0 else math.nan
        return (
            last - (self._t0 or 0.0), rank, rate, nbytes / span if span > 0 else math.nan,
            busy / len(evs), wait / busy if busy > 0 else math.nan,
            losses[-1] if losses else math.nan, len(evs),
        )  # fmt: skip

    def _loss_rows(
        self, steps: list[StepEvent], vals: list[StepEvent]
    ) -> dict[str, np.ndarray] | None:
        rows = [
            (e.t, e.rank, e.epoch, e.loss, float(e.kind == "val"))
            for e in [*steps, *vals]
            if e.loss is not None
        ]
        if not rows:
            return None
        if self._t0 is None:
            self._t0 = min(r[0] for r in rows)
        cols = np.array(rows, dtype=float).T
        cols[0] -= self._t0
        return dict(zip(LOSS_COLUMNS, cols, strict=True))

    def _power_rows(self, power: list[PowerSample]) -> dict[str, np.ndarray] | None:
        if not power:
            return None
        if self._t0 is None:
            self._t0 = min(p.t for p in power)
        for p in power:
            self._last_power[p.rank] = p
        rows = [
            (p.t - self._t0, p.rank, p.power_w, p.energy_kwh * 1000, p.emissions_kg * 1000,
             p.estimated)
            for p in power
        ]  # fmt: skip
        latest = self._last_power.values()
        rows.append(
            (
                max(p.t for p in power) - self._t0,
                -1,
                sum(p.power_w for p in latest),
                sum(p.energy_kwh for p in latest) * 1000,
                sum(p.emissions_kg for p in latest) * 1000,
                any(p.estimated for p in latest),
            )
        )
        cols = np.array(rows, dtype=float).T
        return dict(zip(POWER_COLUMNS, cols, strict=True))

    def _send(self, name: str, rows: dict[str, np.ndarray] | None) -> None:
        if rows is None:
            return
        attr = {"throughput": "_tp_data", "loss": "_loss_data", "power": "_pw_data"}[name]
        merged = {
            k: np.concatenate([getattr(self, attr)[k], v])[-self.backlog :] for k, v in rows.items()
        }
        setattr(self, attr, merged)
        if name in self.buffers:
            self.buffers[name].send(rows)

    # -- views ---------------------------------------------------------------------------------
    @property
    def throughput(self) -> dict[str, np.ndarray]:
        """Rows pushed so far (columns :data:`THROUGHPUT_COLUMNS`), the same as the buffer holds."""
        return self._tp_data

    @property
    def power(self) -> dict[str, np.ndarray]:
        """Power rows pushed so far (columns :data:`POWER_COLUMNS`)."""
        return self._pw_data

    @property
    def losses(self) -> dict[str, np.ndarray]:
        """Loss rows pushed so far (columns :data:`LOSS_COLUMNS`)."""
        return self._loss_data

    @property
    def samples_per_s(self) -> float:
        """Training samples per second of training time so far (the title's figure)."""
        return self.meter.snapshot().samples_per_s

    @property
    def layout(self) -> Any:
        """The holoviews layout (built on first use); ``None`` without holoviews."""
        if self._hv is None:
            return None
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    def _build(self) -> Any:
        hv = self._hv
        per_engine = self.per_engine

        def named(name: str) -> Callable[[Any, Any], None]:
            def hook(plot: Any, element: Any) -> None:
                fig = plot.state
                fig.name = f"wb-liveplot-{name}"
                classes = list(fig.css_classes)
                for c in ("wb-liveplot", f"wb-liveplot-{name}"):
                    if c not in classes:
                        classes.append(c)
                fig.css_classes = classes

            return hook

        def template(name: str, column: str, ylabel: str) -> Any:
            # Options are attached once to a template; each frame reuses them through its id
            # (calling .opts() per frame, or on the DynamicMap, costs a re-render's worth).
            common = dict(hooks=[named(name)], width=440, height=260, xlabel="seconds",
                          ylabel=ylabel, framewise=True)  # fmt: skip
            if per_engine:
                return hv.NdOverlay({}, kdims="engine").opts(legend_position="top_left", **common)
            return hv.Curve((np.zeros(0), np.zeros(0)), "t", column).opts(**common)

        def curves(data: dict[str, np.ndarray], column: str, label: str, tmpl: Any) -> Any:
            rank = data["rank"]
            if not per_engine:
                m = rank == -1
                return hv.Curve(
                    (data["t"][m], data[column][m]), "t", column, label=label, id=tmpl.id
                )
            engines = [r for r in np.unique(rank) if r >= 0] or [0.0]
            keys = engines + ([-1.0] if len(engines) > 1 and column != "co2_g" else [])
            items = {
                ("all" if r < 0 else f"engine {int(r)}"): hv.Curve(
                    (data["t"][rank == r], data[column][rank == r]), "t", column
                )
                for r in keys
            }
            return hv.NdOverlay(items, kdims="engine", label=label, id=tmpl.id)

        def last_total(data: dict[str, np.ndarray], column: str) -> float:
            m = np.flatnonzero(data["rank"] == -1)
            return float(data[column][m[-1]]) if len(m) else math.nan

        def estimate(data: dict[str, np.ndarray]) -> str:
            return " (estimate)" if bool(np.any(data["estimated"] > 0)) else ""

        tmpls = {
            "throughput": template("throughput", "samples_per_s", "samples/s"),
            "power": template("power", "power_w", "W"),
            "co2": template("co2", "co2_g", "gCO2eq (cumulative)"),
        }
        loss_tmpl = hv.Overlay([hv.Curve((np.zeros(0), np.zeros(0)), "t", "loss")]).opts(
            hooks=[named("loss")], width=440, height=260, xlabel="seconds", ylabel="loss",
            framewise=True, legend_position="top_right",
        )  # fmt: skip

        def throughput(data: dict[str, np.ndarray]) -> Any:
            snap = self.meter.snapshot()
            rate, wait = snap.samples_per_s, snap.data_wait_share
            head = f"{self.title}: {rate:,.1f} samples/s of training, data wait {wait:.0%}"
            label = head if math.isfinite(rate) else self.title
            return curves(data, "samples_per_s", label, tmpls["throughput"])

        def loss(data: dict[str, np.ndarray]) -> Any:
            # an Overlay, not an NdOverlay: training curves and validation points mixed
            items: list[Any] = []
            for r in np.unique(data["rank"]):
                for val, make, what in ((0.0, hv.Curve, "train"), (1.0, hv.Scatter, "val")):
                    m = (data["rank"] == r) & (data["val"] == val)
                    if m.any():
                        label = f"engine {int(r)} {what}"
                        items.append(
                            make((data["t"][m], data["loss"][m]), "t", "loss", label=label)
                        )
            if not items:
                items.append(hv.Curve((np.zeros(0), np.zeros(0)), "t", "loss"))
            last = data["loss"][-1] if len(data["loss"]) else math.nan
            label = f"loss: {last:.4g} (last step)" if math.isfinite(last) else "loss"
            return hv.Overlay(items, label=label, id=loss_tmpl.id)

        def power(data: dict[str, np.ndarray]) -> Any:
            watts, co2 = last_total(data, "power_w"), last_total(data, "co2_g")
            source = "estimate" if estimate(data) else "measured"
            head = f"power ({source}): {watts:.3g} W, {co2:.3g} gCO2eq so far"
            label = head if math.isfinite(watts) else "power"
            return curves(data, "power_w", label, tmpls["power"])

        def co2(data: dict[str, np.ndarray]) -> Any:
            label = f"CO2 so far (g){estimate(data)}"
            return curves(data, "co2_g", label, tmpls["co2"])

        views = {
            "throughput": (throughput, "throughput"),
            "loss": (loss, "loss"),
            "power": (power, "power"),
            "co2": (co2, "power"),
        }
        panels = [
            hv.DynamicMap(views[name][0], streams=[self.buffers[views[name][1]]])
            for name in self.panels
        ]
        return hv.Layout(panels).cols(min(len(panels), 2))

    # -- display -------------------------------------------------------------------------------
    def summary(self) -> str:
        """Summarise in text what was collected (used where there is no front end)."""
        s = self.meter.snapshot()
        lines = [f"LivePlot: {self.event_count} events, {self.push_count} pushes"]
        if s.steps:
            lines.append(f"  all: {s!r}")
            if len(s.ranks) > 1:
                lines += [f"  engine {r}: {rs!r}" for r, rs in s.per_rank.items()]
        else:
            lines.append("  no steps yet")
        for rank, p in sorted(self._last_power.items()):
            est = " (estimate)" if p.estimated else ""
            lines.append(
                f"  power engine {rank}: {p.power_w:.3g} W, {p.energy_kwh * 1000:.3g} Wh, "
                f"{p.emissions_kg * 1000:.3g} gCO2eq{est}"
            )
        return "\n".join(lines)

    def display(self) -> None:
        """Show the live plot in a notebook; in a plain script, print a text summary.

        In a notebook the plot is a widget whose comm the kernel opens, so the same cell can
        display it and then feed it (see :meth:`view`).
        """
        if self._hv is None or not self.buffers or not has_front_end():
            why = self.why_no_plot or "no notebook front end (plain Python)"
            print(f"LivePlot cannot draw here: {why}; it keeps collecting. Summary so far:")
            print(self.summary())
            return
        ipy_display = lazy_import("IPython.display", purpose="LivePlot.display")
        ipy_display.display(self.view())

    def view(self) -> Any:
        """Make a new displayable view of the plot, updated on every push.

        The holoviews layout is rendered to a bokeh document of its own, shown by an anywidget
        that draws it with the page's BokehJS and applies each push's changes. A widget's comm
        is opened by the kernel and the kernel's messages are handled by the browser while a
        cell runs, so a plot displayed and fed by the same cell updates live (holoviews' own
        comm is opened by the browser, which the kernel only hears once the cell ends).
        Without anywidget this returns the holoviews layout itself, which then updates only
        when fed from a later cell than the one that displays it.
        """
        hv = self._hv
        if hv is None:
            raise MissingDependencyError(self.why_no_plot or "holoviews is not installed")
        if not self.buffers:
            raise WorkbenchError(f"LivePlot cannot draw any more: {self.why_no_plot}")
        _load_extension(hv)
        try:
            view_class = _view_class()
        except MissingDependencyError as exc:
            warnings.warn(
                f"{exc}; without it the live plot updates only when fed from a later cell than "
                "the one that displays it",
                RuntimeWarning,
                stacklevel=2,
            )
            return self.layout
        document = lazy_import("bokeh.document", purpose="LivePlot.view").Document
        renderer = hv.renderer("bokeh")
        with self._push_lock:  # no push while the plot is built and serialized
            plot = renderer.get_plot(self.layout)
            # a document per view (not the global curdoc); bokeh's theme, not the renderer's
            # (its 12pt titles do not fit the throughput title in a 440 px wide panel)
            plot.document = doc = document()
            doc.add_root(plot.state)
            view = view_class(plot)
            self._views.append(view)
        return view

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        if self._hv is None or not self.buffers or not has_front_end():
            return {"text/plain": self.summary()}
        view = self.view()
        if view is self._layout:  # no anywidget: holoviews' own display
            return view._repr_mimebundle_(include, exclude)
        return view._repr_mimebundle_(include=include, exclude=exclude)

    def close(self) -> None:
        """Push what is pending and stop the background thread."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
        with self._push_lock:
            for view in self._views:  # the full state, for a view that missed patches
                try:
                    view.resync()
                except Exception as exc:  # the plot must never take the work down
                    self._plot_failed(exc)
                    break

    def __repr__(self) -> str:
        return self.summary()


def _load_extension(hv: Any) -> None:
    """Load the bokeh backend with inline BokehJS once (offline: no CDN)."""
    global _EXTENSION_LOADED
    if not _EXTENSION_LOADED:
        hv.extension("bokeh", inline=True, logo=False)
        _EXTENSION_LOADED = True


def _view_class() -> Any:
    """Return the widget class of a displayed LivePlot (anywidget, bokeh imported lazily)."""
    lazy_import("anywidget", purpose="LivePlot.display")
    from workbench.widgets._liveview import LivePlotView

    return LivePlotView
