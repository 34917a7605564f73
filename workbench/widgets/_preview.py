"""Map previews of a cube, drawn without a tile server.

Leaflet stretches an ``ImageOverlay`` linearly between two lon/lat corners in Web Mercator,
so a cube in any CRS (UTM included) is resampled here, nearest neighbour, onto a grid whose
columns are evenly spaced in longitude and whose rows are evenly spaced in Mercator ``y``.
Pixels outside the data (or nodata / NaN) come out transparent. The cube is first
decimated with strided ``isel`` (a lazy store reads only what it must), and the sampling
runs in the data's own array namespace (NumPy or CuPy) through :mod:`workbench.chips.render`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from workbench.chips.render import PreviewError, array_namespace, encode_png, render, to_host
from workbench.widgets._chipmeta import pick_bands

__all__ = [
    "Footprint",
    "Preview",
    "footprint",
    "select_field",
    "warp_to_lonlat",
    "stretch_limits",
    "preview_image",
    "preview_png",
]

_BAND_DIMS = ("band", "bands", "channel", "channels", "spectral_band")
_MAX_LAT = 85.05112878


@dataclass(frozen=True)
class Footprint:
    """The outline of a cube in lon/lat and what is needed to sample it.

    Attributes
    ----------
    crs : pyproj.CRS
        The data CRS.
    ydim, xdim : str
        Names of the spatial dims.
    native : tuple of float
        ``(xmin, ymin, xmax, ymax)`` pixel edges in the data CRS.
    ring : numpy.ndarray
        ``(N, 2)`` lon/lat outline (densified edges of the native box), closed.
    bounds : tuple of float
        ``(west, south, east, north)`` of ``ring``.
    """

    crs: Any
    ydim: str
    xdim: str
    native: tuple[float, float, float, float]
    ring: np.ndarray
    bounds: tuple[float, float, float, float]

    @property
    def is_lonlat(self) -> bool:
        """Whether the data CRS is geographic (lon/lat)."""
        return bool(self.crs.is_geographic)

    def geojson(self) -> dict[str, Any]:
        """Return the outline as a GeoJSON Feature (a Polygon in lon/lat)."""
        return {
            "type": "Feature",
            "properties": {"name": "footprint"},
            "geometry": {"type": "Polygon", "coordinates": [self.ring.tolist()]},
        }


def footprint(obj: xr.Dataset | xr.DataArray, crs: Any = None, densify: int = 32) -> Footprint:
    """Return the lon/lat outline of a cube (its pixel edges, densified so projections curve right).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        A georeferenced cube (lon/lat coords, or a projected grid with a CRS).
    crs : optional
        The data CRS, when the cube does not record one (anything :class:`pyproj.CRS` takes).
    densify : int
        Points per edge of the outline.

    Returns
    -------
    Footprint

    Raises
    ------
    CRSError
        If the cube has no CRS and none is given.
    DimensionError
        If the cube has no recognisable spatial dims.

    Examples
    --------
    >>> from workbench.data.synthetic import s2_like
    >>> fp = footprint(s2_like(time=1, y=100, x=100))
    >>> fp.crs.to_epsg(), [round(v, 3) for v in fp.bounds]
    (32633, [14.551, 45.866, 14.564, 45.875])
    """
    from pyproj import CRS

    from workbench.geo.crs import native_bounds, require_crs, spatial_dims, xy_to_lonlat

    ydim, xdim = (str(d) for d in spatial_dims(obj))
    data_crs = CRS.from_user_input(crs) if crs is not None else require_crs(obj, "a map")
    xmin, ymin, xmax, ymax = native_bounds(obj)
    t = np.linspace(0.0, 1.0, densify)
    xs = np.concatenate([xmin + (xmax - xmin) * t, np.full(densify, xmax),
                         xmax - (xmax - xmin) * t, np.full(densify, xmin)])  # fmt: skip
    ys = np.concatenate([np.full(densify, ymin), ymin + (ymax - ymin) * t,
                         np.full(densify, ymax), ymax - (ymax - ymin) * t])  # fmt: skip
    if data_crs.is_geographic:
        lon, lat = xs, np.clip(ys, -90.0, 90.0)
    else:
        lon, lat = xy_to_lonlat(xs, ys, data_crs)
    ring = np.column_stack([lon, lat])
    ring = np.vstack([ring, ring[:1]])
    bounds = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    return Footprint(data_crs, ydim, xdim, (xmin, ymin, xmax, ymax), ring, bounds)


def select_field(
    obj: xr.Dataset | xr.DataArray,
    fp: Footprint,
    variable: Hashable | None = None,
    bands: Sequence[int | str] | int | str | None = None,
    isel: Mapping[Hashable, int] | None = None,
) -> tuple[xr.DataArray, list[int]]:
    """Pick what the preview shows: a ``(channel, y, x)`` DataArray and the channels to draw.

    A Dataset previews ``variable`` (default: the first with both spatial dims); ``bands``
    picks along a band-like dim, or among the Dataset's variables when it has none. Every
    other dim is taken at ``isel[dim]`` (default 0).
    """
    spatial = {fp.ydim, fp.xdim}
    if isinstance(obj, xr.Dataset):
        names = [n for n, v in obj.data_vars.items() if spatial <= set(v.dims)]
        if not names:
            raise PreviewError(f"no data variable has both dims {fp.ydim!r} and {fp.xdim!r}")
        band_dim_exists = any(d in _BAND_DIMS for n in names for d in obj[n].dims)
        if variable is None and bands is not None and not band_dim_exists:
            wanted = [bands] if isinstance(bands, str | int) else list(bands)
            chosen = [names[b] if isinstance(b, int) else str(b) for b in wanted]
            missing = [c for c in chosen if c not in names]
            if missing:
                raise PreviewError(f"variables {missing!r} are not in the cube; have {names!r}")
            da = xr.concat([obj[c] for c in chosen], dim="channel").assign_coords(channel=chosen)
            bands = None
        else:
            if variable is not None and variable not in names:
                raise PreviewError(
                    f"variable {variable!r} has no map to draw; choose one of {names!r}"
                )
            da = obj[variable if variable is not None else names[0]]
    else:
        da = obj
    band_dim = next((d for d in da.dims if d in _BAND_DIMS), None)
    isel = dict(isel or {})
    for dim in da.dims:
        if dim not in spatial and dim != band_dim:
            da = da.isel({dim: int(isel.get(dim, 0))})
    if band_dim is None:
        da = da.expand_dims(channel=[str(da.name)])
        band_dim = "channel"
    labels = [str(v) for v in da[band_dim].values] if band_dim in da.coords else []
    labels = labels or [str(i) for i in range(da.sizes[band_dim])]
    if bands is None and da.sizes[band_dim] == 3 and pick_bands(None, labels) == [0]:
        channels = [0, 1, 2]
    else:
        channels = pick_bands(bands, labels)
    return da.transpose(band_dim, fp.ydim, fp.xdim), channels


def _nodata_to_nan(da: xr.DataArray, values: Any) -> Any:
    xp = array_namespace(values)
    values = values.astype(np.float32)
    for fill in (da.attrs.get("_FillValue"), da.encoding.get("_FillValue"), da.attrs.get("nodata")):
        if fill is not None and np.isfinite(fill):
            values = xp.where(values == np.float32(fill), np.float32(np.nan), values)
    return values


def _nearest(coord: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the pixel containing each wanted coordinate, and whether it is inside."""
    order = np.argsort(coord)
    srt = coord[order]
    step = float(abs(srt[1] - srt[0])) if srt.size > 1 else 1.0
    pos = np.clip(np.searchsorted(srt, wanted), 1, max(srt.size - 1, 1))
    left = srt[pos - 1]
    right = srt[np.minimum(pos, srt.size - 1)]
    pos = np.where(np.abs(wanted - left) <= np.abs(right - wanted), pos - 1, pos)
    pos = np.clip(pos, 0, srt.size - 1)
    inside = (wanted >= srt[0] - step / 2) & (wanted <= srt[-1] + step / 2) & np.isfinite(wanted)
    return order[pos], inside


def _mercator_y(lat: Any) -> Any:
    lat = np.clip(np.asarray(lat, dtype=float), -_MAX_LAT, _MAX_LAT)
    return np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))


def _grid_shape(bounds: tuple[float, float, float, float], size: int) -> tuple[int, int]:
    west, south, east, north = bounds
    width = math.radians(max(east - west, 1e-12))
    height = float(_mercator_y(north) - _mercator_y(south)) or 1e-12
    if width >= height:
        return max(1, round(size * height / width)), size
    return size, max(1, round(size * width / height))


def warp_to_lonlat(
    field: xr.DataArray, fp: Footprint, size: int = 512
) -> tuple[Any, tuple[float, float, float, float]]:
    """Resample a ``(C, y, x)`` field onto a Leaflet-ready lon/lat grid (nearest neighbour).

    Returns
    -------
    (array, bounds)
        ``(C, H, W)`` float32 in the field's namespace (NaN outside the data), and the
        ``(west, south, east, north)`` the image spans.
    """
    from workbench.geo.crs import lonlat_to_xy, pixel_centers

    ny, nx = field.sizes[fp.ydim], field.sizes[fp.xdim]
    height, width = _grid_shape(fp.bounds, size)
    sy, sx = max(1, ny // (2 * height)), max(1, nx // (2 * width))
    xc, yc = (c.astype(float) for c in pixel_centers(field))
    xc, yc = xc[::sx], yc[::sy]
    small = field.isel({fp.ydim: slice(None, None, sy), fp.xdim: slice(None, None, sx)})
    raw = small.values if hasattr(small.data, "compute") else small.data
    values = _nodata_to_nan(field, raw)
    xp = array_namespace(values)
    west, south, east, north = fp.bounds
    lon = west + (east - west) * (np.arange(width) + 0.5) / width
    my_n, my_s = _mercator_y(north), _mercator_y(south)
    merc = my_n - (my_n - my_s) * (np.arange(height) + 0.5) / height
    lat = np.degrees(2 * np.arctan(np.exp(merc)) - np.pi / 2)
    if fp.is_lonlat:
        ix, okx = _nearest(xc, lon)
        iy, oky = _nearest(yc, lat)
        ix2 = np.broadcast_to(ix[None, :], (height, width))
        iy2 = np.broadcast_to(iy[:, None], (height, width))
        ok = oky[:, None] & okx[None, :]
    else:
        glon, glat = np.meshgrid(lon, lat)
        gx, gy = lonlat_to_xy(glon, glat, fp.crs)
        ix2, okx = _nearest(xc, gx.ravel())
        iy2, oky = _nearest(yc, gy.ravel())
        ix2, iy2, ok = (a.reshape(height, width) for a in (ix2, iy2, okx & oky))
    out = values[:, xp.asarray(iy2), xp.asarray(ix2)]
    out = xp.where(xp.asarray(ok)[None], out, np.float32(np.nan))
    return out, fp.bounds


def stretch_limits(
    values: Any,
    stretch: str | tuple[float, float] = "percentile",
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> list[tuple[float, float]]:
    """Return the ``(low, high)`` values a stretch maps to 0 and 1, per channel of ``(C, H, W)``.

    The same rule as :func:`workbench.chips.render.stretch` for one image: percentiles (linear
    interpolation, NaN ignored), min/max, fixed limits, or ``(0, 1)`` for ``"none"``.

    Examples
    --------
    >>> stretch_limits(np.arange(101, dtype=np.float32).reshape(1, 1, 101))
    [(2.0, 98.0)]
    """
    host = np.asarray(to_host(values), dtype=np.float64)
    if isinstance(stretch, tuple | list) and not isinstance(stretch, str):
        return [(float(stretch[0]), float(stretch[1]))] * host.shape[0]
    if stretch == "none":
        return [(0.0, 1.0)] * host.shape[0]
    qs = (0.0, 100.0) if stretch == "minmax" else percentiles
    out = []
    for channel in host.reshape(host.shape[0], -1):
        finite = channel[np.isfinite(channel)]
        if finite.size == 0:
            out.append((math.nan, math.nan))
        else:
            lo, hi = np.percentile(finite, qs)
            out.append((float(lo), float(hi)))
    return out


@dataclass(frozen=True)
class Preview:
    """A rendered map preview: the PNG, where it goes, and what its colours mean.

    Attributes
    ----------
    png : bytes
    bounds : tuple of float
        ``(west, south, east, north)`` the image spans.
    limits : list of (float, float)
        Data values drawn as the lowest and highest colour, per drawn channel.
    names : list of str
        The drawn channels.
    """

    png: bytes
    bounds: tuple[float, float, float, float]
    limits: list[tuple[float, float]]
    names: list[str]


def preview_image(
    field: xr.DataArray,
    channels: list[int],
    fp: Footprint,
    *,
    size: int = 512,
    stretch: str | tuple[float, float] = "percentile",
    cmap: str = "viridis",
) -> Preview:
    """Render a field warped to lon/lat (transparent off the data), with its colour limits.

    A single channel is stretched between limits computed once here, so the legend states
    exactly what the colours show; an RGB composite keeps one stretch per channel.
    """
    warped, bounds = warp_to_lonlat(field, fp, size)
    drawn = warped[channels]
    limits = stretch_limits(drawn, stretch)
    how: str | tuple[float, float] = stretch
    if len(channels) == 1 and all(math.isfinite(v) for v in limits[0]):
        lo, hi = limits[0]
        how = (lo, hi) if hi > lo else (lo, lo + 1.0)
    image = render(warped[None], channels, how, cmap)
    band_dim = field.dims[0]
    labels = [str(v) for v in field[band_dim].values] if band_dim in field.coords else []
    names = [labels[c] if c < len(labels) else str(c) for c in channels]
    return Preview(encode_png(image[0]), bounds, limits, names)


def preview_png(
    field: xr.DataArray,
    channels: list[int],
    fp: Footprint,
    *,
    size: int = 512,
    stretch: str | tuple[float, float] = "percentile",
    cmap: str = "viridis",
) -> tuple[bytes, tuple[float, float, float, float]]:
    """Render a field warped to lon/lat as a PNG (transparent off the data), with its bounds."""
    shown = preview_image(field, channels, fp, size=size, stretch=stretch, cmap=cmap)
    return shown.png, shown.bounds
