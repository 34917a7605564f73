"""Query predicates: validation into a :class:`Query` value, and the brute-force reference scan.

Predicates (all optional, combined with AND):

* ``time=(start, end)``: records with ``start <= datetime <= end``; either bound may be ``None``
  (open). Strings, :class:`datetime.datetime`, ``numpy.datetime64`` and pandas timestamps are
  accepted; naive values are UTC. A date-only string end (``"2015-08-30"``) includes that whole
  day. Records without a date never match a time predicate; ``(None, None)`` is no predicate.
* ``bbox=(west, south, east, north)`` in lon/lat degrees: records whose bbox intersects it
  (touching edges count). ``west > east`` crosses the antimeridian.
* ``geocode="u0q"``: with ``recursive=True`` every record whose geocode starts with it (all
  sub-cells), else exactly that geocode. Geohashes are case-insensitive.
* ``max_cloud``: ``cloud_cover <= max_cloud``, a percentage in [0, 100]; unknown (NaN) cloud
  cover never matches.
* ``min_pixel_coverage``: ``pixel_coverage >= min_pixel_coverage``, a percentage in [0, 100].
* ``dataset``: one name or a list of names.
* ``max_snow``: ``snow_cover <= max_snow``, a percentage; unknown (NaN) snow cover never matches.
* ``properties={"labels": "Mixed forest", "tile": "33TVL"}``: records whose stored property equals
  the value, or holds it when the stored value is a list (``labels: ["Forest", "Mixed forest"]``
  matches ``"Mixed forest"``); a list given as the value matches any of its items. All keys
  must match; a record without the key does not.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import QueryError
from workbench.geo.bbox import check_bbox
from workbench.geo.schemes import SCHEMES

__all__ = ["Query", "build_query", "scan", "property_key", "property_matches"]

_NS_MIN, _NS_MAX = np.iinfo(np.int64).min + 1, np.iinfo(np.int64).max


@dataclass(frozen=True)
class Query:
    """A validated, normalised query. Times are int64 nanoseconds since the epoch (UTC)."""

    start_ns: int | None = None
    end_ns: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    geocode: str | None = None
    recursive: bool = True
    max_cloud: float | None = None
    min_pixel_coverage: float | None = None
    datasets: tuple[str, ...] | None = None
    max_snow: float | None = None
    properties: tuple[tuple[str, frozenset[str]], ...] | None = None  # key, accepted JSON values

    @property
    def has_time(self) -> bool:
        """Whether a time predicate is set (even a half-open one)."""
        return self.start_ns is not None or self.end_ns is not None


def _to_ns(value: Any, name: str, end: bool) -> int:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise QueryError(
            f"time {name} {value!r} is not a date; use e.g. '2015-07-11', '2015-07-11T10:00' "
            "or a datetime"
        ) from exc
    if ts is pd.NaT:
        raise QueryError(f"time {name} is NaT; use None for an open bound")
    ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts.tz_localize("UTC")
    ns = int(ts.value)
    if end and isinstance(value, str) and len(value.strip()) == 10:  # date only: whole day
        ns += 86_400_000_000_000 - 1
    return ns


def _parse_time(time: Any) -> tuple[int | None, int | None]:
    if time is None:
        return None, None
    if isinstance(time, (str, _dt.date, np.datetime64, pd.Timestamp)) or not isinstance(
        time, Sequence
    ):
        raise QueryError(
            f"time must be a (start, end) pair with None for an open bound, got {time!r}"
        )
    if len(time) != 2:
        raise QueryError(f"time must be a (start, end) pair, got {len(time)} values: {time!r}")
    start = None if time[0] is None else _to_ns(time[0], "start", end=False)
    end = None if time[1] is None else _to_ns(time[1], "end", end=True)
    if start is not None and end is not None and start > end:
        raise QueryError(
            f"time start {time[0]!r} is after end {time[1]!r}; swap them: "
            f"time=({time[1]!r}, {time[0]!r})"
        )
    return start, end


def _parse_bbox(bbox: Any) -> tuple[float, float, float, float] | None:
    return None if bbox is None else check_bbox(bbox, error=QueryError)


def _alphabet(scheme: str) -> str:
    found = SCHEMES.get(scheme)
    return found.alphabet if found else ""


def _parse_geocode(geocode: Any, schemes: Iterable[str]) -> str | None:
    if geocode is None:
        return None
    if not isinstance(geocode, str) or not geocode:
        raise QueryError(f"geocode must be a non-empty string such as 'u0q', got {geocode!r}")
    schemes = sorted(set(schemes)) or ["geohash", "quadkey"]
    lowered = geocode.strip().lower()
    for scheme in schemes:
        alphabet = _alphabet(scheme)
        if all(c in alphabet for c in lowered):
            return lowered
    bad = sorted({c for c in lowered if not any(c in _alphabet(s) for s in schemes)})
    allowed = "; ".join(f"{s}: {_alphabet(s) or '?'}" for s in schemes)
    raise QueryError(
        f"malformed geocode {geocode!r}: characters {bad} are not geocode digits "
        f"(catalog schemes: {allowed}); geohashes never contain a, i, l or o"
    )


def _parse_percent(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise QueryError(f"{name} must be a percentage in [0, 100], got {value!r}") from exc
    if not (0.0 <= number <= 100.0) or math.isnan(number):
        raise QueryError(
            f"{name} must be a percentage in [0, 100] (catalog coverages are percentages, as "
            f"STAC's eo:cloud_cover), got {value!r}; e.g. {name}=20 for 20 %"
        )
    return number


def _parse_datasets(dataset: Any, known: Iterable[str] | None) -> tuple[str, ...] | None:
    if dataset is None:
        return None
    names = (dataset,) if isinstance(dataset, str) else tuple(dataset)
    if not names or not all(isinstance(n, str) for n in names):
        raise QueryError(f"dataset must be a name or a list of names, got {dataset!r}")
    if known is not None:
        known = sorted(set(known))
        unknown = [n for n in names if n not in known]
        if unknown:
            raise QueryError(f"unknown dataset(s) {unknown}; this catalog holds {known}")
    return tuple(sorted(set(names)))


def property_key(value: Any) -> str:
    """Canonical JSON of one property value (how stored and queried values are compared).

    Examples
    --------
    >>> property_key("Forest"), property_key(2.0), property_key({"b": 1, "a": 2})
    ('"Forest"', '2.0', '{"a":2,"b":1}')
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _parse_properties(properties: Any) -> tuple[tuple[str, frozenset[str]], ...] | None:
    if properties is None:
        return None
    if not isinstance(properties, Mapping) or not properties:
        raise QueryError(
            f"properties must be a non-empty mapping of property name to value, e.g. "
            f"{{'labels': 'Mixed forest'}}; got {properties!r}"
        )
    out = []
    for key, value in properties.items():
        if not isinstance(key, str):
            raise QueryError(f"property names are strings, got {key!r}")
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        if not values:
            raise QueryError(f"property {key!r}: give a value or a non-empty list of values")
        out.append((key, frozenset(property_key(v) for v in values)))
    return tuple(sorted(out))


def property_matches(stored: Mapping[str, Any], key: str, accepted: frozenset[str]) -> bool:
    """Whether a record's properties match one predicate (equality, or list membership).

    Examples
    --------
    >>> property_matches({"labels": ["Forest", "Grassland"]}, "labels", frozenset(['"Forest"']))
    True
    """
    if key not in stored:
        return False
    value = stored[key]
    if property_key(value) in accepted:
        return True
    return isinstance(value, list) and any(property_key(v) in accepted for v in value)


def build_query(
    time: Any = None,
    bbox: Any = None,
    geocode: Any = None,
    recursive: bool = True,
    max_cloud: Any = None,
    min_pixel_coverage: Any = None,
    dataset: Any = None,
    *,
    max_snow: Any = None,
    properties: Mapping[str, Any] | None = None,
    known_datasets: Iterable[str] | None = None,
    schemes: Iterable[str] = (),
) -> Query:
    """Validate predicates into a :class:`Query`; see the module docstring for their meaning.

    Raises
    ------
    QueryError
        For a bad predicate; the message names the value and the fix.

    Examples
    --------
    >>> q = build_query(time=("2015-07-11", None), geocode="U21", max_cloud=10)
    >>> q.geocode, q.end_ns is None, q.max_cloud
    ('u21', True, 10.0)
    >>> build_query(max_cloud=150)
    Traceback (most recent call last):
    ...
    workbench.errors.QueryError: max_cloud must be a percentage in [0, 100] ...
    """
    if not isinstance(recursive, (bool, np.bool_)):
        raise QueryError(f"recursive must be True or False, got {recursive!r}")
    start, end = _parse_time(time)
    return Query(
        start_ns=start,
        end_ns=end,
        bbox=_parse_bbox(bbox),
        geocode=_parse_geocode(geocode, schemes),
        recursive=bool(recursive),
        max_cloud=_parse_percent(max_cloud, "max_cloud"),
        min_pixel_coverage=_parse_percent(min_pixel_coverage, "min_pixel_coverage"),
        datasets=_parse_datasets(dataset, known_datasets),
        max_snow=_parse_percent(max_snow, "max_snow"),
        properties=_parse_properties(properties),
    )


def scan(df: pd.DataFrame, q: Query) -> np.ndarray:
    """Brute-force evaluation over every row with pandas: the reference the index must equal.

    Returns the boolean row mask.
    """
    keep = np.ones(len(df), dtype=bool)
    if q.has_time:
        times = df["datetime"]
        known = times.notna().to_numpy()
        ns = np.where(known, times.astype("datetime64[ns, UTC]").astype("int64").to_numpy(), 0)
        keep &= known
        if q.start_ns is not None:
            keep &= ns >= q.start_ns
        if q.end_ns is not None:
            keep &= ns <= q.end_ns
    if q.geocode is not None:
        codes = df["geocode"].str
        keep &= (
            codes.startswith(q.geocode) if q.recursive else df["geocode"] == q.geocode
        ).to_numpy(bool)
    if q.max_cloud is not None:
        keep &= (df["cloud_cover"] <= q.max_cloud).to_numpy(bool)
    if q.min_pixel_coverage is not None:
        keep &= (df["pixel_coverage"] >= q.min_pixel_coverage).to_numpy(bool)
    if q.datasets is not None:
        keep &= df["dataset"].isin(q.datasets).to_numpy(bool)
    if q.max_snow is not None:
        snow = df["snow_cover"] if "snow_cover" in df else pd.Series(np.nan, index=df.index)
        keep &= (snow <= q.max_snow).to_numpy(bool)
    if q.properties is not None:
        texts = df["properties"] if "properties" in df else pd.Series("{}", index=df.index)
        stored = [json.loads(t) if isinstance(t, str) else {} for t in texts]
        for key, accepted in q.properties:
            keep &= np.fromiter(
                (property_matches(p, key, accepted) for p in stored), bool, len(stored)
            )
    if q.bbox is not None:
        west, south, east, north = q.bbox
        box = np.asarray(df["bbox"].tolist(), dtype=np.float64).reshape(len(df), 4)
        lat_ok = (box[:, 1] <= north) & (box[:, 3] >= south)
        if west <= east:
            lon_ok = (box[:, 0] <= east) & (box[:, 2] >= west)
        else:  # across the antimeridian: [west, 180] or [-180, east]
            lon_ok = (box[:, 2] >= west) | (box[:, 0] <= east)
        keep &= lat_ok & lon_ok
    return keep
