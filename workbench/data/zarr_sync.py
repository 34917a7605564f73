"""Synchronous box reads of lazily opened Zarr variables: no event loop per chunk.

zarr-python's default codec pipeline runs every chunk through its asyncio event loop:
two thread hand-offs per chunk and over a millisecond of Python per read call, under
the GIL. A chip stream reads tile by tile, so that overhead, not decompression, bounds
its throughput. zarr 3.1.6 has synchronous store reads (``SupportsGetSync``) and codecs
(``SupportsSyncCodec``) for exactly this hot path (zarr-developers/zarr-python#3721,
#3725; its opt-in ``FusedCodecPipeline`` builds on them). :func:`box_reader` uses them
to decode the chunks of a box in the calling thread, which releases the GIL while it
decompresses, so reader threads decode in parallel.

It applies to a variable that xarray opened lazily from a Zarr array:

* Zarr v3 with a regular chunk grid and codecs that decode synchronously (bytes,
  transpose, zstd, blosc, gzip, crc32c; not sharding), or Zarr v2 with numcodecs
  filters and compressor and a fixed-size dtype;
* on a store with synchronous reads (local and memory stores) and CPU buffers;
* seen through xarray's lazy indexing with unit-step slices and its element-wise CF
  decoding (masking, scale and offset), which are applied as xarray applies them.

Anything else gets ``None``, and the caller reads through xarray as before.

Examples
--------
>>> import xarray as xr
>>> from workbench.data.synthetic import era5_like
>>> store = zarr.storage.MemoryStore()
>>> _ = era5_like(time=4, lat=8, lon=8).to_zarr(store, zarr_format=3, consolidated=False)
>>> ds = xr.open_zarr(store, chunks=None, consolidated=False)
>>> reader = box_reader(ds["t2m"].variable)
>>> box = reader.read((1, 2, 0), (3, 6, 8))
>>> bool((box == ds["t2m"].values[1:3, 2:6, 0:8]).all()), box.shape
(True, (2, 4, 8))
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr
import zarr

from workbench.errors import DataReadError

__all__ = ["BoxReader", "box_reader"]


class _Chunks:
    """Decode one chunk of a Zarr array, by chunk coordinates, in the calling thread."""

    def __init__(self, array: Any) -> None:
        from zarr.core.buffer import default_buffer_prototype

        self.meta: Any = array.metadata
        self.store: Any = array.store_path.store
        self.prefix = array.store_path.path.rstrip("/")
        self.prototype = default_buffer_prototype()
        self.chunks: tuple[int, ...] = tuple(int(c) for c in array.chunks)
        self.shape: tuple[int, ...] = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(self.meta.dtype.to_native_dtype())
        fill = self.meta.fill_value
        self.fill = np.zeros((), self.dtype) if fill is None else fill

    def get(self, coords: tuple[int, ...]) -> Any:
        """Return the encoded bytes of a chunk, or None where it was never written."""
        key = self.meta.encode_chunk_key(coords)
        if self.prefix:
            key = f"{self.prefix}/{key}"
        return self.store.get_sync(key, prototype=self.prototype)

    def decode(self, encoded: Any) -> np.ndarray[Any, Any]:
        raise NotImplementedError


class _ChunksV3(_Chunks):
    """Zarr v3: the array's own codec chain, run through its ``_decode_sync`` methods."""

    def __init__(self, array: Any, pipeline: Any) -> None:
        from zarr.core.array_spec import ArraySpec

        super().__init__(array)
        spec = ArraySpec(
            shape=self.chunks,
            dtype=self.meta.dtype,
            fill_value=self.meta.fill_value,
            config=array.config,
            prototype=self.prototype,
        )
        self.steps: list[tuple[Any, Any]] = []  # (codec, spec it decodes to), in encode order
        for codec in pipeline:
            self.steps.append((codec, spec))
            spec = codec.resolve_metadata(spec)

    def decode(self, encoded: Any) -> np.ndarray[Any, Any]:
        data = encoded
        for codec, spec in reversed(self.steps):
            data = codec._decode_sync(data, spec)
        return np.asarray(data.as_numpy_array())


class _ChunksV2(_Chunks):
    """Zarr v2: numcodecs compressor, then filters in reverse, then dtype and order."""

    def decode(self, encoded: Any) -> np.ndarray[Any, Any]:
        from numcodecs.compat import ensure_ndarray_like

        data = encoded.as_array_like()
        if self.meta.compressor is not None:
            data = self.meta.compressor.decode(data)
        for codec in reversed(self.meta.filters or ()):
            data = codec.decode(data)
        flat = ensure_ndarray_like(data).view(self.dtype).reshape(-1, order="A")
        return np.asarray(flat.reshape(self.chunks, order=self.meta.order))


def _is_regular_grid(meta: Any) -> bool:
    """Whether a Zarr v3 array has a regular chunk grid, read from its spec-level JSON.

    The grid's Python class moved between releases (``RegularChunkGrid`` in zarr 3.1,
    ``RegularChunkGridMetadata`` from 3.2); its JSON form is the format's own and stable.
    """
    to_dict = getattr(meta.chunk_grid, "to_dict", None)
    grid = to_dict() if callable(to_dict) else None
    return isinstance(grid, dict) and grid.get("name") == "regular"


def _decodes_sync(codec: Any, protocol: type) -> bool:
    """Whether ``codec`` decodes without an event loop (zarr's ``_sync_capable`` opt-out too)."""
    return isinstance(codec, protocol) and bool(getattr(codec, "_sync_capable", True))


def _chunks_of(array: Any) -> _Chunks | None:
    """Return a synchronous chunk decoder for ``array``, or None when it has no sync path."""
    from zarr.abc.codec import SupportsSyncCodec
    from zarr.abc.store import SupportsGetSync
    from zarr.core.buffer import cpu, default_buffer_prototype

    if not isinstance(array, zarr.Array):
        return None
    if default_buffer_prototype().nd_buffer is not cpu.NDBuffer:
        return None  # GPU buffers (zarr.config.enable_gpu): zarr's own route
    if not isinstance(array.store_path.store, SupportsGetSync):
        return None  # remote and custom stores: zarr's own route
    dtype = np.dtype(array.dtype)
    if dtype.hasobject or dtype.itemsize == 0:
        return None
    meta = array.metadata
    if meta.zarr_format == 2:
        return _ChunksV2(array)
    if not _is_regular_grid(meta) or array.shards is not None:
        return None
    pipeline = getattr(array.async_array, "codec_pipeline", None)
    codecs = list(pipeline) if pipeline is not None else []
    if not codecs or not all(_decodes_sync(c, SupportsSyncCodec) for c in codecs):
        return None
    return _ChunksV3(array, codecs)


_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked child makes its own
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Return the threads that decode the chunks of one box in parallel (one per CPU)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            pool = ThreadPoolExecutor(
                max_workers=workers or os.cpu_count() or 1, thread_name_prefix="wb-zarr-decode"
            )
            _POOL = (os.getpid(), pool)
        return _POOL[1]


class BoxReader:
    """Read boxes of one lazily opened Zarr variable without zarr's event loop.

    A box of one chunk is decoded in the calling thread; the chunks of a larger box are
    decoded in parallel by a small shared pool (one thread per CPU).

    Built by :func:`box_reader`; :meth:`read` gives what
    ``variable[box].values`` gives, value for value and dtype for dtype.
    """

    def __init__(
        self,
        chunks: _Chunks,
        offset: Sequence[int],
        funcs: Sequence[Callable[[Any], Any]],
        name: Any = None,
    ) -> None:
        self.name = name if name is not None else (chunks.prefix.rsplit("/", 1)[-1] or "?")
        self._chunks = chunks
        self._offset = tuple(int(o) for o in offset)
        self._funcs = list(funcs)

    def read(self, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray[Any, Any]:
        """Return the box ``[lo, hi)`` of the variable (its own dims), decoded as xarray would."""
        ch = self._chunks
        lo = tuple(int(a) + o for a, o in zip(lo, self._offset, strict=True))
        hi = tuple(max(int(b) + o, a) for a, b, o in zip(lo, hi, self._offset, strict=True))
        out = np.empty(tuple(b - a for a, b in zip(lo, hi, strict=True)), ch.dtype)
        if out.size == 0:
            return self._decode_cf(out)
        ranges = [
            range(a // c, (b - 1) // c + 1) for a, b, c in zip(lo, hi, ch.chunks, strict=True)
        ]
        coords_list = list(itertools.product(*ranges))
        if len(coords_list) == 1:
            self._fill(out, lo, hi, coords_list[0])
        else:  # the chunks of a box decode in parallel (codecs release the GIL), as zarr's do
            list(_pool().map(lambda c: self._fill(out, lo, hi, c), coords_list))
        return self._decode_cf(out)

    def _fill(
        self,
        out: np.ndarray[Any, Any],
        lo: Sequence[int],
        hi: Sequence[int],
        coords: tuple[int, ...],
    ) -> None:
        """Decode chunk ``coords`` into its part of ``out`` (the box ``[lo, hi)``)."""
        ch = self._chunks
        start = [i * c for i, c in zip(coords, ch.chunks, strict=True)]
        a = [max(x, s) for x, s in zip(lo, start, strict=True)]
        b = [min(x, s + c) for x, s, c in zip(hi, start, ch.chunks, strict=True)]
        dst = tuple(slice(p - x, q - x) for p, q, x in zip(a, b, lo, strict=True))
        try:
            encoded = ch.get(coords)
            if encoded is None:
                out[dst] = ch.fill
                return
            src = tuple(slice(p - s, q - s) for p, q, s in zip(a, b, start, strict=True))
            out[dst] = ch.decode(encoded)[src]
        except Exception as exc:  # codecs raise RuntimeError, ValueError... of their own
            key = ch.meta.encode_chunk_key(coords)
            raise DataReadError(
                f"cannot decode variable {self.name!r}, chunk {'.'.join(map(str, coords))} "
                f"(key {key!r} in {ch.store}): {type(exc).__name__}: {exc}. The chunk is "
                "damaged or truncated: re-copy the store (or rewrite that variable)"
            ) from exc

    def _decode_cf(self, data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        for func in self._funcs:
            data = func(data)
        return np.asarray(data)


def box_reader(variable: xr.Variable, name: Any = None) -> BoxReader | None:
    """Return a :class:`BoxReader` for a lazily opened Zarr variable, or None (no sync path).

    Parameters
    ----------
    variable : xarray.Variable
        A variable of a Dataset opened with ``xr.open_zarr(..., chunks=None)`` (or
        :func:`workbench.open_datacube`), possibly sliced lazily.
    name : hashable, optional
        The variable's name, for error messages (default: the Zarr array's name).

    Returns
    -------
    BoxReader or None
        None for in-memory, dask or non-Zarr data, for lazy indexing other than
        unit-step slices, for wrappers it does not know, and for arrays or stores
        without a synchronous path (see the module notes).
    """
    from xarray.backends.zarr import ZarrArrayWrapper
    from xarray.core import indexing

    if variable.chunks is not None or variable._in_memory:
        return None
    data: Any = variable._data
    offset = [0] * variable.ndim
    funcs: list[Callable[[Any], Any]] = []  # CF decoding, outermost first
    while True:
        if isinstance(data, indexing.MemoryCachedArray | indexing.CopyOnWriteArray):
            data = data.array
        elif type(data).__name__ == "_ElementwiseFunctionArray" and callable(
            getattr(data, "func", None)
        ):
            funcs.append(data.func)
            data = data.array
        elif type(data) is indexing.LazilyIndexedArray:
            key = data.key.tuple
            if len(key) != len(offset) or not all(
                isinstance(k, slice) and k.step in (None, 1) for k in key
            ):
                return None  # dropped dims or strides: xarray's own route
            offset = [o + (k.start or 0) for o, k in zip(offset, key, strict=True)]
            data = data.array
        elif isinstance(data, ZarrArrayWrapper):
            array = data.get_array()  # type: ignore[no-untyped-call]
            break
        else:
            return None
    if len(array.shape) != variable.ndim:
        return None
    chunks = _chunks_of(array)
    if chunks is None:
        return None
    if any(o + n > s for o, n, s in zip(offset, variable.shape, chunks.shape, strict=True)):
        return None
    return BoxReader(chunks, offset, funcs[::-1], name)
