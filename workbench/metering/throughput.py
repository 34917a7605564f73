"""Throughput meter: samples/s, bytes/s, step time and the share of time spent waiting for data.

The meter is pure bookkeeping fed by :class:`~workbench.metering.events.StepEvent` objects
(``meter.update(event)``, or pass ``meter.update`` as a callback). It keeps per-rank
totals, so the same meter aggregates a distributed run whose engines publish their events
back to the notebook.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.metering._common import MeterConfigError, warn
from workbench.metering.events import StepEvent

__all__ = ["ThroughputMeter", "ThroughputStats", "as_event"]


def as_event(event: StepEvent | Mapping[str, Any]) -> StepEvent:
    """Return ``event`` as a :class:`StepEvent` (dicts from ``publish_data`` are converted).

    Examples
    --------
    >>> as_event({"step": 0, "samples": 8, "nbytes": 64, "t": 1.0, "duration": 0.5}).samples
    8
    """
    if isinstance(event, StepEvent):
        return event
    if isinstance(event, Mapping):
        return StepEvent.from_dict(dict(event))
    raise TypeError(f"expected a StepEvent or a dict of its fields, got {type(event).__name__}")


def _problem(e: StepEvent) -> str | None:
    """Why an event cannot be counted, or ``None`` when it is fine."""
    numbers = {"duration": e.duration, "data_wait": e.data_wait, "t": e.t}
    for name, value in numbers.items():
        if not isinstance(value, int | float) or not math.isfinite(value):
            return f"{name}={value!r} is not a finite number"
    if e.samples < 0 or e.nbytes < 0:
        return f"negative counts (samples={e.samples}, nbytes={e.nbytes})"
    if e.duration < 0 or e.data_wait < 0:
        return f"negative time (duration={e.duration}, data_wait={e.data_wait})"
    if e.data_wait > e.duration * (1 + 1e-9) + 1e-12:
        return f"data_wait={e.data_wait} s exceeds the step duration={e.duration} s"
    return None


@dataclass
class _Acc:
    """Running totals of one rank."""

    steps: int = 0
    samples: int = 0
    nbytes: int = 0
    busy: float = 0.0
    wait: float = 0.0
    first_start: float = math.inf
    last_t: float = -math.inf
    last_loss: float | None = None
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def add(self, e: StepEvent) -> None:
        self.steps += 1
        self.samples += e.samples
        self.nbytes += e.nbytes
        self.busy += e.duration
        self.wait += e.data_wait
        self.first_start = min(self.first_start, e.t - e.duration)
        self.last_t = max(self.last_t, e.t)
        if e.loss is not None:
            self.last_loss = e.loss
        self.recent.append(e.duration)


@dataclass(frozen=True)
class ThroughputStats:
    """A snapshot of a :class:`ThroughputMeter` (one rank, or all ranks aggregated).

    Rates divide by the wall-clock span from the start of the first step to the end of
    the last (``elapsed_s``), so concurrent ranks add up. With no step recorded the
    counts are 0 and the rates NaN.

    Attributes
    ----------
    steps, samples, nbytes : int
        Totals.
    elapsed_s : float
        Wall-clock span of the steps (first start to last end), in seconds.
    busy_s : float
        Sum of step durations (per rank: the time spent in steps).
    samples_per_s, bytes_per_s : float
        Throughput over ``elapsed_s``. A sample is one chip, so ``chips_per_s`` is the same.
    step_time_s : float
        Mean step duration.
    step_time_p50_s : float
        Median of the last 1024 step durations (of each rank, pooled).
    data_wait_s, data_wait_share : float
        Seconds spent waiting for input, and their share of ``busy_s``.
    ranks : tuple of int
        Ranks (engines) that reported steps.
    per_rank : dict
        ``{rank: ThroughputStats}``; empty on a per-rank snapshot.
    rejected : int
        Events that could not be counted (bad values), reported once by a warning.
    last_loss : float or None
        Loss of the most recent step that reported one.
    """

    steps: int
    samples: int
    nbytes: int
    elapsed_s: float
    busy_s: float
    data_wait_s: float
    step_time_s: float
    step_time_p50_s: float
    ranks: tuple[int, ...] = ()
    per_rank: dict[int, ThroughputStats] = field(default_factory=dict)
    rejected: int = 0
    last_loss: float | None = None

    @property
    def samples_per_s(self) -> float:
        """Samples (chips) per second over the wall-clock span."""
        return self.samples / self.elapsed_s if self.elapsed_s > 0 else math.nan

    @property
    def chips_per_s(self) -> float:
        """Alias of :attr:`samples_per_s` (a sample is one chip)."""
        return self.samples_per_s

    @property
    def bytes_per_s(self) -> float:
        """Input bytes per second over the wall-clock span."""
        return self.nbytes / self.elapsed_s if self.elapsed_s > 0 else math.nan

    @property
    def data_wait_share(self) -> float:
        """Share (0..1) of step time spent waiting for input data."""
        return self.data_wait_s / self.busy_s if self.busy_s > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers (JSON-friendly; per-rank snapshots nested by rank)."""
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in ("steps", "samples", "nbytes", "elapsed_s", "busy_s", "data_wait_s")
        }
        out.update(
            step_time_s=self.step_time_s,
            step_time_p50_s=self.step_time_p50_s,
            samples_per_s=self.samples_per_s,
            bytes_per_s=self.bytes_per_s,
            data_wait_share=self.data_wait_share,
            ranks=list(self.ranks),
            rejected=self.rejected,
            last_loss=self.last_loss,
        )
        if self.per_rank:
            out["per_rank"] = {str(r): s.to_dict() for r, s in self.per_rank.items()}
        return out

    def __repr__(self) -> str:
        if self.steps == 0:
            return "ThroughputStats(no steps recorded)"
        ranks = f", {len(self.ranks)} ranks" if len(self.ranks) > 1 else ""
        return (
            f"ThroughputStats({self.steps:,} steps, {self.samples:,} samples in "
            f"{self.elapsed_s:.3g} s{ranks}: {self.samples_per_s:,.1f} samples/s, "
            f"{self.bytes_per_s / 1e6:,.1f} MB/s, step {self.step_time_s * 1e3:.3g} ms, "
            f"data wait {self.data_wait_share:.0%})"
        )


def _stats(accs: list[_Acc], *, rejected: int = 0) -> ThroughputStats:
    steps = sum(a.steps for a in accs)
    if steps == 0:
        nan = math.nan
        return ThroughputStats(0, 0, 0, 0.0, 0.0, 0.0, nan, nan, rejected=rejected)
    busy = sum(a.busy for a in accs)
    recent = [d for a in accs for d in a.recent]
    last = max((a for a in accs if a.steps), key=lambda a: a.last_t)
    return ThroughputStats(
        steps=steps,
        samples=sum(a.samples for a in accs),
        nbytes=sum(a.nbytes for a in accs),
        elapsed_s=max(a.last_t for a in accs) - min(a.first_start for a in accs),
        busy_s=busy,
        data_wait_s=sum(a.wait for a in accs),
        step_time_s=busy / steps,
        step_time_p50_s=statistics.median(recent),
        rejected=rejected,
        last_loss=last.last_loss,
    )


class ThroughputMeter:
    """Count samples, bytes and time of the steps of a data or training loop.

    Thread-safe and cheap (a few additions per event), so it can sit in a tight loop.
    Bad events (negative or non-finite values, ``data_wait > duration``) are not
    counted; the first one raises a :class:`~workbench.metering.MeteringWarning` naming
    the problem (the user's loop goes on), or a :class:`MeterConfigError` with ``strict=True``.

    Parameters
    ----------
    kinds : sequence of str, optional
        Count only events of these kinds (``"train"``, ``"val"``, ``"io"``, ``"synthetic"``);
        all kinds when omitted.
    strict : bool
        Raise on a bad event instead of warning.

    Examples
    --------
    >>> from workbench.metering.events import StepEvent
    >>> meter = ThroughputMeter()
    >>> for i in range(4):
    ...     meter.update(StepEvent(step=i, samples=32, nbytes=32 * 4096, t=10.0 + 0.5 * (i + 1),
    ...                            duration=0.5, data_wait=0.1))
    >>> s = meter.snapshot()
    >>> s.samples_per_s, round(s.data_wait_share, 2), s.step_time_s
    (64.0, 0.2, 0.5)
    """

    def __init__(self, kinds: tuple[str, ...] | list[str] | None = None, *, strict: bool = False):
        self.kinds = tuple(kinds) if kinds is not None else None
        self.strict = strict
        self._lock = threading.Lock()
        self._ranks: dict[int, _Acc] = {}
        self._rejected = 0

    def update(self, event: StepEvent | Mapping[str, Any]) -> None:
        """Count one event (a :class:`StepEvent` or its ``to_dict()``)."""
        e = event if type(event) is StepEvent else as_event(event)
        if self.kinds is not None and e.kind not in self.kinds:
            return
        d = e.duration
        # fast path (NaN and inf fail these comparisons); _problem explains the rest
        ok = 0.0 <= e.data_wait <= d * (1 + 1e-9) + 1e-12 and d < math.inf and e.t - e.t == 0
        problem = None if ok and e.samples >= 0 and e.nbytes >= 0 else _problem(e)
        if problem is not None:
            msg = f"ThroughputMeter ignored step {e.step} of rank {e.rank}: {problem}"
            if self.strict:
                raise MeterConfigError(msg + "; fix the event producer (durations in seconds)")
            with self._lock:
                self._rejected += 1
                first = self._rejected == 1
            if first:
                warn(msg + " (further bad events are counted in stats.rejected, not reported)")
            return
        with self._lock:
            acc = self._ranks.get(e.rank)
            if acc is None:
                acc = self._ranks[e.rank] = _Acc()
            acc.add(e)

    __call__ = update

    def add_totals(
        self,
        rank: int,
        *,
        steps: int,
        samples: int,
        nbytes: int,
        busy_s: float,
        data_wait_s: float,
        first_start: float,
        last_t: float,
        last_loss: float | None = None,
    ) -> None:
        """Count a batch of steps already summed up (e.g. by an engine before publishing).

        The median step time then uses the batch's mean step time once per batch.

        Examples
        --------
        >>> m = ThroughputMeter()
        >>> m.add_totals(0, steps=10, samples=320, nbytes=0, busy_s=1.0, data_wait_s=0.25,
        ...              first_start=0.0, last_t=1.0)
        >>> m.snapshot().samples_per_s, m.snapshot().data_wait_share
        (320.0, 0.25)
        """
        if steps <= 0:
            return
        with self._lock:
            acc = self._ranks.get(rank)
            if acc is None:
                acc = self._ranks[rank] = _Acc()
            acc.steps += steps
            acc.samples += samples
            acc.nbytes += nbytes
            acc.busy += busy_s
            acc.wait += data_wait_s
            acc.first_start = min(acc.first_start, first_start)
            acc.last_t = max(acc.last_t, last_t)
            if last_loss is not None:
                acc.last_loss = last_loss
            acc.recent.append(busy_s / steps)

    @property
    def callback(self) -> Any:
        """The function to register with a loop's callbacks (same as :meth:`update`)."""
        return self.update

    def reset(self) -> None:
        """Forget every event."""
        with self._lock:
            self._ranks.clear()
            self._rejected = 0

    @property
    def steps(self) -> int:
        """Steps counted so far, all ranks."""
        with self._lock:
            return sum(a.steps for a in self._ranks.values())

    def snapshot(self, rank: int | None = None) -> ThroughputStats:
        """Return the totals so far, aggregated over ranks (with ``per_rank``) or of one rank.

        Raises
        ------
        MeterConfigError
            For a rank that never reported (the message lists those that did).
        """
        with self._lock:
            ranks = {r: _copy(a) for r, a in self._ranks.items()}
            rejected = self._rejected
        if rank is not None:
            if rank not in ranks:
                raise MeterConfigError(
                    f"rank {rank!r} reported no steps; ranks seen: {sorted(ranks) or 'none'}"
                )
            return _stats([ranks[rank]])
        total = _stats(list(ranks.values()), rejected=rejected)
        per_rank = {r: _stats([a]) for r, a in sorted(ranks.items())}
        return ThroughputStats(
            **{k: getattr(total, k) for k in _FIELDS},
            ranks=tuple(sorted(ranks)),
            per_rank=per_rank,
            rejected=rejected,
            last_loss=total.last_loss,
        )

    def __repr__(self) -> str:
        return f"ThroughputMeter({self.snapshot()!r})"


_FIELDS = (
    "steps",
    "samples",
    "nbytes",
    "elapsed_s",
    "busy_s",
    "data_wait_s",
    "step_time_s",
    "step_time_p50_s",
)


def _copy(a: _Acc) -> _Acc:
    return _Acc(
        a.steps,
        a.samples,
        a.nbytes,
        a.busy,
        a.wait,
        a.first_start,
        a.last_t,
        a.last_loss,
        deque(a.recent, maxlen=a.recent.maxlen),
    )
