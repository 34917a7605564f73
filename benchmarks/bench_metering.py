"""Overhead of metering a loop: steps/s without vs with ThroughputMeter, EstimateMeter and LivePlot.

Two loops, measured side by side (interleaved repeats, medians):

* ``tight``: a step of ~1 microsecond of numpy work, the worst case for per-step overhead;
* ``training-like``: a step of ~2 ms of single-threaded numpy work, the case that matters.

Variants: ``bare`` (no events), ``events`` (a StepEvent per step, no subscriber),
``meter`` (a StepEvent per step + ThroughputMeter),
``meter+estimate`` (+ EstimateMeter, one live power sample per second), ``meter+estimate+live``
(+ LivePlot of throughput and power, not displayed: a plain script), ``...+live-rendered``
(+ the LivePlot's holoviews layout rendered to bokeh models, so every push runs the full
re-render a displayed plot costs; only the comm to the browser is not included).
LivePlot pushes run on its background thread, rate limited (<= 1 push per 0.5-1 s).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.metering import EstimateMeter, StepEvent, ThroughputMeter


def _tight_work() -> Callable[[], None]:
    a = np.zeros(64, dtype=np.float32)

    def work() -> None:
        np.add(a, 1.0, out=a)

    return work


def _training_like_work() -> Callable[[], None]:
    # elementwise ufuncs run on one thread (no BLAS pool to fight the other processes)
    x = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    y = np.empty_like(x)

    def work() -> None:
        for _ in range(2):
            np.tanh(x, out=y)
            np.multiply(y, 1.0001, out=x)

    return work


def _make_variant(name: str) -> tuple[list[Callable[[Any], Any]], Callable[[], dict[str, Any]]]:
    """Subscribers of one variant, and a finaliser returning facts (pushes, ...)."""
    if name == "bare":
        return [], dict
    if name == "events":  # the cost of building a StepEvent per step, no subscriber
        return [lambda e: None], dict
    meter = ThroughputMeter()
    subs: list[Callable[[Any], Any]] = [meter.update]
    live = None
    est = EstimateMeter(intensity_g_per_kwh=500)  # one live power sample per second
    if name != "meter":
        subs.append(est.update)
    if name == "meter+estimate":
        est.subscribe(lambda s: None)
    if name.startswith("meter+estimate+live"):
        from workbench.widgets.live import LivePlot

        live = LivePlot(interval=0.5)
        est.subscribe(live.update)
        if name == "meter+estimate+live-rendered":
            import holoviews as hv

            hv.extension("bokeh")
            live._rendered = hv.renderer("bokeh").get_plot(live.layout)  # type: ignore[attr-defined]
        subs.append(live.update)

    def finish() -> dict[str, Any]:
        if live is None:
            return {}
        times = list(live.push_times)  # pushes while the loop ran (before the final flush)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        live.close()
        return {
            "pushes": live.push_count,
            "min_push_gap_s": min(gaps) if gaps else None,
            "push_ms_mean": 1e3 * live.push_seconds / max(live.push_count, 1),
            "final_interval_s": live.interval,
        }

    return subs, finish


def _run_loop(work: Callable[[], None], variant: str, seconds: float) -> dict[str, Any]:
    subs, finish = _make_variant(variant)
    emit = bool(subs)
    n = 0
    cpu0 = time.process_time()  # all threads of this process: includes LivePlot's pushes
    start = time.perf_counter()
    end = start + seconds
    t_prev = start
    while True:
        work()
        n += 1
        if emit:
            now = time.perf_counter()
            e = StepEvent(step=n, samples=32, nbytes=32 * 4096, t=time.time(),
                          duration=now - t_prev, data_wait=0.0)  # fmt: skip
            t_prev = now
            for s in subs:
                s(e)
            if now >= end:
                break
        elif n % 64 == 0 and time.perf_counter() >= end:
            break
    elapsed = time.perf_counter() - start
    facts = finish()  # the final flush of a LivePlot counts too
    cpu = time.process_time() - cpu0
    facts.update(steps=n, seconds=elapsed, steps_per_s=n / elapsed, cpu_us_per_step=cpu / n * 1e6)
    if "pushes" in facts:
        facts["pushes_per_s"] = facts["pushes"] / elapsed
    return facts


VARIANTS = (
    "bare",
    "events",
    "meter",
    "meter+estimate",
    "meter+estimate+live",
    "meter+estimate+live-rendered",
)


def run(quick: bool) -> dict[str, Any]:
    """Measure steps/s per variant (medians of interleaved repeats) and overhead ratios."""
    seconds = 0.5 if quick else 2.0
    repeats = 1 if quick else 5
    loops = {"tight": _tight_work(), "training_like": _training_like_work()}
    # warm up imports (holoviews, bokeh) outside the timed runs
    _run_loop(loops["tight"], "meter+estimate+live-rendered", 0.2)
    out: dict[str, Any] = {"seconds_per_run": seconds, "repeats": repeats}
    for loop_name, work in loops.items():
        raw: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for _ in range(repeats):
            for v in VARIANTS:
                raw[v].append(_run_loop(work, v, seconds))
        bare = statistics.median(r["steps_per_s"] for r in raw["bare"])
        bare_cpu = statistics.median(r["cpu_us_per_step"] for r in raw["bare"])
        # noise on a shared machine only adds time: the best of the repeats is the cleanest
        bare_cpu_min = min(r["cpu_us_per_step"] for r in raw["bare"])
        res: dict[str, Any] = {}
        for v in VARIANTS:
            rate = statistics.median(r["steps_per_s"] for r in raw[v])
            cpu = statistics.median(r["cpu_us_per_step"] for r in raw[v])
            entry = {
                "steps_per_s_median": rate,
                "ratio_vs_bare": rate / bare,
                "wall_overhead_us_per_step": (1 / rate - 1 / bare) * 1e6,
                # CPU seconds of this process per step: robust to other load on a shared machine
                "cpu_us_per_step_median": cpu,
                "cpu_overhead_us_per_step": cpu - bare_cpu,
                "cpu_overhead_share": (cpu - bare_cpu) / bare_cpu,
                "cpu_us_per_step_min": min(r["cpu_us_per_step"] for r in raw[v]),
                "cpu_overhead_us_per_step_min": min(r["cpu_us_per_step"] for r in raw[v])
                - bare_cpu_min,
            }
            if "pushes" in raw[v][0]:
                gaps = [r["min_push_gap_s"] for r in raw[v] if r["min_push_gap_s"] is not None]
                entry["pushes_per_s_max"] = max(r["pushes_per_s"] for r in raw[v])
                entry["min_push_gap_s"] = min(gaps) if gaps else None
                entry["push_ms_mean_median"] = statistics.median(r["push_ms_mean"] for r in raw[v])
                entry["final_interval_s"] = raw[v][-1]["final_interval_s"]
            res[v] = entry
        out[loop_name] = res
    if not quick:
        out["codecarbon"] = _codecarbon_timings()
    return out


def _codecarbon_timings() -> dict[str, Any]:
    """Setup/start/stop seconds of one CodeCarbonMeter (Australia), measured once."""
    try:
        from workbench.metering import CodeCarbonMeter
    except Exception as exc:  # codecarbon missing: say so in the result
        return {"error": repr(exc)}
    m = CodeCarbonMeter("AUS")
    t0 = time.perf_counter()
    m.setup()
    t1 = time.perf_counter()
    m.start()
    t2 = time.perf_counter()
    time.sleep(1.0)
    t3 = time.perf_counter()
    r = m.stop()
    t4 = time.perf_counter()
    return {
        "setup_s": t1 - t0,
        "start_s": t2 - t1,
        "stop_s": t4 - t3,
        "measured": r.measured,
        "estimated": r.estimated,
        "power_w": r.power_w,
    }
