"""Lazy device reads of the variables of a Zarr store, and the decode route each one takes.

The GPU route (:mod:`workbench.data.kvikio_engine`) opens a store twice on the host
(metadata and index coordinates only, nothing read from the data variables): once
decoded, once raw. :func:`device_reads` replaces each numeric data variable by a lazy
:class:`DeviceArray` that reads the *raw* values and applies the CF mask/scale decoding
with the array's own namespace (``cupy`` on the GPU): xarray's CF decoders call
``np.array(...)`` and would fail on CuPy arrays. A variable whose codecs the chunk
decoder knows reads through a :class:`~workbench.data.device_decode.ChunkDecoder` along
its :class:`~workbench.data.decode_plan.DecodePlan` (checked once per codec chain on a
real chunk: :func:`~workbench.data.device_decode.probe_plan`); any other through zarr's
pipeline inside ``read_context`` (``zarr.config.enable_gpu``). The same code runs on the
CPU with NumPy as the device (the test suite exercises it that way).

Each variable records its route in ``encoding["workbench_decode"]`` and why a codec is
not decoded on the device in ``encoding["workbench_decode_reason"]``;
:func:`decode_routes` collects them, :func:`mark_zarr_routes` records the CPU route's.

Examples
--------
>>> dec = CFDecoding(fill_values=(-1,), scale_factor=2.0, add_offset=None, dtype=np.float32)
>>> dec(np.array([3, -1], dtype=np.int16)).tolist()
[6.0, nan]
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from workbench._array import array_namespace
from workbench.data.decode_plan import DecodePlan, codec_configs, plan_decode, zarr_plan
from workbench.data.device_decode import BatchDecoder, ChunkDecoder, probe_plan, zarr_array_of
from workbench.data.zarr_sync import _is_regular_grid

__all__ = [
    "CFDecoding",
    "DeviceArray",
    "ReadContext",
    "decode_routes",
    "device_reads",
    "mark_zarr_routes",
]

ReadContext = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True)
class CFDecoding:
    """CF mask-and-scale decoding, applied with the array's own namespace (NumPy or CuPy).

    Masking is decided on the raw values, then ``scale_factor`` and ``add_offset`` are
    applied, as xarray's CF decoders do.

    Examples
    --------
    >>> dec = CFDecoding(fill_values=(-1,), scale_factor=0.5, add_offset=None, dtype=np.float32)
    >>> dec(np.array([2, -1], dtype=np.int16)).tolist()
    [1.0, nan]
    """

    fill_values: tuple[Any, ...]
    scale_factor: Any
    add_offset: Any
    dtype: Any

    def __call__(self, raw: Any) -> Any:
        """Decode ``raw`` (NumPy or CuPy) into a new array of ``dtype``."""
        xp = array_namespace(raw)
        out = raw.astype(self.dtype, copy=True)
        if self.fill_values and np.dtype(self.dtype).kind in "fc":
            mask = xp.zeros(raw.shape, dtype=bool)
            for value in self.fill_values:
                if isinstance(value, float | np.floating) and math.isnan(value):
                    if raw.dtype.kind in "fc":
                        mask |= xp.isnan(raw)
                else:
                    mask |= raw == value
            out[mask] = np.nan
        if self.scale_factor is not None:
            out *= xp.asarray(self.scale_factor, dtype=self.dtype)
        if self.add_offset is not None:
            out += xp.asarray(self.add_offset, dtype=self.dtype)
        return out

    @classmethod
    def from_encoding(cls, encoding: dict[str, Any], dtype: Any) -> CFDecoding | None:
        """Build the decoding xarray applied to a variable, from its ``encoding``.

        Returns None when there is nothing to decode.
        """
        fills: list[Any] = []
        for key in ("_FillValue", "missing_value"):
            value = encoding.get(key)
            if value is not None:
                fills.extend(np.atleast_1d(value).tolist())
        scale, offset = encoding.get("scale_factor"), encoding.get("add_offset")
        if not fills and scale is None and offset is None:
            return None
        return cls(tuple(fills), scale, offset, np.dtype(dtype))


class DeviceArray(BackendArray):
    """A lazy array whose reads run in ``read_context`` and land on the device.

    Parameters
    ----------
    source : xarray lazily indexed array
        The raw (undecoded) variable data of the host-side dataset.
    shape, dtype
        Shape and *decoded* dtype.
    read_context : callable returning a context manager
        ``zarr.config.enable_gpu`` for the GPU route (reads return CuPy arrays).
    decoding : CFDecoding, optional
        CF decoding applied after the read, in the result's namespace.
    to_device : callable, optional
        Applied to each read result (``cupy.asarray`` when ``source`` yields host arrays).
    reader : callable, optional
        Reads an outer-indexing key itself (a :meth:`ChunkDecoder.read`); then ``source``
        and ``read_context`` are not used.
    """

    def __init__(
        self,
        source: Any,
        shape: tuple[int, ...],
        dtype: Any,
        read_context: ReadContext,
        decoding: CFDecoding | None = None,
        to_device: Callable[[Any], Any] | None = None,
        reader: Callable[[tuple[Any, ...]], Any] | None = None,
    ) -> None:
        self.reader = reader
        self.source = source
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.read_context = read_context
        self.decoding = decoding
        self.to_device = to_device

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._raw_indexing_method
        )

    def _raw_indexing_method(self, key: tuple[Any, ...]) -> Any:
        if self.reader is not None:
            out = self.reader(key)
        else:
            with self.read_context():
                out = self.source.oindex[indexing.OuterIndexer(key)].get_duck_array()
        if self.to_device is not None:
            out = self.to_device(out)
        if self.decoding is not None:
            out = self.decoding(out)
        return out


def _chunk_route(
    raw: xr.Variable,
    decoders: Mapping[str, BatchDecoder],
    device: tuple[ModuleType, Callable[[Any], Any], Callable[[Any], Any]],
    probed: dict[str, DecodePlan],
) -> tuple[ChunkDecoder | None, DecodePlan | None]:
    """Return the chunk decoder of one raw variable and its plan (probed once per chain)."""
    array = zarr_array_of(raw)
    if array is None:
        return None, None
    fmt, chain = codec_configs(array)
    dtype = np.dtype(array.dtype)
    if dtype.hasobject or dtype.itemsize == 0:
        return None, zarr_plan(chain, f"{dtype} values are decoded by zarr")
    if fmt == 3 and not _is_regular_grid(array.metadata):
        return None, zarr_plan(chain, "an irregular chunk grid is decoded by zarr")
    plan = plan_decode(chain, gpu_codecs=decoders.keys(), zarr_format=fmt)
    if plan.reader != "chunks":
        return None, plan
    xp, to_device, to_host = device
    key = json.dumps([fmt, chain, str(dtype)], sort_keys=True, default=str)
    if plan.gpu_compressors and key not in probed:
        reader = ChunkDecoder(array, plan, decoders, xp=xp, to_device=to_device, to_host=to_host)
        host_plan = plan
        for name in plan.gpu_compressors:
            host_plan = host_plan.on_host(name, "reference")
        probed[key] = probe_plan(reader, ChunkDecoder(array, host_plan))
    plan = probed.get(key, plan)
    reader = ChunkDecoder(array, plan, decoders, xp=xp, to_device=to_device, to_host=to_host)
    return reader, plan


def device_reads(
    decoded: xr.Dataset,
    raw: xr.Dataset,
    *,
    read_context: ReadContext,
    to_device: Callable[[Any], Any],
    decoders: Mapping[str, BatchDecoder] | None = None,
    xp: ModuleType = np,
    to_host: Callable[[Any], Any] = np.asarray,
) -> xr.Dataset:
    """Replace the numeric data variables of ``decoded`` by :class:`DeviceArray` reads.

    Parameters
    ----------
    decoded, raw : xarray.Dataset
        The same store opened lazily with and without ``mask_and_scale``.
    read_context : callable returning a context manager
        Wraps each read through zarr's pipeline (``zarr.config.enable_gpu``;
        ``contextlib.nullcontext`` on the CPU).
    to_device : callable
        Moves a host array to the device (``cupy.asarray``); used for variables whose
        encoding is decoded on the host (``_Unsigned``, ...) and by the chunk decoder.
    decoders : mapping, optional
        Device decoders by compressor name (:func:`~workbench.data.device_decode.nvcomp_decoders`;
        empty: every compressor on the host). None: every variable reads through zarr's
        pipeline in ``read_context`` (``decode="zarr"``).
    xp, to_host : module, callable
        The device's array namespace and the move back to the host (``cupy``,
        ``cupy.asnumpy``); NumPy by default, as the test suite runs it.

    Returns
    -------
    xarray.Dataset
        Lazily indexed (no data read, but one chunk per codec chain that the device
        decodes, to check it), same coordinates and attributes; each numeric variable's
        ``encoding`` has ``workbench_decode`` (its route) and ``workbench_decode_reason``.
    """
    out = decoded.copy()
    probed: dict[str, DecodePlan] = {}
    for name, var in decoded.data_vars.items():
        if var.dtype.kind not in "biufc" or name not in raw:
            continue  # strings, datetimes: stay on the host
        encoding = dict(var.encoding)
        host_decoded = "_Unsigned" in encoding or var.dtype.kind == "b"
        reader: ChunkDecoder | None = None
        plan: DecodePlan | None = None
        if not host_decoded and decoders is not None:
            reader, plan = _chunk_route(
                raw[name].variable, decoders, (xp, to_device, to_host), probed
            )
        if host_decoded:
            array = DeviceArray(
                var.variable._data, var.shape, var.dtype, contextlib.nullcontext, None, to_device
            )
            route, reason = "xarray: decoded on the host", "_Unsigned or boolean values"
        elif reader is not None and plan is not None:
            array = DeviceArray(
                None,
                var.shape,
                var.dtype,
                contextlib.nullcontext,
                CFDecoding.from_encoding(encoding, var.dtype),
                reader=reader.read,
            )
            route, reason = plan.route, plan.reason
        else:
            array = DeviceArray(
                raw[name].variable._data,
                var.shape,
                var.dtype,
                read_context,
                CFDecoding.from_encoding(encoding, var.dtype),
            )
            if plan is None:
                array_ = zarr_array_of(raw[name].variable)
                why = "asked for (decode='zarr')" if decoders is None else "not a plain Zarr array"
                plan = zarr_plan(codec_configs(array_)[1], why) if array_ is not None else None
            route = plan.route if plan is not None else "zarr"
            reason = plan.reason if plan is not None else "not a plain Zarr array"
        encoding["workbench_decode"] = route
        encoding["workbench_decode_reason"] = reason
        out[name] = xr.Variable(var.dims, indexing.LazilyIndexedArray(array), var.attrs, encoding)
    return out


def decode_routes(ds: xr.Dataset) -> dict[str, str]:
    """Each data variable's decode route, as the GPU route recorded it.

    Examples
    --------
    >>> from workbench.data.synthetic import era5_like
    >>> decode_routes(era5_like(time=1, lat=2, lon=2))
    {}
    """
    return {
        str(name): str(var.encoding["workbench_decode"])
        for name, var in ds.data_vars.items()
        if "workbench_decode" in var.encoding
    }


def mark_zarr_routes(ds: xr.Dataset, reason: str = "the CPU zarr route") -> xr.Dataset:
    """Record in each Zarr-backed variable's encoding that zarr decodes it on the host.

    What :func:`workbench.open_datacube` does on the CPU route, so that
    :func:`decode_routes` says how every variable decodes, whichever route opened it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from workbench.data.synthetic import era5_like, write_zarr
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = write_zarr(era5_like(time=2, lat=4, lon=8), folder / "c.zarr")
    >>> ds = mark_zarr_routes(xr.open_zarr(path, chunks=None))
    >>> decode_routes(ds)["t2m"]
    'zarr: zstd@cpu > bytes@cpu'
    """
    for name in ds.data_vars:
        variable = ds.variables[name]
        array = zarr_array_of(variable)
        if array is not None and "workbench_decode" not in variable.encoding:
            chain = codec_configs(array)[1]
            variable.encoding["workbench_decode"] = zarr_plan(chain, reason).route
            variable.encoding["workbench_decode_reason"] = reason
    return ds
