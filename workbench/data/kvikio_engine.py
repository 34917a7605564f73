"""The GPU read route: an xarray backend that reads Zarr chunks into CuPy arrays.

It follows the released GPU path of zarr-python 3: reads run inside
``zarr.config.enable_gpu()`` so zarr hands back CuPy arrays, and local stores are
opened through kvikIO's ``GDSStore`` (GPUDirect Storage when the system supports it,
POSIX reads into pinned buffers otherwise). cupy-xarray's own ``kvikio`` engine exists
only on an unmerged branch, so workbench ships this one as ``engine="workbench_kvikio"``.

Design: the dataset is opened twice on the host (metadata and index coordinates only,
nothing is read from the data variables): once decoded, once raw. Each numeric data
variable is then replaced by a lazy :class:`DeviceArray` that reads the *raw* values
under the GPU buffer config and applies the CF mask/scale decoding with the array's
own namespace (``cupy`` on the GPU). xarray's CF decoders call ``np.array(...)`` and
would fail on CuPy arrays, which is why decoding is done here. The same code runs on
the CPU with a no-op read context (the test suite exercises it that way).

Values of a dataset opened this way live on the GPU: use ``da.data`` (a CuPy array)
or ``ds.as_numpy()``; ``da.values`` raises because CuPy refuses implicit copies.
Reads toggle zarr's (process-global) buffer config for their duration.

Examples
--------
>>> KvikioBackendEntrypoint().guess_can_open("cube.zarr")
False
>>> isinstance(gpu_route_available(), bool)
True
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from workbench._array import array_namespace
from workbench._optional import has_gpu, has_module, lazy_import
from workbench.errors import GPUUnavailableError

__all__ = [
    "KvikioBackendEntrypoint",
    "DeviceArray",
    "CFDecoding",
    "device_reads",
    "gpu_route_available",
    "gpu_unavailable_reason",
    "require_gpu",
]

ReadContext = Callable[[], contextlib.AbstractContextManager[Any]]


def gpu_unavailable_reason() -> str | None:
    """Why the GPU route cannot run here, or None when it can.

    Examples
    --------
    >>> reason = gpu_unavailable_reason()
    >>> reason is None or isinstance(reason, str)
    True
    """
    if os.environ.get("WORKBENCH_DISABLE_GPU"):
        return "the environment variable WORKBENCH_DISABLE_GPU is set"
    if not has_module("cupy"):
        return "cupy is not installed"
    if not has_module("kvikio"):
        return "kvikio is not installed"
    if not has_gpu():
        return "cupy sees no CUDA device (no NVIDIA GPU or driver on this machine)"
    return None


def gpu_route_available() -> bool:
    """Whether a CUDA device, CuPy and kvikIO are all present (the ``gpu`` extra on a GPU)."""
    return gpu_unavailable_reason() is None


def require_gpu(purpose: str = "engine='kvikio'") -> None:
    """Raise :class:`GPUUnavailableError`, naming the fix, unless the GPU route can run.

    Examples
    --------
    >>> try:
    ...     require_gpu()
    ... except GPUUnavailableError as exc:
    ...     "pip install 'workbench[gpu]'" in str(exc)
    ... else:
    ...     True
    True
    """
    reason = gpu_unavailable_reason()
    if reason is not None:
        raise GPUUnavailableError(
            f"{purpose} reads Zarr chunks into GPU memory and needs a CUDA GPU with cupy and "
            f"kvikio, but {reason}. Fix: run on a machine with an NVIDIA GPU and install the "
            "GPU extra (pip install 'workbench[gpu]'), or read on the CPU with engine='auto' "
            "or engine='zarr'"
        )


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
    """

    def __init__(
        self,
        source: Any,
        shape: tuple[int, ...],
        dtype: Any,
        read_context: ReadContext,
        decoding: CFDecoding | None = None,
        to_device: Callable[[Any], Any] | None = None,
    ) -> None:
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
        with self.read_context():
            out = self.source.oindex[indexing.OuterIndexer(key)].get_duck_array()
        if self.to_device is not None:
            out = self.to_device(out)
        if self.decoding is not None:
            out = self.decoding(out)
        return out


def device_reads(
    decoded: xr.Dataset,
    raw: xr.Dataset,
    *,
    read_context: ReadContext,
    to_device: Callable[[Any], Any],
) -> xr.Dataset:
    """Replace the numeric data variables of ``decoded`` by :class:`DeviceArray` reads.

    Parameters
    ----------
    decoded, raw : xarray.Dataset
        The same store opened lazily with and without ``mask_and_scale``.
    read_context : callable returning a context manager
        Wraps each read (``zarr.config.enable_gpu``; ``contextlib.nullcontext`` on the CPU).
    to_device : callable
        Moves a host array to the device (``cupy.asarray``); used for variables whose
        encoding is decoded on the host (``_Unsigned``, ...).

    Returns
    -------
    xarray.Dataset
        Lazily indexed (no data read), same coordinates and attributes.
    """
    out = decoded.copy()
    for name, var in decoded.data_vars.items():
        if var.dtype.kind not in "biufc" or name not in raw:
            continue  # strings, datetimes: stay on the host
        encoding = var.encoding
        host_decoded = "_Unsigned" in encoding or var.dtype.kind == "b"
        if host_decoded:
            array = DeviceArray(
                var.variable._data, var.shape, var.dtype, contextlib.nullcontext, None, to_device
            )
        else:
            array = DeviceArray(
                raw[name].variable._data,
                var.shape,
                var.dtype,
                read_context,
                CFDecoding.from_encoding(encoding, var.dtype),
            )
        out[name] = xr.Variable(
            var.dims, indexing.LazilyIndexedArray(array), var.attrs, var.encoding
        )
    return out


def _gpu_store(filename_or_obj: Any, use_gds: bool) -> Any:
    if use_gds and isinstance(filename_or_obj, str | os.PathLike):
        kvikio_zarr = lazy_import("kvikio.zarr", extra="gpu", purpose="engine='kvikio'")
        return kvikio_zarr.GDSStore(os.fspath(filename_or_obj), read_only=True)
    return filename_or_obj


class KvikioBackendEntrypoint(BackendEntrypoint):
    """xarray backend ``workbench_kvikio``: Zarr (v2/v3) into CuPy arrays on the GPU.

    Never picked by format guessing (``guess_can_open`` is False): ask for it with
    ``xr.open_dataset(path, engine="workbench_kvikio")`` or let
    :func:`workbench.open_datacube` choose it. ``available`` says whether a CUDA device,
    CuPy and kvikIO are present.
    """

    description = "Read Zarr stores into CuPy arrays on the GPU (zarr 3 GPU buffers + kvikIO)"
    url = "https://docs.rapids.ai/api/kvikio/stable/zarr/"
    available = gpu_route_available()
    open_dataset_parameters = (
        "filename_or_obj",
        "mask_and_scale",
        "decode_times",
        "concat_characters",
        "decode_coords",
        "drop_variables",
        "use_cftime",
        "decode_timedelta",
        "group",
        "consolidated",
        "zarr_format",
        "use_gds",
    )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Never claim a file: the GPU route is opt-in."""
        return False

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        concat_characters: bool = True,
        decode_coords: Any = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: bool | None = None,
        decode_timedelta: Any = None,
        group: str | None = None,
        consolidated: bool | None = None,
        zarr_format: int | None = None,
        use_gds: bool = True,
    ) -> xr.Dataset:
        """Open a Zarr store lazily; reads return CuPy arrays.

        Raises
        ------
        GPUUnavailableError
            Without a CUDA device, CuPy and kvikIO.
        """
        require_gpu()
        zarr = lazy_import("zarr")
        cupy = lazy_import("cupy", extra="gpu", purpose="engine='kvikio'")
        store = _gpu_store(filename_or_obj, use_gds)
        from xarray.backends.zarr import ZarrBackendEntrypoint

        common: dict[str, Any] = {
            "engine": ZarrBackendEntrypoint,  # by class: no other backend plugin is loaded
            "chunks": None,
            "cache": False,
            "decode_times": decode_times,
            "concat_characters": concat_characters,
            "decode_coords": decode_coords,
            "drop_variables": drop_variables,
            "use_cftime": use_cftime,
            "decode_timedelta": decode_timedelta,
            "group": group,
            "consolidated": consolidated,
            "zarr_format": zarr_format,
        }
        decoded = xr.open_dataset(store, mask_and_scale=mask_and_scale, **common)
        raw = xr.open_dataset(store, mask_and_scale=False, **common)
        ds = device_reads(decoded, raw, read_context=zarr.config.enable_gpu, to_device=cupy.asarray)

        def close() -> None:
            decoded.close()
            raw.close()

        ds.set_close(close)
        return ds
