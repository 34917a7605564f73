"""nvCOMP's batched decoders of Zarr compressors, on the current CUDA device.

:func:`nvcomp_decoders` gives, for each compressor of
:data:`~workbench.data.decode_plan.GPU_ALGORITHMS`, a
:data:`~workbench.data.device_decode.BatchDecoder`: one ``Codec.decode`` call of nvCOMP's
Python API (``nvidia-nvcomp-cu13``, ``bitstream_kind=RAW``: the codec's own byte stream)
over a batch of compressed chunks in GPU memory, written into one preallocated CuPy
buffer when the decoded size is known. Buffers sit at the alignment the codec asks for.
A Codec is made per thread (nvCOMP's Codecs are not thread-safe) on the thread's current
CuPy stream.

Nothing here runs without a GPU; the decoders are checked against the host codecs on a
real chunk of each store when it is opened (:func:`~workbench.data.device_decode.probe_plan`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from workbench._optional import lazy_import
from workbench.data.decode_plan import GPU_ALGORITHMS
from workbench.data.device_decode import BatchDecoder, _round_up
from workbench.errors import DataReadError

__all__ = ["nvcomp_decoders"]


class _NvcompDecoder:
    """One compressor decoded by nvCOMP on the current CUDA device (a Codec per thread)."""

    #: bytes before the codec's own stream: numcodecs' LZ4 stores the decoded size first
    _SKIP: ClassVar[dict[str, int]] = {"lz4": 4}

    def __init__(self, name: str, nvcomp: ModuleType, cupy: ModuleType) -> None:
        self.name, self.nvcomp, self.cupy = name, nvcomp, cupy
        self._local = threading.local()

    def _codec(self) -> Any:
        codec = getattr(self._local, "codec", None)
        if codec is None:
            codec = self.nvcomp.Codec(
                algorithm=GPU_ALGORITHMS[self.name],
                bitstream_kind=self.nvcomp.BitstreamKind.RAW,
                device_id=self.cupy.cuda.Device().id,
                cuda_stream=self.cupy.cuda.get_current_stream().ptr,
            )
            self._local.codec = codec
        return codec

    def _aligned(self, chunks: list[Any], align: int) -> list[Any]:
        """Return the chunks at ``align``-byte addresses (nvCOMP's rule), packed anew if need be."""
        cp = self.cupy
        if all(c.data.ptr % align == 0 for c in chunks):
            return chunks
        offsets = np.cumsum([0] + [_round_up(c.size, align) for c in chunks]).tolist()
        buf = cp.empty(offsets[-1], dtype=cp.uint8)
        views = [buf[a : a + c.size] for a, c in zip(offsets, chunks, strict=False)]
        for view, chunk in zip(views, chunks, strict=True):
            view[...] = chunk
        return views

    def __call__(self, chunks: list[Any], nbytes: int | None) -> list[Any]:
        if not chunks:
            return []
        cp, codec = self.cupy, self._codec()
        align = max(16, int(codec.get_required_decompression_alignment()))
        skip = self._SKIP.get(self.name, 0)
        srcs = self.nvcomp.as_arrays(self._aligned([c[skip:] for c in chunks], align))
        if nbytes is None:
            out = codec.decode(srcs)
            return [cp.asarray(out[i]).view(cp.uint8).copy() for i in range(len(chunks))]
        stride = _round_up(nbytes, align)
        buf = cp.empty(stride * len(chunks), dtype=cp.uint8)
        offsets = [i * stride for i in range(len(chunks))]
        res = codec.decode(srcs, out=self.nvcomp.as_arrays(buf, offsets, [nbytes] * len(chunks)))
        sizes = list(getattr(res, "buffer_sizes", None) or [nbytes])  # waits for the decode
        cp.cuda.get_current_stream().synchronize()
        if any(int(n) != nbytes for n in sizes):
            raise DataReadError(
                f"nvCOMP decoded {self.name!r} chunks to {sorted(set(sizes))} bytes, "
                f"expected {nbytes}"
            )
        return [buf[o : o + nbytes] for o in offsets]


def nvcomp_decoders(names: Iterable[str] = GPU_ALGORITHMS) -> dict[str, BatchDecoder]:
    """Device decoders of nvCOMP (``nvidia-nvcomp-cu13``) for the compressors ``names``.

    Raises
    ------
    MissingDependencyError
        Without nvCOMP's Python package or CuPy.
    """
    nvcomp = lazy_import("nvidia.nvcomp", extra="gpu", purpose="decoding Zarr chunks on the GPU")
    cupy = lazy_import("cupy", extra="gpu", purpose="decoding Zarr chunks on the GPU")
    return {n: _NvcompDecoder(n, nvcomp, cupy) for n in names if n in GPU_ALGORITHMS}
