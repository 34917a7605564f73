"""Regular-grid helpers shared by the composite, mosaic and resample modules.

A *grid* here is the lattice of pixel centres of a raster: a resolution and an origin per
spatial axis, read from the 1-D ``x``/``y`` (or ``lon``/``lat``) coordinates, plus the CRS
carried rioxarray-style by a ``spatial_ref`` coordinate. Nothing here reads pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import xarray as xr

from workbench.errors import DimensionError

__all__ = ["Grid", "spatial_dims", "grid_of", "array_namespace", "to_numpy", "with_grid"]

_Y_NAMES = ("y", "lat", "latitude")
_X_NAMES = ("x", "lon", "longitude")


def array_namespace(x: Any) -> ModuleType:
    """Return ``cupy`` for CuPy arrays and ``numpy`` for anything else.

    Examples
    --------
    >>> array_namespace(np.zeros(2)).__name__
    'numpy'
    """
    if type(x).__module__.split(".")[0] == "cupy":  # pragma: no cover - needs a GPU
        import cupy

        return cupy  # type: ignore[no-any-return]
    return np


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a host NumPy array (copies CuPy arrays from the device).

    Examples
    --------
    >>> to_numpy([1, 2]).tolist()
    [1, 2]
    """
    if type(x).__module__.split(".")[0] == "cupy":  # pragma: no cover - needs a GPU
        return x.get()  # type: ignore[no-any-return]
    return np.asarray(x)


def spatial_dims(obj: xr.Dataset | xr.DataArray) -> tuple[str, str]:
    """Return the ``(y, x)`` dimension names of ``obj``.

    Raises
    ------
    DimensionError
        When no y-like (``y``, ``lat``, ``latitude``) or x-like dimension is present.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> spatial_dims(s2_like(time=1, y=4, x=4))
    ('y', 'x')
    """
    dims = [str(d) for d in obj.dims]
    ydim = next((d for d in _Y_NAMES if d in dims), None)
    xdim = next((d for d in _X_NAMES if d in dims), None)
    if ydim is None or xdim is None:
        raise DimensionError(
            f"expected spatial dimensions named one of {_Y_NAMES} and {_X_NAMES}; got dims "
            f"{tuple(dims)}. Rename them, e.g. obj.rename({{'row': 'y', 'col': 'x'}})."
        )
    return ydim, xdim


@dataclass(frozen=True)
class Grid:
    """A regular lattice of pixel centres: ``coord = origin + res * (index)``.

    ``xres`` is positive (west to east); ``yres`` is negative for north-up rasters.
    """

    ydim: str
    xdim: str
    y0: float
    x0: float
    yres: float
    xres: float
    ny: int
    nx: int

    @property
    def ys(self) -> np.ndarray:
        """Pixel-centre y coordinates."""
        return self.y0 + self.yres * np.arange(self.ny)

    @property
    def xs(self) -> np.ndarray:
        """Pixel-centre x coordinates."""
        return self.x0 + self.xres * np.arange(self.nx)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the pixel edges."""
        xe = (self.x0 - self.xres / 2, self.x0 + self.xres * (self.nx - 0.5))
        ye = (self.y0 - self.yres / 2, self.y0 + self.yres * (self.ny - 0.5))
        return min(xe), min(ye), max(xe), max(ye)

    def geotransform(self) -> str:
        """GDAL GeoTransform string of this grid (as rioxarray writes it)."""
        left = self.x0 - self.xres / 2
        top = self.y0 - self.yres / 2
        return f"{left!r} {self.xres!r} 0.0 {top!r} 0.0 {self.yres!r}"


def _axis(values: np.ndarray, name: str, fallback: float | None) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise DimensionError(f"dimension {name!r} is empty; a grid needs at least one pixel")
    if values.size == 1:
        if fallback is None:
            raise DimensionError(
                f"cannot infer the pixel size along {name!r} from a single coordinate; "
                "give a GeoTransform (spatial_ref attribute) or at least two pixels"
            )
        return float(values[0]), fallback
    steps = np.diff(values)
    res = float(np.median(steps))
    if res == 0 or not np.allclose(steps, res, rtol=1e-6, atol=abs(res) * 1e-6):
        raise DimensionError(
            f"coordinate {name!r} is not a regular grid (steps from {steps.min()} to "
            f"{steps.max()}); resample it onto a regular grid first"
        )
    return float(values[0]), res


def _geotransform_res(obj: xr.Dataset | xr.DataArray) -> tuple[float, float] | None:
    if "spatial_ref" not in obj.coords:
        return None
    gt = obj.coords["spatial_ref"].attrs.get("GeoTransform")
    if not gt:
        return None
    parts = [float(p) for p in str(gt).split()]
    return parts[5], parts[1]


def grid_of(obj: xr.Dataset | xr.DataArray) -> Grid:
    """Read the pixel-centre grid of ``obj`` from its spatial coordinates.

    Raises
    ------
    DimensionError
        When spatial dimensions are missing or their coordinates are not regular.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> g = grid_of(s2_like(time=1, y=4, x=4))
    >>> g.xres, g.yres, g.nx
    (10.0, -10.0, 4)
    """
    ydim, xdim = spatial_dims(obj)
    fallback = _geotransform_res(obj)
    y0, yres = _axis(obj[ydim].values, ydim, fallback[0] if fallback else None)
    x0, xres = _axis(obj[xdim].values, xdim, fallback[1] if fallback else None)
    return Grid(ydim, xdim, y0, x0, yres, xres, int(obj.sizes[ydim]), int(obj.sizes[xdim]))


def with_grid(
    obj: xr.Dataset | xr.DataArray,
    like: xr.Dataset | xr.DataArray,
    grid: Grid,
    ys: np.ndarray | None = None,
    xs: np.ndarray | None = None,
) -> xr.Dataset | xr.DataArray:
    """Set ``grid``'s coordinates on ``obj`` and carry ``like``'s CRS (``spatial_ref``).

    A CRS that ``like`` (or ``obj``) holds elsewhere (a ``crs`` attribute...) is written as a
    ``spatial_ref`` coordinate, so the result has it once, where every later step finds it.

    ``ys``/``xs`` override the computed centres (to reuse a source's exact float values). The
    coordinate attributes of ``like`` are kept; the GeoTransform of ``spatial_ref`` is
    rewritten for the new grid so rioxarray reads the right transform.
    """
    ys = grid.ys if ys is None else ys
    xs = grid.xs if xs is None else xs
    coords: dict[str, Any] = {
        grid.ydim: (grid.ydim, ys, dict(like[grid.ydim].attrs) if grid.ydim in like.coords else {}),
        grid.xdim: (grid.xdim, xs, dict(like[grid.xdim].attrs) if grid.xdim in like.coords else {}),
    }
    out = obj.assign_coords(coords)
    if "spatial_ref" in like.coords:
        ref = like.coords["spatial_ref"].copy()
        if "GeoTransform" in ref.attrs or "crs_wkt" in ref.attrs or "spatial_ref" in ref.attrs:
            ref.attrs = {**ref.attrs, "GeoTransform": grid.geotransform()}
        return out.assign_coords(spatial_ref=ref)
    from workbench.geo.crs import find_crs, write_crs

    for source in (like, obj):  # a CRS held in attributes: written as spatial_ref
        crs, where = find_crs(source)
        if crs is not None:
            return write_crs(out, crs) if where != "lonlat" else out  # type: ignore[type-var]
    return out
