"""The three measurement modes of the Frontier paper (Fig. 1), to tell if training is input-bound.

* **io**: iterate the loader, no compute: the most the input pipeline can deliver;
* **synthetic**: run the step on random tensors of the batch's shape, no loading: the most
  compute (and communication) can take;
* **real**: load and compute, as training does.

If the loader alone is slower than compute on synthetic data, training is input-bound, and
adding devices will not make it faster. :func:`measure_modes` runs all three and says so.
The module never imports torch: tensors are handled by duck typing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.metering._common import MeterConfigError
from workbench.metering.events import StepEvent
from workbench.metering.throughput import ThroughputMeter, ThroughputStats

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ModeReport", "measure_modes", "random_like", "batch_size_of"]

MODES = ("io", "synthetic", "real")
_KIND = {"io": "io", "synthetic": "synthetic", "real": "train"}


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
    """Images (samples) per second in each mode, and whether training is input-bound."""

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

    def __repr__(self) -> str:
        rates = ", ".join(f"{m} {v:,.1f}" for m, v in self.images_per_s.items())
        return f"ModeReport(images/s: {rates}; {self.verdict})"

    def _repr_html_(self) -> str:
        import html

        table = self.to_frame().to_html(float_format=lambda v: f"{v:,.3g}")
        return (
            f'<div class="wb-mode-report"><p><b>{html.escape(self.bound)}-bound</b>: '
            f"{html.escape(self.verdict)}</p>{table}</div>"
        )


def _verdict(rate: dict[str, float], wait: float, tol: float) -> tuple[str, str]:
    io, syn, real = (rate.get(m, math.nan) for m in MODES)
    if not (math.isfinite(io) and math.isfinite(syn)):
        return "unknown", "run both the io and synthetic modes to tell what bounds training"
    limit = min(io, syn)
    real_txt = ""
    if math.isfinite(real):
        real_txt = (
            f"; real training runs at {real:,.1f} images/s ({real / limit:.0%} of the slower mode"
        )
        real_txt += f", {wait:.0%} of each step waiting for data)" if math.isfinite(wait) else ")"
    if io < syn * (1 - tol):
        bound = "input"
        text = (
            f"input-bound: the loader alone delivers {io:,.1f} images/s, compute on synthetic "
            f"data takes {syn:,.1f}{real_txt}. Speed up input (more loader workers, "
            "chunk-aligned chips, GPU-direct reads) before adding compute"
        )
    elif syn < io * (1 - tol):
        bound = "compute"
        text = (
            f"compute-bound: compute on synthetic data takes {syn:,.1f} images/s, the loader "
            f"alone delivers {io:,.1f}{real_txt}. Faster input will not help; scale compute"
        )
    else:
        bound = "balanced"
        text = (
            f"balanced: loader {io:,.1f} and compute {syn:,.1f} images/s are within "
            f"{tol:.0%}{real_txt}"
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
    modes: Sequence[str] = MODES,
    synthetic: Any = None,
    sync: Callable[[], Any] | None = None,
    callbacks: Sequence[Callable[[StepEvent], Any]] = (),
    tolerance: float = 0.1,
    rank: int = 0,
) -> ModeReport:
    """Measure images/s with IO only, synthetic data only, and real data (Frontier, Fig. 1).

    Parameters
    ----------
    step_fn : callable
        One training step on a batch (forward, backward, optimizer step).
    loader : iterable
        Re-iterable source of batches (a list, a ``DataLoader``, ``chips.to_torch(...)``);
        iterated once per mode, so a one-shot iterator is refused.
    steps, warmup : int
        Measured steps per mode, after ``warmup`` unmeasured ones.
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
    >>> rep = measure_modes(lambda x: float((x * 2).sum()), batches, steps=4, warmup=1)
    >>> sorted(rep.images_per_s), rep.batch_size, rep.bound in {"input", "compute", "balanced"}
    (['io', 'real', 'synthetic'], 16, True)
    """
    if steps < 1 or warmup < 0:
        raise MeterConfigError(
            f"need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}"
        )
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise MeterConfigError(f"unknown mode(s) {bad}; choose from {list(MODES)}")
    if iter(loader) is loader:
        raise MeterConfigError(
            "loader is a one-shot iterator and each mode needs a fresh pass; pass a re-iterable "
            "(a list, a torch DataLoader, chips.to_torch(...)), not iter(...) or a generator"
        )
    first: list[Any] = []

    def next_batch(it: Any) -> Any:
        b = next(it)
        if not first:
            first.append(b)
        return b

    meters, rates, seen_bs = {}, {}, 0
    for mode in modes:
        meter = ThroughputMeter()
        syn = None
        if mode == "synthetic":
            if synthetic is None and not first:
                try:
                    next_batch(iter(loader))
                except StopIteration:
                    raise MeterConfigError("loader yielded no batch: nothing to measure") from None
            syn = synthetic if synthetic is not None else random_like(first[0])
        it = iter(loader) if mode != "synthetic" else None
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            try:
                batch = syn if it is None else next_batch(it)
            except StopIteration:
                break
            t1 = time.perf_counter()
            if mode != "io":
                step_fn(batch)
                if sync is not None:
                    sync()
            t2 = time.perf_counter() if mode != "io" else t1
            if i < warmup:
                continue
            n = batch_size_of(batch)
            seen_bs = seen_bs or n
            event = StepEvent(
                step=i - warmup, samples=n, nbytes=_nbytes(batch), t=time.time(),
                duration=t2 - t0, data_wait=t1 - t0, rank=rank, kind=_KIND[mode],
            )  # fmt: skip
            meter.update(event)
            for cb in callbacks:
                cb(event)
        stats = meter.snapshot()
        if stats.steps == 0:
            raise MeterConfigError(
                f"mode {mode!r}: the loader yielded no batch after {warmup} warm-up step(s); "
                "give a longer loader or fewer warmup steps"
            )
        meters[mode] = stats
        rates[mode] = stats.samples / stats.busy_s if stats.busy_s > 0 else math.inf
    wait = meters["real"].data_wait_share if "real" in meters else math.nan
    bound, verdict = _verdict(rates, wait, tolerance)
    notes = tuple(
        f"mode {m!r} measured {s.steps} of {steps} steps (loader ran out)"
        for m, s in meters.items()
        if s.steps < steps
    )
    return ModeReport(rates, meters, bound, verdict, seen_bs, steps, notes)
