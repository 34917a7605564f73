"""What the gallery needs from a :class:`~workbench.chips.ChipSet`: pixels, channel names, metadata.

Kept apart from the widget so it can be tested (and reused) without a front end. Only the
public ChipSet API is used (``to_numpy``, ``dims``, ``variables``, ``bounds``, ``time``,
``geocodes``, ``select``), plus an optional ``channel_names`` attribute when the chip set has one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from workbench.chips.render import PreviewError, array_namespace
from workbench.errors import WorkbenchError
from workbench.widgets._display import jsonable

__all__ = [
    "Y_NAMES",
    "X_NAMES",
    "spatial_axes",
    "chip_batch",
    "pick_bands",
    "chip_summary",
    "chip_details",
]

Y_NAMES = ("y", "lat", "latitude", "row", "rows", "northing")
X_NAMES = ("x", "lon", "longitude", "col", "cols", "easting")
_TRUE_COLOUR = (("b04", "b03", "b02"), ("red", "green", "blue"), ("r", "g", "b"))


def spatial_axes(dims: Sequence[Hashable]) -> tuple[int, int]:
    """Positions of the y-like and x-like dims among ``dims`` (else the last two).

    Examples
    --------
    >>> spatial_axes(["time", "lat", "lon"]), spatial_axes(["x", "y"]), spatial_axes(["a", "b"])
    ((1, 2), (1, 0), (0, 1))
    """
    names = [str(d).lower() for d in dims]
    y = next((i for i, d in enumerate(names) if d in Y_NAMES), None)
    x = next((i for i, d in enumerate(names) if d in X_NAMES), None)
    if y is None or x is None:
        if len(names) < 2:
            raise PreviewError(f"chips need two spatial dims to be drawn, got dims {list(dims)!r}")
        return len(names) - 2, len(names) - 1
    return y, x


def _channel_names(chips: Any, count: int) -> list[str]:
    names = getattr(chips, "channel_names", None)
    if names is not None and len(names) == count:
        return [str(n) for n in names]
    variables = [str(v) for v in chips.variables]
    if len(variables) == count:
        return variables
    obj = getattr(chips, "obj", None)
    if obj is not None and variables and count % len(variables) == 0:
        first = obj[variables[0]] if hasattr(obj, "data_vars") else obj
        extra = [d for d in first.dims if d not in chips.dims]
        labels: list[str] = [""]
        for dim in extra:
            values = first[dim].values if dim in first.coords else np.arange(first.sizes[dim])
            labels = [f"{a}{',' if a else ''}{_label(v)}" for a in labels for v in values]
        if len(labels) * len(variables) == count:
            return [f"{v}:{lab}" if lab else v for v in variables for lab in labels]
    per = max(count // max(len(variables), 1), 1)
    return [f"{variables[c // per] if variables else 'channel'}[{c % per}]" for c in range(count)]


def chip_batch(chips: Any, indices: np.ndarray) -> tuple[Any, list[str]]:
    """Read chips as a ``(B, C, H, W)`` batch on their own device, and name the channels.

    Chipped dims other than the two spatial ones (e.g. ``time: 1``) are previewed at index 0.
    """
    batch = chips.to_numpy(indices)
    xp = array_namespace(batch)
    dims = list(chips.dims)
    if batch.ndim != 2 + len(dims):
        raise PreviewError(
            f"chips.to_numpy gave shape {tuple(batch.shape)}; expected (B, C, *{dims})"
        )
    y, x = spatial_axes(dims)
    order = [0, 1] + [2 + i for i in range(len(dims)) if i not in (y, x)] + [2 + y, 2 + x]
    batch = xp.transpose(batch, order)
    while batch.ndim > 4:
        batch = batch[:, :, 0]
    return batch, _channel_names(chips, int(batch.shape[1]))


def _parts(name: str) -> list[str]:
    """Split the labels out of a channel name ``"var:label1,label2"`` (bare names: themselves)."""
    return name.split(":", 1)[1].split(",") if ":" in name else [name]


def _label(value: Any) -> str:
    if isinstance(value, np.datetime64):
        text = str(np.datetime_as_string(value, unit="s"))
        return text.removesuffix("T00:00:00")
    return str(value)


def pick_bands(bands: Sequence[int | str] | int | str | None, names: Sequence[str]) -> list[int]:
    """Resolve band names or indices to channel indices; default true colour or channel 0.

    Examples
    --------
    >>> pick_bands(None, ["B02", "B03", "B04", "B08"])
    [2, 1, 0]
    >>> pick_bands("B08", ["refl:B02", "refl:B08"]), pick_bands(["t2m"], ["t2m", "u10"])
    ([1], [0])
    """
    lowered = [n.lower() for n in names]
    if bands is None:
        for rgb in _TRUE_COLOUR:
            found = [next((i for i, n in enumerate(lowered) if b in _parts(n)), -1) for b in rgb]
            if min(found) >= 0:
                return found
        return [0]
    wanted = [bands] if isinstance(bands, int | str | np.integer) else list(bands)
    out = []
    for band in wanted:
        if isinstance(band, int | np.integer):
            out.append(int(band))
            continue
        key = str(band).lower()
        hits = [i for i, n in enumerate(lowered) if key == n or key in _parts(n)]
        hits = hits or [i for i, n in enumerate(lowered) if n.split(":", 1)[0] == key]
        if not hits:
            raise PreviewError(
                f"band {band!r} is not a channel of these chips; channels: {list(names)}"
            )
        out.append(hits[0])
    return out


def chip_summary(
    chips: Any, indices: np.ndarray, geocode: tuple[str, int] | None = ("geohash", 6)
) -> list[dict[str, Any]]:
    """Per chip, vectorised and cheap: ``index``, lon/lat ``center`` and ``geocode``.

    Chips of data without georeferencing get only ``index`` (their typed
    :class:`~workbench.errors.WorkbenchError` is not an error for a preview).
    """
    meta: list[dict[str, Any]] = [{"index": int(i)} for i in indices]
    if not meta:
        return meta
    subset = chips.select(indices)
    try:
        lon, lat = subset.centers()
    except WorkbenchError:
        return meta
    for entry, x, y in zip(meta, lon, lat, strict=True):
        entry["center"] = [float(x), float(y)]
    if geocode is not None:
        scheme, precision = geocode
        codes = subset.geocodes(scheme=scheme, precision=precision)
        for entry, code in zip(meta, codes, strict=True):
            entry["geocode"] = str(code)
    return meta


def chip_details(chips: Any, index: int) -> dict[str, Any]:
    """Where and when one chip is: lon/lat ``bounds`` and ``time`` (first, last), JSON-ready."""
    details: dict[str, Any] = {}
    with contextlib.suppress(WorkbenchError):  # not georeferenced: nothing to say about where
        details["bounds"] = [float(v) for v in chips.bounds(int(index))]
    when = chips.time(int(index))
    if when is not None:
        details["time"] = jsonable(list(when) if isinstance(when, tuple | list) else [when])
    return details
