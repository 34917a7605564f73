"""Pixel lattices of bands, and the one grid that bands of different resolutions land on.

A :class:`Lattice` is the grid of one band file: CRS, first pixel centre, signed pixel size
and shape (read from coordinates, no pixel). :func:`target_lattice` chooses the common grid
for ``resolution=`` (metres, or a band name to take the grid of): the pixel size asked, on
the lattice of a band that has it, over the extent every band covers. :func:`onto` puts one
band on it: a lazy window when the band already lies on that lattice, else the window it
needs is read and resampled by :func:`workbench.composites.resample.resample_to`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj
import xarray as xr

from workbench.composites.resample import DOWN_METHODS, UP_METHODS, resample_to
from workbench.data.naming import is_categorical
from workbench.errors import CRSError, DimensionError
from workbench.geo.crs import get_crs, pixel_centers, pixel_size, spatial_dims, write_crs

__all__ = ["Lattice", "target_lattice", "onto", "describe_lattices", "choose_method", "warp"]

#: Pixel sizes within this share of each other are the same resolution (9.995 m is 10 m).
RES_TOLERANCE = 0.01
_EPS = 1e-6


@dataclass(frozen=True)
class Lattice:
    """A regular pixel grid: first pixel centre ``(x0, y0)``, step ``(dx, dy)``, shape, CRS."""

    crs: pyproj.CRS | None
    x0: float
    y0: float
    dx: float
    dy: float
    nx: int
    ny: int
    ydim: Hashable = "y"
    xdim: Hashable = "x"

    @classmethod
    def of(cls, obj: xr.Dataset | xr.DataArray) -> Lattice:
        """Read the lattice of ``obj`` from its spatial coordinates and CRS."""
        ydim, xdim = spatial_dims(obj)
        x, y = pixel_centers(obj)
        dx, dy = pixel_size(obj)
        if dx == 0 or dy == 0:
            raise DimensionError(
                f"cannot tell the pixel size of a raster with sizes {dict(obj.sizes)}: "
                "it needs two pixels along x and y, or a GeoTransform"
            )
        return cls(get_crs(obj), float(x[0]), float(y[0]), dx, dy, x.size, y.size, ydim, xdim)

    @property
    def res(self) -> float:
        """Pixel size (mean of ``|dx|`` and ``|dy|``)."""
        return (abs(self.dx) + abs(self.dy)) / 2

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(west, south, east, north)`` of the pixel edges."""
        xs = (self.x0 - self.dx / 2, self.x0 + self.dx * (self.nx - 0.5))
        ys = (self.y0 - self.dy / 2, self.y0 + self.dy * (self.ny - 0.5))
        return min(xs), min(ys), max(xs), max(ys)

    def same_crs(self, other: Lattice) -> bool:
        """Whether both have the same CRS (or neither has one)."""
        if self.crs is None or other.crs is None:
            return self.crs is other.crs
        return bool(self.crs.equals(other.crs))

    def aligned(self, other: Lattice) -> bool:
        """Whether ``other``'s pixels are pixels of this lattice (same step, whole offsets)."""
        if not self.same_crs(other):
            return False
        if abs(self.dx - other.dx) > _EPS * abs(self.dx) or abs(self.dy - other.dy) > _EPS * abs(
            self.dy
        ):
            return False
        ox, oy = (other.x0 - self.x0) / self.dx, (other.y0 - self.y0) / self.dy
        return abs(ox - round(ox)) < 1e-3 and abs(oy - round(oy)) < 1e-3

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Lattice):
            return NotImplemented
        return (
            self.aligned(other)
            and (self.nx, self.ny) == (other.nx, other.ny)
            and abs(self.x0 - other.x0) < 1e-3 * abs(self.dx)
            and abs(self.y0 - other.y0) < 1e-3 * abs(self.dy)
        )

    def __hash__(self) -> int:
        return hash((self.nx, self.ny, round(self.dx, 6), round(self.dy, 6)))

    def window(self, bounds: tuple[float, float, float, float]) -> tuple[slice, slice]:
        """``(rows, cols)`` of the pixels lying wholly inside ``bounds`` (edges)."""
        west, south, east, north = bounds

        def span(origin: float, step: float, lo: float, hi: float, n: int) -> slice:
            edge = origin - step / 2  # edge of pixel 0 on the side it starts
            a, b = (lo - edge) / step, (hi - edge) / step
            first, last = (a, b) if step > 0 else (b, a)
            return slice(max(0, math.ceil(first - 1e-6)), min(n, math.floor(last + 1e-6)))

        return (
            span(self.y0, self.dy, south, north, self.ny),
            span(self.x0, self.dx, west, east, self.nx),
        )

    def sub(self, rows: slice, cols: slice) -> Lattice:
        """Return the lattice of the window ``rows, cols``."""
        r0, c0 = rows.start or 0, cols.start or 0
        return Lattice(
            self.crs, self.x0 + c0 * self.dx, self.y0 + r0 * self.dy, self.dx, self.dy,
            cols.stop - c0, rows.stop - r0, self.ydim, self.xdim,
        )  # fmt: skip

    def template(self) -> xr.Dataset:
        """Return a pixel-less Dataset with this lattice's coordinates and CRS (a target)."""
        coords = {
            self.ydim: (self.ydim, self.y0 + self.dy * np.arange(self.ny)),
            self.xdim: (self.xdim, self.x0 + self.dx * np.arange(self.nx)),
        }
        ds = xr.Dataset(coords=coords)
        return write_crs(ds, self.crs) if self.crs is not None else ds


def describe_lattices(lattices: Mapping[str, Lattice]) -> str:
    """Group band names by pixel size and extent: ``"10 m: B02, B03 (100 x 101 px, ...)"``."""
    groups: dict[tuple[float, tuple[float, ...]], list[str]] = {}
    for name, lat in lattices.items():
        key = (round(lat.res, 3), tuple(round(v, 1) for v in lat.bounds))
        groups.setdefault(key, []).append(name)
    parts = []
    for (res, bounds), names in sorted(groups.items()):
        w, s, e, n = bounds
        lat = lattices[names[0]]
        parts.append(
            f"{res:g} m: {', '.join(names)} ({lat.nx} x {lat.ny} px, x {w:.10g}..{e:.10g}, "
            f"y {s:.10g}..{n:.10g})"
        )
    return "; ".join(parts)


def _intersection(lattices: Sequence[Lattice]) -> tuple[float, float, float, float]:
    bounds = np.array([lat.bounds for lat in lattices])
    west, south = bounds[:, 0].max(), bounds[:, 1].max()
    east, north = bounds[:, 2].min(), bounds[:, 3].min()
    return float(west), float(south), float(east), float(north)


def target_lattice(lattices: Mapping[str, Lattice], resolution: float | str) -> Lattice:
    """Return the common grid of bands for ``resolution`` (metres or a band name).

    The lattice of the named band (``"finest"``: of the band with the smallest pixels), or of
    the largest band whose pixel size is ``resolution`` (within :data:`RES_TOLERANCE`), else a
    lattice of that pixel size anchored at the north-west corner; cut to the pixels that lie
    inside every band's extent.

    Raises
    ------
    CRSError
        Bands in different CRSs.
    DimensionError
        An unknown band name, a non-positive resolution, or bands that do not overlap.
    """
    items = list(lattices.items())
    first = items[0][1]
    other = next(((n, lat) for n, lat in items if not lat.same_crs(first)), None)
    if other is not None:
        raise CRSError(
            f"the bands are in different CRSs ({items[0][0]}: "
            f"{first.crs.to_string() if first.crs else None}, {other[0]}: "
            f"{other[1].crs.to_string() if other[1].crs else None}); open them as scenes of a "
            "collection with workbench.open_collection(..., crs=...) to warp them to one CRS"
        )
    if resolution == "finest":
        anchor = min((lat for _, lat in items), key=lambda lat: (lat.res, -lat.nx * lat.ny))
    elif isinstance(resolution, str):
        if resolution not in lattices:
            raise DimensionError(
                f"resolution={resolution!r} names no band; the bands are {list(lattices)} "
                "(or give the pixel size in metres, e.g. resolution=10)"
            )
        anchor = lattices[resolution]
    else:
        res = float(resolution)
        if not res > 0 or not math.isfinite(res):
            raise DimensionError(f"resolution must be a positive pixel size, got {resolution!r}")
        fits = [
            lat
            for _, lat in items
            if abs(abs(lat.dx) - res) <= RES_TOLERANCE * res
            and abs(abs(lat.dy) - res) <= RES_TOLERANCE * res
        ]
        if fits:
            anchor = max(fits, key=lambda lat: lat.nx * lat.ny)
        else:
            west, _, _, north = _intersection([lat for _, lat in items])
            anchor = Lattice(
                first.crs, west + res / 2, north - res / 2, res, -res, 1, 1, first.ydim, first.xdim
            )
    area = _intersection([lat for _, lat in items])
    x0, nx = _snap(anchor.x0, anchor.dx, area[0], area[2])
    y0, ny = _snap(anchor.y0, anchor.dy, area[1], area[3])
    if area[0] >= area[2] or area[1] >= area[3] or nx < 1 or ny < 1:
        raise DimensionError(
            f"no {anchor.res:g} m pixel lies inside the area every band covers (do the bands "
            "overlap?): " + describe_lattices(lattices)
        )
    return Lattice(anchor.crs, x0, y0, anchor.dx, anchor.dy, nx, ny, anchor.ydim, anchor.xdim)


def _snap(centre: float, step: float, lo: float, hi: float) -> tuple[float, int]:
    """First pixel centre (in ``step``'s direction) and count of the lattice pixels in [lo, hi]."""
    size = abs(step)
    edge = centre - size / 2  # lower edge of the pixel centred at ``centre``
    k0 = math.ceil((lo - edge) / size - 1e-6)
    k1 = math.floor((hi - edge) / size + 1e-6)
    first = edge + (k0 + 0.5) * size if step > 0 else edge + (k1 - 0.5) * size
    return first, k1 - k0


def choose_method(
    name: str, attrs: Mapping[Any, Any], src: Lattice, dst: Lattice, override: Any
) -> str:
    """Return the resampling method of one band.

    The override, else ``nearest`` for masks and classes, ``bilinear`` to a finer grid,
    ``average`` to a coarser one.

    Raises
    ------
    DimensionError
        An unknown method name.
    """
    chosen = override.get(name) if isinstance(override, Mapping) else override
    if chosen is None:
        if is_categorical(name, dict(attrs)):
            chosen = "nearest"
        else:
            chosen = "bilinear" if src.res > dst.res * (1 + 1e-6) else "average"
    valid = sorted(set(UP_METHODS + DOWN_METHODS))
    if chosen not in valid:
        raise DimensionError(f"unknown resampling {chosen!r} for band {name!r}; use one of {valid}")
    return str(chosen)


def onto(arr: xr.DataArray, src: Lattice, dst: Lattice, method: str) -> tuple[xr.DataArray, bool]:
    """Put ``arr`` (on ``src``) onto ``dst``; returns the array and whether it was resampled.

    A band already on ``dst``'s lattice is cut lazily (nothing read); any other reads the
    window of ``dst`` (plus a two-pixel margin) and resamples it.
    """
    ydim, xdim = src.ydim, src.xdim
    col0 = round((dst.x0 - src.x0) / src.dx)
    row0 = round((dst.y0 - src.y0) / src.dy)
    inside = col0 >= 0 and col0 + dst.nx <= src.nx and row0 >= 0 and row0 + dst.ny <= src.ny
    if src.aligned(dst) and inside:
        out = arr.isel({ydim: slice(row0, row0 + dst.ny), xdim: slice(col0, col0 + dst.nx)})
        grid = dst.template()
        return out.assign_coords({ydim: grid[dst.ydim].values, xdim: grid[dst.xdim].values}), False
    west, south, east, north = dst.bounds
    mx, my = 2 * abs(src.dx), 2 * abs(src.dy)
    rows, cols = src.window((west - mx, south - my, east + mx, north + my))
    rows = slice(max(0, rows.start - 1), min(src.ny, rows.stop + 1))
    cols = slice(max(0, cols.start - 1), min(src.nx, cols.stop + 1))
    piece = arr.isel({ydim: rows, xdim: cols}).load()
    if src.crs is not None and get_crs(piece) is None:
        piece = write_crs(piece, src.crs)
    like = dst.template().rename({dst.ydim: ydim, dst.xdim: xdim})
    out = resample_to(piece, like, method)
    if method == "nearest" and arr.dtype.kind in "iub" and not bool(np.isnan(out.values).any()):
        out = out.astype(arr.dtype)
    return out, True


def warp(
    ds: xr.Dataset,
    crs: Any,
    resolution: float | None = None,
    resampling: str | Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Reproject ``ds`` into ``crs`` on a lattice of ``resolution`` anchored at the CRS origin.

    The lattice's pixel edges are whole multiples of ``resolution`` (as odc-stac aligns), so
    every scene warped into one CRS at one resolution lies on the same lattice. Without
    ``resolution``, the pixel keeps its area. Masks and classes use ``nearest``, other bands
    ``bilinear`` (or ``average`` to a coarser grid); ``resampling`` overrides. Pixels are read
    (every spatial variable) and warped by GDAL through
    :func:`workbench.composites.resample.resample_to`.

    Raises
    ------
    CRSError
        ``ds`` has no CRS, or ``crs`` is not one.
    """
    from workbench.geo.crs import as_crs, require_crs, transform_bounds

    src = Lattice.of(ds)
    source_crs = require_crs(ds, "warping to another CRS")
    target_crs = as_crs(crs)
    bounds = transform_bounds(src.bounds, source_crs, target_crs)
    if resolution is None:
        area = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1])
        resolution = math.sqrt(area / (src.nx * src.ny))
    res = float(resolution)
    if not res > 0:
        raise DimensionError(f"resolution must be a positive pixel size, got {resolution!r}")
    left, top = math.floor(bounds[0] / res) * res, math.ceil(bounds[3] / res) * res
    nx = max(1, math.ceil((bounds[2] - left) / res - 1e-9))
    ny = max(1, math.ceil((top - bounds[1]) / res - 1e-9))
    dst = Lattice(target_crs, left + res / 2, top - res / 2, res, -res, nx, ny, src.ydim, src.xdim)
    if src.same_crs(dst) and src == dst:
        return ds
    # the source pixel size in the target's units, to tell up- from down-sampling
    native = src.bounds
    scale = math.sqrt(
        (bounds[2] - bounds[0])
        * (bounds[3] - bounds[1])
        / ((native[2] - native[0]) * (native[3] - native[1]))
    )
    src = Lattice(
        source_crs, src.x0 * scale, src.y0 * scale, src.dx * scale, src.dy * scale,
        src.nx, src.ny, src.ydim, src.xdim,
    )  # fmt: skip
    like = dst.template()
    out: dict[Hashable, xr.DataArray] = {}
    for name, var in ds.data_vars.items():
        if not {src.ydim, src.xdim} <= set(var.dims):
            continue
        method = choose_method(str(name), var.attrs, src, dst, resampling)
        piece = var.load()
        if get_crs(piece) is None:
            piece = write_crs(piece, source_crs)
        warped = resample_to(piece, like, method)
        if method == "nearest" and var.dtype.kind in "iub" and not np.isnan(warped.values).any():
            warped = warped.astype(var.dtype)
        warped.attrs = {**var.attrs, "resampling": method}
        out[name] = warped
    result = xr.Dataset(out, attrs=dict(ds.attrs))
    keep = {n: c for n, c in ds.coords.items() if not {src.ydim, src.xdim} & set(c.dims)}
    result = result.assign_coords({k: v for k, v in keep.items() if k != "spatial_ref"})
    return write_crs(result, target_crs)
