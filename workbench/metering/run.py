"""One metered run: throughput + carbon + live subscribers + a row in the run log, in a ``with``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workbench.metering._common import warn
from workbench.metering.carbon import CarbonResult, EstimateMeter
from workbench.metering.events import StepEvent
from workbench.metering.records import RunLog, RunRecord
from workbench.metering.throughput import ThroughputMeter

__all__ = ["MeteredRun"]


class MeteredRun:
    """Meter a block of work and record it.

    Inside the block, report each step with :meth:`update` (or register ``run.update`` as a
    loop callback). On exit the carbon meter stops, a :class:`RunRecord` is built and, with a
    ``log``, appended. Metering never breaks the work: a failing meter, subscriber or log
    write becomes a :class:`~workbench.metering.MeteringWarning`; an exception of the work
    itself is recorded (``status="failed"``) and re-raised unchanged.

    Parameters
    ----------
    name : str
        What runs ("read ERA5", "train U-Net").
    log : RunLog or path, optional
        Where to append the record.
    carbon : meter, "estimate", "codecarbon" or None
        A carbon meter (``EstimateMeter``, ``CodeCarbonMeter``), or a name to build one
        (``"codecarbon"`` needs ``country``), or ``None`` for no energy figures.
    country, region : str, optional
        Location for the carbon meter built from a name.
    live : object with ``update``, optional
        A live view (e.g. ``workbench.widgets.live.LivePlot``) fed with step events and
        power samples.
    callbacks, power_callbacks : sequences of callables
        Receive every :class:`StepEvent` / every :class:`PowerSample`.
    kind, route, strategy, price_per_hour, price_source, device, extra
        Copied into the record.

    Examples
    --------
    >>> from workbench.metering.events import StepEvent
    >>> with MeteredRun("toy", carbon=EstimateMeter(intensity_g_per_kwh=500)) as run:
    ...     run.update(StepEvent(step=0, samples=8, nbytes=0, t=time.time(), duration=0.01))
    >>> run.record.samples, run.record.estimated
    (8, True)
    """

    def __init__(
        self,
        name: str,
        *,
        log: RunLog | str | None = None,
        carbon: Any = "estimate",
        country: str | None = None,
        region: str | None = None,
        live: Any = None,
        callbacks: Sequence[Callable[[StepEvent], Any]] = (),
        power_callbacks: Sequence[Callable[[Any], Any]] = (),
        kind: str = "train",
        route: str | None = None,
        strategy: str | None = None,
        price_per_hour: float | None = None,
        price_source: str | None = None,
        device: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.log = RunLog(log) if isinstance(log, str) else log
        if carbon == "estimate":
            carbon = EstimateMeter(country=country, region=region)
        elif carbon == "codecarbon":
            from workbench.metering.codecarbon_meter import CodeCarbonMeter

            carbon = CodeCarbonMeter(country or "", region)
        self.carbon = carbon
        self.throughput = ThroughputMeter()
        self.callbacks = list(callbacks) + ([live.update] if live is not None else [])
        power = list(power_callbacks) + ([live.update] if live is not None else [])
        if self.carbon is not None:
            for cb in power:
                self.carbon.subscribe(cb)
        self.meta: dict[str, Any] = dict(
            kind=kind, route=route, strategy=strategy, price_per_hour=price_per_hour,
            price_source=price_source, device=device, extra=extra,
        )  # fmt: skip
        self.record: RunRecord | None = None
        self.carbon_result: CarbonResult | None = None
        self._t0 = 0.0
        self._failed: set[int] = set()

    def __enter__(self) -> MeteredRun:
        self._t0 = time.time()
        if self.carbon is not None:
            try:
                self.carbon.start()
            except Exception as exc:
                warn(f"carbon meter failed to start ({exc!r}); the run goes on without it")
                self.carbon = None
        return self

    def update(self, event: StepEvent | Mapping[str, Any]) -> None:
        """Report one step to the meters and subscribers (never raises for a broken subscriber)."""
        targets: list[Callable[[Any], Any]] = [self.throughput.update, *self.callbacks]
        if self.carbon is not None and hasattr(self.carbon, "update"):
            targets.append(self.carbon.update)
        for cb in targets:
            try:
                cb(event)
            except Exception as exc:
                if id(cb) not in self._failed:
                    self._failed.add(id(cb))
                    warn(f"step subscriber {cb!r} failed ({exc!r}); it is skipped from now on")

    __call__ = update

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        ended = time.time()
        try:
            if self.carbon is not None:
                self.carbon_result = self.carbon.stop()
            stats = self.throughput.snapshot()
            duration = stats.elapsed_s if stats.steps else ended - self._t0
            self.record = RunRecord.build(
                self.name,
                throughput=stats,
                carbon=self.carbon_result,
                duration_s=duration,
                ended_at=ended,
                status="failed" if exc_type is not None else "ok",
                error=repr(exc) if exc is not None else None,
                **self.meta,
            )
            if self.log is not None:
                self.log.append(self.record)
        except Exception as err:  # never mask the work's own exception or result
            warn(f"MeteredRun {self.name!r} could not record the run: {err!r}")
