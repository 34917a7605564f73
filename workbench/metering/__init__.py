"""Metering: throughput, energy and CO2 of data and training loops, run records and savings.

* :class:`ThroughputMeter` counts :class:`StepEvent` objects (samples/s, bytes/s, step time,
  data-wait share; per rank and aggregated).
* :class:`EstimateMeter` (power model x time x grid intensity, deterministic) and
  :class:`CodeCarbonMeter` (codecarbon's offline tracker, failures made visible) return a
  :class:`CarbonResult` and push live :class:`PowerSample` objects.
* :class:`RunRecord` / :class:`RunLog` keep one durable row per run; :func:`compare_runs` and
  :func:`extrapolate_savings` turn two runs into the seed blog's savings table.
* :func:`measure_modes` runs the Frontier paper's IO / synthetic / real modes.
* :class:`MeteredRun` ties them together in a ``with`` block.

The live plot is ``workbench.widgets.live.LivePlot`` (the notebook layer). Nothing here imports
codecarbon, pandas-heavy code or holoviews at import time.

Examples
--------
>>> from workbench.metering import extrapolate_savings, BLOG_INPUTS
>>> extrapolate_savings(16.0, 11.9, **BLOG_INPUTS).row("year").equivalent_text
'431 km domestic flight'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.metering._common import MeterConfigError, MeteringWarning
from workbench.metering.carbon import (
    CarbonMeter,
    CarbonResult,
    EstimateMeter,
    PowerModel,
    PowerSample,
    combine_results,
)
from workbench.metering.events import StepEvent
from workbench.metering.grid import GridIntensity, grid_intensity, validate_location
from workbench.metering.modes import ModeReport, measure_modes
from workbench.metering.records import RunLog, RunRecord
from workbench.metering.report import compare_runs
from workbench.metering.run import MeteredRun
from workbench.metering.savings import (
    BLOG_EQUIVALENCES,
    BLOG_INPUTS,
    EQUIVALENCES,
    Equivalence,
    SavingsReport,
    extrapolate_savings,
)
from workbench.metering.throughput import ThroughputMeter, ThroughputStats

if TYPE_CHECKING:
    from workbench.metering.codecarbon_meter import CodeCarbonMeter

__all__ = [
    "StepEvent",
    "ThroughputMeter",
    "ThroughputStats",
    "PowerSample",
    "CarbonResult",
    "CarbonMeter",
    "PowerModel",
    "EstimateMeter",
    "CodeCarbonMeter",
    "combine_results",
    "GridIntensity",
    "grid_intensity",
    "validate_location",
    "RunRecord",
    "RunLog",
    "MeteredRun",
    "Equivalence",
    "EQUIVALENCES",
    "BLOG_EQUIVALENCES",
    "BLOG_INPUTS",
    "SavingsReport",
    "extrapolate_savings",
    "compare_runs",
    "ModeReport",
    "measure_modes",
    "MeteringWarning",
    "MeterConfigError",
]


def __getattr__(name: str) -> Any:
    if name == "CodeCarbonMeter":
        from workbench.metering.codecarbon_meter import CodeCarbonMeter

        return CodeCarbonMeter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
