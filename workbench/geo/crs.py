"""Coordinate reference systems, spatial dims and bounds of xarray objects.

No pixels are read here: everything comes from coordinates and attributes.

The CRS of an object is found, in this order, in

1. a grid-mapping variable: the CF ``grid_mapping`` of a variable, or a coordinate named
   ``spatial_ref`` (what rioxarray's ``rio.write_crs`` and GeoTIFF readers write from the
   file's GeoKeys) or ``crs``, with ``crs_wkt`` / ``spatial_ref`` / ``epsg_code`` / ``proj4``
   or CF grid-mapping parameters;
2. a CRS attribute of the object (``crs``, ``crs_wkt``, ``spatial_ref``, ``proj4``,
   ``epsg``...), then of its data variables (a per-variable ``crs = "+init=epsg:32719"``, as
   some NetCDF writers leave it): an EPSG code, a WKT, a PROJ string (``+init=epsg:N`` is read
   as ``EPSG:N``), a PROJ JSON or CF mapping;
3. lon/lat coordinates (dims named ``lat``/``latitude`` and ``lon``/``longitude``, or
   with ``degrees_north``/``degrees_east`` units): then it is EPSG:4326.

:func:`write_crs` writes what was found once, as a ``spatial_ref`` coordinate (CF grid-mapping
parameters, ``crs_wkt`` and the GDAL ``GeoTransform``, as rioxarray writes it), so that every
``isel``, clip, partition, resample or composite carries it along.

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
import re
import warnings
from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

import numpy as np
import pyproj
import xarray as xr

from workbench._typing import Bounds, XarrayObj
from workbench.errors import CRSError, DimensionError

__all__ = [
    "LONLAT",
    "as_crs",
    "get_crs",
    "find_crs",
    "require_crs",
    "write_crs",
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
#: Attribute names that may hold a CRS, on the object or on its data variables.
_CRS_ATTRS = (
    "crs", "crs_wkt", "spatial_ref", "proj4", "proj4text", "proj4_string", "srs", "epsg",
    "epsg_code",
)  # fmt: skip
_INIT = re.compile(r"\+init=(epsg|esri):(\d+)", re.IGNORECASE)
_HARMLESS = re.compile(r"^\+(no_defs|wktext|type=crs|units=m)$", re.IGNORECASE)
T = TypeVar("T", xr.Dataset, xr.DataArray)
_HOW_TO_SET = (
    "Set one, e.g. `ds = ds.rio.write_crs('EPSG:32633')` (rioxarray) or "
    "`ds.attrs['crs'] = 'EPSG:32633'`, or give lon/lat data `lat`/`lon` coordinates"
)


# -- CRS ---------------------------------------------------------------------------------
def _legacy_init(text: str) -> str:
    """``"+init=epsg:32719 +no_defs"`` -> ``"EPSG:32719"`` (PROJ deprecated ``+init``)."""
    match = _INIT.search(text)
    if match is None:
        return text
    rest = (text[: match.start()] + text[match.end() :]).split()
    if all(_HARMLESS.match(tok) for tok in rest):
        return f"{match[1].upper()}:{match[2]}"
    return text


@functools.lru_cache(maxsize=128)
def _crs_from_user_input(value: str | int) -> pyproj.CRS:
    if isinstance(value, str):
        value = _legacy_init(value.strip())
    try:
        with warnings.catch_warnings():  # "+init=..." leftovers: PROJ's FutureWarning
            warnings.simplefilter("ignore", FutureWarning)
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
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, Mapping):
        return _crs_from_mapping(value)
    if isinstance(value, str | int) and not isinstance(value, bool):
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


def _crs_from_mapping(value: Mapping[Any, Any]) -> pyproj.CRS:
    """Build a CRS from a CF grid mapping (``grid_mapping_name``...) or a PROJ JSON dict."""
    attrs = {str(k): v for k, v in value.items()}
    try:
        if "grid_mapping_name" in attrs:
            return pyproj.CRS.from_cf(attrs)
        return pyproj.CRS.from_json_dict(attrs)
    except (pyproj.exceptions.CRSError, TypeError, ValueError) as exc:
        raise CRSError(f"cannot build a CRS from the mapping {attrs!r:.200}: {exc}") from exc


def _crs_from_grid_mapping(attrs: Mapping[Hashable, Any]) -> pyproj.CRS | None:
    for key in ("crs_wkt", "spatial_ref", "epsg_code", "proj4", "proj4text", "epsg"):
        value = attrs.get(key)
        if _is_crs_value(value):
            return as_crs(value)
    if "grid_mapping_name" in attrs:
        return _crs_from_mapping(attrs)
    return None


def _is_crs_value(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, str | bytes):
        return len(value.strip()) > 0
    return isinstance(value, int | np.integer | Mapping)


def _crs_from_attrs(attrs: Mapping[Hashable, Any]) -> tuple[pyproj.CRS, str] | None:
    for key in _CRS_ATTRS:
        value = attrs.get(key)
        if _is_crs_value(value):
            return as_crs(value), key
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


def find_crs(obj: XarrayObj) -> tuple[pyproj.CRS | None, str]:
    """Return the CRS of ``obj`` and where it was found (see the module docs for the order).

    Returns
    -------
    (pyproj.CRS or None, str)
        The CRS, and ``"grid_mapping:<name>"``, ``"attrs:<key>"``,
        ``"variable:<name>:<key>"``, ``"lonlat"`` (inferred from the coordinates) or ``""``.

    Raises
    ------
    CRSError
        If a recorded CRS cannot be parsed, or data variables carry different CRSs.

    Examples
    --------
    >>> ds = xr.Dataset({"B04": (("y", "x"), np.zeros((2, 2)), {"crs": "+init=epsg:32719"})})
    >>> crs, where = find_crs(ds)
    >>> crs.to_epsg(), where
    (32719, 'variable:B04:crs')
    """
    variables = obj.variables if isinstance(obj, xr.Dataset) else obj.coords
    for name in _grid_mapping_names(obj):
        if name in variables:
            crs = _crs_from_grid_mapping(variables[name].attrs)
            if crs is not None:
                return crs, f"grid_mapping:{name}"
    found = _crs_from_attrs(obj.attrs)
    if found is not None:
        return found[0], f"attrs:{found[1]}"
    if isinstance(obj, xr.Dataset):
        per_var: list[tuple[pyproj.CRS, str]] = []
        for name, var in obj.data_vars.items():
            hit = _crs_from_attrs(var.attrs)
            if hit is not None:
                per_var.append((hit[0], f"variable:{name}:{hit[1]}"))
        if per_var:
            first = per_var[0][0]
            other = next((p for p in per_var[1:] if not p[0].equals(first)), None)
            if other is not None:
                raise CRSError(
                    f"the data variables carry different CRSs: {per_var[0][1]} is "
                    f"{first.to_string()}, {other[1]} is {other[0].to_string()}; reproject "
                    "them to one CRS (workbench.composites.resample_to) before combining them"
                )
            return per_var[0]
    if _has_lonlat_coords(obj):
        return LONLAT, "lonlat"
    return None, ""


def get_crs(obj: XarrayObj) -> pyproj.CRS | None:
    """Return the coordinate reference system of ``obj``, or None if it has none.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A georeferenced cube.

    Returns
    -------
    pyproj.CRS or None
        The CRS from a grid-mapping variable, a CRS attribute of the object or of its data
        variables, or EPSG:4326 for lon/lat coordinates; None when nothing says.

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
    return find_crs(obj)[0]


def write_crs(obj: T, crs: Any = None, *, name: str = "spatial_ref") -> T:
    """Return ``obj`` with its CRS written once as a ``spatial_ref``-style coordinate.

    The coordinate holds the CF grid-mapping parameters, ``crs_wkt`` and ``spatial_ref``
    (WKT) and, for regular grids, the GDAL ``GeoTransform``: what rioxarray's
    ``rio.write_crs`` writes, so ``obj.rio.crs`` reads it too. Spatial data variables point to
    it with ``grid_mapping``. Coordinates travel with every ``isel``/``sel``, so later steps
    keep the CRS.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The data.
    crs : pyproj.CRS, str or int, optional
        The CRS to write; default: the one :func:`find_crs` finds.
    name : str
        Name of the coordinate.

    Raises
    ------
    CRSError
        If ``crs`` is None and ``obj`` has no CRS.

    Examples
    --------
    >>> ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 2)), {"crs": "EPSG:32633"})},
    ...                 coords={"y": [15.0, 5.0], "x": [5.0, 15.0]})
    >>> out = write_crs(ds)
    >>> out.spatial_ref.attrs["GeoTransform"], out.v.encoding["grid_mapping"]
    ('0.0 10.0 0.0 20.0 0.0 -10.0', 'spatial_ref')
    """
    value = require_crs(obj, "writing it as a coordinate") if crs is None else as_crs(crs)
    with warnings.catch_warnings():  # pyproj warns for CRSs CF cannot express fully
        warnings.simplefilter("ignore", UserWarning)
        attrs: dict[str, Any] = dict(value.to_cf())
    wkt = value.to_wkt()
    attrs["crs_wkt"] = wkt
    attrs["spatial_ref"] = wkt
    try:
        gt = _grid_geotransform(obj)
    except (DimensionError, ValueError, IndexError):
        gt = None
    if gt is not None:
        attrs["GeoTransform"] = gt
    out = obj.assign_coords({name: xr.Variable((), np.int64(0), attrs)})
    arrays = list(out.data_vars.values()) if isinstance(out, xr.Dataset) else [out]
    try:
        dims = set(spatial_dims(out))
    except DimensionError:
        dims = set()
    for arr in arrays:
        if dims and dims <= set(arr.dims):
            if "grid_mapping" in arr.attrs:
                arr.attrs["grid_mapping"] = name
            else:
                arr.encoding = {**arr.encoding, "grid_mapping": name}
    return out


def _grid_geotransform(obj: XarrayObj) -> str | None:
    x, y = pixel_centers(obj)
    if x.size < 2 or y.size < 2:
        gt = _geotransform(obj)
        return None if gt is None else " ".join(repr(float(v)) for v in gt)
    dx, dy = pixel_size(obj)
    left, top = float(x[0]) - dx / 2, float(y[0]) - dy / 2
    return f"{left!r} {dx!r} 0.0 {top!r} 0.0 {dy!r}"


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
