"""The one place that probes optional dependencies.

Heavy and optional packages (torch, cupy, kvikio, IPython, holoviews, ...) are
imported lazily through :func:`lazy_import`, which raises a
:class:`~workbench.errors.MissingDependencyError` with the ``pip install`` line
that fixes it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from types import ModuleType

from workbench.errors import MissingDependencyError

__all__ = ["lazy_import", "has_module", "has_gpu", "EXTRAS"]

#: Which extra of ``workbench`` provides each optional top-level module.
EXTRAS: dict[str, str] = {
    "torch": "torch",
    "cupy": "gpu",
    "kvikio": "gpu",
    "cupy_xarray": "gpu",
    "rioxarray": "io",
    "rasterio": "io",
    "h5netcdf": "io",
    "h5py": "io",
    "scipy": "io",
    "skimage": "ml",
    "sklearn": "ml",
    "IPython": "jupyter",
    "ipywidgets": "jupyter",
    "anywidget": "jupyter",
    "ipyleaflet": "jupyter",
    "leafmap": "jupyter",
    "holoviews": "jupyter",
    "bokeh": "jupyter",
    "ipyparallel": "cluster",
    "cloudpickle": "cluster",
    "codecarbon": "carbon",
    "cfgrib": "grib",
    "pystac": "io",
}

_PIP_NAMES = {"skimage": "scikit-image", "sklearn": "scikit-learn", "PIL": "pillow"}


def _install_hint(name: str, extra: str | None) -> str:
    top = name.split(".")[0]
    extra = extra or EXTRAS.get(top)
    if top == "torch":
        return (
            "Install it with: pip install torch==2.13.0  (the CPU build), "
            "or pip install 'workbench[torch]'"
        )
    if top == "cfgrib":
        return (
            "Install it with: apt-get install libeccodes0 && "
            "pip install cfgrib eccodes findlibs --no-deps "
            "(the eccodeslib wheel conflicts with pyproj's PROJ in one process)"
        )
    if extra:
        return f"Install it with: pip install 'workbench[{extra}]'"
    return f"Install it with: pip install {_PIP_NAMES.get(top, top)}"


def lazy_import(name: str, *, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import an optional module, or raise an error that says how to install it.

    Parameters
    ----------
    name : str
        Module to import, e.g. ``"kvikio.zarr"``.
    extra : str, optional
        The ``workbench`` extra that provides it; looked up in :data:`EXTRAS` when omitted.
    purpose : str, optional
        What the module is needed for, quoted in the error ("engine='kvikio'").

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    MissingDependencyError
        If the module (or one of its own dependencies) cannot be imported.

    Examples
    --------
    >>> lazy_import("json").dumps([1])
    '[1]'
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        why = f" and is required for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{name} is not installed{why}. {_install_hint(name, extra)}"
        ) from exc


def has_module(name: str) -> bool:
    """Return whether ``name`` can be imported, without importing it.

    Examples
    --------
    >>> has_module("json"), has_module("surely_not_a_module_xyz")
    (True, False)
    """
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def _cuda_device_count() -> int:
    if os.environ.get("WORKBENCH_DISABLE_GPU"):
        return 0
    if not has_module("cupy"):
        return 0
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no device, broken install: all mean "no GPU"
        return 0


def has_gpu() -> bool:
    """Return whether a usable CUDA device and CuPy are present.

    Set the environment variable ``WORKBENCH_DISABLE_GPU=1`` to force the CPU route.

    Examples
    --------
    >>> isinstance(has_gpu(), bool)
    True
    """
    return _cuda_device_count() > 0
