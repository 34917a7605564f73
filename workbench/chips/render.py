r"""Device-agnostic rendering of chips into small images (thumbnails, map previews).

Every step up to the ``uint8`` image runs in the array namespace of its input
(NumPy on the CPU, CuPy on a GPU), so the CPU tests exercise the same code the GPU
runs: NaN-aware percentile stretches, RGB / false-colour composites and colormapped
single bands through a small built-in lookup table (no matplotlib). Only the final
``uint8`` pixels cross to the host, in one transfer, to be PNG-encoded with
:mod:`zlib` (no Pillow needed).

Examples
--------
>>> import numpy as np
>>> batch = np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32)
>>> images = render(batch, bands=[0, 1, 2])
>>> images.shape, images.dtype
((4, 16, 16, 3), dtype('uint8'))
>>> pngs = encode_pngs(images)
>>> len(pngs), pngs[0][:8] == b"\x89PNG\r\n\x1a\n"
(4, True)
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from workbench._array import array_namespace
from workbench._array import to_numpy as to_host
from workbench.errors import PreviewError

__all__ = [
    "PreviewError",
    "COLORMAPS",
    "array_namespace",
    "to_host",
    "stretch",
    "colorize",
    "render",
    "encode_png",
    "encode_pngs",
]

#: Anchor colours of the built-in colormaps (evenly spaced, interpolated to 256 entries).
COLORMAPS: dict[str, tuple[str, ...]] = {
    "viridis": (
        "#440154", "#482878", "#3e4989", "#31688e", "#26828e",
        "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725",
    ),
    "magma": (
        "#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f",
        "#cd4071", "#f1605d", "#fd9668", "#feca8d", "#fcfdbf",
    ),
    "rdylgn": (
        "#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#ffffbf",
        "#d9ef8b", "#a6d96a", "#66bd63", "#1a9850", "#006837",
    ),
    "gray": ("#000000", "#ffffff"),
}  # fmt: skip

_STRETCHES = ("percentile", "global", "minmax", "none")
_PNG_FILTERS = {"none": 0, "paeth": 4}
_LUT_CACHE: dict[tuple[str, str], Any] = {}


def _lut(name: str, xp: ModuleType) -> Any:
    """Return the ``(256, 3)`` uint8 lookup table of colormap ``name``, on ``xp``'s device."""
    key = (name, xp.__name__)
    if key not in _LUT_CACHE:
        if name not in COLORMAPS:
            raise PreviewError(f"unknown colormap {name!r}; choose one of {sorted(COLORMAPS)}")
        anchors = np.array(
            [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in COLORMAPS[name]], dtype=float
        )
        where = np.linspace(0.0, 1.0, len(anchors))
        grid = np.linspace(0.0, 1.0, 256)
        table = np.stack([np.interp(grid, where, anchors[:, k]) for k in range(3)], axis=-1)
        _LUT_CACHE[key] = xp.asarray(np.round(table).astype(np.uint8))
    return _LUT_CACHE[key]


def _quantiles(x: Any, qs: Sequence[float], xp: ModuleType) -> list[Any]:
    """NaN-aware linear-interpolated quantiles (in %) along the last axis, one sort for all."""
    ordered = xp.sort(x, axis=-1)  # NaN sorts last in NumPy and CuPy
    count = (~xp.isnan(x)).sum(axis=-1)
    top = xp.maximum(count - 1, 0)
    out = []
    for q in qs:
        pos = top * (q / 100.0)
        lo = xp.floor(pos).astype(np.int64)
        hi = xp.minimum(lo + 1, top)
        frac = (pos - lo).astype(x.dtype)
        a = xp.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
        b = xp.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
        out.append(xp.where(count > 0, a + (b - a) * frac, xp.nan))
    return out


def stretch(
    x: Any,
    method: str | tuple[float, float] = "percentile",
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> Any:
    """Scale a ``(B, C, H, W)`` batch to ``[0, 1]`` per image and channel; NaN stays NaN.

    Parameters
    ----------
    x : array
        NumPy or CuPy array of shape ``(B, C, H, W)``.
    method : {"percentile", "global", "minmax", "none"} or (vmin, vmax)
        ``"percentile"``: each image and channel between its own percentiles (contrast per chip);
        ``"global"``: percentiles of the whole batch per channel (brightness comparable across
        chips); ``"minmax"``: each image and channel between its min and max; ``"none"``: values
        are already in ``[0, 1]``; a ``(vmin, vmax)`` pair: fixed limits for every channel.
    percentiles : (float, float)
        Lower and upper percentiles of the percentile stretches.

    Returns
    -------
    array
        ``float32`` in ``[0, 1]`` (or NaN), in the namespace of ``x``.

    Raises
    ------
    PreviewError
        For an unknown method, bad percentiles or limits, or an input that is not 4-D.

    Examples
    --------
    >>> x = np.arange(8, dtype=np.float32).reshape(1, 1, 2, 4)
    >>> stretch(x, "minmax")[0, 0, 0].tolist()
    [0.0, 0.1428571492433548, 0.2857142984867096, 0.4285714328289032]
    >>> stretch(x, (0, 4))[0, 0, 1].tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    xp = array_namespace(x)
    if x.ndim != 4:
        raise PreviewError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    x = x.astype(np.float32, copy=False)
    b, c = x.shape[:2]
    if isinstance(method, tuple | list) and not isinstance(method, str):
        if len(method) != 2 or not float(method[1]) > float(method[0]):
            raise PreviewError(
                f"stretch limits must be (vmin, vmax) with vmax > vmin, got {method!r}"
            )
        lo, hi = (xp.full((b, c, 1, 1), float(v), dtype=np.float32) for v in method)
    elif method == "none":
        return xp.clip(x, 0.0, 1.0)
    elif method in ("percentile", "global", "minmax"):
        low, high = percentiles
        if not 0.0 <= low < high <= 100.0:
            raise PreviewError(
                f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles!r}"
            )
        if method == "minmax":
            low, high = 0.0, 100.0
        if method == "global":
            flat = xp.moveaxis(x, 1, 0).reshape(c, -1)
            lo, hi = (q.reshape(1, c, 1, 1) for q in _quantiles(flat, (low, high), xp))
        else:
            lo, hi = (q[..., None, None] for q in _quantiles(x.reshape(b, c, -1), (low, high), xp))
    else:
        raise PreviewError(
            f"unknown stretch {method!r}; use one of {list(_STRETCHES)} or a (vmin, vmax) pair"
        )
    span = hi - lo
    span = xp.where(span > 0, span, np.float32(1.0))
    return xp.clip((x - lo) / span, 0.0, 1.0)


def colorize(x01: Any, cmap: str = "viridis") -> Any:
    """Map values in ``[0, 1]`` through a built-in colormap: ``(...)`` -> ``(..., 3)`` uint8.

    NaN maps to the lowest colour; :func:`render` makes it transparent.

    Examples
    --------
    >>> colorize(np.array([0.0, 1.0]), "gray").tolist()
    [[0, 0, 0], [255, 255, 255]]
    """
    xp = array_namespace(x01)
    lut = _lut(cmap, xp)
    index = xp.nan_to_num(x01 * 255.0 + 0.5, nan=0.0).astype(np.int32)
    return lut[xp.clip(index, 0, 255)]


def _channels(bands: Sequence[int] | int | None, n: int) -> list[int]:
    if bands is None:
        return [0]
    picked = [bands] if isinstance(bands, int | np.integer) else list(bands)
    if len(picked) not in (1, 3):
        raise PreviewError(
            f"bands must name 1 channel (colormapped) or 3 (an RGB composite), got {picked!r}"
        )
    for band in picked:
        if not isinstance(band, int | np.integer) or not -n <= int(band) < n:
            raise PreviewError(f"band {band!r} is not a channel index of a {n}-channel batch")
    return [int(b) % n for b in picked]


def render(
    batch: Any,
    bands: Sequence[int] | int | None = None,
    stretch_method: str | tuple[float, float] = "percentile",
    cmap: str = "viridis",
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> Any:
    """Render a ``(B, C, H, W)`` batch to ``(B, H, W, 3|4)`` uint8 images on its own device.

    Parameters
    ----------
    batch : array
        NumPy or CuPy array ``(B, C, H, W)``; a ``(C, H, W)`` or ``(H, W)`` array is one image.
    bands : int or sequence of int, optional
        One channel index (drawn through ``cmap``) or three (red, green, blue); default channel 0.
    stretch_method : str or (float, float)
        See :func:`stretch`.
    cmap : str
        A name in :data:`COLORMAPS`, for single-channel images.
    percentiles : (float, float)
        Percentiles of the percentile stretches.

    Returns
    -------
    array
        ``uint8`` RGB images, or RGBA (transparent where a used channel is NaN) when the batch
        holds any NaN, in the namespace of ``batch``.

    Raises
    ------
    PreviewError
        For bad band indices, an unknown colormap or stretch, or a batch of the wrong rank.

    Examples
    --------
    >>> x = np.zeros((2, 1, 4, 4), dtype=np.float32)
    >>> x[1, 0, 0, 0] = np.nan
    >>> render(x).shape
    (2, 4, 4, 4)
    """
    xp = array_namespace(batch)
    while batch.ndim < 4:
        batch = batch[None]
    if batch.ndim != 4:
        raise PreviewError(f"expected a (B, C, H, W) batch, got shape {tuple(batch.shape)}")
    picked = _channels(bands, int(batch.shape[1]))
    selected = batch[:, picked]
    if not np.issubdtype(selected.dtype, np.floating):
        selected = selected.astype(np.float32)
    scaled = stretch(selected, stretch_method, percentiles)
    if len(picked) == 1:
        rgb = colorize(scaled[:, 0], cmap)
    else:
        rgb = (xp.nan_to_num(xp.moveaxis(scaled, 1, -1), nan=0.0) * 255.0 + 0.5).astype(np.uint8)
    missing = xp.isnan(selected).any(axis=1)
    if not bool(missing.any()):
        return rgb
    alpha = xp.where(missing, np.uint8(0), np.uint8(255))[..., None]
    return xp.concatenate([rgb, alpha], axis=-1)


def _paeth(img: np.ndarray) -> np.ndarray:
    """PNG filter type 4 (Paeth) of an ``(H, W, C)`` uint8 image, vectorised."""
    x = img.astype(np.int16)
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    left = np.zeros_like(x)
    left[:, 1:] = x[:, :-1]
    upleft = np.zeros_like(x)
    upleft[1:, 1:] = x[:-1, :-1]
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    return ((x - pred) & 0xFF).astype(np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: Any, level: int = 6, png_filter: str = "none") -> bytes:
    r"""Encode one ``(H, W)``, ``(H, W, 1|2|3|4)`` uint8 image as PNG bytes (8 bit).

    Parameters
    ----------
    image : array
        uint8 pixels (a CuPy array is copied to the host first).
    level : int
        zlib compression level, 0-9.
    png_filter : {"none", "paeth"}
        Scanline filter. ``"none"`` is fastest and, on stretched satellite chips, as small
        as any; ``"paeth"`` shrinks smooth images (colormapped model fields) further.

    Returns
    -------
    bytes
        A complete PNG file.

    Raises
    ------
    PreviewError
        If the image is not uint8 or has an unsupported shape.

    Examples
    --------
    >>> png = encode_png(np.full((2, 3, 3), 200, dtype=np.uint8))
    >>> png[:8] == b"\x89PNG\r\n\x1a\n", png[16:24].hex()
    (True, '0000000300000002')
    """
    img = to_host(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise PreviewError(
            f"encode_png needs uint8 (H, W[, 1-4]) pixels, got {img.dtype} {tuple(img.shape)}"
        )
    if png_filter not in _PNG_FILTERS:
        raise PreviewError(f"unknown png_filter {png_filter!r}; use one of {list(_PNG_FILTERS)}")
    height, width, channels = img.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = _paeth(img) if png_filter == "paeth" else img
    raw = np.empty((height, 1 + width * channels), dtype=np.uint8)
    raw[:, 0] = _PNG_FILTERS[png_filter]  # the filter type byte of every scanline
    raw[:, 1:] = rows.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw.tobytes(), level)),
            _chunk(b"IEND", b""),
        ]
    )


def encode_pngs(images: Any, level: int = 6, png_filter: str = "none") -> list[bytes]:
    """Encode a ``(B, H, W, C)`` uint8 batch as PNGs, after one device-to-host transfer.

    Images of an RGBA batch whose alpha is fully opaque are written as RGB.

    Examples
    --------
    >>> [len(p) > 0 for p in encode_pngs(np.zeros((2, 4, 4, 3), dtype=np.uint8))]
    [True, True]
    """
    host = to_host(images)
    out = []
    for img in host:
        if img.ndim == 3 and img.shape[2] == 4 and bool((img[..., 3] == 255).all()):
            img = img[..., :3]
        out.append(encode_png(img, level, png_filter))
    return out
