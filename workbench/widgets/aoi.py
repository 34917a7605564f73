"""``AOIMap``: draw an area of interest over a cube, offline (``ds.wb.map()``).

The map (an :class:`ipyleaflet.Map`) shows the cube's footprint and a preview image of the
data, warped to lon/lat in the kernel and sent as a PNG data URL, with a colour legend
(variable, units, range). Under it, an offline base map gives the sense of place: Natural
Earth coastlines and country borders and a labelled graticule, packaged with workbench
(layers ``"coastlines"``, ``"countries"``, ``"graticule"``; see
:mod:`workbench.widgets.basemap`). No tile server is needed, so it works without internet;
tiles are opt-in (``basemap=True`` adds OpenStreetMap tiles when the browser can reach them).
The initial view frames the data with its surroundings. The draw control (rectangle and
polygon) keeps one AOI, always outlined on the map (also one given with ``aoi=``), mirrored
in the traits :attr:`AOIMap.geojson` and :attr:`AOIMap.bbox`, which other code can
``.observe``, and in :attr:`AOIMap.aoi`, a GeoJSON Feature with a ``bbox`` member that
``ds.wb.clip(map.aoi)`` takes.

Examples
--------
>>> import workbench
>>> from workbench.data.synthetic import era5_like
>>> ds = era5_like(time=2, lat=16, lon=24)
>>> m = ds.wb.map()
>>> [layer.name for layer in m.layers]
['coastlines', 'countries', 'graticule', 'preview', 'footprint']
>>> m.bbox = (-6.0, 52.0, -2.0, 55.0)       # or draw it in the browser
>>> m.aoi["geometry"]["type"], m.aoi["bbox"]
('Polygon', [-6.0, 52.0, -2.0, 55.0])
>>> dict(ds.wb.clip(m.aoi).sizes)
{'time': 2, 'lat': 6, 'lon': 8}
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import xarray as xr

from workbench._optional import lazy_import
from workbench.errors import AOIError
from workbench.geo.bbox import check_bbox
from workbench.widgets._context import PANES, context_layers, legend_html, view_bounds
from workbench.widgets._display import fallback_text, format_bounds, png_data_url
from workbench.widgets._geojson import bbox_feature, chip_polygons, feature_bounds
from workbench.widgets._preview import footprint, preview_image, select_field
from workbench.widgets.basemap import LAYERS

if TYPE_CHECKING:
    import ipyleaflet
    import ipywidgets
    import traitlets
else:
    ipyleaflet = lazy_import("ipyleaflet", purpose="the AOI map (ds.wb.map())")
    ipywidgets = lazy_import("ipywidgets", purpose="the AOI map (ds.wb.map())")
    traitlets = lazy_import("traitlets", extra="jupyter", purpose="the AOI map")

__all__ = ["AOIMap", "bbox_feature", "feature_bounds"]

_AOI_STYLE = {"color": "#e8590c", "weight": 2, "fillOpacity": 0.08}
_FOOTPRINT_STYLE = {"color": "#1c7ed6", "weight": 2, "fill": False, "dashArray": "4 4"}
_CHIP_STYLE = {"color": "#f5f5f5", "weight": 1, "opacity": 0.9, "fill": False}
_MAP_SIZE_PX = (760, 420)  # width, height used to pick the initial zoom


def _initial_view(bounds: Sequence[float], margin: float = 0.3) -> tuple[list[float], float]:
    """Centre and zoom that show ``bounds`` with ``margin`` x their extent around each side."""
    west, south, east, north = bounds
    dx, dy = (east - west) * margin, (north - south) * margin
    west, east = max(-180.0, west - dx), min(180.0, east + dx)
    south, north = max(-85.0, south - dy), min(85.0, north + dy)
    merc = [
        math.log(math.tan(math.pi / 4 + math.radians(max(min(v, 85.0), -85.0)) / 2))
        for v in (south, north)
    ]
    center_lat = math.degrees(2 * math.atan(math.exp((merc[0] + merc[1]) / 2)) - math.pi / 2)
    width, height = _MAP_SIZE_PX
    zx = math.log2(width * 360.0 / (256.0 * max(east - west, 1e-9)))
    zy = math.log2(height * 2 * math.pi / (256.0 * max(merc[1] - merc[0], 1e-9)))
    zoom = max(1.0, min(18.0, math.floor(4 * min(zx, zy)) / 4))  # the map snaps to quarters
    return [center_lat, (west + east) / 2], zoom


class AOIMap(ipyleaflet.Map):  # type: ignore[misc]
    """A map of a cube on which to draw an area of interest (works offline).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A georeferenced cube (lon/lat, or projected with a CRS, e.g. UTM).
    variable : hashable, optional
        Data variable to preview (default: the first with both spatial dims).
    bands : int, str or sequence of them, optional
        One band (colormapped) or three (RGB / false colour), along a band-like dim, or
        variable names of a Dataset without one. Default: true colour when recognised.
    isel : mapping, optional
        Index of each other dim to preview (default 0, e.g. the first time step).
    stretch : str or (float, float)
        Contrast stretch of the preview (see :func:`workbench.chips.render.stretch`).
    cmap : str
        Colormap of a single-band preview.
    preview : bool
        Whether to draw the data preview at all (the footprint is always drawn).
    preview_size : int
        Longest edge of the preview image in pixels.
    opacity : float
        Opacity of the preview (the context lines show faintly through the data).
    aoi : (west, south, east, north), GeoJSON Feature or geometry, optional
        The AOI to start with (outlined, replaced by anything drawn); e.g. a default region
        that ``map.aoi`` returns when nothing is drawn.
    context : bool or sequence of {"coastlines", "countries", "graticule"}
        The offline base-map layers to draw under the data (default: all three).
    basemap : bool, str or ipyleaflet basemap, optional
        ``None``/``False`` (default): none, as tiles need internet; ``True``: OpenStreetMap;
        or an :mod:`ipyleaflet.basemaps` entry.
    crs : optional
        The data CRS, for cubes that do not record one.
    **kwargs
        Passed to :class:`ipyleaflet.Map` (``zoom``, ``center``, ``layout``...).

    Attributes
    ----------
    geojson : dict or None
        The drawn AOI as a GeoJSON Feature (lon/lat); set it to draw one.
    bbox : tuple of float or None
        ``(west, south, east, north)`` of the AOI; set it to draw a rectangle.
    footprint : workbench.widgets._preview.Footprint
        The cube's outline, CRS and lon/lat bounds.
    context_layers : list
        The base-map layers (named ``"coastlines"``, ``"countries"``, ``"graticule"``).
    legend : ipywidgets.HTML or None
        The preview's colour legend (variable, units, range).

    Raises
    ------
    CRSError
        If the cube has no CRS and ``crs`` is not given.
    """

    geojson: Any = traitlets.Dict(default_value=None, allow_none=True).tag(sync=True)
    bbox: Any = traitlets.Tuple(default_value=None, allow_none=True).tag(sync=True)

    def __init__(
        self,
        obj: xr.Dataset | xr.DataArray,
        *,
        variable: Hashable | None = None,
        bands: Sequence[int | str] | int | str | None = None,
        isel: Mapping[Hashable, int] | None = None,
        stretch: str | tuple[float, float] = "percentile",
        cmap: str = "viridis",
        preview: bool = True,
        preview_size: int = 512,
        opacity: float = 0.85,
        aoi: Any = None,
        context: bool | Sequence[str] = True,
        basemap: Any = None,
        crs: Any = None,
        **kwargs: Any,
    ) -> None:
        fp = footprint(obj, crs=crs)
        center, zoom = _initial_view(fp.bounds)
        kwargs.setdefault("center", center)
        kwargs.setdefault("zoom", zoom)
        kwargs.setdefault("scroll_wheel_zoom", True)
        kwargs.setdefault("zoom_snap", 0.25)
        kwargs.setdefault("layout", ipywidgets.Layout(height=f"{_MAP_SIZE_PX[1]}px"))
        kwargs["panes"] = {**PANES, **kwargs.get("panes", {})}
        super().__init__(layers=tuple(_basemap_layers(basemap)), **kwargs)
        self.footprint = fp
        self._obj: Any = obj
        self._chip_layer: Any = None
        self._syncing = False
        self.preview_layer: Any = None
        self.legend: Any = None
        wanted = (*LAYERS, "graticule") if context is True else tuple(context or ())
        unknown = sorted(set(wanted) - {*LAYERS, "graticule"})
        if unknown:
            raise AOIError(
                f"unknown context layer(s) {unknown}; choose from {[*LAYERS, 'graticule']}"
            )
        view = view_bounds(self.center, float(self.zoom), _MAP_SIZE_PX)
        self.context_layers = context_layers(fp.bounds, view, wanted) if wanted else []
        for layer in self.context_layers:
            self.add(layer)
        if preview:
            field, channels = select_field(obj, fp, variable, bands, isel)
            shown = preview_image(
                field, channels, fp, size=preview_size, stretch=stretch, cmap=cmap
            )
            west, south, east, north = shown.bounds
            self.preview_layer = ipyleaflet.ImageOverlay(
                url=png_data_url(shown.png), bounds=((south, west), (north, east)),
                name="preview", opacity=opacity,
            )  # fmt: skip
            self.add(self.preview_layer)
            self.legend = ipywidgets.HTML(value=_legend(field, shown, cmap))
            self.add(ipyleaflet.WidgetControl(widget=self.legend, position="topright"))
        self.footprint_layer = ipyleaflet.GeoJSON(
            data=fp.geojson(), style=_FOOTPRINT_STYLE, name="footprint"
        )
        self.add(self.footprint_layer)
        self.draw_control = ipyleaflet.DrawControl(
            rectangle={"shapeOptions": _AOI_STYLE},
            polygon={"shapeOptions": _AOI_STYLE, "allowIntersection": False},
            polyline={}, circle={}, circlemarker={}, marker={},
        )  # fmt: skip
        self.draw_control.observe(self._on_draw_data, names="data")
        self.add(self.draw_control)
        self.status = ipywidgets.HTML(value=self._status_html())
        self.add(ipyleaflet.WidgetControl(widget=self.status, position="bottomleft"))
        self.add(ipyleaflet.ScaleControl(position="bottomright", imperial=False))
        self.add(ipyleaflet.LayersControl(position="topright"))
        if aoi is not None:
            self.geojson = _as_feature(aoi)

    # -- the AOI --------------------------------------------------------------------
    @property
    def aoi(self) -> dict[str, Any]:
        """The drawn AOI: a GeoJSON Feature (lon/lat) with a ``bbox`` member.

        Pass it to ``ds.wb.clip(map.aoi)``.

        Raises
        ------
        AOIError
            If no AOI has been drawn or set yet.
        """
        if self.geojson is None or self.bbox is None:
            raise AOIError(
                "no area of interest yet: draw a rectangle or polygon on the map (toolbar at "
                "the top left), or set map.bbox = (west, south, east, north)"
            )
        return {
            "type": "Feature",
            "properties": {},
            "geometry": self.geojson["geometry"],
            "bbox": list(self.bbox),
        }

    def clear_aoi(self) -> None:
        """Remove the AOI (from the map and the traits)."""
        self.geojson = None

    def clip(self, **kwargs: Any) -> Any:
        """Return the cube clipped to the AOI; see :func:`workbench.data.aoi.clip`."""
        from workbench.data.aoi import clip

        return clip(self._obj, self.aoi, **kwargs)

    def _on_draw_data(self, change: Any) -> None:
        """Keep one shape in the draw layer; mirror the last one in ``geojson``."""
        if self._syncing:
            return
        shapes = [f for f in change["new"] if f.get("geometry")]
        feature = None
        if shapes:
            feature = {"type": "Feature", "properties": {}, "geometry": shapes[-1]["geometry"]}
        with self._sync():
            if len(shapes) > 1:
                self.draw_control.data = [shapes[-1]]
            self.geojson = feature

    @traitlets.validate("geojson")
    def _check_geojson(self, proposal: Any) -> dict[str, Any] | None:
        value = proposal["value"]
        if value is None:
            return None
        if value.get("type") in ("Polygon", "MultiPolygon"):
            value = {"type": "Feature", "properties": {}, "geometry": value}
        if value.get("type") != "Feature" or not value.get("geometry"):
            raise AOIError(f"geojson must be a GeoJSON Feature or Polygon, got {value!r}")
        feature_bounds(value)
        return dict(value)

    @traitlets.validate("bbox")
    def _check_bbox_trait(self, proposal: Any) -> tuple[float, ...] | None:
        value = proposal["value"]
        return None if value is None else check_bbox(value, require_area=True)

    @traitlets.observe("geojson")
    def _geojson_changed(self, change: Any) -> None:
        feature = change["new"]
        with self._sync():
            self.bbox = None if feature is None else feature_bounds(feature)
            drawn = [f.get("geometry") for f in self.draw_control.data]
            if feature is None:
                if drawn:
                    self.draw_control.data = []
            elif drawn[-1:] != [feature["geometry"]]:
                self.draw_control.data = [
                    {**feature, "properties": {"style": {**_AOI_STYLE, "fillColor": "#e8590c"}}}
                ]
        self.status.value = self._status_html()

    @traitlets.observe("bbox")
    def _bbox_changed(self, change: Any) -> None:
        if self._syncing or change["new"] is None:
            if change["new"] is None and not self._syncing:
                self.geojson = None
            return
        self.geojson = bbox_feature(change["new"])

    def _sync(self) -> _Guard:
        return _Guard(self)

    # -- chips ----------------------------------------------------------------------
    def show_chips(
        self,
        chips: Any,
        indices: Iterable[int] | None = None,
        style: Mapping[str, Any] | None = None,
    ) -> Any:
        """Overlay the chip grid: one GeoJSON layer (a MultiPolygon) however many chips.

        Chips sharing a window (e.g. the same place at several times) are drawn once, as
        the lon/lat outline of their pixel edges (a quadrilateral for projected data).
        A second call replaces the previous grid.

        Parameters
        ----------
        chips : ChipSet
            The chips (``obj`` and ``selector(i)`` are used; else ``bounds(i)``).
        indices : iterable of int, optional
            Which chips (default all).
        style : mapping, optional
            Leaflet path style of the outlines.

        Returns
        -------
        ipyleaflet.GeoJSON
            The layer (also ``map.chip_layer``).
        """
        polygons = chip_polygons(chips, range(len(chips)) if indices is None else indices)
        data = {
            "type": "Feature",
            # the style rides in the feature: GeoJSON(style=...) would deep-copy every vertex
            "properties": {"chips": len(polygons), "style": {**_CHIP_STYLE, **(style or {})}},
            "geometry": {"type": "MultiPolygon", "coordinates": polygons},
        }
        if self._chip_layer is not None and self._chip_layer in self.layers:
            self.remove(self._chip_layer)
        self._chip_layer = ipyleaflet.GeoJSON(data=data, name="chips")
        self.add(self._chip_layer)
        self.status.value = self._status_html()
        return self._chip_layer

    @property
    def chip_layer(self) -> Any:
        """The chip-grid layer of :meth:`show_chips` (None before)."""
        return self._chip_layer

    # -- text -----------------------------------------------------------------------
    def _status_html(self) -> str:
        text = f"AOI: {format_bounds(self.bbox, 4)}" if self.bbox else "Draw a rectangle or polygon"
        if self._chip_layer is not None:
            text += f" · {self._chip_layer.data['properties']['chips']} chip outlines"
        return f'<div class="wb-aoi-status" style="padding:0 4px;font-size:11px">{text}</div>'

    def _summary(self) -> list[str]:
        fp = self.footprint
        dims = dict(self._obj.sizes)
        return [
            f"cube {dims} in {fp.crs.to_string()}",
            f"footprint (lon/lat): {format_bounds(fp.bounds)}",
            f"AOI: {format_bounds(self.bbox)}"
            + ("" if self.bbox else "  (set map.bbox = (west, south, east, north) to choose one)"),
        ]

    def __repr__(self) -> str:
        return fallback_text("AOIMap", self._summary())

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/plain"] = repr(self)
        return bundle


class _Guard:
    """Context manager that marks an AOIMap as syncing its own traits (no feedback loops)."""

    def __init__(self, owner: AOIMap) -> None:
        self.owner = owner
        self.outer = owner._syncing

    def __enter__(self) -> None:
        self.owner._syncing = True

    def __exit__(self, *exc: object) -> None:
        self.owner._syncing = self.outer


def _as_feature(aoi: Any) -> dict[str, Any]:
    """Turn an initial AOI (bbox, GeoJSON Feature/geometry, shapely geometry) into a Feature."""
    if hasattr(aoi, "__geo_interface__"):
        aoi = aoi.__geo_interface__
    if isinstance(aoi, Mapping):
        return dict(aoi)
    if isinstance(aoi, Sequence) and not isinstance(aoi, str) and len(aoi) == 4:
        return bbox_feature(aoi)
    raise AOIError(
        f"aoi must be (west, south, east, north), a GeoJSON Feature or geometry, got {aoi!r}"
    )


def _legend(field: xr.DataArray, shown: Any, cmap: str) -> str:
    """Return the preview's legend: the variable's name (and long name), units and range."""
    attrs = field.attrs
    name = str(field.name) if field.name is not None else "data"
    long_name = attrs.get("long_name") or attrs.get("standard_name")
    title = f"{name} ({long_name})" if long_name and long_name != name else name
    index = {d: str(field[d].values) for d in field.coords if field[d].ndim == 0}
    when = index.get("time") or next(iter(index.values()), None)
    note = when[:19].replace("T", " ").removesuffix(" 00:00:00") if when else None
    single = len(shown.limits) == 1
    return legend_html(
        title, attrs.get("units"), shown.limits, cmap if single else None, shown.names, note
    )


def _basemap_layers(basemap: Any) -> list[Any]:
    if basemap is None or basemap is False:
        return []
    provider = ipyleaflet.basemaps.OpenStreetMap.Mapnik if basemap is True else basemap
    if isinstance(provider, str):
        provider = ipyleaflet.basemaps.get(provider) or ipyleaflet.basemaps.query_name(provider)
    layer = (
        provider
        if isinstance(provider, ipyleaflet.TileLayer)
        else ipyleaflet.basemap_to_tiles(provider)
    )
    layer.base = True
    return [layer]
