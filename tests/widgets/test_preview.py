"""Map previews: cubes in lon/lat and in UTM land where they belong on a Web-Mercator map."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from pyproj import Transformer

from workbench.chips.render import PreviewError
from workbench.data.synthetic import era5_like, s2_like
from workbench.geo.crs import lonlat_bounds
from workbench.widgets._preview import footprint, preview_png, select_field, warp_to_lonlat


def _grid_lonlat(bounds, shape):
    """Pixel-centre lon/lat of the preview grid (lon linear, Mercator y linear)."""
    west, south, east, north = bounds
    height, width = shape
    lon = west + (east - west) * (np.arange(width) + 0.5) / width
    merc = np.log(np.tan(np.pi / 4 + np.radians([north, south]) / 2))
    y = merc[0] - (merc[0] - merc[1]) * (np.arange(height) + 0.5) / height
    lat = np.degrees(2 * np.arctan(np.exp(y)) - np.pi / 2)
    return np.meshgrid(lon, lat)


def _position_cube(ds: xr.Dataset, ydim: str, xdim: str) -> xr.DataArray:
    """A field whose value is ``row * 1000 + col``, so a sampled pixel tells where it came from."""
    ny, nx = ds.sizes[ydim], ds.sizes[xdim]
    values = (np.arange(ny)[:, None] * 1000 + np.arange(nx)[None, :]).astype(np.float32)
    return xr.DataArray(values, dims=(ydim, xdim), coords={ydim: ds[ydim], xdim: ds[xdim]})


def test_lonlat_cube_is_sampled_at_the_nearest_pixel():
    ds = era5_like(time=1, lat=40, lon=60, bbox=(-10.0, 40.0, 20.0, 60.0))
    ds["pos"] = _position_cube(ds, "lat", "lon")
    fp = footprint(ds)
    assert fp.bounds == pytest.approx(lonlat_bounds(ds))
    field, channels = select_field(ds, fp, variable="pos")
    warped, bounds = warp_to_lonlat(field, fp, size=120)
    warped = np.asarray(warped)[0]
    lon, lat = _grid_lonlat(bounds, warped.shape)
    colf, rowf = (lon + 10.0) / 0.5, (60.0 - lat) / 0.5
    col, row = np.floor(colf).astype(int), np.floor(rowf).astype(int)
    # Mercator rows are not evenly spaced in latitude: the preview must follow them.
    on_edge = (np.abs(colf - np.round(colf)) < 1e-9) | (np.abs(rowf - np.round(rowf)) < 1e-9)
    assert on_edge.mean() < 0.05
    np.testing.assert_array_equal(warped[~on_edge], (row * 1000 + col)[~on_edge])
    assert channels == [0]


def test_utm_cube_lands_on_the_right_lonlat():
    ds = s2_like(time=1, y=200, x=300, resolution=20.0)
    ds["pos"] = _position_cube(ds, "y", "x")
    fp = footprint(ds)
    assert not fp.is_lonlat
    # the outline of a UTM grid is not a lon/lat rectangle
    ring = fp.ring
    assert len({round(v, 6) for v in ring[:, 0]}) > 4
    field, _ = select_field(ds, fp, variable="pos")
    warped, bounds = warp_to_lonlat(field, fp, size=256)
    warped = np.asarray(warped)[0]
    lon, lat = _grid_lonlat(bounds, warped.shape)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(lon, lat)
    col = np.floor((x - 465180.0) / 20.0).astype(int)
    row = np.floor((5080260.0 - y) / 20.0).astype(int)
    inside = (col >= 0) & (col < 300) & (row >= 0) & (row < 200)
    assert inside.mean() > 0.9
    assert not inside.all()
    np.testing.assert_array_equal(warped[inside], (row * 1000 + col)[inside])
    assert np.isnan(warped[~inside]).all()


def test_real_utm_geotiff_preview_is_transparent_outside_and_on_nodata(data_dir):
    rioxarray = pytest.importorskip("rioxarray")
    PIL_Image = pytest.importorskip("PIL.Image")
    import io

    da = rioxarray.open_rasterio(data_dir / "rasterio_landsat7_rgb" / "RGB.byte.tif")
    fp = footprint(da)
    assert fp.bounds == pytest.approx(lonlat_bounds(da), abs=1e-3)
    field, channels = select_field(da, fp)
    assert channels == [0, 1, 2]  # a 3-band image is drawn as RGB
    png, _ = preview_png(field, channels, fp, size=300)
    img = np.asarray(PIL_Image.open(io.BytesIO(png)))
    assert img.shape[2] == 4
    assert max(img.shape[:2]) == 300
    alpha = img[..., 3]
    assert alpha[0, 0] == 0
    assert alpha[-1, -1] == 0
    assert 0.4 < (alpha == 255).mean() < 0.95  # the tilted scene, minus its nodata collar


def test_band_and_variable_selection():
    ds = s2_like(time=3, y=16, x=16)
    fp = footprint(ds)
    field, channels = select_field(ds, fp, bands=["B08", "B04", "B03"], isel={"time": 2})
    assert field.dims == ("band", "y", "x")
    assert channels == [3, 2, 1]
    np.testing.assert_array_equal(field.isel(band=3), ds.reflectance.isel(time=2, band=3))
    era = era5_like(time=2, lat=4, lon=4)
    field, channels = select_field(era, footprint(era), bands=["u10", "v10", "t2m"])
    assert list(field.channel.values) == ["u10", "v10", "t2m"]
    assert channels == [0, 1, 2]
    with pytest.raises(PreviewError, match="'nope'"):
        select_field(era, footprint(era), variable="nope")
    with pytest.raises(PreviewError, match="channels"):
        select_field(ds, fp, bands="B99")


def test_cube_without_crs_needs_one():
    from workbench.errors import CRSError

    ds = xr.Dataset(
        {"v": (("y", "x"), np.zeros((4, 4)))}, coords={"y": np.arange(4.0), "x": np.arange(4.0)}
    )
    with pytest.raises(CRSError, match="no coordinate reference system"):
        footprint(ds)
    assert (
        footprint(
            ds.assign_coords(x=ds.x * 10 + 500000, y=ds.y * 10), crs="EPSG:32633"
        ).crs.to_epsg()
        == 32633
    )


@pytest.mark.gpu
def test_cupy_backed_cube_is_warped_on_the_device():
    from workbench.testing import has_gpu

    if not has_gpu():
        pytest.skip("no CUDA device (and cupy) available")
    import cupy as cp

    ds = s2_like(time=1, y=128, x=128)
    fp = footprint(ds)
    field, channels = select_field(ds, fp, bands=["B04", "B03", "B02"])
    on_gpu, _ = warp_to_lonlat(field.copy(data=cp.asarray(field.values)), fp, size=96)
    on_cpu, _ = warp_to_lonlat(field, fp, size=96)
    assert isinstance(on_gpu, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(on_gpu), on_cpu)
    png_gpu, _ = preview_png(field.copy(data=cp.asarray(field.values)), channels, fp, size=96)
    assert png_gpu == preview_png(field, channels, fp, size=96)[0]
