"""``ChipGallery``: a clickable grid of chip thumbnails (an anywidget).

Thumbnails travel to the browser as PNG bytes in a ``List(Bytes)`` trait (binary widget
buffers, never base64). They are rendered by :mod:`workbench.chips.render` on the chips'
own device (CuPy on a GPU, NumPy otherwise) and only the ``uint8`` pixels are copied to
the host for PNG encoding. Clicking a thumbnail sets :attr:`ChipGallery.selected`, and the
kernel-side :attr:`ChipGallery.info` then says where and when that chip is. Beside the
thumbnails, a location view (:attr:`ChipGallery.location`, an SVG map drawn offline over
Natural Earth coastlines, borders and a labelled graticule) shows the data's footprint and
every shown chip, the selected one highlighted; data smaller than 2 degrees also gets a
locator map of its surroundings.

Examples
--------
>>> import numpy as np
>>> batch = np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32)
>>> gallery = ChipGallery.from_arrays(batch, labels=[f"chip {i}" for i in range(6)])
>>> len(gallery.images)
6
>>> gallery.selected = 2
>>> gallery.info["label"]
'chip 2'
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench._optional import lazy_import
from workbench.chips.render import PreviewError, encode_pngs, render
from workbench.errors import WorkbenchError
from workbench.widgets._chipmeta import chip_batch, chip_details, chip_summary, pick_bands
from workbench.widgets._display import fallback_text, format_bounds, png_data_url, png_size

if TYPE_CHECKING:
    import anywidget
    import traitlets

    from workbench.chips import ChipSet
else:
    anywidget = lazy_import("anywidget", purpose="the chip gallery (chips.preview())")
    traitlets = lazy_import("traitlets", extra="jupyter", purpose="the chip gallery")

__all__ = ["ChipGallery"]

_STATIC = Path(__file__).parent / "static"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ChipGallery(anywidget.AnyWidget):
    """A grid of chip thumbnails; clicking one shows its bounds, time and geocode.

    Parameters
    ----------
    images : list of bytes
        PNG files, one per thumbnail.
    labels : list of str, optional
        Caption of each thumbnail (default: its position).
    meta : list of dict, optional
        Per thumbnail: ``index`` (chip index), ``bounds`` ``[west, south, east, north]`` in
        degrees, ``center`` ``[lon, lat]``, ``time`` (``[start, end]`` ISO strings) and
        ``geocode``; any may be absent.
    thumb_size : int
        Displayed edge length of a thumbnail in CSS pixels (chips are upscaled pixelated).
    title : str
        A heading above the grid.

    Attributes
    ----------
    selected : int or None
        Position of the clicked thumbnail (synced from the browser; set it to select).
    info : dict
        What is known about the selected thumbnail (``{}`` when none is selected): its
        ``meta``, ``label`` and ``position``, plus, for chips, lon/lat ``bounds`` and
        ``time`` computed by the kernel on selection (synced, so the browser shows them).
    location : str
        The location view as SVG (``""`` for chips without georeferencing); each chip
        outline has ``data-position`` set to its thumbnail's position.

    Raises
    ------
    PreviewError
        If an image is not PNG bytes or ``labels``/``meta`` do not match ``images`` in length.
    """

    _esm = (_STATIC / "gallery.js").read_text(encoding="utf-8")
    _css = (_STATIC / "gallery.css").read_text(encoding="utf-8")

    images = traitlets.List(traitlets.Bytes()).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    meta = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected = traitlets.Int(None, allow_none=True).tag(sync=True)
    thumb_size = traitlets.Int(96).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    info = traitlets.Dict().tag(sync=True)
    location = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        images: Sequence[bytes] = (),
        labels: Sequence[str] | None = None,
        meta: Sequence[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        images = list(images)
        labels = list(labels) if labels is not None else [str(i) for i in range(len(images))]
        meta = list(meta) if meta is not None else [{"index": i} for i in range(len(images))]
        for name, values in (("labels", labels), ("meta", meta)):
            if len(values) != len(images):
                raise PreviewError(
                    f"{name} has {len(values)} entries but there are {len(images)} images; "
                    f"give one per image"
                )
        #: Called with a chip index when it is selected; returns more to show (bounds, time).
        self.details: Callable[[int], dict[str, Any]] | None = None
        super().__init__(images=images, labels=labels, meta=meta, **kwargs)

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        batch: Any,
        bands: Sequence[int] | int | None = None,
        stretch: str | tuple[float, float] = "percentile",
        *,
        cmap: str = "viridis",
        percentiles: tuple[float, float] = (2.0, 98.0),
        labels: Sequence[str] | None = None,
        meta: Sequence[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> ChipGallery:
        """Render a ``(B, C, H, W)`` NumPy or CuPy batch into a gallery.

        Parameters
        ----------
        batch : array
            Chips, channels first; rendered on the array's own device.
        bands : int or sequence of int, optional
            One channel (colormapped) or three (an RGB / false-colour composite); default 0.
        stretch : str or (float, float)
            See :func:`workbench.chips.render.stretch`.
        cmap : str
            Colormap of single-channel thumbnails (see :data:`workbench.chips.render.COLORMAPS`).
        percentiles : (float, float)
            Percentiles of the percentile stretches.
        labels, meta, **kwargs
            As for :class:`ChipGallery`.

        Returns
        -------
        ChipGallery

        Examples
        --------
        >>> import numpy as np
        >>> g = ChipGallery.from_arrays(np.ones((3, 4, 16, 16)), bands=[2, 1, 0], stretch=(0, 2))
        >>> len(g.images), g.labels
        (3, ['0', '1', '2'])
        """
        images = render(batch, bands, stretch, cmap, percentiles)
        return cls(encode_pngs(images), labels=labels, meta=meta, **kwargs)

    @classmethod
    def from_chips(
        cls,
        chips: ChipSet,
        n: int = 64,
        bands: Sequence[int | str] | int | str | None = None,
        stretch: str | tuple[float, float] = "percentile",
        *,
        indices: Sequence[int] | None = None,
        cmap: str = "viridis",
        percentiles: tuple[float, float] = (2.0, 98.0),
        geocode: tuple[str, int] | None = ("geohash", 6),
        **kwargs: Any,
    ) -> ChipGallery:
        """Thumbnails of ``n`` chips of a :class:`~workbench.chips.ChipSet` (``chips.preview()``).

        Parameters
        ----------
        chips : ChipSet
            The chips.
        n : int
            How many chips to show, spread evenly over the set (ignored with ``indices``).
        bands : int, str or sequence of them, optional
            One channel or three; names match variables, band labels or ``"variable:band"``.
            Default: a true-colour composite when red, green and blue bands are recognised
            (``B04, B03, B02``, ``red, green, blue``), else the first channel, colormapped.
        stretch : str or (float, float)
            See :func:`workbench.chips.render.stretch`.
        indices : sequence of int, optional
            Exactly which chips to show.
        cmap, percentiles
            As for :meth:`from_arrays`.
        geocode : (scheme, precision) or None
            Geocode shown for each chip; ``None`` to skip.
        **kwargs
            Passed to :class:`ChipGallery` (``thumb_size``, ``title``).

        Returns
        -------
        ChipGallery

        Raises
        ------
        PreviewError
            For ``n < 1``, out-of-range indices or unknown band names.
        """
        total = len(chips)
        if indices is None:
            if n < 1:
                raise PreviewError(f"n must be at least 1, got {n!r}")
            picked = np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(int))
        else:
            picked = np.asarray(list(indices), dtype=int)
            if picked.size and (picked.min() < -total or picked.max() >= total):
                raise PreviewError(f"chip indices must lie in [0, {total}), got {list(indices)!r}")
            picked = picked % max(total, 1)
        batch, channel_names = chip_batch(chips, picked)
        channels = pick_bands(bands, channel_names)
        meta = chip_summary(chips, picked, geocode)
        labels = [f"#{int(i)}" for i in picked]
        kwargs.setdefault("title", _title(chips, picked, channels, channel_names))
        gallery = cls.from_arrays(
            batch, channels, stretch, cmap=cmap, percentiles=percentiles, labels=labels,
            meta=meta, **kwargs,
        )  # fmt: skip
        gallery.details = lambda index: chip_details(chips, index)
        gallery.location = _location(chips, picked)
        return gallery

    # -- state ----------------------------------------------------------------------
    @traitlets.validate("images")
    def _check_images(self, proposal: Any) -> list[bytes]:
        images = [bytes(img) for img in proposal["value"]]
        for i, img in enumerate(images):
            if not img.startswith(_PNG_SIGNATURE):
                raise PreviewError(f"image {i} is not a PNG file (starts with {img[:8]!r})")
        return images

    @traitlets.validate("selected")
    def _check_selected(self, proposal: Any) -> int | None:
        value = proposal["value"]
        if value is not None and not 0 <= value < len(self.images):
            raise PreviewError(
                f"selected={value!r} is not a thumbnail position; use 0..{len(self.images) - 1}"
                " or None"
            )
        return value  # type: ignore[no-any-return]

    @traitlets.observe("selected", "meta", "labels")
    def _update_info(self, change: Any) -> None:
        del change
        pos = self.selected
        if pos is None or pos >= len(self.images):
            self.info = {}
            return
        info: dict[str, Any] = {"position": pos, "index": pos}
        if pos < len(self.meta):
            info.update(self.meta[pos])
        if pos < len(self.labels):
            info["label"] = self.labels[pos]
        if self.details is not None:
            info.update(self.details(int(info["index"])))
        self.info = info

    @property
    def selected_index(self) -> int | None:
        """The chip index of the selected thumbnail (``chips[gallery.selected_index]``)."""
        return None if not self.info else int(self.info["index"])

    # -- fallbacks ------------------------------------------------------------------
    def __repr__(self) -> str:
        sizes = sorted({png_size(img) for img in self.images})
        shown = ", ".join(f"{w}x{h}" for w, h in sizes[:3]) or "no images"
        lines = [
            f"{len(self.images)} thumbnails ({shown} px){': ' + self.title if self.title else ''}"
        ]
        if self.info:
            lines.append(
                f"selected {self.info.get('label', self.selected)}: " + _describe(self.info)
            )
        else:
            lines.append("selected: none (click a thumbnail, or set .selected)")
        lines.append("Without a widget front end: gallery.to_html() gives a standalone page.")
        return fallback_text("ChipGallery", lines)

    def to_html(self) -> str:
        """Return a standalone HTML page of the thumbnails and their metadata (reports, scripts).

        Examples
        --------
        >>> import numpy as np
        >>> ChipGallery.from_arrays(np.zeros((2, 1, 4, 4))).to_html().count("<img")
        2
        """
        cells = []
        for i, img in enumerate(self.images):
            label = self.labels[i] if i < len(self.labels) else str(i)
            meta = self.meta[i] if i < len(self.meta) else {}
            cells.append(
                f'<figure title="{html.escape(_describe(meta))}"><img src="{png_data_url(img)}" '
                f'width="{self.thumb_size}" style="image-rendering: pixelated" '
                f'alt="{html.escape(label)}">'
                f"<figcaption>{html.escape(label)}</figcaption></figure>"
            )
        head = f"<h3>{html.escape(self.title)}</h3>" if self.title else ""
        return f'<div style="display:flex;flex-wrap:wrap;gap:4px">{head}{"".join(cells)}</div>'


def _location(chips: Any, picked: np.ndarray) -> str:
    """Return the location view of the picked chips (``""`` when they are not georeferenced)."""
    from workbench.widgets._preview import footprint
    from workbench.widgets._svgmap import location_svg

    obj = getattr(chips, "obj", None)
    if obj is None:
        return ""
    try:
        fp = footprint(obj)
        boxes = [tuple(float(v) for v in chips.bounds(int(i))) for i in picked]
    except WorkbenchError:
        return ""
    return location_svg(fp.bounds, footprint=fp.ring, boxes=boxes)


def _describe(meta: dict[str, Any]) -> str:
    parts = []
    if meta.get("bounds") is not None:
        parts.append(format_bounds(meta["bounds"]))
    elif meta.get("center") is not None:
        lon, lat = meta["center"]
        parts.append(f"centre lon {lon:.4f}, lat {lat:.4f}")
    if meta.get("time"):
        time = meta["time"]
        parts.append(
            "time " + (" to ".join(map(str, time)) if isinstance(time, list) else str(time))
        )
    if meta.get("geocode"):
        parts.append(f"geocode {meta['geocode']}")
    return "; ".join(parts) or f"chip {meta.get('index', '?')}"


def _short(name: str) -> str:
    """Shorten a channel name: no fractional seconds or midnight times."""
    return re.sub(r"T00:00:00(?=[,]|$)", "", re.sub(r"(T\d\d:\d\d:\d\d)\.\d+", r"\1", name))


def _title(chips: Any, picked: np.ndarray, channels: list[int], names: list[str]) -> str:
    shown = " / ".join(_short(names[c]) for c in channels)
    return f"{len(picked)} of {len(chips)} chips · {shown}"
