"""The notebook view of a :class:`~workbench.widgets.live.LivePlot` (imported on display).

An anywidget whose comm the kernel opens at display time, so pushes reach the browser while
the cell that feeds the plot is still running (a holoviews/bokeh comm is opened by the browser
and would get nothing until the cell ends). The front end is ``static/liveplot.js``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anywidget
import traitlets
from bokeh import protocol
from bokeh.core import json_encoder as encoder

__all__ = ["LivePlotView"]


class LivePlotView(anywidget.AnyWidget):
    """A LivePlot's bokeh document in a notebook, updated by one message per push.

    ``document`` (synced) holds the whole document as JSON with its ``generation``; each
    push's changes go to the browser as one PATCH-DOC message of that generation. All
    changes to the document are made under the LivePlot's push lock. :meth:`batch`
    brackets a push: the document combines its changes and recomputes its models once;
    they then go out as one patch or, if the push added models (a new engine's curve), as
    a new generation of the whole document: a view that missed the patch defining them
    could not apply any later patch.
    """

    _esm = Path(__file__).parent / "static" / "liveplot.js"
    document = traitlets.Unicode("").tag(sync=True)

    def __init__(self, plot: Any) -> None:
        self.hv_plot = plot
        self.bokeh_document = plot.document
        self.generation = 0
        self._pending: list[Any] = []
        self._batching = False
        super().__init__(document=self._serialize())
        self.bokeh_document.on_change_dispatch_to(self)

    def _serialize(self) -> str:
        doc_json = self.bokeh_document.to_json(deferred=False)  # marks every model as sent
        return str(encoder.serialize_json({"generation": self.generation, "doc": doc_json}))

    def _document_patched(self, event: Any) -> None:
        self._pending.append(event)
        if not self._batching:
            self.send_pending()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect the document's changes while the block runs, then send them."""
        doc = self.bokeh_document
        self._batching = True
        doc.hold("combine")
        try:
            with doc.models.freeze():
                yield
        finally:
            try:
                doc.unhold()  # hands the combined events to _document_patched
            finally:
                self._batching = False
        if len(doc.models.synced_references) < len(doc.models):
            self.resync()  # new models
        else:
            self.send_pending()

    def send_pending(self) -> None:
        """Send the changes collected so far as one PATCH-DOC message."""
        events, self._pending = self._pending, []
        if not events:
            return
        msg = protocol.Protocol().create("PATCH-DOC", events)
        content = {
            "generation": self.generation,
            "patch": msg.content_json,
            "buffers": [b.ref["id"] for b in msg.buffers],
        }
        self.send(content, [b.to_bytes() for b in msg.buffers])

    def resync(self) -> None:
        """Send the whole document as a new generation (the browser draws it anew)."""
        self._pending = []
        self.generation += 1
        self.document = self._serialize()

    def close(self) -> None:
        super().close()
        with contextlib.suppress(KeyError):  # closed before
            self.bokeh_document.remove_on_change(self)

    def __repr__(self) -> str:  # the default would print the whole document
        names = sorted(m.name for m in self.bokeh_document.roots[0].references() if m.name)
        figures = [n for n in names if n.startswith("wb-liveplot-")]
        return f"LivePlotView({', '.join(figures)})"
