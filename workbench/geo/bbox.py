"""Bounding boxes: the one validator of ``(west, south, east, north)``.

Catalog queries, geocode covers, AOIs and the map widget all take boxes in this order. In
degrees, longitudes lie in [-180, 180] and latitudes in [-90, 90]; a box across the
antimeridian is written with ``west > east`` (``(170, -10, -170, 10)``), as in GeoJSON (RFC
7946, 5.2) and STAC. Each caller raises its own error class (a ``QueryError`` for a query, an
``AOIError`` for an AOI), all :class:`ValueError`.

Examples
--------
>>> check_bbox([170, -10, -170, 10])
(170.0, -10.0, -170.0, 10.0)
>>> check_bbox((14, 46, 15, 45))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
workbench.errors.AOIError: bbox south 46.0 is north of north 45.0: ... (14.0, 45.0, 15.0, 46.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from workbench.errors import AOIError, WorkbenchError

__all__ = ["check_bbox"]

_ORDER = "(west, south, east, north)"


def check_bbox(
    bbox: Sequence[Any] | Any,
    *,
    error: type[WorkbenchError] = AOIError,
    geographic: bool = True,
    require_area: bool = False,
) -> tuple[float, float, float, float]:
    """Validate a box ``(west, south, east, north)`` and return it as floats.

    Parameters
    ----------
    bbox : sequence of 4 numbers
        The box.
    error : type
        The exception class to raise (a :class:`~workbench.errors.WorkbenchError` that is a
        :class:`ValueError`).
    geographic : bool
        Degrees of longitude and latitude (ranges checked, ``west > east`` crosses the
        antimeridian); ``False`` for projected coordinates (``west > east`` is an error).
    require_area : bool
        Refuse boxes of zero width or height (an AOI to clip to, a box to draw).

    Raises
    ------
    WorkbenchError
        Of class ``error``, saying what is wrong and how to write the box.
    """
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise error(f"bbox must be 4 numbers {_ORDER}, got {bbox!r}") from exc
    if len(values) != 4:
        raise error(f"bbox must be 4 numbers {_ORDER}, got {len(values)}: {bbox!r}")
    if not all(math.isfinite(v) for v in values):
        raise error(f"bbox values must be finite numbers {_ORDER}, got {bbox!r}")
    west, south, east, north = values
    if geographic:
        limits = (
            ("west", west, 180),
            ("east", east, 180),
            ("south", south, 90),
            ("north", north, 90),
        )
        metres = max(abs(x) for x in values) > 360  # not degrees of any kind
        for name, v, lim in limits:
            if not -lim <= v <= lim and metres:
                raise error(
                    f"bbox {values} is not in degrees ({name} {v!r} is outside [-{lim}, {lim}]): "
                    "is it in a projected CRS? Then say which where the call takes one, e.g. "
                    "`clip(ds, aoi, crs='EPSG:32633')`"
                )
            if not -lim <= v <= lim:
                raise error(
                    f"bbox {name} must be within [-{lim}, {lim}] degrees, got {v!r} in {bbox!r}; "
                    "a box across the antimeridian is written with west > east, "
                    "e.g. (170, -10, -170, 10)"
                )
    if south > north:
        raise error(
            f"bbox south {south} is north of north {north}: the order is {_ORDER}, "
            f"e.g. {(west, north, east, south)}"
        )
    if west > east and not geographic:
        raise error(
            f"bbox west {west} is east of east {east}: the order is {_ORDER} "
            "(west > east is allowed only for lon/lat boxes, across the antimeridian)"
        )
    if require_area and (south == north or west == east):
        raise error(f"bbox {values} has no area: give {_ORDER} with south < north, west != east")
    return west, south, east, north
