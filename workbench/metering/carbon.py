"""Energy and CO2 of a run: results, live power samples, and the deterministic estimate meter.

Two meters share one result type, :class:`CarbonResult`:

* :class:`EstimateMeter` (here): power x time x grid intensity from documented defaults. It is
  deterministic (tests, CI, machines where nothing can be measured) and always says
  ``estimated=True``.
* :class:`~workbench.metering.codecarbon_meter.CodeCarbonMeter`: codecarbon's
  ``OfflineEmissionsTracker`` wrapped so that its swallowed errors become a warning and a
  result with ``measured=False``.

Meters push :class:`PowerSample` objects to subscribers (e.g. a ``LivePlot``) while they run.

Default power model of :class:`EstimateMeter` (each a parameter; sources named):

* CPU: ``cpu_tdp_w x share of the CPU's threads used x utilisation``. Without a TDP, 4 W per
  hardware thread (codecarbon's ``DEFAULT_POWER_PER_CORE`` for a CPU missing from its table).
  Utilisation defaults to 1.0 (a training loop keeps its cores busy; an upper bound otherwise).
* RAM: 0.375 W per GB of physical memory (3 W per 8 GB of DDR3/DDR4, Crucial, the figure
  codecarbon used before v3).
* GPU: ``gpu_w`` (0 unless given; e.g. the blog's 90 W for an A100 during data loading).
* Grid: codecarbon's offline country data (see :mod:`workbench.metering.grid`), or the IEA 2019
  world average of 475 gCO2eq/kWh when no country is given.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from workbench.metering._common import MeterConfigError, cpu_threads, finite_or_none, warn
from workbench.metering.events import StepEvent
from workbench.metering.grid import (
    WORLD_AVERAGE_G_PER_KWH,
    WORLD_AVERAGE_SOURCE,
    GridIntensity,
    grid_intensity,
)

__all__ = [
    "PowerSample",
    "CarbonResult",
    "CarbonMeter",
    "PowerModel",
    "EstimateMeter",
    "combine_results",
    "W_PER_CPU_THREAD",
    "RAM_W_PER_GB",
]

#: Watts per hardware thread when the CPU's TDP is unknown (codecarbon ``DEFAULT_POWER_PER_CORE``).
W_PER_CPU_THREAD = 4.0
#: Watts per GB of RAM: 3 W per 8 GB of DDR3/DDR4 (Crucial; codecarbon before v3).
RAM_W_PER_GB = 3.0 / 8.0


@dataclass(frozen=True, slots=True)
class PowerSample:
    """A live reading of a carbon meter (cumulative energy and CO2 since the meter started).

    Attributes
    ----------
    t : float
        ``time.time()`` of the reading.
    power_w : float
        Mean power since the previous reading, in watts.
    energy_kwh, emissions_kg : float
        Cumulative energy and CO2-equivalent since start.
    estimated : bool
        Whether the power comes from a model rather than an energy counter.
    rank : int
        Process rank (engine) of the meter.
    method : str
        ``"estimate"`` or ``"codecarbon"``.
    """

    t: float
    power_w: float
    energy_kwh: float
    emissions_kg: float
    estimated: bool = True
    rank: int = 0
    method: str = "estimate"

    def to_dict(self) -> dict[str, Any]:
        """Return the sample as a plain dict (for JSON and ``publish_data``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PowerSample:
        """Build a sample from :meth:`to_dict` output, ignoring unknown keys."""
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class CarbonResult:
    """Energy and CO2 of one run (or of several processes, see :func:`combine_results`).

    ``measured=False`` means the meter failed and the numbers are NaN (``error`` says why);
    ``estimated=True`` means the power comes from a model, not from energy counters, and
    every text form of the result says "estimate". ``host`` is the machine it was measured on;
    ``cpu_scope`` says whether the CPU energy is the whole machine's (``"machine"``: energy
    counters, or a model of every thread) or this process's share (``"process"``).
    """

    method: str
    measured: bool
    estimated: bool
    duration_s: float
    energy_kwh: float
    emissions_kg: float
    intensity_g_per_kwh: float
    intensity_source: str
    country_iso_code: str | None = None
    region: str | None = None
    cpu_energy_kwh: float = math.nan
    ram_energy_kwh: float = math.nan
    gpu_energy_kwh: float = math.nan
    started_at: float = math.nan
    ended_at: float = math.nan
    power_sources: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    error: str | None = None
    rank: int = 0
    host: str | None = None
    cpu_scope: str = "machine"

    @property
    def power_w(self) -> float:
        """Mean power over the run, in watts."""
        if not self.duration_s > 0:
            return math.nan
        return self.energy_kwh * 3.6e6 / self.duration_s

    @property
    def emissions_g(self) -> float:
        """CO2-equivalent in grams."""
        return self.emissions_kg * 1000.0

    @classmethod
    def not_measured(cls, method: str, error: str, **kw: Any) -> CarbonResult:
        """Build the result of a meter that could not measure (numbers NaN, ``measured=False``)."""
        nan = math.nan
        base: dict[str, Any] = dict(
            duration_s=nan, energy_kwh=nan, emissions_kg=nan, intensity_g_per_kwh=nan,
            intensity_source="n/a",
        )  # fmt: skip
        base.update(kw)
        return cls(method=method, measured=False, estimated=True, error=error, **base)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN becomes ``None``)."""
        d = {k: finite_or_none(v) for k, v in asdict(self).items()}
        d["notes"] = list(self.notes)
        d["power_w"] = finite_or_none(self.power_w)
        return d

    def __repr__(self) -> str:
        if not self.measured:
            return f"CarbonResult({self.method}: NOT MEASURED ({self.error}))"
        kind = "estimate" if self.estimated else "measured"
        where = f"{self.country_iso_code or 'given'}" + (f"/{self.region}" if self.region else "")
        return (
            f"CarbonResult({self.method} {kind}: {self.energy_kwh:.3g} kWh, "
            f"{self.emissions_g:.3g} gCO2eq over {self.duration_s:.3g} s at "
            f"{self.power_w:.3g} W mean; grid {self.intensity_g_per_kwh:.1f} gCO2eq/kWh ({where}))"
        )


@runtime_checkable
class CarbonMeter(Protocol):
    """What the run bookkeeping needs from a carbon meter."""

    def start(self) -> None:
        """Start measuring."""

    def stop(self) -> CarbonResult:
        """Stop and return the result (never raises for a measurement failure)."""

    def subscribe(self, callback: Callable[[PowerSample], Any]) -> None:
        """Receive live :class:`PowerSample` objects."""


def _host_energy(results: list[CarbonResult]) -> tuple[float, float, float, float, float]:
    """``(energy, cpu, ram, gpu, emissions)`` of one host's results, each machine part once.

    Several engines on one host read the same machine-wide counters (RAPL, NVML, codecarbon's
    trackers) or model the same RAM and GPUs: those parts are the host's once (the largest
    reading, i.e. the one covering the run). CPU energies that are per-process shares add up.
    """
    if len(results) == 1:
        r = results[0]
        return r.energy_kwh, r.cpu_energy_kwh, r.ram_energy_kwh, r.gpu_energy_kwh, r.emissions_kg
    shares = all(r.cpu_scope == "process" for r in results)
    cpu = [r.cpu_energy_kwh for r in results]
    parts = [
        sum(cpu) if shares else max(cpu),
        max(r.ram_energy_kwh for r in results),
        max(r.gpu_energy_kwh for r in results),
    ]
    if all(math.isfinite(p) for p in parts):
        energy = sum(parts)
    else:  # no breakdown: the largest machine reading
        energy = max(r.energy_kwh for r in results)
    top = max(results, key=lambda r: r.energy_kwh)
    per_kwh = top.emissions_kg / top.energy_kwh if top.energy_kwh > 0 else 0.0
    return energy, parts[0], parts[1], parts[2], energy * per_kwh


def combine_results(results: list[CarbonResult]) -> CarbonResult:
    """Combine the results of several processes (engines) of one distributed run.

    Energy and CO2 add up over hosts; on one host, what the engines measured of the whole
    machine counts once (see :func:`_host_energy`), so two engines on a laptop do not double
    its energy (results without a ``host`` count as hosts of their own). The duration spans
    first start to last end; the result is estimated if any part is, and measured only if
    every part is.

    Examples
    --------
    >>> a = EstimateMeter(cpu_tdp_w=10, cores=1, total_threads=1, ram_gb=0,
    ...                   intensity_g_per_kwh=500).estimate(3600)
    >>> combine_results([a, a]).energy_kwh  # one machine, read twice
    0.01
    >>> from dataclasses import replace
    >>> combine_results([a, replace(a, host="other")]).energy_kwh  # two machines
    0.02
    """
    if not results:
        raise MeterConfigError("combine_results needs at least one CarbonResult, got none")
    ok = [r for r in results if r.measured]
    errors = [f"rank {r.rank}: {r.error}" for r in results if r.error]
    if not ok:
        return CarbonResult.not_measured(results[0].method, "; ".join(errors) or "no result")
    hosts: dict[str, list[CarbonResult]] = {}
    for i, r in enumerate(ok):
        hosts.setdefault(r.host if r.host is not None else f"<unknown {i}>", []).append(r)
    per_host = [_host_energy(rs) for rs in hosts.values()]
    energy, cpu, ram, gpu, emissions = (sum(v) for v in zip(*per_host, strict=True))
    start = min(r.started_at for r in ok)
    end = max(r.ended_at for r in ok)
    duration = end - start if math.isfinite(end - start) else max(r.duration_s for r in ok)
    shared = [h for h, rs in hosts.items() if len(rs) > 1]
    notes = tuple(n for r in results for n in r.notes)
    if shared:
        notes += (f"machine-wide energy counted once per host for {', '.join(shared)}",)
    return replace(
        ok[0],
        measured=len(ok) == len(results),
        estimated=any(r.estimated for r in results),
        duration_s=duration,
        energy_kwh=energy,
        emissions_kg=emissions,
        intensity_g_per_kwh=emissions * 1000 / energy if energy > 0 else ok[0].intensity_g_per_kwh,
        cpu_energy_kwh=cpu,
        ram_energy_kwh=ram,
        gpu_energy_kwh=gpu,
        started_at=start,
        ended_at=end,
        notes=notes,
        error="; ".join(errors) or None,
        rank=-1,
        host=next(iter(hosts)) if len(hosts) == 1 and ok[0].host is not None else None,
    )


def _physical_ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return 0.0


@dataclass(frozen=True)
class PowerModel:
    """The power model of an :class:`EstimateMeter` (watts per component, with sources)."""

    cpu_tdp_w: float
    cpu_share: float
    utilisation: float
    ram_gb: float
    ram_w_per_gb: float
    gpu_w: float
    pue: float
    sources: dict[str, str]

    @property
    def cpu_w(self) -> float:
        """CPU watts: TDP x share of threads used x utilisation (x PUE)."""
        return self.cpu_tdp_w * self.cpu_share * self.utilisation * self.pue

    @property
    def ram_w(self) -> float:
        """RAM watts: GB x W/GB (x PUE)."""
        return self.ram_gb * self.ram_w_per_gb * self.pue

    @property
    def gpu_w_total(self) -> float:
        """GPU watts (x PUE)."""
        return self.gpu_w * self.pue

    @property
    def total_w(self) -> float:
        """Total watts drawn while the meter runs."""
        return self.cpu_w + self.ram_w + self.gpu_w_total


class EstimateMeter:
    """Deterministic energy/CO2 estimate: power model x elapsed time x grid intensity.

    Parameters
    ----------
    cpu_tdp_w : float, optional
        TDP of the whole CPU in watts; default 4 W x ``total_threads`` (codecarbon's default).
    cores : int, optional
        Hardware threads the work uses; default: the threads this process may run on.
    total_threads : int, optional
        Hardware threads of the CPU; default ``os.cpu_count()``.
    utilisation : float
        Average CPU utilisation of those threads, 0..1 (default 1.0).
    ram_gb : float, optional
        GB of RAM to charge; default: the machine's physical memory.
    ram_w_per_gb : float
        Default 0.375 W/GB (Crucial: 3 W per 8 GB DDR3/DDR4).
    gpu_w : float
        Watts drawn by accelerators (default 0).
    pue : float
        Data-centre power usage effectiveness multiplier (default 1.0).
    country, region : str, optional
        Where the machine is (alpha-3 code); intensity from codecarbon's offline data.
    intensity_g_per_kwh : float, optional
        Grid intensity given directly (wins over ``country``); default: the IEA world average.
    intensity_source : str
        How to cite a directly given intensity.
    sample_interval_s : float
        Minimum seconds between live :class:`PowerSample` pushes (by event time).
    rank : int
        Process rank, copied to samples and result.
    clock : callable
        Time source (``time.time``); inject a fake one in tests.

    Examples
    --------
    The blog's GPU: 90 W for one hour on a 538 gCO2eq/kWh grid.

    >>> m = EstimateMeter(cpu_tdp_w=0, ram_gb=0, gpu_w=90, intensity_g_per_kwh=538)
    >>> r = m.estimate(3600)
    >>> round(r.energy_kwh, 6), round(r.emissions_kg, 5), r.estimated
    (0.09, 0.04842, True)
    """

    method = "estimate"

    def __init__(
        self,
        *,
        cpu_tdp_w: float | None = None,
        cores: int | None = None,
        total_threads: int | None = None,
        utilisation: float = 1.0,
        ram_gb: float | None = None,
        ram_w_per_gb: float = RAM_W_PER_GB,
        gpu_w: float = 0.0,
        pue: float = 1.0,
        country: str | None = None,
        region: str | None = None,
        intensity_g_per_kwh: float | None = None,
        intensity_source: str = "given by the user",
        sample_interval_s: float = 1.0,
        rank: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        total = total_threads or os.cpu_count() or 1
        used = cores if cores is not None else min(cpu_threads(), total)
        sources = {
            "cpu": (
                f"{cpu_tdp_w} W TDP (given)"
                if cpu_tdp_w is not None
                else f"{W_PER_CPU_THREAD} W x {total} threads (codecarbon default per thread)"
            ),
            "ram": f"{ram_w_per_gb} W/GB (Crucial: 3 W per 8 GB DDR3/DDR4)",
            "gpu": f"{gpu_w} W (given)" if gpu_w else "none",
        }
        values = {"utilisation": utilisation, "ram_w_per_gb": ram_w_per_gb, "gpu_w": gpu_w}
        for name, value in {**values, "pue": pue, "cores": used}.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise MeterConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0 <= utilisation <= 1 or not 0 < used <= total or pue < 1:
            raise MeterConfigError(
                f"need 0 <= utilisation <= 1, 0 < cores <= total_threads and pue >= 1; got "
                f"utilisation={utilisation!r}, cores={used!r}, total_threads={total!r}, pue={pue!r}"
            )
        self.model = PowerModel(
            cpu_tdp_w=float(cpu_tdp_w if cpu_tdp_w is not None else W_PER_CPU_THREAD * total),
            cpu_share=used / total,
            utilisation=float(utilisation),
            ram_gb=float(ram_gb if ram_gb is not None else _physical_ram_gb()),
            ram_w_per_gb=float(ram_w_per_gb),
            gpu_w=float(gpu_w),
            pue=float(pue),
            sources=sources,
        )
        if intensity_g_per_kwh is not None:
            if not (math.isfinite(intensity_g_per_kwh) and intensity_g_per_kwh >= 0):
                raise MeterConfigError(
                    f"intensity_g_per_kwh must be >= 0 gCO2eq/kWh, got {intensity_g_per_kwh!r}"
                )
            self.grid = GridIntensity(
                float(intensity_g_per_kwh), country, None, region, intensity_source
            )
        elif country is not None:
            self.grid = grid_intensity(country, region)
        else:
            self.grid = GridIntensity(
                WORLD_AVERAGE_G_PER_KWH, None, None, None, WORLD_AVERAGE_SOURCE
            )
        self.sample_interval_s = sample_interval_s
        self.rank = rank
        self.clock = clock
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[PowerSample], Any]] = []
        self._t0: float | None = None
        self._last_sample_t: float | None = None
        self._result: CarbonResult | None = None
        self._callback_failed = False

    # -- pure arithmetic ---------------------------------------------------------------------
    def estimate(self, duration_s: float, *, started_at: float = math.nan) -> CarbonResult:
        """Return the result of a run of ``duration_s`` seconds (no clock involved)."""
        if not (math.isfinite(duration_s) and duration_s >= 0):
            raise MeterConfigError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
        m, hours = self.model, duration_s / 3600.0
        kwh = m.total_w * hours / 1000.0
        notes: tuple[str, ...] = ("power is an estimate from a model (no energy counter read)",)
        if duration_s == 0:
            notes += ("zero-length run: nothing was consumed",)
        return CarbonResult(
            method=self.method,
            measured=True,
            estimated=True,
            duration_s=float(duration_s),
            energy_kwh=kwh,
            emissions_kg=kwh * self.grid.g_per_kwh / 1000.0,
            intensity_g_per_kwh=self.grid.g_per_kwh,
            intensity_source=self.grid.source,
            country_iso_code=self.grid.country_iso_code,
            region=self.grid.region,
            cpu_energy_kwh=m.cpu_w * hours / 1000.0,
            ram_energy_kwh=m.ram_w * hours / 1000.0,
            gpu_energy_kwh=m.gpu_w_total * hours / 1000.0,
            started_at=started_at,
            ended_at=started_at + duration_s,
            power_sources={k: f"{v} (estimate)" for k, v in m.sources.items()},
            notes=notes,
            rank=self.rank,
            host=socket.gethostname(),
            cpu_scope="machine" if m.cpu_share >= 1 else "process",
        )

    # -- live meter ----------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[PowerSample], Any]) -> None:
        """Call ``callback(sample)`` with live :class:`PowerSample` objects."""
        self._callbacks.append(callback)

    def start(self, t: float | None = None) -> None:
        """Start the clock (at ``t``, default now)."""
        with self._lock:
            self._t0 = self.clock() if t is None else t
            self._last_sample_t = self._t0
            self._result = None

    def sample(self, t: float | None = None) -> PowerSample:
        """Return the cumulative reading at ``t`` (default now)."""
        if self._t0 is None:
            raise MeterConfigError("EstimateMeter.sample() before start(): call start() first")
        t = self.clock() if t is None else t
        r = self.estimate(max(t - self._t0, 0.0))
        return PowerSample(t, self.model.total_w, r.energy_kwh, r.emissions_kg, True, self.rank)

    def update(self, event: StepEvent | Mapping[str, Any]) -> None:
        """Advance with a step event; starts at the first step, pushes samples to subscribers.

        The first event also pushes a sample at its start (the model's power, no energy yet),
        then samples follow every ``sample_interval_s`` of event time, and :meth:`stop` pushes
        the last one.
        """
        t = event.t if isinstance(event, StepEvent) else float(event["t"])
        duration = event.duration if isinstance(event, StepEvent) else float(event["duration"])
        with self._lock:
            first = self._t0 is None
            if first:
                self._t0 = self._last_sample_t = t - duration
            due = self._last_sample_t is None or t - self._last_sample_t >= self.sample_interval_s
            if due:
                self._last_sample_t = t
        if first:  # the power of the run from its first moment: a live plot starts with it
            self._emit(self.sample(t - duration))
        if due:
            self._emit(self.sample(t))

    __call__ = update

    def _emit(self, sample: PowerSample) -> None:
        for cb in list(self._callbacks):
            try:
                cb(sample)
            except Exception as exc:  # a broken subscriber must not stop the user's loop
                if not self._callback_failed:
                    self._callback_failed = True
                    warn(f"EstimateMeter subscriber {cb!r} failed and is skipped: {exc!r}")

    def stop(self, t: float | None = None) -> CarbonResult:
        """Stop and return the result; ``measured=False`` (and a warning) if never started."""
        with self._lock:
            if self._t0 is None:
                warn("EstimateMeter.stop() without start() or any step: nothing was metered")
                self._result = CarbonResult.not_measured(
                    self.method, "stopped before it was started", rank=self.rank
                )
                return self._result
            t_end = self.clock() if t is None else t
            t0, self._t0 = self._t0, None
        self._result = self.estimate(max(t_end - t0, 0.0), started_at=t0)
        self._emit(self._final_sample(self._result, t_end))
        return self._result

    def _final_sample(self, result: CarbonResult, t: float) -> PowerSample:
        return PowerSample(
            t, self.model.total_w, result.energy_kwh, result.emissions_kg, True, self.rank
        )

    @property
    def result(self) -> CarbonResult | None:
        """The result of the last :meth:`stop`, if any."""
        return self._result

    def __enter__(self) -> EstimateMeter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        m = self.model
        return (
            f"EstimateMeter(estimate: {m.total_w:.3g} W = CPU {m.cpu_w:.3g} + RAM {m.ram_w:.3g} "
            f"+ GPU {m.gpu_w_total:.3g}; grid {self.grid.g_per_kwh:.1f} gCO2eq/kWh)"
        )


def __getattr__(name: str) -> Any:
    if name == "CodeCarbonMeter":
        from workbench.metering.codecarbon_meter import CodeCarbonMeter

        return CodeCarbonMeter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
