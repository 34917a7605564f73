"""Where each codec of a Zarr array decodes: on the GPU, on the host, or by zarr itself.

The GPU route (:mod:`workbench.data.kvikio_engine`) decodes the chunks of a variable
itself when it knows every codec of the array, step by step in decode order: a
compressor that the installed nvCOMP can decompress runs on the device, any other on
the host (the codec's own decoder), and the data moves between host and device only
where two neighbouring steps run on different sides. :func:`plan_decode` is that
decision, a pure function of the codec chain's JSON form (:func:`codec_configs`), so
it is tested on the codec configs of real stores without a GPU.

A chain with a codec the chunk decoder does not know (sharding, a Zarr v2 filter such
as ``delta``, any extension codec) is left to zarr's own pipeline, with the reason.

Examples
--------
>>> chain = [{"name": "bytes", "configuration": {"endian": "little"}},
...          {"name": "zstd", "configuration": {"level": 1}}]
>>> plan_decode(chain, gpu_codecs={"zstd"}).route
'chunks: zstd@gpu > bytes@gpu'
>>> plan_decode(chain, gpu_codecs=()).route
'chunks: zstd@cpu > bytes@gpu'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "GPU_ALGORITHMS",
    "HOST_COMPRESSORS",
    "CodecStep",
    "DecodePlan",
    "codec_configs",
    "codec_name",
    "plan_decode",
    "zarr_plan",
]

#: Compressors nvCOMP can decompress, by codec name, with the nvCOMP algorithm that does it
#: (``bitstream_kind=RAW``: the codec's own byte stream). numcodecs' ``lz4`` prefixes the
#: LZ4 block with its 4-byte decoded size; the device decoder skips it.
GPU_ALGORITHMS: Mapping[str, str] = {"zstd": "Zstd", "lz4": "LZ4", "gzip": "Gzip"}

#: Bytes-to-bytes codecs the chunk decoder runs on the host with the codec's own decoder.
HOST_COMPRESSORS = frozenset({"zstd", "lz4", "gzip", "zlib", "blosc", "bz2", "lzma", "crc32c"})

#: Codecs that stay on the host whatever the device can do, and why.
_HOST_ONLY = {"crc32c": "the checksum is verified on the host, where the chunk bytes arrive"}

Where = Literal["gpu", "cpu"]


@dataclass(frozen=True)
class CodecStep:
    """One codec of the chain, in decode order, and where it decodes.

    ``where="gpu"`` means the device's array namespace (CuPy on the GPU route); the
    byte view (``bytes``) and ``transpose`` are array operations that run there.
    """

    name: str
    where: Where
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    reason: str = ""

    @property
    def label(self) -> str:
        """``name@where``, as routes print it."""
        return f"{self.name}@{self.where}"


@dataclass(frozen=True)
class DecodePlan:
    """How one variable's chunks decode.

    Attributes
    ----------
    reader : {"chunks", "zarr"}
        ``"chunks"``: workbench decodes chunk by chunk along ``steps``; ``"zarr"``:
        zarr's own pipeline decodes (its codecs on the host, into GPU buffers).
    steps : tuple of CodecStep
        The chain in decode order (for ``"zarr"``: every codec on the host).
    reason : str
        Why a codec or the whole chain is not decoded on the device, when it is not.
    """

    reader: Literal["chunks", "zarr"]
    steps: tuple[CodecStep, ...]
    reason: str = ""

    @property
    def route(self) -> str:
        """The decode route, e.g. ``'chunks: crc32c@cpu > zstd@gpu > bytes@gpu'``."""
        return f"{self.reader}: " + " > ".join(step.label for step in self.steps)

    @property
    def gpu_compressors(self) -> tuple[str, ...]:
        """The compressors decoded on the device."""
        return tuple(s.name for s in self.steps if s.where == "gpu" and s.name in GPU_ALGORITHMS)

    @property
    def transfers(self) -> int:
        """Host/device moves of one chunk: from the host bytes to the device result.

        Examples
        --------
        >>> chain = [{"name": "bytes"}, {"name": "zstd"}, {"name": "crc32c"}]
        >>> plan_decode(chain, gpu_codecs={"zstd"}).transfers
        1
        """
        if self.reader == "zarr":
            return 1
        moves, side = 0, "cpu"
        for step in self.steps:
            if step.where != side:
                moves, side = moves + 1, step.where
        return moves + (side == "cpu")

    def on_host(self, name: str, reason: str) -> DecodePlan:
        """Return this plan with codec ``name`` decoded on the host instead, saying why."""
        steps = tuple(
            dataclasses.replace(s, where="cpu", reason=reason) if s.name == name else s
            for s in self.steps
        )
        joined = "; ".join(r for r in (self.reason, reason) if r)
        return dataclasses.replace(self, steps=steps, reason=joined)


def codec_name(config: Mapping[str, Any]) -> str:
    """Return the codec's name in a v3 (``name``) or numcodecs (``id``) config.

    A ``numcodecs.`` prefix (zarr v3's names for numcodecs codecs) is dropped.

    Examples
    --------
    >>> codec_name({"name": "numcodecs.lz4"}), codec_name({"id": "blosc", "cname": "lz4"})
    ('lz4', 'blosc')
    """
    name = str(config.get("name", config.get("id", "")))
    return name.removeprefix("numcodecs.")


def _configuration(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a codec's parameters: v3 ``configuration``, or a numcodecs config minus ``id``."""
    if "name" in config:
        return dict(config.get("configuration") or {})
    return {k: v for k, v in config.items() if k != "id"}


def _endian(dtype: np.dtype[Any]) -> str | None:
    if dtype.itemsize <= 1 or dtype.byteorder in ("|",):
        return None
    little = dtype.byteorder == "<" or (dtype.byteorder == "=" and np.little_endian)
    return "little" if little else "big"


def codec_configs(array: Any) -> tuple[int, list[dict[str, Any]]]:
    """``(zarr_format, codec configs in encode order)`` of a ``zarr.Array``.

    Zarr v3: the array's codecs as written in its metadata. Zarr v2: its filters, the
    byte view (as a v3 ``bytes`` codec with the dtype's byte order) and its compressor.

    Examples
    --------
    >>> import zarr
    >>> a = zarr.create_array(zarr.storage.MemoryStore(), shape=(4,), dtype="<i2",
    ...                       zarr_format=2, compressors=None)
    >>> codec_configs(a)
    (2, [{'name': 'bytes', 'configuration': {'endian': 'little'}}])
    """
    meta = array.metadata
    if meta.zarr_format == 3:
        return 3, [dict(codec.to_dict()) for codec in meta.codecs]
    dtype = np.dtype(meta.dtype.to_native_dtype())
    endian = _endian(dtype)
    chain = [dict(f.get_config()) for f in (meta.filters or ())]
    chain.append(
        {"name": "bytes", "configuration": {"endian": endian}} if endian else {"name": "bytes"}
    )
    if meta.compressor is not None:
        chain.append(dict(meta.compressor.get_config()))
    return 2, chain


def zarr_plan(codecs: Sequence[Mapping[str, Any]], reason: str) -> DecodePlan:
    """Return the plan of a chain that zarr's own pipeline decodes (every codec on the host).

    Examples
    --------
    >>> zarr_plan([{"name": "bytes"}, {"name": "zstd"}], "asked for").route
    'zarr: zstd@cpu > bytes@cpu'
    """
    steps = tuple(CodecStep(codec_name(c), "cpu", _configuration(c)) for c in reversed(codecs))
    return DecodePlan("zarr", steps, reason)


def plan_decode(
    codecs: Sequence[Mapping[str, Any]],
    *,
    gpu_codecs: Collection[str],
    zarr_format: int = 3,
) -> DecodePlan:
    """Decide, codec by codec, where the chunks of an array decode.

    Parameters
    ----------
    codecs : sequence of mapping
        The array's codec configs in encode order (:func:`codec_configs`).
    gpu_codecs : collection of str
        Compressors the device can decompress here (names of :data:`GPU_ALGORITHMS`;
        empty without a GPU or nvCOMP).
    zarr_format : {2, 3}
        The array's format: a v2 chain has its filters before the byte view.

    Returns
    -------
    DecodePlan
        ``reader="chunks"`` when every codec is one the chunk decoder knows: exactly one
        ``bytes`` step, ``transpose``, and compressors of :data:`HOST_COMPRESSORS`;
        otherwise ``reader="zarr"`` with the reason.
    """
    names = [codec_name(c) for c in codecs]

    def by_zarr(reason: str) -> DecodePlan:
        return zarr_plan(codecs, reason)

    if "sharding_indexed" in names:
        return by_zarr("sharded chunks (sharding_indexed) are decoded by zarr")
    if names.count("bytes") != 1:
        return by_zarr(f"the chain {names} has no single 'bytes' step: zarr decodes it")
    view = names.index("bytes")
    if zarr_format == 2 and view > 0:
        return by_zarr(f"Zarr v2 filters {names[:view]} decode on the host through zarr")
    gpu = set(gpu_codecs) & set(GPU_ALGORITHMS)
    steps: list[CodecStep] = []
    reasons: list[str] = []
    for position, (name, config) in enumerate(zip(names, codecs, strict=True)):
        conf = _configuration(config)
        if position < view:
            if name != "transpose":
                return by_zarr(f"array codec {name!r} is decoded by zarr")
            steps.append(CodecStep(name, "gpu", conf))
        elif position == view:
            if conf.get("endian") == "big":
                why = "big-endian values are byte-swapped on the host"
                steps.append(CodecStep(name, "cpu", conf, why))
                reasons.append(why)
            else:
                steps.append(CodecStep(name, "gpu", conf))
        elif name not in HOST_COMPRESSORS:
            return by_zarr(f"codec {name!r} is not one the chunk decoder knows: zarr decodes it")
        elif name in _HOST_ONLY:
            steps.append(CodecStep(name, "cpu", conf, _HOST_ONLY[name]))
        elif name in gpu:
            steps.append(CodecStep(name, "gpu", conf))
        else:
            why = (
                f"nvCOMP does not decode {name!r}"
                if name not in GPU_ALGORITHMS
                else f"no device decoder for {name!r} here (no GPU, or no nvCOMP)"
            )
            steps.append(CodecStep(name, "cpu", conf, why))
            reasons.append(why)
    if any(s.name == "bytes" and s.where == "cpu" for s in steps):
        # the byte view runs on the host: compressors decode there too (one copy, not three)
        why = "the byte view is on the host, so the compressors decode there too"
        steps = [
            dataclasses.replace(s, where="cpu", reason=s.reason or why)
            if s.name in HOST_COMPRESSORS and s.where == "gpu"
            else s
            for s in steps
        ]
    return DecodePlan("chunks", tuple(reversed(steps)), "; ".join(reasons))
