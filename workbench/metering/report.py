"""Compare two recorded runs (GPU vs CPU route, partitioned vs distributed) as a savings report."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from workbench.metering._common import MeterConfigError
from workbench.metering.records import RunLog, RunRecord
from workbench.metering.savings import BLOG_EQUIVALENCES, SavingsReport, extrapolate_savings

__all__ = ["compare_runs", "label_of"]


def label_of(run: RunRecord) -> str:
    """Name a run shortly: its name plus route/strategy, e.g. ``"read ERA5 [kvikio]"``."""
    how = "/".join(x for x in (run.route, run.strategy) if x)
    return f"{run.name} [{how}]" if how else run.name


def _resolve(log: RunLog | None, run: RunRecord | str) -> RunRecord:
    if isinstance(run, RunRecord):
        return run
    if log is None:
        raise MeterConfigError(f"run {run!r} given by name: pass log=RunLog(...) to look it up")
    return log.get(run)


def compare_runs(
    baseline: RunRecord | str,
    candidate: RunRecord | str,
    *,
    log: RunLog | None = None,
    price_per_hour: float | None = None,
    price_source: str | None = None,
    power_w: float | None = None,
    power_source: str | None = None,
    intensity_g_per_kwh: float | None = None,
    intensity_source: str | None = None,
    **kwargs: Any,
) -> SavingsReport:
    """Extrapolate what running ``candidate`` instead of ``baseline`` saves per day/month/year.

    When the runs processed different numbers of samples, the candidate's time is scaled to
    the baseline's amount of work (seconds per sample x baseline samples). Price, power and
    grid intensity default to what the baseline run recorded (the machine time you no longer
    spend is spent the baseline way); pass them to override.

    Parameters
    ----------
    baseline, candidate : RunRecord or str
        Records, or names / run ids looked up in ``log``.
    log : RunLog, optional
        Where to look names up.
    price_per_hour, power_w, intensity_g_per_kwh : float, optional
        Inputs; each with an optional ``*_source`` naming where it comes from.
    **kwargs
        Passed to :func:`~workbench.metering.savings.extrapolate_savings`
        (``busy_hours_per_day``, ``round_hours_per_day``, ``equivalences``, ...).

    Raises
    ------
    MeterConfigError
        For a zero-length run, or an input that neither the call nor the record provides.

    Examples
    --------
    >>> cpu = RunRecord.build("read ERA5", route="zarr", duration_s=16.0, price_per_hour=3.0)
    >>> gpu = RunRecord.build("read ERA5", route="kvikio", duration_s=11.9)
    >>> rep = compare_runs(cpu, gpu, power_w=90, intensity_g_per_kwh=538, round_hours_per_day=0)
    >>> rep.row("month").usd, rep.candidate_label
    (540.0, 'read ERA5 [kvikio]')
    """
    b, c = _resolve(log, baseline), _resolve(log, candidate)
    for run in (b, c):
        if not run.duration_s > 0:
            raise MeterConfigError(
                f"run {label_of(run)!r} ({run.run_id[:8]}) lasted {run.duration_s!r} s: a "
                "zero-length run has no speed to compare; record a run that did some work"
            )
    b_s, c_s = b.duration_s, c.duration_s
    notes = []
    if b.samples > 0 and c.samples > 0 and b.samples != c.samples:
        c_s = c.duration_s / c.samples * b.samples
        notes.append(
            f"{label_of(c)} processed {c.samples:,} samples and {label_of(b)} {b.samples:,}: "
            f"its time is scaled to the baseline's work ({c.duration_s:.3g} s -> {c_s:.3g} s)"
        )
    if price_per_hour is None:
        price_per_hour, price_source = b.price_per_hour_usd, price_source or b.price_source
    if price_per_hour is None:
        raise MeterConfigError(
            f"no price per hour: run {label_of(b)!r} recorded none; pass price_per_hour=... "
            "(e.g. 3.0 USD/h for an A100 40GB, the blog's figure)"
        )
    estimated = False
    if power_w is None:
        power_w, estimated = b.power_w, b.estimated
        power_source = power_source or f"mean power of {label_of(b)} ({b.carbon_method})"
    if power_w is None or not power_w > 0:
        raise MeterConfigError(
            f"no power: run {label_of(b)!r} has no measured energy; pass power_w=... (watts)"
        )
    if intensity_g_per_kwh is None:
        intensity_g_per_kwh = b.intensity_g_per_kwh
        intensity_source = intensity_source or b.intensity_source
    if intensity_g_per_kwh is None:
        raise MeterConfigError(
            f"no grid intensity: run {label_of(b)!r} recorded none; pass intensity_g_per_kwh=... "
            "or country='AUS'"
        )
    estimated = estimated or bool(kwargs.pop("estimated", False))
    kwargs.setdefault("equivalences", BLOG_EQUIVALENCES)
    kwargs.setdefault("labels", (label_of(b), label_of(c)))
    rep = extrapolate_savings(
        b_s,
        c_s,
        price_per_hour=price_per_hour,
        price_source=price_source or "given by the user",
        power_w=power_w,
        power_source=power_source or "given by the user",
        intensity_g_per_kwh=intensity_g_per_kwh,
        intensity_source=intensity_source,
        estimated=estimated,
        **kwargs,
    )
    if notes:
        rep = replace(rep, notes=rep.notes + tuple(notes))
    return rep
