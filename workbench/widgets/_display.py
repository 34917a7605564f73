"""Small helpers shared by the widgets: text fallbacks, number formatting, PNG facts."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["VIEW_HINT", "fallback_text", "format_bounds", "png_size", "png_data_url", "jsonable"]

#: What a user without a widget front end should do to see a widget.
VIEW_HINT = (
    "Display it in JupyterLab (or Notebook 7) to interact with it; the widget front end comes "
    "with: pip install 'workbench[jupyter]'"
)


def fallback_text(title: str, lines: Sequence[str]) -> str:
    """Return the plain-text form of a widget: what it would show, and how to see it.

    Examples
    --------
    >>> print(fallback_text("Thing", ["a: 1"]))  # doctest: +ELLIPSIS
    Thing
      a: 1
      Display it in JupyterLab...
    """
    return "\n".join([title, *(f"  {line}" for line in lines), f"  {VIEW_HINT}"])


def format_bounds(bounds: Sequence[float] | None, digits: int = 4) -> str:
    """``(west, south, east, north)`` as readable text.

    Examples
    --------
    >>> format_bounds((14.5512, 45.8661, 14.5641, 45.8752))
    'W 14.5512, S 45.8661, E 14.5641, N 45.8752'
    >>> format_bounds(None)
    'none'
    """
    if bounds is None:
        return "none"
    west, south, east, north = (float(v) for v in bounds)
    return f"W {west:.{digits}f}, S {south:.{digits}f}, E {east:.{digits}f}, N {north:.{digits}f}"


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` read from a PNG header.

    Examples
    --------
    >>> import numpy as np
    >>> from workbench.chips.render import encode_png
    >>> png_size(encode_png(np.zeros((3, 5), dtype=np.uint8)))
    (5, 3)
    """
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def png_data_url(png: bytes) -> str:
    """Return a ``data:image/png;base64,...`` URL (for Leaflet overlays and standalone HTML only).

    Examples
    --------
    >>> png_data_url(b"abc")
    'data:image/png;base64,YWJj'
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def jsonable(value: Any) -> Any:
    """Turn NumPy scalars, tuples and timestamps into JSON-friendly Python values.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"a": (np.float32(1.5), np.datetime64("2019-03-01T06:00:00.000000000"))})
    {'a': [1.5, '2019-03-01T06:00:00']}
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value, unit="s")) if not np.isnat(value) else None
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        scalar = item()
        if isinstance(scalar, bool | int | float | str):
            return scalar
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
