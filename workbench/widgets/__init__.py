"""Notebook widgets: the AOI map, the chip gallery and the live training plot.

The classes are imported on first use, so ``import workbench.widgets`` stays light and a
missing front-end package is reported (with its ``pip install`` line) only by the widget
that needs it.

Examples
--------
>>> import workbench.widgets as widgets
>>> sorted(widgets.__all__)
['AOIMap', 'ChipGallery', 'LivePlot']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.widgets.aoi import AOIMap
    from workbench.widgets.gallery import ChipGallery
    from workbench.widgets.live import LivePlot

__all__ = ["AOIMap", "ChipGallery", "LivePlot"]

_WHERE = {
    "AOIMap": "workbench.widgets.aoi",
    "ChipGallery": "workbench.widgets.gallery",
    "LivePlot": "workbench.widgets.live",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'workbench.widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
