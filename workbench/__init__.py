"""workbench: a Jupyter-first research workbench for geospatial deep learning.

``import workbench`` registers the ``.wb`` accessor on xarray objects and exposes the
entry points below; heavy dependencies (torch, cupy, IPython, holoviews) are imported
only when a feature that needs them is used.

Examples
--------
>>> import workbench
>>> from workbench.data.synthetic import era5_like
>>> ds = era5_like(time=2, lat=8, lon=8)
>>> ds.wb.chips({"lat": 4, "lon": 4}).dims
{'lat': 4, 'lon': 4}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workbench import accessors as _accessors  # noqa: F401  (registers .wb)
from workbench._optional import has_gpu
from workbench.options import get_options, set_options

try:
    from workbench._version import __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from workbench.catalog import Catalog
    from workbench.chips import ChipSet, Collection, open_collection
    from workbench.composites import composite
    from workbench.data import open_datacube

__all__ = [
    "__version__",
    "open_datacube",
    "open_collection",
    "Collection",
    "ChipSet",
    "Catalog",
    "composite",
    "has_gpu",
    "set_options",
    "get_options",
    "load_ipython_extension",
]

_LAZY = {
    "open_datacube": "workbench.data",
    "ChipSet": "workbench.chips",
    "Collection": "workbench.chips",
    "open_collection": "workbench.chips",
    "Catalog": "workbench.catalog",
    "composite": "workbench.composites",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """Register the workbench magics (``%load_ext workbench``).

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell
        The running shell.
    """
    from workbench.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Unregister the workbench magics (``%unload_ext workbench``)."""
    from workbench.magics import unload_ipython_extension as _unload

    _unload(ipython)
