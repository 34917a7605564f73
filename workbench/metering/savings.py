"""Extrapolate the time saved by a faster route into USD, kgCO2eq and everyday equivalents.

This reproduces the table that closes the seed blog ("When cloud-native geospatial meets
GPU-native machine learning"): reading 18.2 GB of ERA5 took 11.9 s with kvikIO and 16.0 s with
the CPU zarr engine. If the slow route keeps a machine busy ``busy_hours_per_day`` (24), the
fast one frees ``24 x (1 - 11.9 / 16.0) = 6.15`` hours a day, "about 6", hence 180 hours a
month (x 30) and 2190 a year (x 365). Each hour costs the price of the machine (USD 3/h) and
``power x grid intensity`` of CO2 (90 W x 538 gCO2eq/kWh = 0.04842 kgCO2eq/h).

The equivalence factors the blog used, worked out from its own numbers:

* smartphone charges: 8.22 gCO2 per charge (US EPA Greenhouse Gas Equivalencies Calculator:
  8.22e-6 metric tons CO2 per smartphone charged); 0.29052 kg / 8.22 g = 35.3 -> 35;
* km of driving: 0.198 kgCO2eq/km, implied by the blog (8.7156 kg -> 44 km; any factor in
  0.1959-0.2004 kg/km rounds to 44); the blog names no source;
* km of domestic flight: 0.246 kgCO2eq per passenger-km (UK DESNZ 2022 conversion factors, as
  charted by Our World in Data, "Carbon footprint of travel per kilometer, 2022"); 106.0398 kg /
  0.246 = 431.06 -> 431.

The inputs of the blog with their sources are in :data:`BLOG_INPUTS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.metering._common import MeterConfigError
from workbench.metering.grid import grid_intensity

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Equivalence",
    "EQUIVALENCES",
    "BLOG_EQUIVALENCES",
    "BLOG_INPUTS",
    "SavingsRow",
    "SavingsReport",
    "extrapolate_savings",
]


@dataclass(frozen=True)
class Equivalence:
    """An everyday quantity with the same CO2: ``kg / kg_per_unit`` units of it."""

    key: str
    label: str
    unit: str
    kg_per_unit: float
    source: str

    def count(self, kg: float) -> float:
        """How many units emit ``kg`` of CO2-equivalent."""
        return kg / self.kg_per_unit

    def format(self, kg: float) -> str:
        """Return the blog-style text, e.g. ``'35 smartphone charges'``."""
        return self.label.format(n=round(self.count(kg)))


EQUIVALENCES: dict[str, Equivalence] = {
    e.key: e
    for e in (
        Equivalence(
            "smartphone_charges",
            "{n:,} smartphone charges",
            "smartphone charge",
            0.00822,
            "US EPA Greenhouse Gas Equivalencies Calculator: 8.22e-6 t CO2 per smartphone charged",
        ),
        Equivalence(
            "car_km",
            "{n:,} km of driving a car",
            "km driven by car",
            0.198,
            "implied by the seed blog (8.72 kgCO2eq = 44 km); it cites no source",
        ),
        Equivalence(
            "domestic_flight_km",
            "{n:,} km domestic flight",
            "passenger-km of domestic flight",
            0.246,
            "UK DESNZ 2022 conversion factors via Our World in Data, 'Carbon footprint of "
            "travel per kilometer, 2022': domestic flight 246 gCO2eq per passenger-km",
        ),
    )
}

#: Which equivalence the blog shows on each row.
BLOG_EQUIVALENCES: dict[str, str] = {
    "day": "smartphone_charges",
    "month": "car_km",
    "year": "domestic_flight_km",
}

#: The blog's inputs and their sources (``extrapolate_savings(16.0, 11.9, **BLOG_INPUTS)``).
BLOG_INPUTS: dict[str, Any] = {
    "price_per_hour": 3.0,
    "price_source": (
        "USD 3/h for an NVIDIA A100 40GB (range 2.39-4.10), "
        "https://www.paperspace.com/gpu-cloud-comparison (2023)"
    ),
    "power_w": 90.0,
    "power_source": "90 W GPU power draw while reading (the blog's measurement)",
    "intensity_g_per_kwh": 538.0,
    "intensity_source": (
        "Google Cloud Sydney region, 538 gCO2eq/kWh, https://cloud.google.com/sustainability/region-carbon"
    ),
    "round_hours_per_day": 0,
    "labels": ("CPU zarr engine", "GPU kvikIO engine"),
}

_PERIODS = ("day", "month", "year")


@dataclass(frozen=True)
class SavingsRow:
    """One period of a :class:`SavingsReport`."""

    period: str
    hours: float
    usd: float
    kg_co2eq: float
    equivalence: Equivalence
    equivalent: float

    @property
    def equivalent_text(self) -> str:
        """E.g. ``'35 smartphone charges'``."""
        return self.equivalence.format(self.kg_co2eq)


def _fmt_num(x: float) -> str:
    r = round(x, 2)
    return f"{r:.0f}" if float(r).is_integer() else f"{r:.2f}"


@dataclass(frozen=True)
class SavingsReport:
    """Time saved per day, month and year, in USD, kgCO2eq and everyday equivalents.

    Render it as a DataFrame (:meth:`to_frame` numeric, :meth:`to_display_frame` as in the blog)
    or as HTML in a notebook (``_repr_html_``). Every figure of an estimated report is labelled
    "estimate".
    """

    baseline_label: str
    candidate_label: str
    baseline_s: float
    candidate_s: float
    busy_hours_per_day: float
    hours_per_day: float
    price_per_hour: float
    price_source: str
    power_w: float
    power_source: str
    intensity_g_per_kwh: float
    intensity_source: str
    rows: tuple[SavingsRow, ...]
    estimated: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def fraction_saved(self) -> float:
        """Share of the baseline's time the candidate saves (0.25625 for 16.0 s -> 11.9 s)."""
        return 1.0 - self.candidate_s / self.baseline_s

    @property
    def kg_per_hour(self) -> float:
        """kgCO2eq of one machine hour: ``power_w / 1000 x intensity / 1000``."""
        return self.power_w / 1000.0 * self.intensity_g_per_kwh / 1000.0

    def row(self, period: str) -> SavingsRow:
        """Return the row of ``"day"``, ``"month"`` or ``"year"``."""
        for r in self.rows:
            if r.period == period:
                return r
        raise MeterConfigError(f"unknown period {period!r}; use one of {_PERIODS}")

    def to_frame(self) -> pd.DataFrame:
        """Numbers, one row per period (hours, usd, kg_co2eq, equivalent, equivalence, source)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "period": r.period,
                    "hours": r.hours,
                    "usd": r.usd,
                    "kg_co2eq": r.kg_co2eq,
                    "equivalent": r.equivalent,
                    "equivalence": r.equivalence.key,
                    "equivalence_source": r.equivalence.source,
                    "estimated": self.estimated,
                }
                for r in self.rows
            ]
        ).set_index("period")

    def to_display_frame(self) -> pd.DataFrame:
        """Return the blog's table as text cells ("6 hr (day)", "USD18", "0.29 kgCO₂eq", ...)."""
        import pandas as pd

        est = " (estimate)" if self.estimated else ""
        carbon = f"Carbon ({self.kg_per_hour:.5g} kgCO₂eq/hr){est}"
        price = f"Price (USD{self.price_per_hour:g}/hr)"
        return pd.DataFrame(
            {
                "Time saved": [f"{r.hours:g} hr ({r.period})" for r in self.rows],
                price: [f"USD{_fmt_num(r.usd)}" for r in self.rows],
                carbon: [f"{r.kg_co2eq:.2f} kgCO₂eq" for r in self.rows],
                "CO₂ emissions equivalent to": [r.equivalent_text for r in self.rows],
            }
        )

    def sources(self) -> list[str]:
        """Footnotes: every input with its source, and the carbon arithmetic."""
        kwh = self.power_w / 1000.0
        lines = [
            f"Price: USD{self.price_per_hour:g}/hour; {self.price_source}",
            f"Power: {self.power_w:g} W; {self.power_source}",
            f"Carbon intensity: {self.intensity_g_per_kwh:g} gCO₂eq/kWh; {self.intensity_source}",
            f"{self.power_w:g} W x 1 hour = {kwh:g} kWh; {kwh:g} kWh x "
            f"{self.intensity_g_per_kwh:g} gCO₂eq/kWh = {self.kg_per_hour:.5g} kgCO₂eq/hr",
        ]
        used = {r.equivalence.key: r.equivalence for r in self.rows}.values()
        lines += [f"{e.kg_per_unit * 1000:g} gCO₂eq per {e.unit}: {e.source}" for e in used]
        return lines + list(self.notes)

    def _headline(self) -> str:
        est = "Estimate: " if self.estimated else ""
        return (
            f"{est}{self.candidate_label} takes {self.candidate_s:.3g} s where "
            f"{self.baseline_label} takes {self.baseline_s:.3g} s ({self.fraction_saved:.1%} less "
            f"time): {self.hours_per_day:g} hr saved per day of "
            f"{self.busy_hours_per_day:g} busy hours"
        )

    def __repr__(self) -> str:
        table = self.to_display_frame().to_string(index=False)
        foot = "\n".join(f"  [{i}] {s}" for i, s in enumerate(self.sources(), 1))
        return f"{self._headline()}\n{table}\n{foot}"

    def _repr_html_(self) -> str:
        import html

        table = self.to_display_frame().to_html(index=False, classes="wb-savings-table")
        foot = "".join(f"<li>{html.escape(s)}</li>" for s in self.sources())
        badge = (
            '<p class="wb-estimate"><b>Estimate:</b> power comes from a model, not from '
            "energy counters.</p>"
            if self.estimated
            else ""
        )
        return (
            f'<div class="wb-savings-report"><p>{html.escape(self._headline())}</p>{badge}'
            f"{table}<ol>{foot}</ol></div>"
        )


def _positive(name: str, value: float) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        hint = " (a zero-length run cannot be compared)" if "_s" in name else ""
        raise MeterConfigError(f"{name} must be a finite number > 0, got {value!r}{hint}")
    return float(value)


def extrapolate_savings(
    baseline_s: float,
    candidate_s: float,
    *,
    price_per_hour: float,
    power_w: float,
    intensity_g_per_kwh: float | None = None,
    country: str | None = None,
    price_source: str = "given by the user",
    power_source: str = "given by the user",
    intensity_source: str | None = None,
    busy_hours_per_day: float = 24.0,
    round_hours_per_day: int | None = None,
    days_per_month: float = 30,
    days_per_year: float = 365,
    equivalences: Mapping[str, str | Equivalence] = BLOG_EQUIVALENCES,
    labels: tuple[str, str] = ("baseline", "candidate"),
    estimated: bool = False,
) -> SavingsReport:
    """Scale the time a faster route saves to a day, a month and a year of work.

    Parameters
    ----------
    baseline_s, candidate_s : float
        Seconds the slow (baseline) and the fast (candidate) route take for the same work.
    price_per_hour : float
        USD per machine hour.
    power_w : float
        Watts the machine draws while busy.
    intensity_g_per_kwh : float, optional
        Grid intensity; or give ``country`` (alpha-3) to look it up offline in codecarbon's data.
    price_source, power_source, intensity_source : str
        Where the inputs come from (printed under the table).
    busy_hours_per_day : float
        Hours a day the baseline route would keep the machine busy (24: around the clock).
    round_hours_per_day : int, optional
        Round the hours saved per day to this many decimals (the blog: 0, "about 6").
    days_per_month, days_per_year : float
        30 and 365, as in the blog.
    equivalences : mapping
        Period -> equivalence key of :data:`EQUIVALENCES` (or an :class:`Equivalence`).
    labels : (str, str)
        Names of the baseline and candidate routes.
    estimated : bool
        Whether the power figure is an estimate (labels every text form "estimate").

    Raises
    ------
    MeterConfigError
        For a zero, negative or non-finite time, price, power or intensity, or an unknown
        equivalence or period.

    Examples
    --------
    >>> rep = extrapolate_savings(16.0, 11.9, **BLOG_INPUTS)
    >>> day = rep.row("day")
    >>> day.hours, day.usd, round(day.kg_co2eq, 2), day.equivalent_text
    (6.0, 18.0, 0.29, '35 smartphone charges')
    """
    b, c = _positive("baseline_s", baseline_s), _positive("candidate_s", candidate_s)
    price = float(price_per_hour)
    if not math.isfinite(price) or price < 0:
        raise MeterConfigError(f"price_per_hour must be >= 0 USD/h, got {price_per_hour!r}")
    power = _positive("power_w", power_w)
    if intensity_g_per_kwh is None:
        if country is None:
            raise MeterConfigError(
                "give intensity_g_per_kwh=... (gCO2eq/kWh) or country='AUS' (alpha-3) to look "
                "it up in codecarbon's offline data"
            )
        grid = grid_intensity(country)
        intensity, intensity_source = grid.g_per_kwh, intensity_source or grid.source
    else:
        intensity = float(intensity_g_per_kwh)
        if not math.isfinite(intensity) or intensity < 0:
            raise MeterConfigError(f"intensity_g_per_kwh must be >= 0, got {intensity_g_per_kwh!r}")
    per_day = busy_hours_per_day * (1.0 - c / b)
    if round_hours_per_day is not None:
        per_day = round(per_day, round_hours_per_day)
    days = {"day": 1.0, "month": float(days_per_month), "year": float(days_per_year)}
    unknown = sorted(set(equivalences) - set(days))
    if unknown:
        raise MeterConfigError(f"unknown period(s) {unknown}; use {list(_PERIODS)}")
    kg_per_hour = power / 1000.0 * intensity / 1000.0
    rows = []
    for period in _PERIODS:
        if period not in equivalences:
            continue
        eq = equivalences[period]
        if isinstance(eq, str):
            if eq not in EQUIVALENCES:
                raise MeterConfigError(f"unknown equivalence {eq!r}; known: {sorted(EQUIVALENCES)}")
            eq = EQUIVALENCES[eq]
        hours = per_day * days[period]
        kg = hours * kg_per_hour
        rows.append(SavingsRow(period, hours, hours * price, kg, eq, eq.count(kg)))
    notes: tuple[str, ...] = ()
    if c > b:
        notes = (
            f"{labels[1]} is slower than {labels[0]}: the 'savings' are negative (extra cost)",
        )
    return SavingsReport(
        baseline_label=labels[0],
        candidate_label=labels[1],
        baseline_s=b,
        candidate_s=c,
        busy_hours_per_day=float(busy_hours_per_day),
        hours_per_day=per_day,
        price_per_hour=price,
        price_source=price_source,
        power_w=power,
        power_source=power_source,
        intensity_g_per_kwh=intensity,
        intensity_source=intensity_source or "given by the user",
        rows=tuple(rows),
        estimated=estimated,
        notes=notes,
    )
