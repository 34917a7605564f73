"""Deterministic synthetic datacubes for tests, tutorials and IO-only benchmarks.

Synthetic data is for scale and edge cases; real data lives in ``../shared/data``.
Every generator is seeded, so the same call gives the same bytes on every machine.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["era5_like", "s2_like", "write_zarr"]


def era5_like(
    time: int = 24,
    lat: int = 32,
    lon: int = 64,
    variables: Sequence[str] = ("t2m", "u10", "v10", "msl"),
    *,
    seed: int = 0,
    dtype: Any = np.float32,
    start: str = "2019-03-01",
    freq: str = "h",
    bbox: tuple[float, float, float, float] = (-10.0, 50.0, 2.0, 58.0),
) -> xr.Dataset:
    """Build an ERA5-like reanalysis cube on a regular lon/lat grid.

    Parameters
    ----------
    time, lat, lon : int
        Dimension sizes.
    variables : sequence of str
        Data variable names, each ``(time, lat, lon)``.
    seed : int
        Random seed; the output is a pure function of the arguments.
    dtype : numpy dtype
        Dtype of the data variables.
    start, freq : str
        First timestamp and frequency of the ``time`` coordinate.
    bbox : tuple
        ``(west, south, east, north)`` of the pixel edges in degrees.

    Returns
    -------
    xarray.Dataset
        With ``lat`` descending (north first) as in ERA5, and CF attributes.

    Examples
    --------
    >>> ds = era5_like(time=2, lat=4, lon=8)
    >>> dict(ds.sizes), list(ds.data_vars)
    ({'time': 2, 'lat': 4, 'lon': 8}, ['t2m', 'u10', 'v10', 'msl'])
    """
    rng = np.random.default_rng(seed)
    west, south, east, north = bbox
    dlon, dlat = (east - west) / lon, (north - south) / lat
    lons = west + dlon * (np.arange(lon) + 0.5)
    lats = north - dlat * (np.arange(lat) + 0.5)
    times = pd.date_range(start, periods=time, freq=freq)
    base = (
        np.sin(np.linspace(0, 2 * np.pi, lon))[None, None, :]
        + np.cos(np.linspace(0, np.pi, lat))[None, :, None]
    )
    cycle = np.sin(2 * np.pi * np.arange(time) / 24.0)[:, None, None]
    data_vars = {}
    for i, name in enumerate(variables):
        noise = rng.standard_normal((time, lat, lon))
        values = (10.0 * (i + 1)) + 3 * base + cycle + 0.5 * noise
        data_vars[name] = (("time", "lat", "lon"), values.astype(dtype), {"units": "1"})
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", times),
            "lat": ("lat", lats, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lons, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"title": "synthetic ERA5-like cube (workbench.data.synthetic)"},
    )
    return ds


def s2_like(
    time: int = 5,
    y: int = 64,
    x: int = 64,
    bands: Sequence[str] = ("B02", "B03", "B04", "B08", "B11"),
    *,
    seed: int = 0,
    crs: str = "EPSG:32633",
    origin: tuple[float, float] = (465180.0, 5080260.0),
    resolution: float = 10.0,
    cloud_fraction: float = 0.2,
) -> xr.Dataset:
    """Build a Sentinel-2-like projected cube with a ``reflectance`` band stack and cloud mask.

    Parameters
    ----------
    time, y, x : int
        Dimension sizes.
    bands : sequence of str
        Band names of the ``band`` dimension.
    seed : int
        Random seed.
    crs : str
        Projected CRS, recorded rioxarray-style in a ``spatial_ref`` coordinate.
    origin : tuple of float
        ``(x, y)`` of the upper-left pixel corner.
    resolution : float
        Pixel size in CRS units.
    cloud_fraction : float
        Expected share of cloudy pixels per date (in blobs).

    Returns
    -------
    xarray.Dataset
        ``reflectance (time, band, y, x)`` float32 in [0, 1] and ``cloud_mask (time, y, x)`` uint8.

    Examples
    --------
    >>> ds = s2_like(time=2, y=8, x=8)
    >>> ds.reflectance.dims
    ('time', 'band', 'y', 'x')
    """
    from pyproj import CRS

    rng = np.random.default_rng(seed)
    x0, y0 = origin
    xs = x0 + resolution * (np.arange(x) + 0.5)
    ys = y0 - resolution * (np.arange(y) + 0.5)
    yy, xx = np.meshgrid(np.linspace(0, 4, y), np.linspace(0, 4, x), indexing="ij")
    field = 0.5 + 0.25 * np.sin(xx) * np.cos(yy)
    refl = np.empty((time, len(bands), y, x), dtype=np.float32)
    for b in range(len(bands)):
        refl[:, b] = field * (0.6 + 0.1 * b) + 0.02 * rng.standard_normal((time, y, x))
    # cloud blobs: thresholded smooth noise, one field per date
    clouds = np.zeros((time, y, x), dtype=np.uint8)
    for t in range(time):
        cx, cy = rng.uniform(0, x), rng.uniform(0, y)
        r = np.sqrt(cloud_fraction * x * y / np.pi)
        clouds[t] = ((np.arange(x)[None, :] - cx) ** 2 + (np.arange(y)[:, None] - cy) ** 2) < r**2
    refl = np.where(clouds[:, None].astype(bool), np.float32(0.9), refl).clip(0, 1)
    spatial_ref = xr.DataArray(0, attrs=CRS.from_user_input(crs).to_cf())
    spatial_ref.attrs["GeoTransform"] = f"{x0} {resolution} 0.0 {y0} 0.0 {-resolution}"
    times = pd.date_range("2015-07-11T10:00", periods=time, freq="10D")
    return xr.Dataset(
        {
            "reflectance": (("time", "band", "y", "x"), refl, {"grid_mapping": "spatial_ref"}),
            "cloud_mask": (("time", "y", "x"), clouds, {"grid_mapping": "spatial_ref"}),
        },
        coords={
            "time": times,
            "band": list(bands),
            "y": ("y", ys, {"units": "metre", "standard_name": "projection_y_coordinate"}),
            "x": ("x", xs, {"units": "metre", "standard_name": "projection_x_coordinate"}),
            "spatial_ref": spatial_ref,
        },
        attrs={"title": "synthetic Sentinel-2-like cube (workbench.data.synthetic)"},
    )


def write_zarr(
    ds: xr.Dataset,
    path: str | Path,
    chunks: Mapping[str, int] | None = None,
    *,
    compressor: str | None = "zstd",
    level: int = 1,
    zarr_format: int = 3,
) -> Path:
    """Write ``ds`` to a Zarr store with explicit chunks and compression.

    Parameters
    ----------
    ds : xarray.Dataset
        Data to write.
    path : str or Path
        Target store; overwritten if it exists.
    chunks : mapping, optional
        Chunk size per dimension (defaults to whole dims).
    compressor : {"zstd", "blosc", None}
        Codec of every data variable; ``None`` writes uncompressed chunks.
    level : int
        Compression level.
    zarr_format : {2, 3}
        Zarr format version.

    Returns
    -------
    pathlib.Path
        The store path.
    """
    import zarr.codecs

    path = Path(path)
    chunks = dict(chunks or {})
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        enc: dict[str, Any] = {"chunks": tuple(chunks.get(str(d), ds.sizes[d]) for d in var.dims)}
        if compressor is None:
            enc["compressors"] = None
        elif zarr_format == 3:
            codec: Any
            if compressor == "zstd":
                codec = zarr.codecs.ZstdCodec(level=level)
            else:
                codec = zarr.codecs.BloscCodec(cname="zstd", clevel=level, shuffle="shuffle")
            enc["compressors"] = [codec]
        else:
            import numcodecs

            enc["compressors"] = [
                numcodecs.Zstd(level=level)
                if compressor == "zstd"
                else numcodecs.Blosc(cname="zstd", clevel=level, shuffle=numcodecs.Blosc.SHUFFLE)
            ]
        encoding[str(name)] = enc
    with warnings.catch_warnings():
        # consolidated metadata is not in the v3 spec yet, but xarray and zarr-python read it
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(path, mode="w", encoding=encoding, zarr_format=zarr_format, consolidated=True)
    return path
