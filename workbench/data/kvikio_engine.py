"""The GPU read route: an xarray backend that reads Zarr chunks into CuPy arrays.

It follows the released GPU path of zarr-python 3: reads run inside
``zarr.config.enable_gpu()`` so zarr hands back CuPy arrays, and local stores are
opened through kvikIO's ``GDSStore`` (GPUDirect Storage when the system supports it,
POSIX reads into pinned buffers otherwise). cupy-xarray's own ``kvikio`` engine exists
only on an unmerged branch, so workbench ships this one as ``engine="workbench_kvikio"``.

Design: the dataset is opened twice on the host (metadata and index coordinates only),
once decoded, once raw, and each numeric data variable becomes a lazy device read that
applies the CF decoding in CuPy (:mod:`workbench.data.device_reads`).

Decoding on the GPU (``decode="auto"``, the default): where every codec of a variable is
one the chunk decoder knows (:mod:`workbench.data.decode_plan`), workbench reads its
encoded chunks itself and decodes each codec where it can run: the compressors that the
installed nvCOMP decompresses (zstd, numcodecs' lz4, gzip) as one batched call on the
GPU, any other (blosc, zlib, the crc32c checksum ...) with the codec's own decoder on the
host, the byte view and transpose in CuPy (:class:`~workbench.data.device_decode.ChunkDecoder`).
At open, nvCOMP's output on the first written chunk is compared with the host codec's;
a compressor it cannot decode falls back to the host, with the reason. Other chains
(sharding, Zarr v2 filters, unknown codecs) and ``decode="zarr"`` read through zarr's own
pipeline into GPU buffers. ``decode="host"`` decodes every compressor on the host.
Each variable says how it decodes in ``encoding["workbench_decode"]`` (e.g.
``'chunks: zstd@gpu > bytes@gpu'``) and why not on the GPU in
``encoding["workbench_decode_reason"]``; :func:`decode_routes` collects them.

Values of a dataset opened this way live on the GPU: use ``da.data`` (a CuPy array)
or ``ds.as_numpy()``; ``da.values`` raises because CuPy refuses implicit copies.
Reads through zarr's pipeline toggle zarr's (process-global) buffer config for their
duration.

Examples
--------
>>> KvikioBackendEntrypoint().guess_can_open("cube.zarr")
False
>>> isinstance(gpu_route_available(), bool)
True
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint

from workbench._optional import has_gpu, has_module, lazy_import
from workbench.data.device_decode import BatchDecoder
from workbench.data.device_reads import (
    CFDecoding,
    DeviceArray,
    decode_routes,
    device_reads,
    mark_zarr_routes,
)
from workbench.data.nvcomp_decode import nvcomp_decoders
from workbench.errors import DataReadError, GPUUnavailableError

__all__ = [
    "KvikioBackendEntrypoint",
    "DeviceArray",
    "CFDecoding",
    "device_reads",
    "decode_routes",
    "mark_zarr_routes",
    "DECODE_MODES",
    "gpu_route_available",
    "gpu_unavailable_reason",
    "require_gpu",
]

#: Values of ``decode``: ``"auto"`` (compressors on the GPU where nvCOMP decodes them),
#: ``"host"`` (every compressor on the host), ``"zarr"`` (zarr's own pipeline).
DECODE_MODES = ("auto", "host", "zarr")


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


def _device_decoders(decode: str) -> dict[str, BatchDecoder]:
    """Return nvCOMP's decoders for ``decode="auto"`` where its package loads, else none."""
    if decode != "auto" or not has_module("nvidia.nvcomp"):
        return {}
    try:
        return nvcomp_decoders()
    except (ImportError, OSError):  # the package is there but its library does not load
        return {}


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
        "decode",
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
        decode: str = "auto",
    ) -> xr.Dataset:
        """Open a Zarr store lazily; reads return CuPy arrays.

        ``decode`` is one of :data:`DECODE_MODES` (module notes); with ``decode="zarr"``,
        ``use_gds`` opens a local store through kvikIO's ``GDSStore`` (GPUDirect Storage
        reads into GPU buffers, or kvikIO's POSIX fallback).

        Raises
        ------
        GPUUnavailableError
            Without a CUDA device, CuPy and kvikIO.
        DataReadError
            For a ``decode`` that is none of :data:`DECODE_MODES`.
        """
        if decode not in DECODE_MODES:
            raise DataReadError(
                f"decode={decode!r} is not a decode mode: use one of "
                f"{', '.join(map(repr, DECODE_MODES))}"
            )
        require_gpu()
        zarr = lazy_import("zarr")
        cupy = lazy_import("cupy", extra="gpu", purpose="engine='kvikio'")
        # the chunk decoder reads encoded bytes on the host itself; GDS reads serve zarr's pipeline
        store = _gpu_store(filename_or_obj, use_gds and decode == "zarr")
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
        ds = device_reads(
            decoded,
            raw,
            read_context=zarr.config.enable_gpu,
            to_device=cupy.asarray,
            decoders=None if decode == "zarr" else _device_decoders(decode),
            xp=cupy,
            to_host=cupy.asnumpy,
        )

        def close() -> None:
            decoded.close()
            raw.close()

        ds.set_close(close)
        return ds
