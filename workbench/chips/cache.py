"""A thread-safe cache of decoded tiles, bounded in bytes, with loads that run once.

Values are lists of arrays (one per variable). A key is loaded at most once at a time:
a second ``get`` of a key being loaded (by a prefetch thread or another caller) waits
for that load instead of decoding again. Eviction is least-recently-used and only
drops the cache's reference: a caller holding a value keeps it alive. A prefetched
tile is not evicted before its first ``get`` (a decode is never wasted); callers keep
prefetching within the bound (see :class:`~workbench.chips.stream.ChipStream`). Memory the
caller holds for the same stream (staged chips) is :meth:`~TileCache.reserve`-d against the
bound, so tiles make room for it.

Examples
--------
>>> import numpy as np
>>> cache = TileCache(lambda key: [np.zeros(key)], max_bytes=120)
>>> cache.get(4)[0].nbytes, cache.get(4)[0].nbytes, cache.loads, cache.hits
(32, 32, 1, 1)
>>> _ = cache.get(8)  # 64 bytes: 32 + 64 <= 120, both kept
>>> _ = cache.get(6)  # 48 more: the least recently used (4) is evicted
>>> sorted(cache.keys()), cache.nbytes
([6, 8], 112)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["TileCache"]


def _nbytes(value: list[Any]) -> int:
    return int(sum(getattr(a, "nbytes", 0) for a in value))


class TileCache:
    """Decoded tiles keyed by tile index, LRU-evicted above ``max_bytes``.

    Parameters
    ----------
    loader : callable
        ``loader(key) -> list of arrays``; called at most once per key at a time.
    max_bytes : int
        Bytes kept after each insertion. The newest entry is always kept, so one
        tile larger than the bound still works (the bound is then that tile).

    Attributes
    ----------
    loads : int
        Number of times ``loader`` ran (decodes).
    hits : int
        Number of ``get`` calls served from the cache.
    peak_bytes : int
        Highest number of tile bytes held at once.
    peak_total_bytes : int
        Highest number of tile bytes plus reserved bytes at once.
    """

    def __init__(self, loader: Callable[[Hashable], list[Any]], max_bytes: int) -> None:
        self._loader = loader
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._data: OrderedDict[Hashable, tuple[list[Any], int]] = OrderedDict()
        self._inflight: dict[Hashable, Future[list[Any]]] = {}
        self._unused: set[Hashable] = set()  # prefetched, not yet asked for: not evicted
        self._awaited: set[Hashable] = set()  # asked for while loading
        self.nbytes = 0
        self.reserved = 0
        self.loads = 0
        self.hits = 0
        self.peak_bytes = 0
        self.peak_total_bytes = 0
        self.load_counts: dict[Hashable, int] = {}

    def keys(self) -> list[Hashable]:
        """Keys currently held (least recently used first)."""
        with self._lock:
            return list(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data or key in self._inflight

    def _run(self, key: Hashable, future: Future[list[Any]], prefetched: bool = False) -> None:
        try:
            value = self._loader(key)
        except BaseException as exc:  # handed to every waiter, then re-raised by them
            self._fail([key], [future], exc)
            return
        self._store(key, value, future, prefetched)

    def _run_group(
        self,
        keys: list[Hashable],
        futures: list[Future[list[Any]]],
        loader: Callable[[list[Hashable]], list[list[Any]]],
    ) -> None:
        try:
            values = loader(keys)
        except BaseException as exc:
            self._fail(keys, futures, exc)
            return
        for key, value, future in zip(keys, values, futures, strict=True):
            self._store(key, value, future, True)

    def _fail(
        self, keys: list[Hashable], futures: list[Future[list[Any]]], exc: BaseException
    ) -> None:
        with self._lock:
            for key in keys:
                self._inflight.pop(key, None)
                self._awaited.discard(key)
        for future in futures:
            future.set_exception(exc)

    def _store(
        self, key: Hashable, value: list[Any], future: Future[list[Any]], prefetched: bool
    ) -> None:
        size = _nbytes(value)
        with self._lock:
            self._inflight.pop(key, None)
            self._data[key] = (value, size)
            if prefetched and key not in self._awaited:
                self._unused.add(key)
            self._awaited.discard(key)
            self.nbytes += size
            self.loads += 1
            self.load_counts[key] = self.load_counts.get(key, 0) + 1
            self.peak_bytes = max(self.peak_bytes, self.nbytes)
            self._evict(keep=key)
            self.peak_total_bytes = max(self.peak_total_bytes, self.nbytes + self.reserved)
        future.set_result(value)

    def reserve(self, nbytes: int) -> None:
        """Count ``nbytes`` held elsewhere for this stream against the bound.

        Tiles make room for it (least recently used first; never the most recent one, which
        the reserved memory may be about to be filled from, nor unused prefetches).
        """
        with self._lock:
            self.reserved += int(nbytes)
            self._evict(keep=next(reversed(self._data), None))
            self.peak_total_bytes = max(self.peak_total_bytes, self.nbytes + self.reserved)

    def release(self, nbytes: int) -> None:
        """Return bytes counted by :meth:`reserve` (they were let go)."""
        with self._lock:
            self.reserved = max(0, self.reserved - int(nbytes))

    def _evict(self, keep: Hashable | None) -> None:
        """Drop least recently used entries above the bound (never ``keep``, unused prefetches)."""
        if self.nbytes + self.reserved <= self.max_bytes:
            return
        for old in list(self._data):
            if self.nbytes + self.reserved <= self.max_bytes:
                break
            if old == keep or old in self._unused:
                continue
            _, dropped = self._data.pop(old)
            self.nbytes -= dropped

    def _claim(self, key: Hashable) -> tuple[list[Any] | None, Future[list[Any]], bool]:
        """Return ``(value, future, owner)`` under the lock."""
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                self._unused.discard(key)
                self.hits += 1
                return hit[0], Future(), False
            future = self._inflight.get(key)
            if future is not None:
                self._awaited.add(key)
                return None, future, False
            future = Future()
            self._inflight[key] = future
            return None, future, True

    def get(self, key: Hashable) -> list[Any]:
        """Return the tile, loading it in this thread unless a load is under way."""
        value, future, owner = self._claim(key)
        if value is not None:
            return value
        if owner:
            self._run(key, future)
        return future.result()

    def prefetch(self, key: Hashable, executor: Executor) -> bool:
        """Start loading ``key`` on ``executor`` unless it is cached or loading.

        Returns whether a load was started.
        """
        with self._lock:
            if key in self._data or key in self._inflight:
                return False
            future: Future[list[Any]] = Future()
            self._inflight[key] = future
        executor.submit(self._run, key, future, True)
        return True

    def prefetch_group(
        self,
        keys: list[Hashable],
        executor: Executor,
        loader: Callable[[list[Hashable]], list[list[Any]]],
    ) -> int:
        """Load several keys with one ``loader(keys)`` call on ``executor`` (one read of a run).

        Keys already cached or loading are skipped; if that breaks the run, the others
        are prefetched one by one. Returns how many loads started.
        """
        with self._lock:
            todo = [k for k in keys if k not in self._data and k not in self._inflight]
            if todo != list(keys):
                group = False
            else:
                group = True
                futures: list[Future[list[Any]]] = [Future() for _ in todo]
                self._inflight.update(zip(todo, futures, strict=True))
        if not group:
            return sum(self.prefetch(k, executor) for k in todo)
        executor.submit(self._run_group, todo, futures, loader)
        return len(todo)

    def load_group(
        self, keys: list[Hashable], loader: Callable[[list[Hashable]], list[list[Any]]]
    ) -> bool:
        """Load several keys with one ``loader(keys)`` call in this thread.

        Does nothing (returns False) unless every key is missing: then single ``get``
        calls load them as usual.
        """
        with self._lock:
            if not keys or any(k in self._data or k in self._inflight for k in keys):
                return False
            futures: list[Future[list[Any]]] = [Future() for _ in keys]
            self._inflight.update(zip(keys, futures, strict=True))
        self._run_group(list(keys), futures, loader)
        for future in futures:
            future.result()  # re-raise a failed read here
        return True

    def stats(self) -> dict[str, int]:
        """Return the counters: loads, hits, bytes held and their peaks, the bound.

        ``peak_bytes`` counts tiles, ``peak_total_bytes`` tiles and reserved bytes.
        """
        with self._lock:
            return {
                "loads": self.loads,
                "hits": self.hits,
                "nbytes": self.nbytes,
                "peak_bytes": self.peak_bytes,
                "peak_total_bytes": self.peak_total_bytes,
                "max_bytes": self.max_bytes,
                "max_loads_per_tile": max(self.load_counts.values(), default=0),
            }
