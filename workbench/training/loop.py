"""A minimal training loop that reports each step as a StepEvent.

Each step becomes a :class:`~workbench.metering.events.StepEvent`.

The loop knows nothing about processes or strategies: it trains ``model`` on the batches that
``batches(epoch)`` yields and calls each callback with one event per step. Strategies
(:mod:`workbench.training.strategies`) wrap the model (DDP, FSDP) and give the batches of
their rank; meters and live plots subscribe through the callbacks.

Examples
--------
>>> import torch
>>> from workbench.training.loop import train
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> x = torch.rand(64, 2); y = x.sum(dim=1)
>>> model = torch.nn.Linear(2, 1)
>>> events = []
>>> history = train(
...     model, lambda p, t: torch.nn.functional.mse_loss(p.squeeze(1), t),
...     torch.optim.SGD(model.parameters(), lr=0.5),
...     lambda epoch: [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)],
...     epochs=3, callbacks=[events.append],
... )
>>> len(events), events[0].samples, history[-1].loss < history[0].loss
(12, 16, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench._optional import lazy_import
from workbench.errors import TrainingError
from workbench.metering.events import StepEvent

__all__ = ["Callback", "EpochRecord", "train", "evaluate", "batch_nbytes"]

#: A step callback: called with each :class:`StepEvent` (return value ignored).
Callback = Callable[[StepEvent], object]
#: A metric: ``fn(prediction, target) -> scalar tensor`` (mean over the batch).
Metric = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did on one process (and one partition, for partitioned training).

    ``loss`` is the sample-weighted mean training loss of the epoch on this process;
    ``val`` holds validation results (``{"loss": ..., "<metric>": ..., "samples": n}``) when a
    validation set was given.
    """

    epoch: int
    loss: float
    samples: int
    steps: int
    duration: float
    rank: int = 0
    partition: str | None = None
    val: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a flat, JSON-friendly dict (``val_<name>`` keys for validation results)."""
        d = asdict(self)
        val = d.pop("val")
        d.update({f"val_{k}": v for k, v in val.items()})
        return d


def batch_nbytes(batch: Any) -> int:
    """Bytes of the tensors in a batch (a tensor, or a tuple/list/dict of them)."""
    if hasattr(batch, "element_size") and hasattr(batch, "numel"):
        return int(batch.element_size() * batch.numel())
    if isinstance(batch, Mapping):
        return sum(batch_nbytes(v) for v in batch.values())
    if isinstance(batch, tuple | list):
        return sum(batch_nbytes(v) for v in batch)
    return 0


def _split(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` of a batch; ``(x, None)`` for inputs alone (self-supervised training)."""
    if isinstance(batch, tuple | list):
        if len(batch) == 2:
            return batch[0], batch[1]
        if len(batch) == 1:
            return batch[0], None
    elif hasattr(batch, "shape"):
        return batch, None
    raise TrainingError(
        f"a training batch must be an input tensor or an (input, target) pair, got "
        f"{type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, tuple | list) else "")
        + "; give a dataset whose items are x or (x, y), a ChipSet (targets=[...] for pairs), "
        "or a transform that returns x or (x, y)"
    )


def _loss(model: Any, loss_fn: Callable[[Any, Any], Any] | None, x: Any, y: Any) -> tuple[Any, Any]:
    """``(prediction, loss)`` of one batch: ``loss_fn(pred, y)``, or ``(pred, x)`` without y.

    Without a ``loss_fn`` the model's forward on inputs alone is the loss itself.
    """
    out = model(x)
    if loss_fn is not None:
        loss = loss_fn(out, x if y is None else y)
    elif y is None:
        loss = out
    else:
        raise TrainingError(
            "the batches are (input, target) pairs but no loss_fn was given: define "
            "loss_fn(prediction, target) in the cell (or train on inputs alone with a model "
            "whose forward returns the loss)"
        )
    if getattr(loss, "numel", lambda: 1)() != 1:
        raise TrainingError(
            f"the loss must be one number per batch, got a tensor of shape "
            f"{tuple(getattr(loss, 'shape', ()))}"
            + (
                "; the model's forward must return a scalar loss when no loss_fn is given"
                if loss_fn is None
                else "; make loss_fn reduce over the batch (e.g. .mean())"
            )
        )
    return out, loss


def _check_finite(loss: float, epoch: int, step: int, rank: int, partition: str | None) -> None:
    if not math.isfinite(loss):
        where = f"rank {rank}" + (f", partition {partition!r}" if partition else "")
        raise TrainingError(
            f"the training loss became {loss} at epoch {epoch}, step {step} ({where}); "
            "lower the learning rate (--lr) or check the inputs and targets for NaN"
        )


def evaluate(
    model: Any,
    batches: Iterable[Any],
    loss_fn: Callable[[Any, Any], Any] | None,
    metrics: Mapping[str, Metric] | None = None,
) -> dict[str, float]:
    """Sample-weighted mean loss and metrics of ``model`` over ``batches`` (no gradients).

    Returns ``{"loss": ..., **metrics, "samples": n}``; an empty iterable gives ``{"samples": 0}``.
    Batches of inputs alone are scored with ``loss_fn(pred, x)`` (or the model's own loss).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Identity()
    >>> mse = lambda p, t: ((p - t) ** 2).mean()
    >>> mae = lambda p, t: (p - t).abs().mean()
    >>> evaluate(model, [(torch.zeros(2), torch.ones(2))], mse, {"mae": mae})
    {'loss': 1.0, 'mae': 1.0, 'samples': 2}
    """
    torch = lazy_import("torch")
    sums: dict[str, float] = {}
    n = 0
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                x, y = _split(batch)
                pred, loss = _loss(model, loss_fn, x, y)
                b = len(x)
                sums["loss"] = sums.get("loss", 0.0) + float(loss) * b
                for name, fn in (metrics or {}).items():
                    sums[name] = sums.get(name, 0.0) + float(fn(pred, x if y is None else y)) * b
                n += b
    finally:
        if was_training:
            model.train()
    out: dict[str, Any] = {k: v / n for k, v in sums.items()} if n else {}
    out["samples"] = n
    return out


def train(
    model: Any,
    loss_fn: Callable[[Any, Any], Any] | None,
    optimizer: Any,
    batches: Callable[[int], Iterable[Any]],
    *,
    epochs: int,
    start_epoch: int = 0,
    callbacks: Sequence[Callback] = (),
    rank: int = 0,
    partition: str | None = None,
    validate: Callable[[Any], Mapping[str, float]] | None = None,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    first_step: int = 0,
) -> list[EpochRecord]:
    """Train ``model`` for epochs ``start_epoch .. epochs - 1`` and return one record per epoch.

    Parameters
    ----------
    model : torch.nn.Module
        The model, possibly wrapped (DDP, FSDP).
    loss_fn : callable or None
        ``loss_fn(prediction, target) -> scalar tensor``; ``loss_fn(prediction, x)`` for
        batches of inputs alone; ``None`` when the model's forward returns the loss.
    optimizer : torch.optim.Optimizer
        Optimizer over ``model``'s parameters.
    batches : callable
        ``batches(epoch)`` returns the batches of that epoch for this process: ``(x, y)``
        pairs, or inputs ``x`` alone (self-supervised).
    epochs : int
        Total epochs (the loop stops after epoch ``epochs - 1``).
    start_epoch : int
        First epoch to run (``> 0`` when resuming from a checkpoint).
    callbacks : sequence of callable
        Each is called with one :class:`StepEvent` per step (``kind="train"``), and one per
        epoch's validation (``kind="val"``, its loss and sample count) when ``validate`` is
        given.
    rank, partition
        Copied into every event and record.
    validate : callable, optional
        ``validate(model) -> {"loss": ..., ...}`` run after each epoch.
    on_epoch_end : callable, optional
        Called with each :class:`EpochRecord` (e.g. to write a checkpoint).
    first_step : int
        Step number of the first event (to keep steps increasing across calls).

    Returns
    -------
    list of EpochRecord

    Raises
    ------
    TrainingError
        If the loss is not finite or not a scalar, or a batch is neither ``x`` nor ``(x, y)``.
    """
    history: list[EpochRecord] = []
    step = first_step
    model.train()
    for epoch in range(start_epoch, epochs):
        t_epoch = time.perf_counter()
        loss_sum, samples, steps = 0.0, 0, 0
        iterator = iter(batches(epoch))
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            t_data = time.perf_counter()
            x, y = _split(batch)
            optimizer.zero_grad(set_to_none=True)
            _, loss = _loss(model, loss_fn, x, y)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            _check_finite(value, epoch, step, rank, partition)
            t1 = time.perf_counter()
            b = len(x)
            loss_sum += value * b
            samples += b
            steps += 1
            event = StepEvent(
                step=step,
                samples=b,
                nbytes=batch_nbytes(batch),
                t=time.time(),
                duration=t1 - t0,
                data_wait=t_data - t0,
                loss=value,
                rank=rank,
                epoch=epoch,
                partition=partition,
            )
            step += 1
            for cb in callbacks:
                cb(event)
        val: dict[str, Any] = {}
        if validate is not None:
            t_val = time.perf_counter()
            val = dict(validate(model))
            if val.get("samples"):  # one ``kind="val"`` event per epoch, for live loss curves
                event = StepEvent(
                    step=step,
                    samples=int(val["samples"]),
                    nbytes=0,
                    t=time.time(),
                    duration=time.perf_counter() - t_val,
                    loss=float(val["loss"]) if "loss" in val else None,
                    rank=rank,
                    epoch=epoch,
                    partition=partition,
                    kind="val",
                )
                for cb in callbacks:
                    cb(event)
        record = EpochRecord(
            epoch=epoch,
            loss=loss_sum / samples if samples else math.nan,
            samples=samples,
            steps=steps,
            duration=time.perf_counter() - t_epoch,
            rank=rank,
            partition=partition,
            val={k: float(v) for k, v in val.items()},
        )
        history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(record)
    return history
