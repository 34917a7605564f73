"""Coordinate reference systems, spatial dims and bounds of xarray objects.

No pixels are read here: everything comes from coordinates and attributes.

The CRS of an object is found, in this order, in

1. a grid-mapping variable (rioxarray's ``spatial_ref`` or a CF ``grid_mapping``) with
   ``crs_wkt`` / ``spatial_ref`` / ``epsg_code`` or CF grid-mapping attributes;
2. a ``crs`` attribute of the object (``"EPSG:32633"``, WKT, PROJ string);
3. lon/lat coordinates (dims named ``lat``/``latitude`` and ``lon``/``longitude``, or
   with ``degrees_north``/``degrees_east`` units): then it is EPSG:4326.

Bounds are ``(west, south, east, north)`` of the pixel *edges* (centres +- half a pixel).
Lon/lat bounds follow the GeoJSON convention (RFC 7946, 5.2): longitudes in
[-180, 180], and ``west > east`` when the extent crosses the antimeridian.

Examples
--------
>>> from workbench.data.synthetic import era5_like, s2_like
>>> ds = era5_like(time=1, lat=8, lon=12)
>>> spatial_dims(ds), get_crs(ds).to_string(), is_lonlat(ds)
(('lat', 'lon'), 'EPSG:4326', True)
>>> lonlat_bounds(ds)
(-10.0, 50.0, 2.0, 58.0)
>>> s2 = s2_like(time=1, y=10, x=10)
>>> get_crs(s2).to_epsg(), native_bounds(s2)
(32633, (465180.0, 5080160.0, 465280.0, 5080260.0))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable
from typing import Any

import numpy as np
import pyproj
import xarray as xr

from workbench._typing import Bounds, XarrayObj
from workbench.errors import CRSError, DimensionError

__all__ = [
    "LONLAT",
    "as_crs",
    "get_crs",
    "require_crs",
    "grid_mapping_name",
    "spatial_dims",
    "is_lonlat",
    "pixel_centers",
    "pixel_size",
    "native_bounds",
    "lonlat_bounds",
    "transform_bounds",
    "normalize_lonlat_bounds",
    "pixel_lonlat",
    "xy_to_lonlat",
    "lonlat_to_xy",
]

#: WGS 84 longitude/latitude (EPSG:4326), always used with ``always_xy=True``.
LONLAT: pyproj.CRS = pyproj.CRS.from_epsg(4326)

_Y_NAMES = ("lat", "latitude", "y", "rlat", "northing")
_X_NAMES = ("lon", "longitude", "x", "rlon", "easting")
_Y_STANDARD = ("latitude", "projection_y_coordinate", "grid_latitude")
_X_STANDARD = ("longitude", "projection_x_coordinate", "grid_longitude")
_LAT_NAMES = ("lat", "latitude")
_LON_NAMES = ("lon", "longitude")
_LAT_UNITS = ("degrees_north", "degree_north", "degree_n", "degrees_n")
_LON_UNITS = ("degrees_east", "degree_east", "degree_e", "degrees_e")
_GRID_MAPPING_DEFAULTS = ("spatial_ref", "crs")
_HOW_TO_SET = (
    "Set one, e.g. `ds = ds.rio.write_crs('EPSG:32633')` (rioxarray) or "
    "`ds.attrs['crs'] = 'EPSG:32633'`, or give lon/lat data `lat`/`lon` coordinates"
)


# -- CRS ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=128)
def _crs_from_user_input(value: str | int) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as exc:
        raise CRSError(
            f"cannot understand the CRS {str(value)[:120]!r}: {exc}. "
            "Give an EPSG code ('EPSG:32633'), a WKT or a PROJ string"
        ) from exc


def as_crs(value: Any) -> pyproj.CRS:
    """Return ``value`` (EPSG code, WKT, PROJ string, rasterio or pyproj CRS) as a ``pyproj.CRS``.

    Raises
    ------
    CRSError
        If ``value`` is not a CRS pyproj understands.

    Examples
    --------
    >>> as_crs("EPSG:32633").to_epsg(), as_crs(4326).is_geographic
    (32633, True)
    """
    if isinstance(value, pyproj.CRS):
        return value
    if hasattr(value, "to_wkt") and not isinstance(value, str):  # rasterio.crs.CRS and friends
        value = value.to_wkt()
    if isinstance(value, str | int):
        return _crs_from_user_input(value)
    raise CRSError(f"cannot understand the CRS {value!r}: give an EPSG code, a WKT or a pyproj.CRS")


def _grid_mapping_names(obj: XarrayObj) -> list[Hashable]:
    names: list[Hashable] = []
    arrays = list(obj.data_vars.values()) if isinstance(obj, xr.Dataset) else [obj]
    for arr in arrays:
        for source in (arr.attrs, arr.encoding):
            gm = source.get("grid_mapping")
            if isinstance(gm, str) and gm.split(":")[0] not in names:
                names.append(gm.split(":")[0])  # CF allows "name: coord1 coord2"
    names.extend(n for n in _GRID_MAPPING_DEFAULTS if n not in names)
    return names


def grid_mapping_name(obj: XarrayObj) -> Hashable | None:
    """Return the name of the grid-mapping variable of ``obj`` (e.g. ``"spatial_ref"``), or None.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> grid_mapping_name(s2_like(time=1, y=2, x=2))
    'spatial_ref'
    """
    variables = obj.variables if isinstance(obj, xr.Dataset) else obj.coords
    for name in _grid_mapping_names(obj):
        if name in variables:
            return name
    return None


def _crs_from_grid_mapping(attrs: dict[Hashable, Any]) -> pyproj.CRS | None:
    for key in ("crs_wkt", "spatial_ref", "epsg_code", "proj4", "proj4text"):
        value = attrs.get(key)
        if isinstance(value, str | int) and value != "":
            return as_crs(value)
    if "grid_mapping_name" in attrs:
        try:
            return pyproj.CRS.from_cf({str(k): v for k, v in attrs.items()})
        except pyproj.exceptions.CRSError as exc:
            raise CRSError(f"cannot build a CRS from the CF grid mapping {attrs!r}: {exc}") from exc
    return None


def _has_lonlat_coords(obj: XarrayObj) -> bool:
    try:
        ydim, xdim = spatial_dims(obj)
    except DimensionError:
        return False

    def looks(dim: Hashable, names: tuple[str, ...], units: tuple[str, ...]) -> bool:
        if str(dim).lower() in names:
            return True
        if dim in obj.coords:
            return str(obj.coords[dim].attrs.get("units", "")).lower() in units
        return False

    return looks(ydim, _LAT_NAMES, _LAT_UNITS) and looks(xdim, _LON_NAMES, _LON_UNITS)


def get_crs(obj: XarrayObj) -> pyproj.CRS | None:
    """Return the coordinate reference system of ``obj``, or None if it has none.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A georeferenced cube.

    Returns
    -------
    pyproj.CRS or None
        The CRS from a grid-mapping variable, a ``crs`` attribute, or EPSG:4326 for
        lon/lat coordinates; None when nothing says.

    Raises
    ------
    CRSError
        If a CRS is recorded but cannot be parsed.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> get_crs(s2_like(time=1, y=4, x=4)).to_string()
    'EPSG:32633'
    >>> get_crs(xr.Dataset({"v": (("row", "col"), np.zeros((2, 2)))})) is None
    True
    """
    variables = obj.variables if isinstance(obj, xr.Dataset) else obj.coords
    for name in _grid_mapping_names(obj):
        if name in variables:
            crs = _crs_from_grid_mapping(dict(variables[name].attrs))
            if crs is not None:
                return crs
    value = obj.attrs.get("crs")
    if isinstance(value, str | int) and value != "":
        return as_crs(value)
    if _has_lonlat_coords(obj):
        return LONLAT
    return None


def require_crs(obj: XarrayObj, purpose: str | None = None) -> pyproj.CRS:
    """Return the CRS of ``obj``, or raise a :class:`CRSError` that says how to set one.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A georeferenced cube.
    purpose : str, optional
        What the CRS is needed for, quoted in the error ("clipping to an AOI").

    Returns
    -------
    pyproj.CRS
        The CRS (see :func:`get_crs`).

    Raises
    ------
    CRSError
        If ``obj`` has no CRS.

    Examples
    --------
    >>> ds = xr.Dataset({"v": (("row", "col"), np.zeros((2, 2)))})
    >>> require_crs(ds)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workbench.errors.CRSError: the data has no coordinate reference system...
    """
    crs = get_crs(obj)
    if crs is None:
        why = f" (needed for {purpose})" if purpose else ""
        raise CRSError(
            f"the data has no coordinate reference system{why}: no 'spatial_ref' or 'crs' "
            f"grid-mapping variable, no 'crs' attribute and no lat/lon coordinates "
            f"(dims {list(obj.sizes)}). {_HOW_TO_SET}"
        )
    return crs


def is_lonlat(obj: XarrayObj) -> bool:
    """Return whether ``obj`` has a geographic (lon/lat degrees) CRS.

    Examples
    --------
    >>> from workbench.data.synthetic import era5_like, s2_like
    >>> is_lonlat(era5_like(time=1, lat=2, lon=2)), is_lonlat(s2_like(time=1, y=2, x=2))
    (True, False)
    """
    crs = get_crs(obj)
    return crs is not None and bool(crs.is_geographic)


# -- dims and grids ----------------------------------------------------------------------
def spatial_dims(obj: XarrayObj) -> tuple[Hashable, Hashable]:
    """Return the names of the ``(y-like, x-like)`` dimensions of ``obj``.

    Dims named ``lat``/``latitude``/``y`` and ``lon``/``longitude``/``x`` (any case), or
    whose coordinate has a CF ``standard_name`` or ``axis`` saying so.

    Raises
    ------
    DimensionError
        If either dimension cannot be found.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> spatial_dims(s2_like(time=1, y=2, x=2))
    ('y', 'x')
    """
    dims = list(obj.sizes)

    def find(names: tuple[str, ...], standard: tuple[str, ...], axis: str) -> Hashable | None:
        for dim in dims:
            if str(dim).lower() in names:
                return dim
        for dim in dims:
            if dim in obj.coords:
                attrs = obj.coords[dim].attrs
                if attrs.get("standard_name") in standard or attrs.get("axis") == axis:
                    return dim
        return None

    ydim, xdim = find(_Y_NAMES, _Y_STANDARD, "Y"), find(_X_NAMES, _X_STANDARD, "X")
    if ydim is None or xdim is None:
        raise DimensionError(
            f"cannot find the spatial dimensions among {dims}: expected a y-like dim "
            f"({', '.join(_Y_NAMES[:3])}) and an x-like dim ({', '.join(_X_NAMES[:3])}). "
            "Rename them, e.g. `ds.rename({'rows': 'y', 'cols': 'x'})`"
        )
    return ydim, xdim


def _geotransform(obj: XarrayObj) -> tuple[float, ...] | None:
    variables = obj.variables if isinstance(obj, xr.Dataset) else obj.coords
    for name in _grid_mapping_names(obj):
        if name in variables:
            gt = variables[name].attrs.get("GeoTransform")
            if isinstance(gt, str):
                values = tuple(float(v) for v in gt.split())
                if len(values) == 6:
                    return values
    return None


def pixel_centers(obj: XarrayObj) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Return the 1-D ``(x, y)`` pixel-centre coordinates in the data's CRS.

    From the coordinates of the spatial dims, or from a rioxarray ``GeoTransform`` when
    the dims have no coordinate.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> x, y = pixel_centers(s2_like(time=1, y=2, x=3))
    >>> x.tolist(), y.tolist()
    ([465185.0, 465195.0, 465205.0], [5080255.0, 5080245.0])
    """
    ydim, xdim = spatial_dims(obj)
    gt = None
    out = []
    for dim, axis in ((xdim, 0), (ydim, 1)):
        if dim in obj.coords:
            out.append(np.asarray(obj.coords[dim].values, dtype=np.float64))
            continue
        gt = gt or _geotransform(obj)
        if gt is None:
            raise DimensionError(
                f"dimension {dim!r} has no coordinate and there is no GeoTransform to derive "
                f"one: assign pixel-centre coordinates, e.g. `ds.assign_coords({dim}=...)`"
            )
        origin, step = (gt[0], gt[1]) if axis == 0 else (gt[3], gt[5])
        out.append(np.asarray(origin + step * (np.arange(obj.sizes[dim]) + 0.5), np.float64))
    return out[0], out[1]


def pixel_size(obj: XarrayObj) -> tuple[float, float]:
    """Return the signed ``(dx, dy)`` step between pixel centres (dy < 0 for north-up grids).

    Examples
    --------
    >>> from workbench.data.synthetic import era5_like
    >>> pixel_size(era5_like(time=1, lat=8, lon=12))
    (1.0, -1.0)
    """
    x, y = pixel_centers(obj)
    steps = []
    for values, axis in ((x, 0), (y, 1)):
        if values.size >= 2:
            steps.append(float(values[-1] - values[0]) / (values.size - 1))
        else:
            gt = _geotransform(obj)
            steps.append((gt[1] if axis == 0 else gt[5]) if gt else 0.0)
    return steps[0], steps[1]


def native_bounds(obj: XarrayObj) -> Bounds:
    """Return ``(west, south, east, north)`` of the pixel edges, in the data's CRS.

    Examples
    --------
    >>> from workbench.data.synthetic import era5_like
    >>> native_bounds(era5_like(time=1, lat=8, lon=12, bbox=(0, 0, 12, 8)))
    (0.0, 0.0, 12.0, 8.0)
    """
    x, y = pixel_centers(obj)
    dx, dy = pixel_size(obj)
    hx, hy = abs(dx) / 2, abs(dy) / 2
    return (
        float(x.min() - hx),
        float(y.min() - hy),
        float(x.max() + hx),
        float(y.max() + hy),
    )


def normalize_lonlat_bounds(bounds: Bounds) -> Bounds:
    """Bring lon/lat bounds to [-180, 180] longitudes, ``west > east`` across the antimeridian.

    Examples
    --------
    >>> normalize_lonlat_bounds((170.0, -5.0, 190.0, 5.0))
    (170.0, -5.0, -170.0, 5.0)
    >>> normalize_lonlat_bounds((-0.125, -90.1, 359.875, 90.1))
    (-180.0, -90.0, 180.0, 90.0)
    """
    west, south, east, north = (float(v) for v in bounds)
    south, north = max(south, -90.0), min(north, 90.0)
    if east - west >= 360.0 - 1e-9:
        return (-180.0, south, 180.0, north)
    if west > east:  # already in the antimeridian form
        east += 360.0
    shift = 360.0 * math.floor((west + 180.0) / 360.0)
    west, east = west - shift, east - shift
    if east > 180.0:
        east -= 360.0
    return (west, south, east, north)


def lonlat_bounds(obj: XarrayObj) -> Bounds:
    """Return ``(west, south, east, north)`` of the pixel edges in lon/lat degrees.

    Projected grids are transformed with densified edges (so curved edges are covered).

    Raises
    ------
    CRSError
        If ``obj`` has no CRS.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> [round(v, 3) for v in lonlat_bounds(s2_like(time=1, y=100, x=100))]
    [14.551, 45.866, 14.564, 45.875]
    """
    crs = require_crs(obj, "lon/lat bounds")
    bounds = native_bounds(obj)
    if crs.is_geographic:
        return normalize_lonlat_bounds(bounds)
    return transform_bounds(bounds, crs, LONLAT)


@functools.lru_cache(maxsize=64)
def _transformer(src: pyproj.CRS, dst: pyproj.CRS) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def transform_bounds(bounds: Bounds, src: Any, dst: Any, densify: int = 21) -> Bounds:
    """Transform ``(west, south, east, north)`` from ``src`` to ``dst`` (x/y order).

    Parameters
    ----------
    bounds : tuple of float
        Bounds in ``src`` (lon/lat order for geographic CRSs).
    src, dst : pyproj.CRS, str or int
        Source and target CRS.
    densify : int
        Points added along each edge before transforming.

    Returns
    -------
    tuple of float
        Bounds in ``dst``; for a geographic ``dst`` crossing the antimeridian, ``west > east``.

    Raises
    ------
    CRSError
        If the bounds cannot be transformed (outside the area of use of a CRS).

    Examples
    --------
    >>> [round(v) for v in transform_bounds((14.0, 45.0, 15.0, 46.0), "EPSG:4326", "EPSG:32633")]
    [421185, 4982950, 500000, 5094534]
    """
    src_crs, dst_crs = as_crs(src), as_crs(dst)
    if src_crs == dst_crs:
        return tuple(float(v) for v in bounds)  # type: ignore[return-value]
    try:
        out = _transformer(src_crs, dst_crs).transform_bounds(*bounds, densify_pts=densify)
    except pyproj.exceptions.ProjError as exc:
        out = (math.inf,) * 4
        detail = f": {exc}"
    else:
        detail = ""
    if not all(math.isfinite(v) for v in out):
        raise CRSError(
            f"cannot transform bounds {tuple(bounds)} from {src_crs.to_string()} to "
            f"{dst_crs.to_string()} (outside the area of use?){detail}"
        )
    return (float(out[0]), float(out[1]), float(out[2]), float(out[3]))


def xy_to_lonlat(x: Any, y: Any, crs: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Transform points from ``crs`` to lon/lat degrees (vectorised; longitudes in [-180, 180)).

    Examples
    --------
    >>> lon, lat = xy_to_lonlat([500000.0], [0.0], "EPSG:32633")
    >>> round(float(lon[0]), 6), round(float(lat[0]), 6)
    (15.0, 0.0)
    """
    src = as_crs(crs)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if src.is_geographic and src.equals(LONLAT, ignore_axis_order=True):
        lon, lat = x.copy(), y.copy()
    else:
        lon, lat = _transformer(src, LONLAT).transform(x, y)
    return (np.asarray(lon) + 180.0) % 360.0 - 180.0, np.asarray(lat)


def lonlat_to_xy(lon: Any, lat: Any, crs: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Transform lon/lat degrees to ``crs`` coordinates (vectorised).

    Examples
    --------
    >>> x, y = lonlat_to_xy([15.0], [0.0], "EPSG:32633")
    >>> round(float(x[0])), round(float(y[0]))
    (500000, 0)
    """
    dst = as_crs(crs)
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    x, y = _transformer(LONLAT, dst).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def pixel_lonlat(obj: XarrayObj) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Return 2-D ``(lon, lat)`` arrays of pixel centres, shaped ``(ny, nx)``.

    Works for lon/lat and projected grids (vectorised pyproj transform). Longitudes are
    wrapped to [-180, 180).

    Raises
    ------
    CRSError
        If ``obj`` has no CRS.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> lon, lat = pixel_lonlat(s2_like(time=1, y=3, x=4))
    >>> lon.shape, bool(lat[0, 0] > lat[-1, 0])
    ((3, 4), True)
    """
    crs = require_crs(obj, "pixel lon/lat")
    x, y = pixel_centers(obj)
    xx, yy = np.meshgrid(x, y)
    return xy_to_lonlat(xx, yy, crs)
