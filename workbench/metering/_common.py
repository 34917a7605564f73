"""Shared pieces of the metering package: warning and error classes, machine facts, time helpers."""

from __future__ import annotations

import math
import os
import platform
import socket
import warnings
from datetime import UTC, datetime
from functools import cache
from typing import Any

from workbench.errors import MeterConfigError

__all__ = [
    "MeteringWarning",
    "MeterConfigError",
    "warn",
    "host_name",
    "cpu_model",
    "cpu_threads",
    "device_name",
    "utc_iso",
    "finite_or_none",
]


class MeteringWarning(UserWarning):
    """A meter could not measure (or only estimated); the user's work goes on."""


def warn(message: str, *, stacklevel: int = 3) -> None:
    """Emit a :class:`MeteringWarning` (visible in notebooks and scripts)."""
    warnings.warn(message, MeteringWarning, stacklevel=stacklevel)


def host_name() -> str:
    """Return this machine's host name."""
    return socket.gethostname()


@cache
def cpu_model() -> str:
    """Return the CPU model name (from ``/proc/cpuinfo`` on Linux), or ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_threads() -> int:
    """Return the CPU threads this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def device_name(device: str | None = None) -> str:
    """Describe the compute device: ``"cuda:0 <name>"`` where a GPU is used, else the CPU.

    Parameters
    ----------
    device : str, optional
        ``"cpu"``, ``"cuda"``/``"cuda:N"`` or ``None`` (pick: GPU when one is usable).

    Examples
    --------
    >>> device_name("cpu").startswith("cpu: ")
    True
    """
    from workbench._optional import has_gpu

    if device is None:
        device = "cuda" if has_gpu() else "cpu"
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        try:
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(index)
            name = props["name"]
            return f"cuda:{index} {name.decode() if isinstance(name, bytes) else name}"
        except Exception:  # no driver or cupy: the device string is all we know
            return f"cuda:{index}"
    return f"cpu: {cpu_model()} ({cpu_threads()} threads)"


def utc_iso(ts: float | None) -> str | None:
    """Format a ``time.time()`` timestamp as an ISO 8601 UTC string.

    Examples
    --------
    >>> utc_iso(0.0)
    '1970-01-01T00:00:00+00:00'
    """
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def finite_or_none(value: Any) -> Any:
    """Map NaN/inf floats to ``None`` (JSON has no NaN); leave everything else alone."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
