"""Areas of interest: parse bounds tuples, GeoJSON and shapely geometries; reproject them.

An AOI may be

* a ``(west, south, east, north)`` tuple (lon/lat unless a CRS is given; ``west > east``
  means the box crosses the antimeridian, RFC 7946 5.2);
* a GeoJSON mapping or JSON string: a ``Feature``, a ``FeatureCollection`` (the union of
  its features) or a bare geometry; a legacy GeoJSON ``crs`` member is honoured;
* a shapely geometry, or any object with ``__geo_interface__``;
* a mapping with a ``"geojson"`` or ``"bounds"`` key (what the AOI map widget hands out).

A lon/lat box that crosses the antimeridian becomes one polygon whose east edge is
beyond 180 degrees (e.g. ``170..190``); :func:`workbench.data.aoi.clip` maps it onto the
data's longitude frame.

Examples
--------
>>> to_geometry((-10, 50, 2, 58)).bounds
(-10.0, 50.0, 2.0, 58.0)
>>> feature = {"type": "Feature", "properties": {},
...            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 1], [0, 0]]]}}
>>> to_geometry(feature).area
0.5
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyproj
import shapely
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from workbench._typing import AOILike
from workbench.errors import AOIError, CRSError
from workbench.geo.bbox import check_bbox
from workbench.geo.crs import LONLAT, _transformer, as_crs

__all__ = ["parse_aoi", "to_geometry", "reproject_geometry", "is_rectangle", "describe_bounds"]

_GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)
_HINT = (
    "give (west, south, east, north), a GeoJSON Feature, FeatureCollection or geometry "
    "(Polygon, MultiPolygon, ...), or a shapely geometry"
)


def describe_bounds(bounds: Sequence[float]) -> str:
    """Format bounds for messages: ``(w, s, e, n)`` with 6 significant digits.

    Examples
    --------
    >>> describe_bounds((465181.0522, 5079244.891, 466180.531, 5080254.633))
    '(465181, 5.07924e+06, 466181, 5.08025e+06)'
    """
    return "(" + ", ".join(f"{float(v):.6g}" for v in bounds) + ")"


def _bbox_geometry(values: Sequence[Any], geographic: bool) -> BaseGeometry:
    west, south, east, north = check_bbox(values, geographic=geographic, require_area=True)
    if west > east:  # crosses the antimeridian
        east += 360.0
    return box(west, south, east, north)


def _crs_member(obj: Mapping[str, Any]) -> pyproj.CRS | None:
    member = obj.get("crs")
    if member is None:
        return None
    name = member.get("properties", {}).get("name") if isinstance(member, Mapping) else member
    try:
        return as_crs(name)
    except CRSError as exc:
        raise AOIError(f"malformed GeoJSON 'crs' member {member!r}: {exc}") from exc


def _from_geojson(obj: Mapping[str, Any]) -> BaseGeometry:
    kind = obj.get("type")
    if kind == "Feature":
        geometry = obj.get("geometry")
        if not isinstance(geometry, Mapping):
            raise AOIError(f"malformed GeoJSON: the Feature has no 'geometry' object ({_HINT})")
        return _from_geojson(geometry)
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, Sequence) or len(features) == 0:
            raise AOIError("malformed GeoJSON: the FeatureCollection has no 'features'")
        return shapely.union_all([_from_geojson(f) for f in features])
    if kind not in _GEOMETRY_TYPES:
        raise AOIError(
            f"malformed GeoJSON: 'type' is {kind!r}; expected Feature, FeatureCollection or one of "
            f"{', '.join(_GEOMETRY_TYPES)}"
        )
    try:
        geom = shape(obj)
    except Exception as exc:  # shapely raises several types for bad coordinates
        raise AOIError(f"malformed GeoJSON {kind}: {type(exc).__name__}: {exc}") from exc
    return geom


def parse_aoi(aoi: AOILike, crs: Any = None) -> tuple[BaseGeometry, pyproj.CRS | None]:
    """Parse an AOI without reprojecting it.

    Parameters
    ----------
    aoi : tuple, mapping, str, shapely geometry or object with ``__geo_interface__``
        The area of interest (see the module docstring).
    crs : pyproj.CRS, str or int, optional
        The CRS of the AOI's coordinates, when not lon/lat; overrides a GeoJSON ``crs``.

    Returns
    -------
    geometry : shapely.Geometry
        A valid, non-empty geometry in the AOI's own coordinates.
    crs : pyproj.CRS or None
        ``crs`` if given, else the CRS the AOI declares (GeoJSON ``crs`` member), else None
        (meaning lon/lat).

    Raises
    ------
    AOIError
        If the AOI is malformed or empty.

    Examples
    --------
    >>> geom, crs = parse_aoi({"type": "Point", "coordinates": [500000, 5e6],
    ...                        "crs": {"type": "name", "properties": {"name": "EPSG:32633"}}})
    >>> geom.geom_type, crs.to_epsg()
    ('Point', 32633)
    """
    declared = as_crs(crs) if crs is not None else None
    if isinstance(aoi, str):
        try:
            aoi = json.loads(aoi)
        except json.JSONDecodeError as exc:
            raise AOIError(f"an AOI string must be GeoJSON; {exc}: {aoi[:80]!r}") from exc
    if isinstance(aoi, BaseGeometry):
        geom = aoi
    elif isinstance(aoi, Mapping):
        if "type" not in aoi and "geojson" in aoi:
            return parse_aoi(aoi["geojson"], crs)
        if "type" not in aoi and ("bounds" in aoi or "bbox" in aoi):
            return parse_aoi(tuple(aoi.get("bounds", aoi.get("bbox"))), crs)
        if "type" not in aoi:
            raise AOIError(f"malformed GeoJSON: no 'type' member in {dict(aoi)!r:.120}; {_HINT}")
        declared = declared or _crs_member(aoi)
        geom = _from_geojson(aoi)
    elif hasattr(aoi, "__geo_interface__"):
        return parse_aoi(getattr(aoi, "__geo_interface__"), crs)  # noqa: B009
    elif isinstance(aoi, Sequence | np.ndarray) and len(aoi) == 4:
        geographic = declared is None or bool(declared.is_geographic)
        geom = _bbox_geometry(list(aoi), geographic)
    else:
        raise AOIError(f"cannot use {type(aoi).__name__} {aoi!r:.80} as an AOI: {_HINT}")
    if geom.is_empty:
        raise AOIError(f"the AOI geometry is empty: {geom.wkt[:80]}")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    return geom, declared


def reproject_geometry(geom: BaseGeometry, src: Any, dst: Any, segments: int = 64) -> BaseGeometry:
    """Reproject a geometry, densifying its edges first so curved edges are followed.

    Parameters
    ----------
    geom : shapely.Geometry
        Geometry in ``src`` (x/y order: lon, lat for geographic CRSs).
    src, dst : pyproj.CRS, str or int
        Source and target CRS.
    segments : int
        Each edge is split so no segment is longer than the geometry's extent / ``segments``.

    Returns
    -------
    shapely.Geometry
        The geometry in ``dst``.

    Raises
    ------
    AOIError
        If some vertex cannot be transformed (outside the target's area of use).

    Examples
    --------
    >>> utm = reproject_geometry(box(14.55, 45.86, 14.57, 45.88), "EPSG:4326", "EPSG:32633")
    >>> [round(v) for v in utm.bounds]
    [465068, 5078583, 466632, 5080813]
    """
    src_crs, dst_crs = as_crs(src), as_crs(dst)
    if src_crs == dst_crs:
        return geom
    west, south, east, north = geom.bounds
    extent = max(east - west, north - south)
    if extent > 0 and geom.geom_type not in ("Point", "MultiPoint"):
        geom = shapely.segmentize(geom, extent / segments)
    transformer = _transformer(src_crs, dst_crs)

    def func(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        return transformer.transform(x, y)

    out = shapely.transform(geom, func, interleaved=False)
    if not np.isfinite(shapely.get_coordinates(out)).all():
        raise AOIError(
            f"the AOI {describe_bounds(geom.bounds)} cannot be transformed from "
            f"{src_crs.to_string()} to {dst_crs.to_string()} (outside its area of use?)"
        )
    return out if out.is_valid else shapely.make_valid(out)


def to_geometry(aoi: AOILike, crs: Any = None) -> BaseGeometry:
    """Return the AOI as a shapely geometry in lon/lat degrees (EPSG:4326).

    Parameters
    ----------
    aoi : tuple, mapping, str, shapely geometry or object with ``__geo_interface__``
        The area of interest (see the module docstring).
    crs : pyproj.CRS, str or int, optional
        The CRS of the AOI's coordinates when not lon/lat.

    Returns
    -------
    shapely.Geometry
        In lon/lat; an antimeridian-crossing box extends beyond 180 degrees east.

    Raises
    ------
    AOIError
        If the AOI is malformed, empty, or has latitudes outside [-90, 90].

    Examples
    --------
    >>> [round(v, 3) for v in to_geometry((465181, 5079245, 466181, 5080255), "EPSG:32633").bounds]
    [14.551, 45.866, 14.564, 45.875]
    >>> to_geometry((170, -10, -170, 10)).bounds
    (170.0, -10.0, 190.0, 10.0)
    """
    geom, declared = parse_aoi(aoi, crs)
    if declared is not None and not declared.equals(LONLAT, ignore_axis_order=True):
        geom = reproject_geometry(geom, declared, LONLAT)
    south, north = geom.bounds[1], geom.bounds[3]
    if south < -90.0 or north > 90.0:
        raise AOIError(
            f"the AOI {describe_bounds(geom.bounds)} has latitudes outside [-90, 90]: is it in a "
            "projected CRS? Then say which, e.g. `clip(ds, aoi, crs='EPSG:32633')`"
        )
    return geom


def is_rectangle(geom: BaseGeometry) -> bool:
    """Return whether ``geom`` is an axis-aligned rectangle (equal to its envelope).

    Examples
    --------
    >>> is_rectangle(box(0, 0, 2, 1)), is_rectangle(shapely.Polygon([(0, 0), (1, 0), (0, 1)]))
    (True, False)
    """
    if geom.geom_type != "Polygon":
        return False
    envelope = geom.envelope
    return bool(envelope.area > 0 and geom.area >= envelope.area * (1 - 1e-9))
