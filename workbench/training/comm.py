"""Counting the bytes that training processes exchange through collectives.

Two taps, both on the real calls:

* DDP: :func:`ddp_counting_hook` is a DDP communication hook that records each gradient
  bucket, then runs the default all-reduce.
* FSDP (and anything else calling ``torch.distributed``): :func:`count_collectives` wraps the
  collective functions of :mod:`torch.distributed` (which FSDP calls through the module) for
  the duration of a ``with`` block.

A :class:`CommCounter` keeps, per operation, the number of calls, the *payload* (bytes of the
tensors this process handed to the collective) and an estimate of the bytes this process puts
*on the wire* with the bandwidth-optimal ring algorithms (all-reduce ``2 (g-1)/g N``,
all-gather ``(g-1) N_in``, reduce-scatter ``(g-1)/g N_in``, broadcast ``(g-1)/g N`` on
average, ``g`` = group size). Gloo may pick another algorithm for small tensors: wire bytes
are a model, payload bytes are exact.

Examples
--------
>>> c = CommCounter()
>>> c.record("all_reduce", 1000, group_size=2)
>>> c.record("all_gather", 10, group_size=4)
>>> c.payload_bytes, c.wire_bytes
(1010, 1030)
>>> wire_bytes("reduce_scatter", 400, 4)
300
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workbench._optional import lazy_import

__all__ = ["CommCounter", "wire_bytes", "ddp_counting_hook", "count_collectives", "tensor_bytes"]

_RING_FACTORS: dict[str, Callable[[int], float]] = {
    "all_reduce": lambda g: 2.0 * (g - 1) / g,
    "all_gather": lambda g: float(g - 1),
    "reduce_scatter": lambda g: (g - 1) / g,
    "broadcast": lambda g: (g - 1) / g,
    "all_to_all": lambda g: (g - 1) / g,
}


def wire_bytes(op: str, payload: int, group_size: int) -> int:
    """Bytes one process sends for ``op`` on ``payload`` bytes in a ring of ``group_size``."""
    if group_size <= 1:
        return 0
    return round(_RING_FACTORS[op](group_size) * payload)


def tensor_bytes(obj: Any) -> int:
    """Bytes of a tensor, or of the tensors in a list/tuple."""
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(t) for t in obj)
    if hasattr(obj, "element_size") and hasattr(obj, "numel"):
        return int(obj.element_size() * obj.numel())
    return 0


@dataclass
class CommCounter:
    """Calls, payload bytes and estimated wire bytes per collective operation (one process)."""

    calls: dict[str, int] = field(default_factory=dict)
    payload: dict[str, int] = field(default_factory=dict)
    wire: dict[str, int] = field(default_factory=dict)

    def record(self, op: str, nbytes: int, group_size: int) -> None:
        """Record one ``op`` (``all_reduce``, ``all_gather``, ...) of ``nbytes`` payload."""
        self.calls[op] = self.calls.get(op, 0) + 1
        self.payload[op] = self.payload.get(op, 0) + int(nbytes)
        self.wire[op] = self.wire.get(op, 0) + wire_bytes(op, int(nbytes), group_size)

    @property
    def payload_bytes(self) -> int:
        """Total payload bytes over all operations."""
        return sum(self.payload.values())

    @property
    def wire_bytes(self) -> int:
        """Total estimated bytes sent by this process."""
        return sum(self.wire.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "calls": dict(self.calls),
            "payload": dict(self.payload),
            "wire": dict(self.wire),
            "payload_bytes": self.payload_bytes,
            "wire_bytes": self.wire_bytes,
        }


def ddp_counting_hook(counter: CommCounter) -> Callable[[Any, Any], Any]:
    """Return a DDP comm hook (``ddp.register_comm_hook(group, hook)``) counting bucket bytes.

    The hook records the bucket as an ``all_reduce`` of its flat buffer, then defers to
    PyTorch's default ``allreduce_hook`` (sum and divide by the world size).
    """
    default_hooks = lazy_import("torch.distributed.algorithms.ddp_comm_hooks.default_hooks")
    dist = lazy_import("torch.distributed")

    def hook(process_group: Any, bucket: Any) -> Any:
        buffer = bucket.buffer()
        counter.record("all_reduce", tensor_bytes(buffer), dist.get_world_size(process_group))
        return default_hooks.allreduce_hook(process_group, bucket)

    # DDP rejects string annotations (``from __future__ import annotations``): drop them.
    hook.__annotations__ = {}
    return hook


# torch.distributed function -> (operation, index of the argument whose bytes are the payload)
_COLLECTIVES: dict[str, tuple[str, int]] = {
    "all_reduce": ("all_reduce", 0),
    "all_reduce_coalesced": ("all_reduce", 0),
    "all_gather": ("all_gather", 1),
    "all_gather_single": ("all_gather", 1),
    "all_gather_into_tensor": ("all_gather", 1),
    "_all_gather_base": ("all_gather", 1),
    "all_gather_coalesced": ("all_gather", 1),
    "reduce_scatter": ("reduce_scatter", 1),
    "reduce_scatter_single": ("reduce_scatter", 1),
    "reduce_scatter_tensor": ("reduce_scatter", 1),
    "_reduce_scatter_base": ("reduce_scatter", 1),
    "broadcast": ("broadcast", 0),
    "all_to_all_single": ("all_to_all", 1),
}


_PAYLOAD_KWARGS = ("input_tensor", "input", "input_tensor_list", "input_list", "tensor", "tensors")


def _payload_kwarg(kwargs: dict[str, Any]) -> Any:
    for key in _PAYLOAD_KWARGS:
        if key in kwargs:
            return kwargs[key]
    return None


def _group_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if "group" in kwargs:
        return kwargs["group"]
    dist = lazy_import("torch.distributed")
    for a in args:
        if isinstance(a, dist.ProcessGroup):
            return a
    return None


@contextlib.contextmanager
def count_collectives(counter: CommCounter) -> Iterator[CommCounter]:
    """Record every collective called through :mod:`torch.distributed` inside the block.

    The functions are wrapped on the module object and restored on exit; nested blocks and
    threads share the wrappers, so use one block per process at a time.
    """
    dist = lazy_import("torch.distributed")
    originals: dict[str, Any] = {}
    for name, (op, arg) in _COLLECTIVES.items():
        fn = getattr(dist, name, None)
        if fn is None:
            continue
        originals[name] = fn

        @functools.wraps(fn)
        def wrapper(
            *args: Any, _fn: Any = fn, _op: str = op, _arg: int = arg, **kwargs: Any
        ) -> Any:
            payload = args[_arg] if len(args) > _arg else _payload_kwarg(kwargs)
            group = _group_of(args, kwargs)
            counter.record(_op, tensor_bytes(payload), dist.get_world_size(group))
            return _fn(*args, **kwargs)

        setattr(dist, name, wrapper)
    try:
        yield counter
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)
