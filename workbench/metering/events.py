"""Events that data and training loops emit and meters consume."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["StepEvent"]


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One step of a data or training loop.

    Small, picklable and JSON-friendly, so it can cross process boundaries
    (ipyparallel ``publish_data``, torch.distributed workers) unchanged.

    Parameters
    ----------
    step : int
        Step counter within the run (0-based).
    samples : int
        Samples (chips, images) processed in this step.
    nbytes : int
        Input bytes consumed in this step.
    t : float
        Wall-clock time (``time.time()``) at the end of the step.
    duration : float
        Seconds the whole step took.
    data_wait : float
        Seconds of ``duration`` spent waiting for input data.
    loss : float, optional
        Training loss of the step, if any.
    rank : int
        Process rank (or engine id) that ran the step.
    epoch : int
        Epoch counter.
    partition : str, optional
        Geocode of the partition, for partitioned (per-geocode) training.
    kind : {"train", "val", "io", "synthetic"}
        What the step measured: real training, validation, input only (IO mode) or
        compute only on synthetic data (the Frontier paper's three modes).
    """

    step: int
    samples: int
    nbytes: int
    t: float
    duration: float
    data_wait: float = 0.0
    loss: float | None = None
    rank: int = 0
    epoch: int = 0
    partition: str | None = None
    kind: str = "train"

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a plain dict (for JSON and ``publish_data``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepEvent:
        """Build an event from :meth:`to_dict` output, ignoring unknown keys."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in fields})
