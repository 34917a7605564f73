"""What a training run returns (:class:`TrainResult`) and a table of runs (:class:`Comparison`).

Examples
--------
>>> r = TrainResult(name="a", strategy="ddp", engines=2, duration_s=3.0, bytes_exchanged=2_000_000,
...                 val={"loss": 0.1, "samples": 10})
>>> c = Comparison(); c.add(r); c.add(r.renamed("b"))
>>> c.table()[["strategy", "duration_s", "bytes_exchanged", "val_loss"]].to_dict("records")[0]
{'strategy': 'ddp', 'duration_s': 3.0, 'bytes_exchanged': 2000000, 'val_loss': 0.1}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench.errors import GeocodeError, TrainingError
from workbench.metering.events import StepEvent
from workbench.metering.throughput import ThroughputMeter
from workbench.training.loop import EpochRecord

__all__ = ["TrainResult", "Comparison", "ensemble_val"]


def ensemble_val(records: Sequence[EpochRecord]) -> dict[str, float]:
    """Sample-weighted validation means over the last epoch of each partition (or rank).

    Examples
    --------
    >>> rs = [EpochRecord(0, 1.0, 4, 1, 0.1, partition="a", val={"loss": 1.0, "samples": 1}),
    ...       EpochRecord(0, 1.0, 4, 1, 0.1, partition="b", val={"loss": 4.0, "samples": 3})]
    >>> ensemble_val(rs)
    {'loss': 3.25, 'samples': 4.0}
    """
    last: dict[Any, EpochRecord] = {}
    for r in records:
        key = r.partition
        if r.val and (key not in last or r.epoch >= last[key].epoch):
            last[key] = r
    sums: dict[str, float] = {}
    n = 0.0
    for r in last.values():
        k = float(r.val.get("samples", 0.0))
        n += k
        for name, v in r.val.items():
            if name != "samples":
                sums[name] = sums.get(name, 0.0) + float(v) * k
    out = {name: s / n for name, s in sums.items()} if n else {}
    if last:
        out["samples"] = n
    return out


@dataclass
class TrainResult:
    """The outcome of one ``%%train`` run (or :func:`workbench.cluster.launch.launch`).

    Attributes
    ----------
    name, strategy, engines, sharding, partition
        What was run (``partition`` like ``"geohash:7"``).
    model : torch.nn.Module or None
        The trained model (single, DDP, FSDP).
    models : dict of str to torch.nn.Module
        One trained model per partition (partitioned).
    history : list of EpochRecord
        Per-epoch records of every worker (and partition).
    duration_s : float
        Wall-clock seconds of the whole run, process start-up and result transfer included
        (end to end; :attr:`end_to_end_samples_per_s` divides by it, :attr:`samples_per_s` by
        the training time only).
    train_s : float
        Seconds of the slowest worker's training.
    bytes_exchanged : int
        Estimated bytes the workers sent each other through collectives (ring model, summed
        over workers; 0 for partitioned training). ``payload_bytes``: exact tensor bytes handed
        to collectives. ``comm``: per-worker breakdown.
    control_bytes : int
        Bytes of the pickled tasks sent to workers and results sent back (the orchestration
        traffic, present for every strategy).
    val : dict
        Final validation loss and metrics (sample-weighted; the ensemble for partitioned).
    carbon : workbench.metering.carbon.CarbonResult or None
        Energy and CO2 estimate of the run.
    placement, trained_on, warm_start, clusters
        Partitioned runs: owner of each partition by the hash ring, the worker that actually
        trained it, the partition its weights were warm-started from, its texture cluster.
    checkpoint_dir : str or None
        Where the run's checkpoints are.
    workers : list of dict
        Name, host, pid, rank and duration of each worker; ``digests`` per worker.
    events : list of StepEvent
        Every step event received.
    """

    name: str
    strategy: str
    engines: int = 1
    sharding: str | None = None
    partition: str | None = None
    model: Any = None
    models: dict[str, Any] = field(default_factory=dict)
    history: list[EpochRecord] = field(default_factory=list)
    duration_s: float = math.nan
    train_s: float = math.nan
    bytes_exchanged: int = 0
    payload_bytes: int = 0
    control_bytes: int = 0
    comm: dict[str, Any] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    carbon: Any = None
    placement: dict[str, str] = field(default_factory=dict)
    trained_on: dict[str, str] = field(default_factory=dict)
    warm_start: dict[str, str | None] = field(default_factory=dict)
    clusters: dict[str, int] = field(default_factory=dict)
    checkpoint_dir: str | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)
    digests: dict[str, dict[str, str]] = field(default_factory=dict)
    events: list[StepEvent] = field(default_factory=list)

    def renamed(self, name: str) -> TrainResult:
        """Return a shallow copy under another name."""
        return dataclasses.replace(self, name=name)

    @property
    def samples_per_s(self) -> float:
        """Training samples per second of training time (start-up excluded), all workers.

        The span runs from the start of the first training step to the end of the last, over
        every worker (:class:`~workbench.metering.throughput.ThroughputMeter` of the run's
        ``kind="train"`` events): the figure the live plot shows. Without events, the
        history's samples over the slowest worker's training time.
        """
        train = [e for e in self.events if e.kind == "train"]
        if train:
            meter = ThroughputMeter(kinds=("train",))
            for e in train:
                meter.update(e)
            return meter.snapshot().samples_per_s
        n = sum(r.samples for r in self.history)
        return n / self.train_s if self.train_s and self.train_s > 0 else math.nan

    @property
    def end_to_end_samples_per_s(self) -> float:
        """Training samples per second of the whole run, start-up and transfers included."""
        n = sum(r.samples for r in self.history)
        return n / self.duration_s if self.duration_s and self.duration_s > 0 else math.nan

    def epochs(self) -> Any:
        """Per-epoch records as a :class:`pandas.DataFrame` (one row per worker/partition/epoch)."""
        pd = lazy_import("pandas")
        return pd.DataFrame([r.to_dict() for r in self.history])

    def summary(self) -> dict[str, Any]:
        """One flat row: what the comparison table shows."""
        row: dict[str, Any] = {
            "name": self.name,
            "strategy": self.strategy,
            "engines": self.engines,
            "sharding": self.sharding,
            "partition": self.partition,
            "models": len(self.models) if self.models else (1 if self.model is not None else 0),
            "duration_s": self.duration_s,
            "train_s": self.train_s,
            "bytes_exchanged": self.bytes_exchanged,
            "control_bytes": self.control_bytes,
            "samples_per_s": self.samples_per_s,
            "end_to_end_samples_per_s": self.end_to_end_samples_per_s,
        }
        row.update({f"val_{k}": v for k, v in self.val.items() if k != "samples"})
        if self.carbon is not None and getattr(self.carbon, "measured", False):
            row["energy_kwh"] = self.carbon.energy_kwh
            row["co2_g"] = self.carbon.emissions_g
            row["carbon_method"] = "estimate" if self.carbon.estimated else self.carbon.method
        return row

    def predict(self, x: Any, geocodes: Sequence[str] | None = None) -> Any:
        """Predict with the trained model, or route each sample to its partition's model.

        Parameters
        ----------
        x : torch.Tensor
            Inputs ``(N, C, H, W)``.
        geocodes : sequence of str, optional
            One geocode per sample (required for partitioned results; cut to the partition
            precision).

        Raises
        ------
        GeocodeError
            If a sample's partition has no model, or geocodes are missing or miscounted.
        """
        torch = lazy_import("torch")
        if not self.models:
            if self.model is None:
                raise TrainingError(f"run {self.name!r} holds no trained model")
            self.model.eval()
            with torch.no_grad():
                return self.model(x)
        if geocodes is None or len(geocodes) != len(x):
            raise GeocodeError(
                f"a partitioned result routes by geocode: give one geocode per sample "
                f"({len(x)} samples, got {None if geocodes is None else len(geocodes)})"
            )
        precision = len(next(iter(self.models)))
        codes = np.array([str(c)[:precision] for c in geocodes])
        unknown = sorted(set(codes.tolist()) - set(self.models))
        if unknown:
            raise GeocodeError(
                f"no model was trained for partition(s) {unknown[:5]} "
                f"({len(self.models)} partitions have models, e.g. {sorted(self.models)[:3]})"
            )
        out: Any = None
        for code in sorted(set(codes.tolist())):
            idx = torch.as_tensor(np.flatnonzero(codes == code))
            model = self.models[code]
            model.eval()
            with torch.no_grad():
                pred = model(x[idx])
            if out is None:
                out = pred.new_empty((len(x), *pred.shape[1:]))
            out[idx] = pred
        return out

    def __repr__(self) -> str:
        s = self.summary()
        val = ", ".join(f"{k}={v:.4g}" for k, v in s.items() if k.startswith("val_"))
        return (
            f"TrainResult({self.name!r}: {self.strategy} on {self.engines} engine(s), "
            f"{s['models']} model(s), {self.samples_per_s:,.1f} samples/s of training, "
            f"{self.duration_s:.2f} s end to end (start-up included), "
            f"{self.bytes_exchanged:,} B exchanged{', ' + val if val else ''})"
        )

    def _repr_html_(self) -> str:
        from workbench.training.comparison_view import result_html

        return result_html(self)


class Comparison(Mapping[str, TrainResult]):
    """Results of several runs by name, and the table comparing them (paper Tables III-V).

    ``table()`` adds ratios to a baseline run (default: the first added): ``time_x`` (baseline
    time / run time, >1 is faster), ``bytes_x`` (baseline bytes / run bytes) and ``val_loss_x``
    (run loss / baseline loss, <1 is more accurate).
    """

    def __init__(self) -> None:
        self._results: dict[str, TrainResult] = {}

    def add(self, result: TrainResult, name: str | None = None) -> None:
        """Add (or replace) a result under ``name`` (default ``result.name``)."""
        self._results[name or result.name] = result

    def __getitem__(self, name: str) -> TrainResult:
        return self._results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def clear(self) -> None:
        """Forget every result."""
        self._results.clear()

    def table(self, baseline: str | None = None) -> Any:
        """Return a :class:`pandas.DataFrame`, one row per run, with ratios to ``baseline``."""
        pd = lazy_import("pandas")
        rows = [r.summary() | {"name": n} for n, r in self._results.items()]
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        df = df.set_index("name", drop=False)
        base = baseline or rows[0]["name"]
        if base not in df.index:
            raise KeyError(f"baseline {base!r} is not one of {list(df.index)}")
        with np.errstate(divide="ignore", invalid="ignore"):
            df["time_x"] = df.loc[base, "duration_s"] / df["duration_s"]
            b = df["bytes_exchanged"].astype(float).to_numpy()
            b0 = float(df.loc[base, "bytes_exchanged"])
            # baseline bytes / run bytes: inf when the run exchanged none, NaN when neither did
            df["bytes_x"] = np.where(
                b > 0, b0 / np.where(b > 0, b, 1.0), np.inf if b0 > 0 else np.nan
            )
            if "val_loss" in df:
                df["val_loss_x"] = df["val_loss"] / df.loc[base, "val_loss"]
        return df.reset_index(drop=True)

    def report(self, baseline: str | None = None) -> Any:
        """Return the table formatted for reading (units, no NaN/inf) with a bar chart.

        See :class:`~workbench.training.comparison_view.ComparisonTable`; indexing it reaches
        the numbers of :meth:`table`.
        """
        from workbench.training.comparison_view import ComparisonTable

        return ComparisonTable(self.table(baseline), baseline)

    def _repr_html_(self) -> str:
        return str(self.report()._repr_html_())

    def __repr__(self) -> str:
        return f"Comparison({list(self._results)})" if not self._results else repr(self.report())
