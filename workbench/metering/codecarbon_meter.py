"""codecarbon's ``OfflineEmissionsTracker``, wrapped so that nothing fails silently.

codecarbon decorates ``start``/``stop``/``__init__`` with a ``suppress(Exception)`` that only
logs, runs its measurements in timer threads, and falls back to the world average for an
unknown country. :class:`CodeCarbonMeter` closes each gap:

* the country/region is validated first against codecarbon's own data files (offline);
* codecarbon's log records are captured while the meter lives: an exception it swallowed
  (or an error it logged) becomes a :class:`~workbench.metering.MeteringWarning` and a result
  with ``measured=False``; its benign fallbacks ("Falling back on CPU load mode") become notes;
* exceptions in its timer threads are caught and reported the same way;
* one tracker per process: a second meter started while one runs warns and does not measure;
* ``estimated=True`` unless both CPU and GPU power come from energy counters (RAPL, NVML,
  ...); RAM power is always a model in codecarbon and is named so in ``power_sources``.

Only the offline tracker is ever used: the online one silently guesses a country.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from workbench._optional import lazy_import
from workbench.metering._common import MeterConfigError, warn
from workbench.metering.carbon import CarbonResult, PowerSample
from workbench.metering.events import StepEvent
from workbench.metering.grid import grid_intensity, validate_location

__all__ = ["CodeCarbonMeter", "COUNTER_CPU_MODES"]

#: codecarbon CPU modes that read an energy counter rather than modelling power.
COUNTER_CPU_MODES = frozenset({"intel_rapl", "intel_power_gadget", "windows_emi"})

_ACTIVE_LOCK = threading.Lock()
_ACTIVE: CodeCarbonMeter | None = None


# codecarbon messages that say nothing about this run's figures.
_NOISE = ("graceful shutdown", "stopping.", "Multiple instances of codecarbon")


class _Capture(logging.Handler):
    """Collects codecarbon's log records while a meter lives."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.errors: list[str] = []
        self.notes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            self.errors.append(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
        elif record.levelno >= logging.ERROR:
            self.errors.append(msg)
        elif msg not in self.notes and not any(n in msg for n in _NOISE):
            self.notes.append(msg.strip())


class CodeCarbonMeter:
    """Energy and CO2 from codecarbon's offline tracker, failures made visible.

    Parameters
    ----------
    country : str
        ISO 3166-1 alpha-3 code (or exact country name) of where the machine runs.
    region : str, optional
        US state, Canadian or Chinese province, or Nordic bidding zone.
    measure_power_secs : float
        Seconds between codecarbon measurements, hence between live samples (default 1).
    tracking_mode : {"process", "machine"}
        Count this process (and children) or the whole machine.
    pue : float
        Data-centre power usage effectiveness.
    rank : int
        Process rank, copied to samples and result (one meter per process).
    **tracker_kwargs
        Passed to ``OfflineEmissionsTracker`` (e.g. ``gpu_ids``, ``force_cpu_power``).

    Examples
    --------
    >>> meter = CodeCarbonMeter("AUS")          # doctest: +SKIP
    >>> with meter:                             # doctest: +SKIP
    ...     train()
    >>> meter.result                            # doctest: +SKIP
    CarbonResult(codecarbon estimate: 1.2e-05 kWh, 0.0066 gCO2eq over 3.1 s ...)
    """

    method = "codecarbon"

    def __init__(
        self,
        country: str,
        region: str | None = None,
        *,
        measure_power_secs: float = 1.0,
        tracking_mode: str = "process",
        pue: float = 1.0,
        rank: int = 0,
        **tracker_kwargs: Any,
    ) -> None:
        if tracking_mode not in ("process", "machine"):
            raise MeterConfigError(
                f"tracking_mode must be 'process' or 'machine', got {tracking_mode!r}"
            )
        if not measure_power_secs > 0:
            raise MeterConfigError(f"measure_power_secs must be > 0, got {measure_power_secs!r}")
        self.country, self.region = validate_location(country, region)
        self.grid = grid_intensity(self.country, self.region)
        self.measure_power_secs = measure_power_secs
        self.tracking_mode = tracking_mode
        self.pue = pue
        self.rank = rank
        self.tracker_kwargs = tracker_kwargs
        self.tracker: Any = None
        self.estimated = True
        self.power_sources: dict[str, str] = {}
        self._callbacks: list[Callable[[PowerSample], Any]] = []
        self._capture = _Capture()
        self._thread_errors: list[str] = []
        self._pending_s = 0.0  # live readings not yet turned into a sample
        self._pending_kwh = 0.0
        self._saved_logging: tuple[int, list[logging.Handler]] | None = None
        self._started_at = math.nan
        self._running = False
        self._result: CarbonResult | None = None
        self._callback_failed = False

    # -- construction --------------------------------------------------------------------------
    def setup(self) -> None:
        """Build the tracker (cheap); :meth:`start` calls it when needed."""
        if self.tracker is not None:
            return
        cc = lazy_import("codecarbon", purpose="CodeCarbonMeter")
        base = lazy_import("codecarbon.output_methods.base_output", extra="carbon")
        meter = self

        class _Live(base.BaseOutput):  # type: ignore[misc, name-defined]
            def live_out(self, total: Any, delta: Any) -> None:
                meter._on_live(total, delta)

        logger = logging.getLogger("codecarbon")
        self._saved_logging = (logger.level, list(logger.handlers))
        logger.handlers = [self._capture]
        logger.setLevel(logging.WARNING)
        tracker = cc.OfflineEmissionsTracker(
            country_iso_code=self.country,
            region=self.region,
            measure_power_secs=self.measure_power_secs,
            api_call_interval=1,
            output_methods=[],
            output_handlers=[_Live()],
            tracking_mode=self.tracking_mode,
            pue=self.pue,
            log_level="error",  # its own init chatter; the capture below sees WARNING and up
            project_name="workbench",
            **self.tracker_kwargs,
        )
        # codecarbon replaces its stream handler in __init__; route its records to us only.
        logger.handlers = [h for h in logger.handlers if not isinstance(h, logging.StreamHandler)]
        logger.addHandler(self._capture)
        logger.setLevel(logging.WARNING)
        self.tracker = tracker
        if not hasattr(tracker, "_scheduler"):  # __init__ raised inside codecarbon's suppress
            self._capture.errors.append("OfflineEmissionsTracker.__init__ failed")
            return
        for name in ("_scheduler", "_scheduler_monitor_power"):
            sched = getattr(tracker, name, None)
            if sched is not None and hasattr(sched, "function"):
                sched.function = self._guard(sched.function, name)

    def _guard(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # codecarbon's timer thread would only print it
                self._thread_errors.append(f"{name} thread: {type(exc).__name__}: {exc}")
                return None

        return guarded

    def _restore_logging(self) -> None:
        if self._saved_logging is not None:
            logger = logging.getLogger("codecarbon")
            level, handlers = self._saved_logging
            logger.setLevel(level)
            logger.handlers = handlers
            self._saved_logging = None

    # -- live ----------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[PowerSample], Any]) -> None:
        """Call ``callback(sample)`` with a :class:`PowerSample` every ``measure_power_secs``."""
        self._callbacks.append(callback)

    def update(self, event: StepEvent | Mapping[str, Any]) -> None:
        """Accept step events (so the meter can sit in a loop's callbacks); they are ignored."""

    def _on_live(self, total: Any, delta: Any) -> None:
        try:
            # Readings can cover a few ms or round to no energy (codecarbon samples CPU load
            # on its own clock): carry them over until an interval shows energy, so every
            # sample's power is the mean over a real interval.
            self._pending_s += float(delta.duration)
            self._pending_kwh += float(delta.energy_consumed)
            if self._pending_s < 0.05 or self._pending_kwh <= 0:
                return
            power = self._pending_kwh * 3.6e6 / self._pending_s
            self._pending_s = self._pending_kwh = 0.0
            sample = PowerSample(
                time.time(),
                power,
                float(total.energy_consumed),
                float(total.emissions),
                self.estimated,
                self.rank,
                self.method,
            )
        except Exception as exc:  # never let a bad reading kill codecarbon's thread
            self._thread_errors.append(f"live reading: {exc!r}")
            return
        for cb in list(self._callbacks):
            try:
                cb(sample)
            except Exception as exc:
                if not self._callback_failed:
                    self._callback_failed = True
                    self._capture.notes.append(f"subscriber {cb!r} failed and is skipped: {exc!r}")

    # -- run -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start measuring (~2 s of hardware detection). Never raises for a codecarbon failure."""
        global _ACTIVE
        with _ACTIVE_LOCK:
            if _ACTIVE is not None and _ACTIVE is not self:
                warn(
                    "codecarbon allows one tracker per process and another CodeCarbonMeter is "
                    "running here: this one measures nothing (measured=False). Stop the other "
                    "one first, or share it."
                )
                self._result = CarbonResult.not_measured(
                    self.method,
                    "another CodeCarbonMeter was running in this process",
                    rank=self.rank,
                )
                return
            _ACTIVE = self
        self._started_at = time.time()
        try:
            self.setup()
            if not self._capture.errors:
                self.tracker.start()
            if getattr(self.tracker, "_start_time", None) is None and not self._capture.errors:
                self._capture.errors.append("tracker did not start (see codecarbon's notes)")
            self._inspect_hardware()
        except Exception as exc:  # codecarbon import/config problems: report, don't crash
            self._capture.errors.append(f"{type(exc).__name__}: {exc}")
        self._running = True
        if self._capture.errors:
            warn(
                f"codecarbon failed to start: {self._capture.errors[0]}; the run goes on and its "
                "carbon result will say measured=False"
            )

    def _inspect_hardware(self) -> None:
        sources: dict[str, str] = {}
        cpu_counter, gpu_model = False, False
        for hw in getattr(self.tracker, "_hardware", []):
            kind = type(hw).__name__
            if kind == "CPU":
                mode = str(getattr(hw, "_mode", "unknown"))
                cpu_counter = mode in COUNTER_CPU_MODES
                sources["cpu"] = f"{mode} ({'measured' if cpu_counter else 'estimate'})"
            elif kind == "GPU":
                sources["gpu"] = "NVML energy counter (measured)"
            elif kind == "RAM":
                sources["ram"] = "codecarbon RAM model (estimate)"
            elif kind == "AppleSiliconChip":
                cpu_counter = True
                sources[str(getattr(hw, "chip_part", "chip")).lower()] = "powermetrics (measured)"
            else:
                gpu_model = True
                sources[kind.lower()] = "model (estimate)"
        self.power_sources = sources
        self.estimated = not cpu_counter or gpu_model

    def stop(self) -> CarbonResult:
        """Stop and return the result; a failure gives ``measured=False`` and a warning."""
        global _ACTIVE
        if self._result is not None and not self._running:
            return self._result
        if not self._running:
            warn("CodeCarbonMeter.stop() before start(): nothing was measured")
            return CarbonResult.not_measured(self.method, "stopped before it was started")
        self._running = False
        emissions: Any = None
        try:
            if self.tracker is not None and not self._capture.errors:
                emissions = self.tracker.stop()
                if emissions is None and not self._capture.errors:
                    self._capture.errors.append("tracker.stop() returned no result")
        except Exception as exc:
            self._capture.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._restore_logging()
            with _ACTIVE_LOCK:
                if _ACTIVE is self:
                    _ACTIVE = None
        self._result = self._build(emissions)
        if not self._result.measured:
            warn(f"codecarbon could not measure this run: {self._result.error}")
        return self._result

    def _build(self, emissions: Any) -> CarbonResult:
        ended = time.time()
        errors = self._capture.errors + self._thread_errors
        data = getattr(self.tracker, "final_emissions_data", None)
        common: dict[str, Any] = dict(
            country_iso_code=self.country,
            region=self.region,
            started_at=self._started_at,
            ended_at=ended,
            power_sources=dict(self.power_sources),
            notes=tuple(self._capture.notes),
            rank=self.rank,
            host=socket.gethostname(),  # codecarbon reads the whole machine (cpu_scope)
        )
        if errors or data is None or emissions is None:
            return CarbonResult.not_measured(self.method, "; ".join(errors) or "no data", **common)
        energy = float(data.energy_consumed)
        return CarbonResult(
            method=self.method,
            measured=True,
            estimated=self.estimated,
            duration_s=float(data.duration),
            energy_kwh=energy,
            emissions_kg=float(data.emissions),
            intensity_g_per_kwh=(
                float(data.emissions) * 1000 / energy if energy > 0 else self.grid.g_per_kwh
            ),
            intensity_source=self.grid.source,
            cpu_energy_kwh=float(data.cpu_energy),
            ram_energy_kwh=float(data.ram_energy),
            gpu_energy_kwh=float(data.gpu_energy),
            **common,
        )

    @property
    def result(self) -> CarbonResult | None:
        """The result of :meth:`stop`, if any."""
        return self._result

    def __enter__(self) -> CodeCarbonMeter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else "idle"
        where = self.country + (f"/{self.region}" if self.region else "")
        return f"CodeCarbonMeter({where}, {state}, every {self.measure_power_secs} s)"
