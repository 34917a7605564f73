"""In-memory indexes over catalog records, standing in for the paper's B+-trees and radix trie.

* :class:`SortedIndex`: one sorted copy of a numeric column plus the row order (a static
  B+-tree: a range predicate is two binary searches, ``numpy.searchsorted``), and every row's
  rank in that order, so that testing a candidate row against a range is one integer compare.
* Geocodes use the same structure over strings: all codes starting with a prefix form one
  contiguous run of the sorted codes (what a radix trie's subtree enumerates), found by two
  binary searches (the prefix, and the prefix with its last character incremented).
* Datasets are a small categorical: row positions per name.
* Bounding boxes: a sorted index over ``xmin`` (and ``ymin``) widened by the largest record
  width (height): every box that intersects ``[west, east]`` has ``xmin`` in
  ``[west - max_width, east]``.
* Properties: an inverted index (property name -> value -> rows, list values under each of
  their items), built from the JSON column the first time a query asks.

:meth:`CatalogIndex.search` estimates each predicate's number of candidates from its range
bounds (O(log n)), enumerates the most selective one, and filters those candidates against the
others with integer compares; when even the most selective predicate keeps more than
:data:`SCAN_FRACTION` of the records, it compares whole rank columns instead (as a database
planner prefers a sequential scan to an index scan there). Results are row positions in
ascending order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from workbench.catalog.query import Query, property_key

__all__ = ["SortedIndex", "CatalogIndex", "SCAN_FRACTION"]

#: When the most selective predicate still keeps more than this share of the records, the
#: index evaluates every predicate over whole columns (rank compares) instead of gathering rows.
SCAN_FRACTION = 0.05


@dataclass(frozen=True, eq=False)
class SortedIndex:
    """Sorted values of one column (``values``), their row order, and each row's rank.

    Rows whose value is missing (NaN, NaT) are left out and have rank ``-1``.

    Examples
    --------
    >>> idx = SortedIndex.build(np.array([3.0, np.nan, 1.0, 2.0]))
    >>> lo, hi = idx.range(1.5, None)
    >>> sorted(idx.order[lo:hi].tolist())
    [0, 3]
    """

    values: np.ndarray
    order: np.ndarray
    rank: np.ndarray

    @classmethod
    def build(cls, column: np.ndarray, valid: np.ndarray | None = None) -> SortedIndex:
        """Index ``column``; ``valid`` (default: not NaN) marks the rows to include."""
        n = len(column)
        if valid is None:
            valid = (
                ~np.isnan(column) if np.issubdtype(column.dtype, np.floating) else np.ones(n, bool)
            )
        all_valid = bool(valid.all())
        rows = np.arange(n) if all_valid else np.flatnonzero(valid)
        sub = column if all_valid else column[rows]
        order = rows if _is_sorted(sub) else rows[_argsort(sub)]  # catalogs come sorted by geocode
        rank = np.full(n, -1, dtype=np.int64)
        rank[order] = np.arange(len(order))
        return cls(values=column[order], order=order, rank=rank)

    def range(self, lo: Any, hi: Any, *, hi_open: bool = False) -> tuple[int, int]:
        """Positions ``[i0, i1)`` in sorted order of the values in ``[lo, hi]``.

        With ``hi_open`` the range is ``[lo, hi)``.
        """
        values: Any = self.values  # numbers or strings: numpy's stubs cannot say
        i0 = 0 if lo is None else int(np.searchsorted(values, lo, side="left"))
        if hi is None:
            i1 = len(self.values)
        else:
            side: Literal["left", "right"] = "left" if hi_open else "right"
            i1 = int(np.searchsorted(values, hi, side=side))
        return i0, max(i0, i1)

    def member(self, rows: np.ndarray, i0: int, i1: int) -> np.ndarray:
        """Which of ``rows`` lie in the sorted range ``[i0, i1)``."""
        r = self.rank[rows]
        return np.asarray((r >= i0) & (r < i1), dtype=bool)


def _is_sorted(values: np.ndarray) -> bool:
    if len(values) < 2:
        return True
    if values.dtype == object:
        return bool(pd.Series(values).is_monotonic_increasing)
    return bool(np.all(values[1:] >= values[:-1]))


def _argsort(values: np.ndarray) -> np.ndarray:
    """Ascending order (ties in any order: ranges over ties stay contiguous)."""
    if values.dtype == object:  # strings: Arrow's sort, no Python comparisons
        import pyarrow as pa
        import pyarrow.compute as pc

        return np.asarray(pc.sort_indices(pa.array(values, pa.string())))
    return np.argsort(values)


def _next_prefix(prefix: str) -> str:
    """Return the smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class CatalogIndex:
    """Indexes over the query columns of a catalog frame; see the module docstring.

    Examples
    --------
    >>> import pandas as pd
    >>> from workbench.catalog.query import build_query
    >>> df = pd.DataFrame({
    ...     "geocode": ["u21q", "u21r", "u3"], "dataset": ["a", "a", "b"],
    ...     "datetime": pd.to_datetime(["2020-01-01", "2020-02-01", None], utc=True),
    ...     "cloud_cover": [5.0, 50.0, 1.0], "pixel_coverage": [100.0, 80.0, 10.0],
    ...     "bbox": [(14.0, 45.0, 14.1, 45.1), (14.1, 45.0, 14.2, 45.1), (20.0, 50.0, 21.0, 51.0)]})
    >>> CatalogIndex.from_frame(df).search(build_query(geocode="u21", max_cloud=10)).tolist()
    [0]
    """

    #: Share of records above which :meth:`search` scans whole columns (see the module doc).
    scan_fraction: float = SCAN_FRACTION

    def __init__(
        self,
        geocode: np.ndarray,
        time_ns: np.ndarray,
        time_known: np.ndarray,
        cloud: np.ndarray,
        coverage: np.ndarray,
        dataset: np.ndarray,
        bbox: np.ndarray,
        snow: np.ndarray | None = None,
        properties: np.ndarray | None = None,
    ) -> None:
        self.n = len(geocode)
        self.snow = SortedIndex.build(
            np.full(self.n, np.nan) if snow is None else np.asarray(snow, dtype=np.float64)
        )
        self._property_texts = properties
        self._properties: dict[str, dict[str, np.ndarray]] | None = None
        codes = np.asarray(geocode)
        self.geocode = SortedIndex.build(codes if codes.dtype == object else codes.astype(str))
        self.time = SortedIndex.build(
            np.asarray(time_ns, dtype=np.int64), np.asarray(time_known, bool)
        )
        self.cloud = SortedIndex.build(np.asarray(cloud, dtype=np.float64))
        self.coverage = SortedIndex.build(np.asarray(coverage, dtype=np.float64))
        ds_codes, names = pd.factorize(pd.Series(np.asarray(dataset), dtype=object), sort=True)
        self.dataset_names = [str(n) for n in names]
        self.dataset_code = ds_codes.astype(np.int32)
        self.dataset_rows = {
            name: np.flatnonzero(ds_codes == i) for i, name in enumerate(self.dataset_names)
        }
        box = np.asarray(bbox, dtype=np.float64).reshape(self.n, 4)
        self.box = box
        self.xmin = SortedIndex.build(box[:, 0])
        self.ymin = SortedIndex.build(box[:, 1])
        self.max_width = float(np.max(box[:, 2] - box[:, 0])) if self.n else 0.0
        self.max_height = float(np.max(box[:, 3] - box[:, 1])) if self.n else 0.0

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> CatalogIndex:
        """Build from a catalog frame (columns geocode, datetime, cloud_cover, ...)."""
        times = df["datetime"]
        known = times.notna().to_numpy()
        ns = np.zeros(len(df), dtype=np.int64)
        if known.any():
            ns[known] = times[known].astype("datetime64[ns, UTC]").astype("int64").to_numpy()
        box = np.asarray(df["bbox"].tolist(), dtype=np.float64).reshape(len(df), 4)
        snow = df["snow_cover"].to_numpy(np.float64) if "snow_cover" in df else None
        props = df["properties"].to_numpy() if "properties" in df else None
        return cls(
            df["geocode"].to_numpy(), ns, known, df["cloud_cover"].to_numpy(np.float64),
            df["pixel_coverage"].to_numpy(np.float64), df["dataset"].to_numpy(), box,
            snow=snow, properties=props,
        )  # fmt: skip

    @property
    def properties(self) -> dict[str, dict[str, np.ndarray]]:
        """Inverted index ``name -> canonical JSON value -> rows`` (built on first use)."""
        if self._properties is None:
            found: dict[str, dict[str, list[int]]] = {}
            texts: Any = self._property_texts if self._property_texts is not None else []
            for row, text in enumerate(texts):
                doc = json.loads(text) if isinstance(text, str) and text else {}
                for key, value in doc.items():
                    slot = found.setdefault(key, {})
                    items = value if isinstance(value, list) else []
                    for v in {property_key(value), *(property_key(i) for i in items)}:
                        slot.setdefault(v, []).append(row)
            self._properties = {
                k: {v: np.asarray(sorted(set(r)), np.int64) for v, r in vals.items()}
                for k, vals in found.items()
            }
        return self._properties

    # -- planning ----------------------------------------------------------------------------
    def _predicates(
        self, q: Query
    ) -> list[tuple[int, Callable[[], np.ndarray], Callable[[np.ndarray], np.ndarray]]]:
        """``(estimated candidates, enumerate, filter)`` for each predicate of ``q``."""
        preds: list[tuple[int, Callable[[], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = []

        def ranged(idx: SortedIndex, i0: int, i1: int) -> None:
            preds.append((i1 - i0, lambda: idx.order[i0:i1], lambda rows: idx.member(rows, i0, i1)))

        if q.has_time:
            ranged(self.time, *self.time.range(q.start_ns, q.end_ns))
        if q.max_cloud is not None:
            ranged(self.cloud, *self.cloud.range(None, q.max_cloud))
        if q.max_snow is not None:
            ranged(self.snow, *self.snow.range(None, q.max_snow))
        for key, accepted in q.properties or ():
            preds.append(self._property_predicate(key, accepted))
        if q.min_pixel_coverage is not None:
            ranged(self.coverage, *self.coverage.range(q.min_pixel_coverage, None))
        if q.geocode is not None:
            g = q.geocode
            if q.recursive:
                ranged(self.geocode, *self.geocode.range(g, _next_prefix(g), hi_open=True))
            else:
                ranged(self.geocode, *self.geocode.range(g, g))
        if q.datasets is not None:
            wanted = [self.dataset_names.index(d) for d in q.datasets if d in self.dataset_names]
            rows = [self.dataset_rows[self.dataset_names[i]] for i in wanted]
            count = sum(len(r) for r in rows)
            codes = np.asarray(wanted, dtype=np.int32)
            preds.append((
                count,
                lambda: np.concatenate(rows) if rows else np.empty(0, np.int64),
                lambda r: np.isin(self.dataset_code[r], codes),
            ))  # fmt: skip
        if q.bbox is not None:
            preds.append(self._bbox_predicate(q.bbox))
        return preds

    def _property_predicate(
        self, key: str, accepted: frozenset[str]
    ) -> tuple[int, Callable[[], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
        values = self.properties.get(key, {})
        parts = [values[v] for v in accepted if v in values]
        hits: np.ndarray = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        member = np.zeros(self.n, dtype=bool)
        member[hits] = True

        def enumerate_rows() -> np.ndarray:
            return hits

        def keep(rows: np.ndarray) -> np.ndarray:
            return np.asarray(member[rows], dtype=bool)

        return len(hits), enumerate_rows, keep

    def _bbox_predicate(
        self, bbox: tuple[float, float, float, float]
    ) -> tuple[int, Callable[[], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
        west, south, east, north = bbox
        box = self.box

        def test(rows: np.ndarray) -> np.ndarray:
            b = box[rows]
            lat = (b[:, 1] <= north) & (b[:, 3] >= south)
            if west <= east:
                lon = (b[:, 0] <= east) & (b[:, 2] >= west)
            else:  # across the antimeridian
                lon = (b[:, 2] >= west) | (b[:, 0] <= east)
            return np.asarray(lat & lon, dtype=bool)

        yi0, yi1 = self.ymin.range(south - self.max_height, north)
        best = (yi1 - yi0, lambda: self.ymin.order[yi0:yi1])
        if west <= east:
            xi0, xi1 = self.xmin.range(west - self.max_width, east)
            if xi1 - xi0 < best[0]:
                best = (xi1 - xi0, lambda: self.xmin.order[xi0:xi1])
        return best[0], best[1], test

    def search(self, q: Query) -> np.ndarray:
        """Row positions (ascending) of the records matching every predicate of ``q``."""
        preds = self._predicates(q)
        if not preds:
            return np.arange(self.n)
        preds.sort(key=lambda p: p[0])
        count, enumerate_rows, first = preds[0]
        if count == 0:
            return np.empty(0, dtype=np.int64)
        if count > self.n * self.scan_fraction:
            # unselective: one pass over whole columns beats gathering many candidates
            whole = slice(None)
            mask = first(whole)  # type: ignore[arg-type]
            for _, _, keep in preds[1:]:
                mask &= keep(whole)  # type: ignore[arg-type]
            return np.flatnonzero(mask)
        rows = np.asarray(enumerate_rows(), dtype=np.int64)
        rows = rows[first(rows)]  # exact test of the enumerated predicate (bbox widening)
        for _, _, keep in preds[1:]:
            rows = rows[keep(rows)]
            if not len(rows):
                break
        return np.sort(rows)
