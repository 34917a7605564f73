"""Run records: one row per run, appended to a JSON Lines file that a crash cannot corrupt.

Each append is one ``os.write`` of a whole line on a file opened with ``O_APPEND``, under an
exclusive ``flock`` (several processes may log to the same file) and followed by ``fsync``.
Earlier rows are never rewritten; a line torn by a crash mid-write is skipped with a warning
when reading, and the next append starts on a fresh line.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench._files import fsync_dir
from workbench.metering._common import (
    MeterConfigError,
    device_name,
    finite_or_none,
    host_name,
    utc_iso,
    warn,
)
from workbench.metering.carbon import CarbonResult
from workbench.metering.throughput import ThroughputStats

if TYPE_CHECKING:
    import pandas as pd

    from workbench._typing import PathLike

__all__ = ["RunRecord", "RunLog", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


def _num(x: Any) -> float | None:
    return None if x is None else finite_or_none(float(x))


@dataclass(frozen=True)
class RunRecord:
    """What ran, where, how fast, and what it cost: one row of a :class:`RunLog`.

    Build one with :meth:`build` from a throughput snapshot and a carbon result. Missing
    numbers are ``None`` (JSON has no NaN). ``estimated=True`` means the energy figures come
    from a power model, and the text forms say "estimate".
    """

    run_id: str
    name: str
    kind: str
    host: str
    device: str
    route: str | None
    strategy: str | None
    world_size: int
    started_at: str | None
    ended_at: str | None
    duration_s: float
    steps: int
    samples: int
    nbytes: int
    samples_per_s: float | None
    bytes_per_s: float | None
    step_time_s: float | None
    data_wait_share: float | None
    energy_kwh: float | None
    emissions_kg: float | None
    power_w: float | None
    intensity_g_per_kwh: float | None
    intensity_source: str | None
    country: str | None
    carbon_method: str | None
    measured: bool
    estimated: bool
    price_per_hour_usd: float | None
    price_source: str | None
    cost_usd: float | None
    status: str = "ok"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @classmethod
    def build(
        cls,
        name: str,
        *,
        throughput: ThroughputStats | None = None,
        carbon: CarbonResult | None = None,
        duration_s: float | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        kind: str = "train",
        route: str | None = None,
        strategy: str | None = None,
        world_size: int | None = None,
        device: str | None = None,
        price_per_hour: float | None = None,
        price_source: str | None = None,
        status: str = "ok",
        error: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Assemble a record; the duration comes from the argument, the steps, or the carbon meter.

        Raises
        ------
        MeterConfigError
            For a negative or non-finite duration or price, or no way to tell the duration.

        Examples
        --------
        >>> r = RunRecord.build("read ERA5", duration_s=16.0, route="zarr", price_per_hour=3.0)
        >>> r.cost_usd, r.measured
        (0.013333333333333334, False)
        """
        tp = throughput
        if duration_s is None:
            if tp is not None and tp.steps:
                duration_s = tp.elapsed_s
            elif carbon is not None and carbon.measured:
                duration_s = carbon.duration_s
            elif started_at is not None and ended_at is not None:
                duration_s = ended_at - started_at
            else:
                raise MeterConfigError(
                    f"run {name!r}: no duration (no steps, no carbon result, no start/end); "
                    "pass duration_s=..."
                )
        if not (math.isfinite(duration_s) and duration_s >= 0):
            raise MeterConfigError(f"run {name!r}: duration_s must be >= 0 s, got {duration_s!r}")
        if price_per_hour is not None and not (
            math.isfinite(price_per_hour) and price_per_hour >= 0
        ):
            raise MeterConfigError(f"price_per_hour must be >= 0 USD/h, got {price_per_hour!r}")
        now = time.time()
        if ended_at is None:
            ended_at = carbon.ended_at if carbon is not None and carbon.measured else now
        if started_at is None:
            started_at = ended_at - duration_s
        ok = carbon is not None and carbon.measured
        return cls(
            run_id=uuid.uuid4().hex,
            name=name,
            kind=kind,
            host=host_name(),
            device=device or device_name(),
            route=route,
            strategy=strategy,
            world_size=world_size or (len(tp.ranks) if tp is not None and tp.ranks else 1),
            started_at=utc_iso(started_at),
            ended_at=utc_iso(ended_at),
            duration_s=float(duration_s),
            steps=tp.steps if tp else 0,
            samples=tp.samples if tp else 0,
            nbytes=tp.nbytes if tp else 0,
            samples_per_s=_num(tp.samples_per_s) if tp and tp.steps else None,
            bytes_per_s=_num(tp.bytes_per_s) if tp and tp.steps else None,
            step_time_s=_num(tp.step_time_s) if tp and tp.steps else None,
            data_wait_share=_num(tp.data_wait_share) if tp and tp.steps else None,
            energy_kwh=_num(carbon.energy_kwh) if ok and carbon else None,
            emissions_kg=_num(carbon.emissions_kg) if ok and carbon else None,
            power_w=_num(carbon.power_w) if ok and carbon else None,
            intensity_g_per_kwh=_num(carbon.intensity_g_per_kwh) if ok and carbon else None,
            intensity_source=carbon.intensity_source if ok and carbon else None,
            country=carbon.country_iso_code if carbon else None,
            carbon_method=carbon.method if carbon else None,
            measured=ok,
            estimated=carbon.estimated if carbon is not None else True,
            price_per_hour_usd=price_per_hour,
            price_source=price_source,
            cost_usd=price_per_hour * duration_s / 3600 if price_per_hour is not None else None,
            status=status,
            error=error or (carbon.error if carbon is not None else None),
            extra=dict(extra or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {k: finite_or_none(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunRecord:
        """Rebuild a record, ignoring unknown keys and defaulting missing optional ones."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for f in fields(cls):
            if f.name not in kw and f.default is MISSING and f.default_factory is MISSING:
                kw[f.name] = None
        return cls(**kw)

    def __repr__(self) -> str:
        energy = (
            f"{self.energy_kwh:.3g} kWh, {self.emissions_kg * 1000:.3g} gCO2eq"
            f"{' (estimate)' if self.estimated else ''}"
            if self.energy_kwh is not None and self.emissions_kg is not None
            else "energy not measured"
        )
        rate = f", {self.samples_per_s:,.1f} samples/s" if self.samples_per_s else ""
        how = "/".join(x for x in (self.route, self.strategy) if x)
        return (
            f"RunRecord({self.name!r}{' [' + how + ']' if how else ''} on {self.host}: "
            f"{self.duration_s:.3g} s{rate}; {energy}; {self.status})"
        )


class RunLog:
    """An append-only JSON Lines file of :class:`RunRecord` rows.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.jsonl`` file (created with its folder on the first append).

    Examples
    --------
    >>> import tempfile, os
    >>> log = RunLog(os.path.join(tempfile.mkdtemp(), "runs.jsonl"))
    >>> log.append(RunRecord.build("cpu route", duration_s=16.0)).name
    'cpu route'
    >>> len(log), log.last().duration_s
    (1, 16.0)
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)

    def append(self, record: RunRecord) -> RunRecord:
        """Append one row durably (single write, ``flock``, ``fsync``) and return it."""
        import fcntl

        line = (json.dumps(record.to_dict(), allow_nan=False, default=str) + "\n").encode()
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn line from a crash
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        if created:
            fsync_dir(self.path.parent)
        return record

    def __iter__(self) -> Iterator[RunRecord]:
        return iter(self.read())

    def __len__(self) -> int:
        return len(self.read())

    def read(self) -> list[RunRecord]:
        """All complete rows, oldest first; torn or foreign lines are skipped with a warning."""
        if not self.path.exists():
            return []
        rows, bad = [], []
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(RunRecord.from_dict(json.loads(line)))
                except (json.JSONDecodeError, TypeError) as exc:
                    bad.append(f"line {n}: {exc}")
        if bad:
            warn(f"{self.path}: skipped {len(bad)} unreadable line(s) ({bad[0]}); rows kept")
        return rows

    def get(self, key: str) -> RunRecord:
        """Return the row with this ``run_id``, or the last row with this ``name``."""
        rows = self.read()
        for r in rows:
            if r.run_id == key:
                return r
        named = [r for r in rows if r.name == key]
        if named:
            return named[-1]
        raise MeterConfigError(
            f"no run {key!r} in {self.path}; names: {sorted({r.name for r in rows}) or 'none'}"
        )

    def last(self) -> RunRecord:
        """Return the most recent row."""
        rows = self.read()
        if not rows:
            raise MeterConfigError(f"{self.path} holds no runs yet")
        return rows[-1]

    def to_frame(self) -> pd.DataFrame:
        """All rows as a pandas DataFrame (one row per run)."""
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.read()])

    def __repr__(self) -> str:
        return f"RunLog({str(self.path)!r}, {len(self)} runs)"
