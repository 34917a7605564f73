"""Split a datacube into per-geocode pieces, lazily and consistently across variables.

Every pixel goes to the geocode cell that holds its centre (lon/lat of the centre, computed
from the coordinates and the CRS: no pixel is read). A piece is the ``isel`` view of the
bounding pixel window of one cell, so all variables and bands that share the spatial dims are
cut the same way. On a lon/lat grid the cell edges follow the pixel rows and columns and the
windows tile the grid exactly; on a projected grid (UTM...) cell edges cross the pixel rows
obliquely, neighbouring windows overlap a little, and :meth:`Partitions.mask` (or
``apply_mask=True``) tells which pixels of a window belong to the cell, so that every pixel
belongs to exactly one piece.

Examples
--------
>>> from workbench.data.synthetic import era5_like
>>> ds = era5_like(time=2, lat=8, lon=12, bbox=(-10, 50, 2, 58))
>>> parts = partition(ds, "geohash", 2)
>>> parts.codes
('gb', 'gc', 'gf', 'u0', 'u1', 'u4')
>>> parts["u1"].sizes  # an isel view: lat x lon window of the cell, all times
Frozen({'time': 2, 'lat': 5, 'lon': 2})
>>> sum(parts.pixel_count(c) for c in parts) == 8 * 12
True
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from workbench.geo import geohash, quadkey
from workbench.geo.cover import _check_scheme
from workbench.geo.schemes import get_scheme

if TYPE_CHECKING:
    import pyproj
    import xarray as xr
    from shapely.geometry.base import BaseGeometry

    from workbench._typing import Bounds

__all__ = ["partition", "Partitions"]

T = TypeVar("T", "xr.Dataset", "xr.DataArray")

#: Pixels whose lon/lat are computed at once while planning a projected grid.
_BLOCK_PIXELS = 1 << 20
#: Windows at least this large are transformed on a lattice and interpolated (see _Grid.keys).
_MIN_INTERPOLATED_PIXELS = 4096
#: Pixels between exactly transformed lattice points, tried in turn.
_LATTICE_STEPS = (16, 4)
#: Quadkey zooms beyond this do not fit the packed 64-bit cell key (tiles of ~2 cm anyway).
_MAX_PARTITION_ZOOM = 31


@dataclass(frozen=True, eq=False)
class _Grid:
    """What is needed to compute the cell of any pixel: centres, CRS and geocode scheme."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    crs: pyproj.CRS | None  # None: plain lon/lat degrees (separable cells)
    scheme: str
    precision: int

    def cells(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``(row-like, column-like)`` integer cell indices of points."""
        if self.scheme == "geohash":
            return geohash._cell_index(lat, lon, self.precision)
        return quadkey._tile_index(lat, lon, self.precision)

    def lonlat(self, rows: slice, cols: slice) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Pixel-centre ``(lon, lat)`` of a window, 2-D, exact (one transform per pixel)."""
        return self._transform(*np.meshgrid(self.x[cols], self.y[rows]))

    def _transform(
        self, xx: NDArray[np.float64], yy: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if self.crs is None:
            return _wrap_lon(xx), np.clip(yy, -90.0, 90.0)
        from workbench.geo.crs import xy_to_lonlat

        lon, lat = xy_to_lonlat(xx, yy, self.crs)
        return lon, np.clip(lat, -90.0, 90.0)

    def keys(self, rows: slice, cols: slice) -> NDArray[np.int64]:
        """Packed cell key ``(a << 32) | b`` of every pixel of a window.

        Large projected windows are transformed on a coarse lattice and interpolated; pixels
        within ``tol`` of a cell edge are then transformed exactly, so the result equals the
        exact per-pixel computation (the interpolation error is checked to stay under tol / 4).
        """
        xs, ys = self.x[cols], self.y[rows]
        fast = None if self.crs is None else _interpolated_lonlat(self, xs, ys)
        if fast is None:
            lon, lat = self._transform(*np.meshgrid(xs, ys))
            a, b = self.cells(lat, lon)
            return (a << 32) | b
        lon, lat, tol = fast
        a, b = self.cells(lat, lon)
        near = self.near_edge(lat, lon, tol)
        if near.any():
            iy, ix = np.nonzero(near)
            lon_e, lat_e = self._transform(xs[ix], ys[iy])
            a[near], b[near] = self.cells(lat_e, lon_e)
        return (a << 32) | b

    def tolerance(self, lat: NDArray[np.float64]) -> float:
        """Degrees: 1/1000 of the smallest cell side over the latitudes ``lat``."""
        if self.scheme == "geohash":
            return 1e-3 * min(geohash.cell_size(self.precision))
        coslat = float(np.cos(np.radians(min(float(np.abs(lat).max()), quadkey.MAX_LATITUDE))))
        return 1e-3 * 360.0 / 2.0**self.precision * coslat

    def near_edge(
        self, lat: NDArray[np.float64], lon: NDArray[np.float64], tol: float
    ) -> NDArray[np.bool_]:
        """Whether points lie within ``tol`` degrees of a cell edge."""
        if self.scheme == "geohash":
            height, width = geohash.cell_size(self.precision)
            u, v = (lon + 180.0) / width, (lat + 90.0) / height
            return (np.abs(u - np.round(u)) * width < tol) | (
                np.abs(v - np.round(v)) * height < tol
            )
        z2 = 2.0**self.precision
        u = (lon / 360.0 + 0.5 + quadkey._EPSILON) * z2
        with np.errstate(divide="ignore", invalid="ignore"):
            sinlat = np.sin(np.radians(lat))
            y = 0.5 - 0.25 * np.log((1.0 + sinlat) / (1.0 - sinlat)) / np.pi
            v = (y + quadkey._EPSILON) * z2
            tol_v = tol * z2 / (360.0 * np.cos(np.radians(lat)))
            near_v = ~np.isfinite(v) | (np.abs(v - np.round(v)) < tol_v)
        return (np.abs(u - np.round(u)) < tol * z2 / 360.0) | near_v

    def format(self, keys: NDArray[np.int64]) -> NDArray[np.str_]:
        a, b = keys >> 32, keys & 0xFFFFFFFF
        fmt = geohash._format if self.scheme == "geohash" else quadkey._format
        return fmt(a, b, self.precision)


def _wrap_lon(lon: NDArray[np.float64]) -> NDArray[np.float64]:
    """Longitudes beyond [-180, 180] (e.g. 0..360 grids) wrapped into it; others untouched."""
    return np.where((lon < -180.0) | (lon > 180.0), (lon + 180.0) % 360.0 - 180.0, lon)


def _lerp_weights(n: int, knots: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Segment index and weight of positions ``0..n-1`` between sorted lattice ``knots``."""
    pos = np.arange(n)
    seg = np.clip(np.searchsorted(knots, pos, side="right") - 1, 0, knots.size - 2)
    return seg, (pos - knots[seg]) / (knots[seg + 1] - knots[seg])


def _bilinear(
    values: NDArray[np.float64], rows: tuple[Any, Any], cols: tuple[Any, Any]
) -> NDArray[np.float64]:
    (rs, rw), (cs, cw) = rows, cols
    along = values[:, cs] * (1.0 - cw) + values[:, cs + 1] * cw
    out: NDArray[np.float64] = along[rs] * (1.0 - rw)[:, None] + along[rs + 1] * rw[:, None]
    return out


def _interpolated_lonlat(
    grid: _Grid, xs: NDArray[np.float64], ys: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], float] | None:
    """Lon/lat of a projected window from an exactly transformed lattice, or None to go exact.

    Tries lattices of every 16th, then every 4th pixel; accepts one when the error measured
    at the lattice's cell midpoints stays under a quarter of the edge tolerance.
    """
    ny, nx = ys.size, xs.size
    if ny * nx < _MIN_INTERPOLATED_PIXELS or ny < 3 or nx < 3:
        return None
    for step in _LATTICE_STEPS:
        ri = np.unique(np.r_[np.arange(0, ny, step), ny - 1])
        ci = np.unique(np.r_[np.arange(0, nx, step), nx - 1])
        if ri.size < 2 or ci.size < 2 or ri.size * ci.size * 4 > ny * nx:
            return None
        lon_l, lat_l = grid._transform(*np.meshgrid(xs[ci], ys[ri]))
        if not (np.isfinite(lon_l).all() and np.isfinite(lat_l).all()):
            return None
        crosses = float(lon_l.max() - lon_l.min()) > 180.0  # the antimeridian: unwrap first
        if crosses:
            lon_l = np.where(lon_l < 0, lon_l + 360.0, lon_l)
        wr, wc = _lerp_weights(ny, ri), _lerp_weights(nx, ci)
        lon, lat = _bilinear(lon_l, wr, wc), _bilinear(lat_l, wr, wc)
        # check at up to 8 x 8 lattice-cell midpoints, where linear interpolation is worst
        mr = ((ri[:-1] + ri[1:]) // 2)[np.linspace(0, ri.size - 2, min(8, ri.size - 1)).astype(int)]
        mc = ((ci[:-1] + ci[1:]) // 2)[np.linspace(0, ci.size - 2, min(8, ci.size - 1)).astype(int)]
        lon_m, lat_m = grid._transform(*np.meshgrid(xs[mc], ys[mr]))
        if crosses:
            lon_m = np.where(lon_m < 0, lon_m + 360.0, lon_m)
        err = max(
            float(np.abs(lon[np.ix_(mr, mc)] - lon_m).max()),
            float(np.abs(lat[np.ix_(mr, mc)] - lat_m).max()),
        )
        tol = grid.tolerance(lat_l)
        if err < tol / 4:
            if crosses:
                lon = (lon + 180.0) % 360.0 - 180.0
            return lon, lat, tol
    return None


def _groups(index: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For a 1-D cell index per row (or column): unique cells and ``(start, stop, count)``."""
    values = np.unique(index)
    out = np.empty((values.size, 3), dtype=np.int64)
    for i, value in enumerate(values.tolist()):
        where = np.flatnonzero(index == value)
        out[i] = (where[0], where[-1] + 1, where.size)
    return values, out


#: A plan: packed cell keys, ``(row start, row stop, col start, col stop)`` windows, pixel counts.
_Plan = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]


def _plan_separable(grid: _Grid) -> _Plan:
    """Lon/lat grids: cells are products of row groups and column groups."""
    lat = np.clip(grid.y, -90.0, 90.0)
    lon = _wrap_lon(grid.x)
    a, rows = _groups(grid.cells(lat, np.zeros_like(lat))[0])
    b, cols = _groups(grid.cells(np.zeros_like(lon), lon)[1])
    ia, ib = (m.ravel() for m in np.meshgrid(np.arange(a.size), np.arange(b.size), indexing="ij"))
    keys = (a[ia] << 32) | b[ib]
    windows = np.column_stack([rows[ia, 0], rows[ia, 1], cols[ib, 0], cols[ib, 1]])
    return keys, windows, rows[ia, 2] * cols[ib, 2]


def _plan_blocks(grid: _Grid, block_pixels: int) -> _Plan:
    """Projected grids: per-pixel cells, a block of rows at a time (bounded memory)."""
    ny, nx = grid.y.size, grid.x.size
    step = max(1, block_pixels // max(nx, 1))
    parts: list[NDArray[np.int64]] = []  # per block: (key, rmin, rmax, cmin, cmax, count) rows
    for r0 in range(0, ny, step):
        r1 = min(ny, r0 + step)
        parts.append(_window_stats(grid.keys(slice(r0, r1), slice(None)), r0))
    stats = np.concatenate(parts)
    # merge the blocks: a cell spanning several blocks has one row per block
    stats = stats[np.argsort(stats[:, 0], kind="stable")]
    starts = np.flatnonzero(np.r_[True, stats[1:, 0] != stats[:-1, 0]])
    windows = np.column_stack(
        [
            np.minimum.reduceat(stats[:, 1], starts),
            np.maximum.reduceat(stats[:, 2], starts) + 1,
            np.minimum.reduceat(stats[:, 3], starts),
            np.maximum.reduceat(stats[:, 4], starts) + 1,
        ]
    )
    return stats[starts, 0], windows, np.add.reduceat(stats[:, 5], starts)


def _window_stats(keys: NDArray[np.int64], row0: int) -> NDArray[np.int64]:
    """``(key, rmin, rmax, cmin, cmax, count)`` of each cell in a block of rows."""
    nx = keys.shape[1]
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_keys = flat[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    rows = (order // nx + row0).astype(np.int64)
    cols = (order % nx).astype(np.int64)
    return np.column_stack(
        [
            sorted_keys[starts],
            np.minimum.reduceat(rows, starts),
            np.maximum.reduceat(rows, starts),
            np.minimum.reduceat(cols, starts),
            np.maximum.reduceat(cols, starts),
            np.diff(np.r_[starts, flat.size]),
        ]
    )


def partition(
    obj: T,
    scheme: str = "geohash",
    precision: int = 5,
    *,
    apply_mask: bool = False,
    crs: Any = None,
    block_pixels: int = _BLOCK_PIXELS,
) -> Partitions[T]:
    """Split ``obj`` into per-geocode pieces (lazy ``isel`` views), planned from coordinates.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A cube with a CRS (lon/lat coordinates, a ``spatial_ref`` grid mapping or a ``crs``
        attribute) and y/x-like spatial dims. Other dims (time, band) are kept whole.
    scheme : {"geohash", "quadkey"}
        Geocode scheme.
    precision : int, default 5
        Geohash length (1..12) or quadkey zoom (1..31).
    apply_mask : bool, default False
        Make pieces disjoint: in each piece, pixels whose centre lies outside the cell become
        NaN (variables with both spatial dims only; integer and boolean variables are promoted
        to float by :meth:`xarray.DataArray.where`). Masking happens when a piece is taken.
    crs : pyproj.CRS, str or int, optional
        The data's CRS when ``obj`` does not record one (e.g. a variable taken out of a Dataset
        whose ``spatial_ref`` is a data variable); by default read from ``obj``.
    block_pixels : int
        Pixels transformed at once while planning a projected grid (memory bound).

    Returns
    -------
    Partitions
        A read-only mapping ``geocode -> piece`` with ``codes``, ``slices``, ``bounds``,
        ``coverage``, ``mask`` and ``pixel_count``.

    Raises
    ------
    GeocodeError
        For an unknown scheme or a bad precision.
    CRSError, DimensionError
        If the CRS or the spatial dims cannot be found.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> s2 = s2_like(time=1, y=100, x=100)
    >>> parts = partition(s2, "geohash", 6)
    >>> sum(parts.pixel_count(c) for c in parts) == 100 * 100
    True
    """
    from workbench.geo.crs import LONLAT, as_crs, pixel_centers, require_crs, spatial_dims

    _check_scheme(scheme)
    if scheme == "geohash":
        precision = geohash._check_precision(precision, geohash.MAX_PRECISION)
    else:
        precision = geohash._check_precision(
            precision, _MAX_PARTITION_ZOOM, "quadkey zoom (precision)"
        )
    ydim, xdim = spatial_dims(obj)
    data_crs = require_crs(obj, "partitioning by geocode") if crs is None else as_crs(crs)
    x, y = pixel_centers(obj)
    lonlat = bool(data_crs.is_geographic) and data_crs.equals(LONLAT, ignore_axis_order=True)
    grid = _Grid(x=x, y=y, crs=None if lonlat else data_crs, scheme=scheme, precision=precision)
    plan = _plan_separable(grid) if grid.crs is None else _plan_blocks(grid, block_pixels)
    return Partitions(obj, grid, (ydim, xdim), plan, apply_mask=apply_mask)


class Partitions(Mapping[str, T], Generic[T]):
    """Per-geocode pieces of a cube: a read-only ``Mapping[str, xarray object]``.

    Built by :func:`partition` (or ``obj.wb.partition(...)``); keys are the geocodes of the
    cells holding at least one pixel centre, sorted. Nothing is read until a piece's values are.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> parts = partition(s2_like(time=1, y=100, x=100), "geohash", 7)
    >>> code = parts.codes[0]
    >>> piece = parts[code]
    >>> window = {d: s.stop - s.start for d, s in parts.slices(code).items()}
    >>> all(piece.sizes[d] == n for d, n in window.items())
    True
    >>> 0.0 < parts.coverage(code) <= 1.0
    True
    """

    def __init__(
        self,
        obj: T,
        grid: _Grid,
        dims: tuple[Hashable, Hashable],
        plan: _Plan,
        *,
        apply_mask: bool = False,
    ) -> None:
        self._obj: T = obj
        self._grid = grid
        self._dims = dims
        keys, windows, counts = plan
        codes = grid.format(keys) if keys.size else np.array([], dtype="<U1")
        order = np.argsort(codes, kind="stable")
        # arrays, not per-code Python objects: a fine partition may have millions of pieces
        self._code_array: NDArray[np.str_] = codes[order]
        self._keys = keys[order]
        self._windows = windows[order]
        self._counts = counts[order]
        self._codes: tuple[str, ...] | None = None
        self._apply_mask = bool(apply_mask)
        self._footprint: BaseGeometry | None = None

    # -- Mapping --------------------------------------------------------------------------
    def __getitem__(self, code: str) -> T:
        rows, cols = self._window(code)
        piece: Any = self._obj.isel({self._dims[0]: rows, self._dims[1]: cols})
        if self._apply_mask:
            mask = self.mask(code)
            if hasattr(piece, "data_vars"):
                spatial = [n for n, v in piece.data_vars.items() if set(self._dims) <= set(v.dims)]
                piece = piece.assign({n: piece[n].where(mask) for n in spatial})
            else:
                piece = piece.where(mask)
        return cast("T", piece)

    def __iter__(self) -> Iterator[str]:
        return iter(self.codes)

    def __len__(self) -> int:
        return int(self._code_array.size)

    def __contains__(self, code: object) -> bool:
        return self._index(code) is not None

    def __repr__(self) -> str:
        ny, nx = self._grid.y.size, self._grid.x.size
        shown = ", ".join(self._code_array[:6].tolist()) + (", ..." if len(self) > 6 else "")
        return (
            f"<Partitions {self._grid.scheme}-{self._grid.precision}: {len(self)} pieces of "
            f"{self._dims[0]} x {self._dims[1]} = {ny} x {nx} [{shown}]"
            f"{' masked' if self._apply_mask else ''}>"
        )

    # -- planning information (no pixel read) ---------------------------------------------
    @property
    def codes(self) -> tuple[str, ...]:
        """Geocodes of the pieces, sorted."""
        if self._codes is None:
            self._codes = tuple(self._code_array.tolist())
        return self._codes

    @property
    def scheme(self) -> str:
        """``"geohash"`` or ``"quadkey"``."""
        return self._grid.scheme

    @property
    def precision(self) -> int:
        """Geohash length or quadkey zoom."""
        return self._grid.precision

    @property
    def dims(self) -> tuple[Hashable, Hashable]:
        """The ``(y, x)`` dims that are cut."""
        return self._dims

    @property
    def apply_mask(self) -> bool:
        """Whether pieces have pixels outside their cell set to NaN."""
        return self._apply_mask

    def _index(self, code: object) -> int | None:
        if not isinstance(code, str) or not self._code_array.size:
            return None
        i = int(np.searchsorted(self._code_array, code))
        return i if i < self._code_array.size and self._code_array[i] == code else None

    def _position(self, code: str) -> int:
        i = self._index(code)
        if i is None:
            raise KeyError(
                f"{code!r} is not a piece of this partition ({len(self)} {self.scheme}-"
                f"{self.precision} codes, e.g. {self._code_array[:3].tolist()})"
            )
        return i

    def _window(self, code: str) -> tuple[slice, slice]:
        r0, r1, c0, c1 = self._windows[self._position(code)].tolist()
        return slice(r0, r1), slice(c0, c1)

    def slices(self, code: str) -> dict[Hashable, slice]:
        """Positional ``{y_dim: slice, x_dim: slice}`` of the piece's pixel window."""
        rows, cols = self._window(code)
        return {self._dims[0]: rows, self._dims[1]: cols}

    def pixel_count(self, code: str) -> int:
        """Return the number of pixels whose centre lies in the cell (the piece's own pixels)."""
        return int(self._counts[self._position(code)])

    def bounds(self, code: str) -> Bounds:
        """``(west, south, east, north)`` of the geocode cell in degrees (not of the window)."""
        self._window(code)
        module = get_scheme(self.scheme).module
        w, s, e, n = module.bounds(code)
        return (float(w), float(s), float(e), float(n))

    def mask(self, code: str) -> xr.DataArray:
        """Boolean ``(y, x)`` DataArray on the piece: True where the pixel centre is in the cell."""
        import xarray as xr

        rows, cols = self._window(code)
        inside = self._grid.keys(rows, cols) == self._keys[self._position(code)]
        ydim, xdim = self._dims
        coords = {
            d: self._obj.coords[d][s]
            for d, s in ((ydim, rows), (xdim, cols))
            if d in self._obj.coords
        }
        return xr.DataArray(inside, dims=(ydim, xdim), coords=coords, name=f"in_{code}")

    def labels(self) -> xr.DataArray:
        """Return the geocode of every pixel, a ``(y, x)`` DataArray of str (computed on demand)."""
        import xarray as xr

        keys = self._grid.keys(slice(None), slice(None))
        ydim, xdim = self._dims
        coords = {d: self._obj.coords[d] for d in (ydim, xdim) if d in self._obj.coords}
        return xr.DataArray(
            self._grid.format(keys), dims=(ydim, xdim), coords=coords, name="geocode"
        )

    def coverage(self, code: str) -> float:
        """Share (0..1) of the geocode cell's area covered by the data's pixels.

        The intersection of the cell with the grid's footprint (the outline of its pixel edges,
        transformed to lon/lat), over the cell's area, both in planar lon/lat degrees; exact for
        lon/lat grids, within ~0.1 % for cells under a degree. Based on the footprint, not on
        pixel values: NaN or no-data pixels count as covered.
        """
        from shapely.affinity import translate
        from shapely.geometry import box

        cell = box(*self.bounds(code))
        footprint = self.footprint()
        covered = sum(
            footprint.intersection(translate(cell, xoff=dx)).area for dx in (-360.0, 0.0, 360.0)
        )
        return float(min(1.0, covered / cell.area))

    def footprint(self) -> BaseGeometry:
        """Return the grid's outline (pixel edges) as a lon/lat polygon (cached)."""
        if self._footprint is None:
            self._footprint = _footprint(self._grid)
        return self._footprint

    def records(self) -> list[dict[str, Any]]:
        """One dict per piece: ``code``, ``slices``, ``bounds``, ``pixel_count``, ``coverage``."""
        return [
            {
                "code": code,
                "slices": self.slices(code),
                "bounds": self.bounds(code),
                "pixel_count": self.pixel_count(code),
                "coverage": self.coverage(code),
            }
            for code in self.codes
        ]


def _edges(centres: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pixel edges from centres (half a step beyond the first and last)."""
    if centres.size < 2:
        return np.array([centres[0], centres[0]], dtype=np.float64)
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def _footprint(grid: _Grid, max_per_side: int = 512) -> BaseGeometry:
    from shapely.geometry import Polygon, box

    xe, ye = _edges(grid.x), _edges(grid.y)
    if grid.crs is None:
        return box(
            float(xe.min()), float(max(ye.min(), -90)), float(xe.max()), float(min(ye.max(), 90))
        )
    import pyproj

    xs = xe[np.unique(np.linspace(0, xe.size - 1, min(xe.size, max_per_side)).astype(int))]
    ys = ye[np.unique(np.linspace(0, ye.size - 1, min(ye.size, max_per_side)).astype(int))]
    ring_x = np.concatenate([xs, np.full(ys.size, xs[-1]), xs[::-1], np.full(ys.size, xs[0])])
    ring_y = np.concatenate([np.full(xs.size, ys[0]), ys, np.full(xs.size, ys[-1]), ys[::-1]])
    transformer = pyproj.Transformer.from_crs(grid.crs, 4326, always_xy=True)
    lon, lat = transformer.transform(ring_x, ring_y)
    return Polygon(np.column_stack([lon, lat])).buffer(0)
