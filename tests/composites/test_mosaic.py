from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from workbench.composites import coarsen, mosaic
from workbench.errors import CompositeError, CRSError, DimensionError


@pytest.fixture(scope="module")
def scene(s2_scene: xr.DataArray) -> xr.Dataset:
    """The real 2015-08-30 scene as float reflectance, 13 bands."""
    refl = (s2_scene.astype(np.float32) / 1e4).to_dataset(name="reflectance")
    refl.reflectance.attrs = {}
    return refl


def _partial(piece: xr.Dataset, seed: int) -> xr.Dataset:
    """Blank a random disc of a piece (NaN fill, as a partial geocode split has)."""
    rng = np.random.default_rng(seed)
    ny, nx = piece.sizes["y"], piece.sizes["x"]
    cy, cx, r = rng.uniform(0, ny), rng.uniform(0, nx), min(ny, nx) / 3
    yy, xx = np.ogrid[:ny, :nx]
    hole = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    return piece.where(~xr.DataArray(hole, dims=("y", "x")))


def test_overlapping_partial_pieces_rebuild_the_scene(scene):
    cuts = [(slice(0, 60), slice(0, 60)), (slice(0, 60), slice(40, 100)),
            (slice(45, 101), slice(0, 60)), (slice(45, 101), slice(40, 100))]  # fmt: skip
    full = [scene.isel(y=ys, x=xs) for ys, xs in cuts]
    pieces = [_partial(p, seed) for seed, p in enumerate(full)]
    # the holes do not overlap on every piece, so the union is complete
    out = mosaic(pieces + full)  # the intact copies fill the holes
    assert out.attrs["pixel_coverage"] == 100.0
    assert out.sizes == scene.sizes
    np.testing.assert_array_equal(out.reflectance.values, scene.reflectance.values)
    np.testing.assert_allclose(out.x.values, scene.x.values)
    np.testing.assert_allclose(out.y.values, scene.y.values)
    assert out.rio.crs.to_epsg() == 32633
    assert out.rio.transform().almost_equals(scene.rio.transform())
    # only partial pieces: holes may stay where no piece covers; coverage says how much
    part = mosaic(pieces)
    valid = part.reflectance.notnull().all("band")
    assert part.attrs["pixel_coverage"] == pytest.approx(100 * float(valid.mean()))
    assert ((part.source_piece >= 0) == valid).all()
    np.testing.assert_array_equal(
        part.reflectance.where(valid).fillna(-1).values,
        scene.reflectance.where(valid).fillna(-1).values,
    )
    assert len(part.attrs["piece_coverage"]) == 4
    assert all(c < 50 for c in part.attrs["piece_coverage"])


def test_missing_quadrant_is_a_reported_gap(scene):
    q = [scene.isel(y=slice(0, 50), x=slice(0, 50)), scene.isel(y=slice(0, 50), x=slice(50, 100)),
         scene.isel(y=slice(50, 101), x=slice(0, 50))]  # fmt: skip
    out = mosaic(q)
    assert out.sizes == scene.sizes
    assert out.attrs["pixel_coverage"] == pytest.approx(100 * (1 - 51 * 50 / (101 * 100)))
    assert (out.source_piece.isel(y=slice(50, None), x=slice(50, None)) == -1).all()
    assert out.reflectance.isel(y=slice(50, None), x=slice(50, None)).isnull().all()
    assert (out.source_piece.isel(y=slice(0, 50), x=slice(0, 50)) == 0).all()


def test_bounds_of_a_larger_cell_and_clipping(scene):
    g = scene.rio.transform()
    left, top = g.c, g.f
    # a cell 20 px wider on the west and 10 px taller on the north than the data
    cell = (left - 200 * 0.999479222, top - 101 * 9.997448467, left + 1000, top + 100)
    out = mosaic([scene], bounds=cell)
    assert out.sizes["x"] == 120
    assert out.sizes["y"] == 111
    assert out.attrs["pixel_coverage"] == pytest.approx(100 * 101 * 100 / (111 * 120), rel=1e-6)
    # a window inside the data: a clip on the lattice
    inner = (
        float(scene.x[10]) - 1,
        float(scene.y[30]) - 1,
        float(scene.x[20]) - 1,
        float(scene.y[5]) + 1,
    )
    clipped = mosaic([scene], bounds=inner)
    np.testing.assert_array_equal(
        clipped.reflectance.values, scene.reflectance.isel(y=slice(5, 31), x=slice(10, 20)).values
    )


def test_priority_latest_and_coverage_with_dates(scene):
    a = scene.isel(x=slice(0, 70)).expand_dims(time=[np.datetime64("2015-08-30", "ns")])
    b = (scene.isel(x=slice(30, 100)) * 2).expand_dims(time=[np.datetime64("2015-09-09", "ns")])
    latest = mosaic([a, b], priority="latest")
    overlap = latest.isel(x=slice(30, 70))
    assert (overlap.source_piece == 1).all()
    assert (overlap.source_time == np.datetime64("2015-09-09", "ns")).all()
    given = mosaic([a, b], priority="given")
    assert (given.source_piece.isel(x=slice(30, 70)) == 0).all()
    c = scene.isel(x=slice(0, 20))
    cov = mosaic([c, scene * 3], priority="coverage")
    assert (cov.source_piece == 1).all()


def test_integer_pieces_with_fill_value(s2_scene):
    left = s2_scene.isel(x=slice(0, 60)).copy()
    left[:, :, 50:] = 0  # nodata fill (the GeoTIFF's _FillValue)
    right = s2_scene.isel(x=slice(50, 100))
    out = mosaic([left, right])
    np.testing.assert_array_equal(
        out[s2_scene.name or "data"].values, s2_scene.values.astype(np.float32)
    )
    assert (out.source_piece.isel(x=slice(50, 60)) == 1).all()


def test_incompatible_pieces(scene):
    with pytest.raises(DimensionError, match="at least one"):
        mosaic([])
    with pytest.raises(DimensionError, match="pixel size"):
        mosaic([scene, coarsen(scene, 2)])
    shifted = scene.assign_coords(x=scene.x + 3.0)
    with pytest.raises(DimensionError, match="shifted"):
        mosaic([scene, shifted])
    other = scene.copy()
    other = other.assign_coords(spatial_ref=other.spatial_ref.copy())
    other.spatial_ref.attrs = {**other.spatial_ref.attrs, "crs_wkt": "EPSG:32634"}
    with pytest.raises(CRSError):
        mosaic([scene, other])
    with pytest.raises(DimensionError, match="variables"):
        mosaic([scene, scene.rename(reflectance="r")])
    series = xr.concat([scene, scene], "time")
    with pytest.raises(DimensionError, match="composite or select"):
        mosaic([series])
    with pytest.raises(CompositeError, match="priority"):
        mosaic([scene], priority="best")
