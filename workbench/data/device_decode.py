"""Chunk reads that decode each codec where a :class:`~workbench.data.decode_plan.DecodePlan` says.

:class:`ChunkDecoder` reads the encoded chunks of a box of one Zarr array from its
store (host bytes, read in parallel threads), then runs the plan's steps over the whole
batch of chunks: a compressor on the device is one batched nvCOMP call
(:func:`workbench.data.nvcomp_decode.nvcomp_decoders`), a compressor on the host is the
codec's own decoder (in parallel threads), the byte view and ``transpose`` are array
operations in the device namespace. Data crosses between host and device only where
two neighbouring steps run on different sides, in one copy per batch.

The device is whatever ``to_device`` and ``xp`` say: CuPy on the GPU route, NumPy in
the test suite, where the same code runs with the host codecs as the "device" decoders.

Examples
--------
>>> import zarr
>>> from workbench.data.decode_plan import codec_configs, plan_decode
>>> a = zarr.create_array(zarr.storage.MemoryStore(), shape=(6, 5), chunks=(4, 4), dtype="f4")
>>> a[:] = np.arange(30, dtype="f4").reshape(6, 5)
>>> fmt, chain = codec_configs(a)
>>> reader = ChunkDecoder(a, plan_decode(chain, gpu_codecs=(), zarr_format=fmt))
>>> reader.read((slice(1, 5), 3)).tolist()
[8.0, 13.0, 18.0, 23.0]
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import numpy as np

from workbench.data.decode_plan import DecodePlan
from workbench.errors import DataReadError

__all__ = ["BatchDecoder", "ChunkDecoder", "probe_plan", "zarr_array_of"]

#: Decodes a batch of compressed 1-D uint8 device arrays; ``nbytes`` is each output's size
#: when known (then outputs are written into one preallocated buffer).
BatchDecoder = Callable[[list[Any], "int | None"], list[Any]]

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``fn`` over ``items`` in a shared thread pool (I/O and codecs release the GIL)."""
    global _POOL
    if len(items) <= 1:
        return [fn(x) for x in items]
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="wb-decode")
    return list(_POOL.map(fn, items))


def _round_up(n: int, align: int) -> int:
    return -(-int(n) // align) * align


def zarr_array_of(variable: Any) -> Any:
    """Return the ``zarr.Array`` behind a lazily opened, unindexed variable, or None.

    CF decoding wrappers (masking, scaling) are looked through: the array is the stored one.

    Examples
    --------
    >>> import xarray as xr, zarr
    >>> store = zarr.storage.MemoryStore()
    >>> _ = xr.Dataset({"v": ("x", np.arange(3.0))}).to_zarr(store, consolidated=False)
    >>> zarr_array_of(xr.open_zarr(store, chunks=None, consolidated=False).v.variable).shape
    (3,)
    """
    from xarray.backends.zarr import ZarrArrayWrapper
    from xarray.core import indexing

    data: Any = getattr(variable, "_data", None)
    while True:
        wrapper = isinstance(data, indexing.MemoryCachedArray | indexing.CopyOnWriteArray)
        if wrapper or type(data).__name__ == "_ElementwiseFunctionArray":  # caches, CF decoding
            data = data.array
        elif type(data) is indexing.LazilyIndexedArray:
            if any(k != slice(None) for k in data.key.tuple):
                return None
            data = data.array
        elif isinstance(data, ZarrArrayWrapper):
            return data.get_array()  # type: ignore[no-untyped-call]
        else:
            return None


def _device_step(decode: BatchDecoder, nbytes: int | None, items: list[Any]) -> list[Any]:
    return decode(items, nbytes)


def _transpose(items: list[Any], axes: tuple[int, ...]) -> list[Any]:
    return [x.transpose(axes) for x in items]


def _host_bytes_step(codec: Any, spec: Any) -> Callable[[np.ndarray[Any, Any]], Any]:
    """Return the host decoder of one compressor: zarr's codec (v3) or numcodecs' (v2)."""
    if hasattr(codec, "get_config"):  # numcodecs (a Zarr v2 compressor)
        return lambda data: np.frombuffer(memoryview(codec.decode(data)).cast("B"), np.uint8)
    from zarr.core.buffer import cpu

    if hasattr(codec, "_decode_sync"):
        return lambda data: codec._decode_sync(
            cpu.Buffer.from_array_like(data), spec
        ).as_numpy_array()
    from zarr.core.sync import sync

    return lambda data: sync(
        codec._decode_single(cpu.Buffer.from_array_like(data), spec)
    ).as_numpy_array()


class ChunkDecoder:
    """Boxes of one Zarr array, decoded along a :class:`DecodePlan` (``reader="chunks"``).

    Parameters
    ----------
    array : zarr.Array
        The array (regular chunk grid, not sharded: what the plan says ``"chunks"`` for).
    plan : DecodePlan
        Where each codec decodes.
    decoders : mapping, optional
        Batch decoders of the compressors the plan puts on the device.
    xp, to_device, to_host
        The device's array namespace and the moves between host and device (NumPy and
        ``np.asarray`` by default: everything on the host).
    """

    def __init__(
        self,
        array: Any,
        plan: DecodePlan,
        decoders: Mapping[str, BatchDecoder] | None = None,
        *,
        xp: ModuleType = np,
        to_device: Callable[[Any], Any] = np.asarray,
        to_host: Callable[[Any], Any] = np.asarray,
    ) -> None:
        if plan.reader != "chunks":
            raise ValueError(f"ChunkDecoder needs a 'chunks' plan, got {plan.route!r}")
        from zarr.core.buffer import default_buffer_prototype

        self.array, self.plan, self.xp = array, plan, xp
        self.to_device, self.to_host = to_device, to_host
        self.decoders = dict(decoders or {})
        meta = array.metadata
        self.shape = tuple(int(n) for n in array.shape)
        self.chunks = tuple(int(c) for c in array.chunks)
        self.dtype = np.dtype(meta.dtype.to_native_dtype())
        fill = meta.fill_value
        self.fill = np.zeros((), self.dtype) if fill is None else fill
        self.order = getattr(meta, "order", "C") if meta.zarr_format == 2 else "C"
        self._store = array.store_path.store
        self._prefix = array.store_path.path.rstrip("/")
        self._prototype = default_buffer_prototype()
        self._steps = self._build_steps(meta)

    # -- the plan as batch functions ---------------------------------------------------------
    def _codec_objects(self, meta: Any) -> list[tuple[Any, Any]]:
        """``(codec, the spec it decodes to)`` in encode order, one per step of the plan."""
        if meta.zarr_format == 2:
            return [(None, None)] + ([(meta.compressor, None)] if meta.compressor else [])
        from zarr.core.array_spec import ArraySpec

        spec = ArraySpec(
            shape=self.chunks,
            dtype=meta.dtype,
            fill_value=meta.fill_value,
            config=self.array.config,
            prototype=self._prototype,
        )
        out = []
        for codec in meta.codecs:
            out.append((codec, spec))
            spec = codec.resolve_metadata(spec)
        return out

    def _build_steps(self, meta: Any) -> list[tuple[str, Callable[[list[Any]], list[Any]]]]:
        """Return the plan's steps as batch functions, each with the side it runs on."""
        steps = self.plan.steps
        encoded_shape = list(self.chunks)
        for step in reversed(steps):  # encode order: the chunk's shape after each transpose
            if step.name == "transpose":
                encoded_shape = [encoded_shape[i] for i in step.config["order"]]
        view_bytes = int(np.prod(encoded_shape)) * self.dtype.itemsize
        funcs: list[tuple[str, Callable[[list[Any]], list[Any]]]] = []
        objects = self._codec_objects(meta)[::-1]
        for i, (step, (codec, spec)) in enumerate(zip(steps, objects, strict=True)):
            if step.name == "transpose":
                axes = tuple(int(a) for a in np.argsort(step.config["order"]))
                funcs.append((step.where, functools.partial(_transpose, axes=axes)))
            elif step.name == "bytes":
                funcs.append((step.where, self._view_step(step.config, tuple(encoded_shape))))
            elif step.where == "gpu":
                # the compressor next to the byte view decodes into a preallocated buffer
                nbytes = view_bytes if i + 1 < len(steps) and steps[i + 1].name == "bytes" else None
                funcs.append(
                    ("gpu", functools.partial(_device_step, self.decoders[step.name], nbytes))
                )
            else:
                funcs.append(("cpu", functools.partial(_map, _host_bytes_step(codec, spec))))
        return funcs

    def _view_step(
        self, config: Mapping[str, Any], shape: tuple[int, ...]
    ) -> Callable[[list[Any]], list[Any]]:
        endian = config.get("endian")
        stored = (
            self.dtype.newbyteorder("<" if endian == "little" else ">") if endian else self.dtype
        )
        nbytes = int(np.prod(shape)) * self.dtype.itemsize

        def view(items: list[Any]) -> list[Any]:
            out = []
            for raw in items:
                if raw.size != nbytes:
                    raise DataReadError(
                        f"a decoded chunk of {self.array.path!r} has {raw.size} bytes, expected "
                        f"{nbytes} ({shape} x {self.dtype}); route {self.plan.route}"
                    )
                arr = raw.view(stored).reshape(shape, order=self.order)
                out.append(arr if stored == self.dtype else arr.astype(self.dtype))
            return out

        return view

    def _move(self, items: list[Any], to: str) -> list[Any]:
        if to == "cpu":
            return [self.to_host(x) for x in items]
        if all(isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype == np.uint8 for x in items):
            # one copy for the batch, each chunk at a 16-byte address (what nvCOMP asks for)
            starts = np.cumsum([0] + [_round_up(x.size, 16) for x in items]).tolist()
            flat = np.empty(starts[-1], np.uint8)
            for start, x in zip(starts, items, strict=False):
                flat[start : start + x.size] = x
            dev = self.to_device(flat)
            return [dev[a : a + x.size] for a, x in zip(starts, items, strict=False)]
        return [self.to_device(x) for x in items]

    def decode(self, encoded: list[np.ndarray[Any, Any]]) -> list[Any]:
        """Decode a batch of encoded chunks (host uint8 arrays) into device chunk arrays."""
        items, side = list(encoded), "cpu"
        for where, func in self._steps:
            if where != side:
                items, side = self._move(items, where), where
            items = func(items)
        return self._move(items, "gpu") if side == "cpu" else items

    # -- reads ------------------------------------------------------------------------------
    def encoded(self, coords: tuple[int, ...]) -> np.ndarray[Any, Any] | None:
        """Return the encoded bytes of one chunk (host uint8), or None where none was written."""
        key = self.array.metadata.encode_chunk_key(coords)
        key = f"{self._prefix}/{key}" if self._prefix else key
        if hasattr(self._store, "get_sync"):
            buf = self._store.get_sync(key, prototype=self._prototype)
        else:
            from zarr.core.sync import sync

            buf = sync(self._store.get(key, prototype=self._prototype))
        return None if buf is None else np.asarray(buf.as_numpy_array()).view(np.uint8).ravel()

    def read_box(self, lo: Sequence[int], hi: Sequence[int]) -> Any:
        """Return the box ``[lo, hi)`` in the device namespace, raw values (no CF decoding)."""
        xp = self.xp
        out = xp.empty(tuple(b - a for a, b in zip(lo, hi, strict=True)), dtype=self.dtype)
        if out.size == 0:
            return out
        ranges = [
            range(a // c, (b - 1) // c + 1) for a, b, c in zip(lo, hi, self.chunks, strict=True)
        ]
        coords = list(itertools.product(*ranges))
        encoded = _map(self.encoded, coords)
        present = [i for i, e in enumerate(encoded) if e is not None]
        decoded = dict(zip(present, self.decode([encoded[i] for i in present]), strict=True))
        for i, c in enumerate(coords):
            start = [k * n for k, n in zip(c, self.chunks, strict=True)]
            a = [max(x, s) for x, s in zip(lo, start, strict=True)]
            b = [min(x, s + n) for x, s, n in zip(hi, start, self.chunks, strict=True)]
            dst = tuple(slice(p - x, q - x) for p, q, x in zip(a, b, lo, strict=True))
            if i in decoded:
                src = tuple(slice(p - s, q - s) for p, q, s in zip(a, b, start, strict=True))
                out[dst] = decoded[i][src]
            else:
                out[dst] = self.fill
        return out

    def read(self, key: tuple[Any, ...]) -> Any:
        """Return an outer-indexed selection (ints, slices, integer arrays per dim)."""
        lo: list[int] = []
        hi: list[int] = []
        local: list[Any] = []  # per dim: an int (drops it), a slice or an index array
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, int | np.integer):
                i = int(k) + n if int(k) < 0 else int(k)
                lo.append(i)
                hi.append(i + 1)
                local.append(0)
                continue
            idx = np.arange(n)[k] if isinstance(k, slice) else np.asarray(k, np.int64) % max(n, 1)
            a, b = (int(idx.min()), int(idx.max()) + 1) if idx.size else (0, 0)
            lo.append(a)
            hi.append(b)
            if idx.size == 0 or (isinstance(k, slice) and bool((np.diff(idx) == 1).all())):
                local.append(slice(0, b - a))
            else:
                local.append(self.xp.asarray(idx - a))
        box = self.read_box(lo, hi)
        for axis in reversed(range(len(local))):
            box = box[(slice(None),) * axis + (local[axis],)]
        return box


def probe_plan(reader: ChunkDecoder, host: ChunkDecoder) -> DecodePlan:
    """Check the device decoders of ``reader`` on a real chunk against the host codecs.

    Decodes the first written chunk (of the first few) both ways; a decoder that raises
    or gives other bytes moves its compressor to the host, with the reason. Returns the
    plan to use (``reader.plan`` when the device decoders agree, or nothing was written).
    """
    plan = reader.plan
    names = plan.gpu_compressors
    if not names:
        return plan
    grid = [range(min(2, -(-s // c))) for s, c in zip(reader.shape, reader.chunks, strict=True)]
    for coords in itertools.islice(itertools.product(*grid), 4):
        encoded = reader.encoded(coords)
        if encoded is None:
            continue
        try:
            got = reader.to_host(reader.decode([encoded])[0])
        except Exception as exc:  # nvCOMP raises its own types on streams it cannot decode
            why = f"the device decoder failed on chunk {coords}: {type(exc).__name__}: {exc}"
        else:
            want = host.to_host(host.decode([encoded])[0])
            if np.asarray(got).tobytes() == np.asarray(want).tobytes():
                return plan
            why = f"the device decoder's output differs from the host codec's on chunk {coords}"
        for name in names:
            plan = plan.on_host(name, f"{name}: {why}")
        return plan
    return plan
