"""The three measurement modes of the Frontier paper (Fig. 1), to tell if training is input-bound.

* **io**: iterate the loader, no compute: the most the input pipeline can deliver;
* **synthetic**: run the step on random tensors of the batch's shape, no loading: the most
  compute (and communication) can take;
* **real**: load and compute, as training does.

If the loader alone is slower than compute on synthetic data, training is input-bound, and
adding devices will not make it faster. :func:`measure_modes` runs all three and says so,
and on how many steps its verdict rests: each mode runs at least ``steps`` steps and at
least ``min_seconds`` (starting the loader again when it runs out), so a short loader or a
fast step still gives a verdict worth reading. The module never imports torch: tensors are
handled by duck typing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench._format import number, percent
from workbench.metering._common import MeterConfigError
from workbench.metering.events import StepEvent
from workbench.metering.throughput import ThroughputMeter, ThroughputStats

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ModeReport", "measure_modes", "random_like", "batch_size_of"]

MODES = ("io", "synthetic", "real")
_KIND = {"io": "io", "synthetic": "synthetic", "real": "train"}
_WHAT = {
    "io": "loader only (IO)",
    "synthetic": "compute on random data (synthetic)",
    "real": "load + compute (real)",
}


def batch_size_of(batch: Any) -> int:
    """Count the samples of a batch: the first dimension (of the first item of an ``(x, y)`` pair).

    Examples
    --------
    >>> import numpy as np
    >>> batch_size_of((np.zeros((8, 3, 32, 32)), np.zeros(8)))
    8
    """
    if isinstance(batch, tuple | list) and batch:
        return batch_size_of(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_size_of(next(iter(batch.values())))
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    return len(batch) if hasattr(batch, "__len__") else 1


def _nbytes(batch: Any) -> int:
    if isinstance(batch, tuple | list):
        return sum(_nbytes(b) for b in batch)
    if isinstance(batch, dict):
        return sum(_nbytes(b) for b in batch.values())
    return int(getattr(batch, "nbytes", 0) or 0)


def random_like(batch: Any, seed: int = 0) -> Any:
    """Random data of the batch's structure, shapes and dtypes (floats random, others copied).

    Works for numpy, CuPy and torch tensors (duck-typed), and tuples/lists/dicts of them, so
    an ``(x, y)`` batch keeps its integer labels.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((4, 2), dtype="float32")
    >>> r = random_like((x, np.arange(4)))
    >>> r[0].shape, r[0].dtype, bool((r[0] != 1).all()), r[1].tolist()
    ((4, 2), dtype('float32'), True, [0, 1, 2, 3])
    """
    if isinstance(batch, tuple | list):
        return type(batch)(random_like(b, seed + i) for i, b in enumerate(batch))
    if isinstance(batch, dict):
        return {k: random_like(v, seed + i) for i, (k, v) in enumerate(batch.items())}
    if hasattr(batch, "normal_") and hasattr(batch, "is_floating_point"):  # torch.Tensor
        out = batch.detach().clone()
        return out.normal_() if out.is_floating_point() else out
    dtype = getattr(batch, "dtype", None)
    if dtype is not None and hasattr(batch, "shape"):
        if type(batch).__module__.split(".")[0] == "cupy":
            from workbench._optional import lazy_import

            cp = lazy_import("cupy")
            return (
                cp.random.standard_normal(batch.shape).astype(dtype)
                if dtype.kind == "f"
                else batch.copy()
            )
        import numpy as np

        if np.dtype(dtype).kind == "f":
            return np.random.default_rng(seed).standard_normal(batch.shape).astype(dtype)
        return np.array(batch, copy=True)
    return batch


@dataclass(frozen=True)
class ModeReport:
    """Images (samples) per second in each mode, and whether training is input-bound.

    ``verdict`` starts with the finding (``"input-bound: ..."``) and ends with what it rests
    on (steps per mode, samples per step); ``steps`` is the smallest number of measured
    steps of any mode.
    """

    images_per_s: dict[str, float]
    stats: dict[str, ThroughputStats]
    bound: str
    verdict: str
    batch_size: int
    steps: int
    notes: tuple[str, ...] = field(default=())

    @property
    def input_bound(self) -> bool:
        """Whether the loader is slower than compute."""
        return self.bound == "input"

    def to_frame(self) -> pd.DataFrame:
        """One row per mode: images/s, step time, data-wait share, steps."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "mode": m,
                    "images_per_s": self.images_per_s[m],
                    "step_time_s": self.stats[m].step_time_s,
                    "data_wait_share": self.stats[m].data_wait_share,
                    "steps": self.stats[m].steps,
                }
                for m in self.images_per_s
            ]
        ).set_index("mode")

    def rows(self) -> list[dict[str, str]]:
        """Return the table as text, one row per mode, with units in the headers."""
        return [
            {
                "mode": _WHAT[m],
                "images/s": number(self.images_per_s[m]),
                "step time (ms)": number(1e3 * self.stats[m].step_time_s),
                "waiting for data": percent(self.stats[m].data_wait_share),
                "steps": str(self.stats[m].steps),
            }
            for m in self.images_per_s
        ]

    def __repr__(self) -> str:
        rows = self.rows()
        heads = list(rows[0]) if rows else []
        widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in heads}
        lines = ["  ".join(h.ljust(widths[h]) for h in heads)]
        lines += ["  ".join(r[h].rjust(widths[h]) if i else r[h].ljust(widths[h])
                            for i, h in enumerate(heads)) for r in rows]  # fmt: skip
        return "\n".join([self.verdict, *lines, *self.notes])

    def _repr_html_(self) -> str:
        import html

        head, _, rest = self.verdict.partition(": ")
        heads = list(self.rows()[0]) if self.rows() else []
        th = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        body = "".join(
            "<tr>"
            + "".join(
                f'<td style="text-align:{"left" if i == 0 else "right"}">{html.escape(v)}</td>'
                for i, v in enumerate(row.values())
            )
            + "</tr>"
            for row in self.rows()
        )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f'<div class="wb-mode-report"><p><b>{html.escape(head)}</b>: {html.escape(rest)}</p>'
            f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
            + (f"<ul>{notes}</ul>" if notes else "")
            + "</div>"
        )


def _verdict(rate: dict[str, float], wait: float, tol: float) -> tuple[str, str]:
    io, syn, real = (rate.get(m, math.nan) for m in MODES)
    if not (math.isfinite(io) and math.isfinite(syn)):
        return (
            "unknown",
            "unknown: run both the io and synthetic modes to tell what bounds training",
        )
    limit = min(io, syn)
    real_txt = ""
    if math.isfinite(real):
        real_txt = (
            f"; real training runs at {number(real)} images/s ({percent(real / limit)} of the "
            "slower mode"
        )
        real_txt += (
            f", {percent(wait)} of each step waiting for data)" if math.isfinite(wait) else ")"
        )
    if io < syn * (1 - tol):
        bound = "input"
        text = (
            f"input-bound: the loader alone delivers {number(io)} images/s, compute on synthetic "
            f"data takes {number(syn)}{real_txt}. Speed up input (more loader workers, "
            "chunk-aligned chips, GPU-direct reads) before adding compute"
        )
    elif syn < io * (1 - tol):
        bound = "compute"
        text = (
            f"compute-bound: compute on synthetic data takes {number(syn)} images/s, the loader "
            f"alone delivers {number(io)}{real_txt}. Faster input will not help; scale compute"
        )
    else:
        bound = "balanced"
        text = (
            f"balanced: loader {number(io)} and compute {number(syn)} images/s are within "
            f"{percent(tol)}{real_txt}"
        )
    if math.isfinite(real) and real < 0.8 * limit:
        text += (
            ". Real training stays well below both limits: loading and compute do not "
            "overlap (prefetch, more workers, pinned memory)"
        )
    return bound, text


def measure_modes(
    step_fn: Callable[[Any], Any],
    loader: Iterable[Any],
    *,
    steps: int = 20,
    warmup: int = 2,
    min_seconds: float = 1.0,
    max_steps: int | None = None,
    modes: Sequence[str] = MODES,
    synthetic: Any = None,
    sync: Callable[[], Any] | None = None,
    callbacks: Sequence[Callable[[StepEvent], Any]] = (),
    tolerance: float = 0.1,
    rank: int = 0,
) -> ModeReport:
    """Measure images/s with IO only, synthetic data only, and real data (Frontier, Fig. 1).

    Each mode runs ``warmup`` unmeasured steps, then measured steps until it has at least
    ``steps`` of them *and* they took at least ``min_seconds`` (up to ``max_steps``); a
    loader that runs out is iterated again (another epoch), and the report notes it. The
    verdict says how many steps it rests on.

    Parameters
    ----------
    step_fn : callable
        One training step on a batch (forward, backward, optimizer step).
    loader : iterable
        Re-iterable source of batches (a list, a ``DataLoader``, ``chips.to_torch(...)``);
        iterated once or more per mode, so a one-shot iterator is refused.
    steps, warmup : int
        Measured steps per mode (at least), after ``warmup`` unmeasured ones.
    min_seconds : float
        Measured time per mode (at least), so that fast steps are timed over enough of them.
    max_steps : int, optional
        Most measured steps per mode (default ``max(steps, 1000)``).
    modes : sequence of {"io", "synthetic", "real"}
        Which modes to run, in order.
    synthetic : batch, optional
        The batch for the synthetic mode; default :func:`random_like` of the first batch.
    sync : callable, optional
        Called after each step (e.g. ``torch.cuda.synchronize``) so GPU time is counted.
    callbacks : sequence of callables
        Receive every measured :class:`StepEvent` (kinds ``"io"``, ``"synthetic"``,
        ``"train"``), e.g. a ``LivePlot``.
    tolerance : float
        Relative difference under which input and compute count as balanced.
    rank : int
        Rank stamped on the events.

    Raises
    ------
    MeterConfigError
        For a one-shot iterator, an empty loader, ``steps < 1`` or an unknown mode.

    Examples
    --------
    >>> import numpy as np
    >>> batches = [np.ones((16, 3, 8, 8), dtype="float32") for _ in range(6)]
    >>> rep = measure_modes(lambda x: float((x * 2).sum()), batches, steps=4, warmup=1,
    ...                     min_seconds=0)
    >>> sorted(rep.images_per_s), rep.batch_size, rep.bound in {"input", "compute", "balanced"}
    (['io', 'real', 'synthetic'], 16, True)
    >>> rep.verdict.split(": ")[0] in {"input-bound", "compute-bound", "balanced"}
    True
    >>> rep.verdict.endswith("(4 measured steps per mode of 16 samples each)")
    True
    """
    if steps < 1 or warmup < 0 or min_seconds < 0:
        raise MeterConfigError(
            f"need steps >= 1, warmup >= 0 and min_seconds >= 0, got steps={steps}, "
            f"warmup={warmup}, min_seconds={min_seconds}"
        )
    cap = max(steps, max_steps if max_steps is not None else 1000)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise MeterConfigError(f"unknown mode(s) {bad}; choose from {list(MODES)}")
    if iter(loader) is loader:
        raise MeterConfigError(
            "loader is a one-shot iterator and each mode needs a fresh pass; pass a re-iterable "
            "(a list, a torch DataLoader, chips.to_torch(...)), not iter(...) or a generator"
        )
    first: list[Any] = []

    def batches() -> Iterator[Any]:
        """Yield the loader's batches, pass after pass, counting the passes."""
        while True:
            passes[0] += 1
            empty = True
            for b in loader:
                empty = False
                if not first:
                    first.append(b)
                yield b
            if empty:
                return

    meters, rates, notes = {}, {}, []
    sizes: set[int] = set()
    passes = [0]
    for mode in modes:
        meter = ThroughputMeter()
        passes[0] = 0
        syn = None
        if mode == "synthetic":
            if synthetic is None and not first:
                next(batches(), None)
                if not first:
                    raise MeterConfigError("loader yielded no batch: nothing to measure")
            syn = synthetic if synthetic is not None else random_like(first[0])
        it = batches() if mode != "synthetic" else None
        measured, busy, i = 0, 0.0, 0
        while measured < cap and (measured < steps or busy < min_seconds):
            t0 = time.perf_counter()
            try:
                batch = syn if it is None else next(it)
            except StopIteration:
                break
            t1 = time.perf_counter()
            if mode != "io":
                step_fn(batch)
                if sync is not None:
                    sync()
            t2 = time.perf_counter() if mode != "io" else t1
            i += 1
            if i <= warmup:
                continue
            n = batch_size_of(batch)
            sizes.add(n)
            event = StepEvent(
                step=measured, samples=n, nbytes=_nbytes(batch), t=time.time(),
                duration=t2 - t0, data_wait=t1 - t0, rank=rank, kind=_KIND[mode],
            )  # fmt: skip
            meter.update(event)
            measured += 1
            busy += t2 - t0
            for cb in callbacks:
                cb(event)
        stats = meter.snapshot()
        if stats.steps == 0:
            raise MeterConfigError(
                f"mode {mode!r}: the loader yielded no batch after {warmup} warm-up step(s); "
                "give a longer loader or fewer warmup steps"
            )
        if passes[0] > 1:
            notes.append(
                f"mode {mode!r}: the loader ran out and was iterated {passes[0]} times to "
                f"measure {stats.steps} steps"
            )
        meters[mode] = stats
        rates[mode] = stats.samples / stats.busy_s if stats.busy_s > 0 else math.inf
    wait = meters["real"].data_wait_share if "real" in meters else math.nan
    bound, verdict = _verdict(rates, wait, tolerance)
    measured_min = min(s.steps for s in meters.values())
    counts = {s.steps for s in meters.values()}
    per_mode = (
        f"{measured_min} measured steps per mode"
        if len(counts) == 1
        else f"{measured_min} to {max(counts)} measured steps per mode"
    )
    lo, hi = min(sizes), max(sizes)
    samples = f"{hi}" if lo == hi else f"{lo} to {hi}"
    verdict += f" ({per_mode} of {samples} samples each)"
    return ModeReport(rates, meters, bound, verdict, hi, measured_min, tuple(notes))
