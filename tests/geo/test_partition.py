"""partition(): real Sentinel-2 (UTM) and ERA5 (lon/lat) cubes, laziness, disjoint pieces."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr
from shapely.geometry import box

import workbench  # noqa: F401  (registers the .wb accessor)
from workbench.errors import CRSError, GeocodeError
from workbench.geo import Partitions, geohash, partition, quadkey
from workbench.geo.crs import pixel_lonlat
from workbench.testing import shared_data

S2 = "eolearn_s2_slovenia/eolearn_s2_slovenia.nc"
ERA5 = "era5_reanalysis/era5_t2m_uk_2019-03.nc"


class _RaiseIfComputes:
    """A dask scheduler that fails the test if anything is computed (as in xarray's tests)."""

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        raise AssertionError("partitioning computed a dask graph: it must only plan")


@pytest.fixture(scope="module")
def s2() -> xr.Dataset:
    # Open each file once per module (with netCDF4-python, closing one of two handles on a file
    # with string variables and reopening it segfaults: pydata/xarray#8289).
    return xr.open_dataset(shared_data(S2))


@pytest.fixture(scope="module")
def era5() -> xr.Dataset:
    return xr.open_dataset(shared_data(ERA5))


def _ownership(parts: Partitions[Any], shape: tuple[int, int]) -> np.ndarray:
    """How many pieces claim each pixel (through their masks)."""
    owners = np.zeros(shape, dtype=int)
    ydim, xdim = parts.dims
    for code in parts:
        s = parts.slices(code)
        owners[s[ydim], s[xdim]] += parts.mask(code).values
    return owners


@pytest.mark.parametrize(
    ("scheme", "precision"), [("geohash", 6), ("geohash", 7), ("quadkey", 16), ("quadkey", 17)]
)
def test_sentinel2_every_pixel_in_exactly_one_piece(
    s2: xr.Dataset, scheme: str, precision: int
) -> None:
    parts = partition(s2, scheme, precision)
    assert len(parts) >= 2  # ~1 km of UTM data splits into several cells
    assert (_ownership(parts, (101, 100)) == 1).all()
    assert sum(parts.pixel_count(c) for c in parts) == 101 * 100
    # the plan agrees with encoding every pixel centre directly (lon/lat from workbench.geo.crs)
    lon, lat = pixel_lonlat(s2)
    module = geohash if scheme == "geohash" else quadkey
    expected = module.encode(lat, lon, precision)
    assert (parts.labels().values == expected).all()
    assert parts.codes == tuple(sorted(np.unique(expected).tolist()))


def test_sentinel2_masks_are_pixel_centres_in_the_cell(s2: xr.Dataset) -> None:
    parts = partition(s2, "geohash", 7)
    lon, lat = pixel_lonlat(s2)
    for code in parts.codes[::7]:
        s = parts.slices(code)
        inside = parts.mask(code)
        assert inside.dims == ("y", "x")
        np.testing.assert_array_equal(inside["x"], s2["x"][s["x"]])
        w, so, e, n = parts.bounds(code)
        plon, plat = lon[s["y"], s["x"]], lat[s["y"], s["x"]]
        in_box = (plon >= w) & (plon < e) & (plat >= so) & (plat < n)
        np.testing.assert_array_equal(inside.values, in_box)
        assert inside.values.sum() == parts.pixel_count(code)


def test_pieces_are_consistent_views_across_variables(s2: xr.Dataset) -> None:
    parts = partition(s2, "geohash", 6)
    code = max(parts.codes, key=parts.pixel_count)
    piece = parts[code]
    s = parts.slices(code)
    for name in ("ndvi", "dem", "reflectance", "lulc"):
        xr.testing.assert_identical(piece[name], s2[name].isel(s))
    assert piece.sizes["band"] == 13
    assert piece.sizes["time"] == 68
    xr.testing.assert_identical(piece["cloud_coverage"], s2["cloud_coverage"])
    # windows of neighbouring UTM cells overlap a little: that is why there are masks
    windows = [parts.slices(c) for c in parts]
    assert (
        sum((w["y"].stop - w["y"].start) * (w["x"].stop - w["x"].start) for w in windows)
        >= 101 * 100
    )


def test_apply_mask_makes_pieces_disjoint(s2: xr.Dataset) -> None:
    cube = s2[["dem", "reflectance", "cloud_coverage", "spatial_ref"]]  # a few variables: fast
    parts = partition(cube, "geohash", 7, apply_mask=True)
    assert parts.apply_mask
    rebuilt = np.full((101, 100), np.nan)
    claimed = np.zeros((101, 100), dtype=int)
    for code in parts:
        piece = parts[code]
        s = parts.slices(code)
        dem = piece["dem"].values
        valid = ~np.isnan(dem)
        assert valid.sum() == parts.pixel_count(code)
        np.testing.assert_array_equal(valid, parts.mask(code).values)
        claimed[s["y"], s["x"]] += valid
        rebuilt[s["y"], s["x"]] = np.where(valid, dem, rebuilt[s["y"], s["x"]])
        assert piece["reflectance"].dims == s2["reflectance"].dims  # band/time untouched
        assert piece["cloud_coverage"].dims == ("time",)  # non-spatial variables are not masked
    assert (claimed == 1).all()
    np.testing.assert_array_equal(rebuilt, s2["dem"].values)


def test_planning_and_pieces_read_no_pixels_dask(s2: xr.Dataset) -> None:
    lazy = s2.chunk({})  # dask arrays over the lazily opened file
    with dask.config.set(scheduler=_RaiseIfComputes()):
        parts = partition(lazy, "geohash", 6, apply_mask=True)
        for code in parts:
            piece = parts[code]
            assert isinstance(piece["ndvi"].data, dask.array.Array)
            parts.coverage(code)
            parts.mask(code)
        parts.records()
        parts.labels()
        with pytest.raises(AssertionError, match="computed a dask graph"):
            piece["ndvi"].values  # the guard itself works


def test_planning_reads_no_pixels_lazy_backend(s2: xr.Dataset) -> None:
    names = ("ndvi", "reflectance", "dem", "is_data")
    before = {n: s2[n].variable._in_memory for n in names}  # no dask: lazily indexed arrays
    parts = partition(s2, "quadkey", 17)
    pieces = [parts[c] for c in parts]
    parts.records()
    assert {n: s2[n].variable._in_memory for n in names} == before
    lazy = [n for n in names if not before[n]]  # other tests may have loaded e.g. dem
    assert "ndvi" in lazy
    assert "reflectance" in lazy
    assert not any(p[n].variable._in_memory for p in pieces for n in lazy)


@pytest.mark.parametrize(("scheme", "precision"), [("geohash", 3), ("quadkey", 6), ("quadkey", 8)])
def test_era5_lonlat_pieces_tile_the_grid(era5: xr.Dataset, scheme: str, precision: int) -> None:
    parts = partition(era5, scheme, precision)
    assert len(parts) > 1
    owners = _ownership(parts, (33, 49))
    assert (owners == 1).all()
    # on a lon/lat grid, windows are exact: every window pixel belongs to its cell
    assert all(parts.mask(c).values.all() for c in parts)
    assert (
        sum(parts[c]["t2m"].sizes["latitude"] * parts[c]["t2m"].sizes["longitude"] for c in parts)
        == 33 * 49
    )
    module = geohash if scheme == "geohash" else quadkey
    for code in parts:
        piece = parts[code]
        w, s, e, n = parts.bounds(code)
        lat, lon = piece["latitude"].values, piece["longitude"].values
        assert ((lat >= s) & (lat <= n)).all()
        assert ((lon >= w) & (lon <= e)).all()
        assert set(
            module.encode(*np.meshgrid(lat, lon, indexing="ij"), precision).ravel().tolist()
        ) == {code}


def test_era5_coverage(era5: xr.Dataset) -> None:
    parts = partition(era5, "geohash", 3)
    footprint = box(-10.125, 49.875, 2.125, 58.125)
    assert parts.footprint().equals(footprint)
    for code in parts:
        cell = box(*parts.bounds(code))
        assert parts.coverage(code) == pytest.approx(cell.intersection(footprint).area / cell.area)
    full = [c for c in parts if parts.coverage(c) == 1.0]
    partial = [c for c in parts if parts.coverage(c) < 1.0]
    assert full
    assert partial
    # cells holding pixel centres account for (nearly) all of the footprint
    covered = sum(parts.coverage(c) * box(*parts.bounds(c)).area for c in parts)
    assert 0.9 * footprint.area <= covered <= footprint.area + 1e-9


def test_sentinel2_coverage_matches_its_footprint(s2: xr.Dataset) -> None:
    parts = partition(s2, "geohash", 6)
    cov = {c: parts.coverage(c) for c in parts}
    assert all(
        0.0 < v < 1.0 for v in cov.values()
    )  # 1 km of data never fills a 1.2 x 0.6 km cell... mostly
    covered = sum(cov[c] * box(*parts.bounds(c)).area for c in parts)
    assert covered == pytest.approx(parts.footprint().area, rel=0.02)
    # the footprint is the pixel-edge outline: ~1 km x 1 km
    w, s, e, n = parts.footprint().bounds
    assert 0.012 < e - w < 0.014
    assert 0.008 < n - s < 0.01


def test_dataarray_and_accessor(s2: xr.Dataset, era5: xr.Dataset) -> None:
    parts_ds = partition(s2, "geohash", 7)
    with pytest.raises(CRSError):  # spatial_ref is a data variable of the Dataset, not a coord
        partition(s2["ndvi"], "geohash", 7)
    parts_da = partition(s2["ndvi"], "geohash", 7, crs="EPSG:32633")
    assert parts_da.codes == parts_ds.codes
    with_ref = s2["ndvi"].assign_coords(spatial_ref=s2["spatial_ref"])
    assert partition(with_ref, "geohash", 7).codes == parts_ds.codes
    code = parts_da.codes[0]
    xr.testing.assert_identical(parts_da[code], s2["ndvi"].isel(parts_ds.slices(code)))
    via = era5.wb.partition(scheme="quadkey", precision=7)
    assert isinstance(via, Partitions)
    assert via.codes == partition(era5, "quadkey", 7).codes
    assert era5["t2m"].wb.partition("geohash", 3).codes == partition(era5, "geohash", 3).codes


def test_mapping_protocol_and_records(era5: xr.Dataset) -> None:
    parts = partition(era5, "geohash", 3)
    assert list(parts) == list(parts.codes) == sorted(parts.codes)
    assert len(parts) == len(parts.codes)
    assert parts.codes[0] in parts
    assert "nope" not in parts
    assert dict(parts.items()).keys() == set(parts.codes)
    with pytest.raises(KeyError, match="'zzz' is not a piece"):
        parts["zzz"]
    recs = parts.records()
    assert [r["code"] for r in recs] == list(parts.codes)
    assert recs[0]["slices"] == parts.slices(parts.codes[0])
    assert "geohash-3" in repr(parts)
    assert (parts.scheme, parts.precision, parts.dims) == ("geohash", 3, ("latitude", "longitude"))


def test_longitudes_0_360_wrap(era5: xr.Dataset) -> None:
    shifted = era5.assign_coords(longitude=(era5["longitude"] % 360))  # -10..2 -> 350..360, 0..2
    a, b = partition(era5, "geohash", 3), partition(shifted, "geohash", 3)
    assert a.codes == b.codes
    assert {c: a.pixel_count(c) for c in a} == {c: b.pixel_count(c) for c in b}


def test_bad_input(s2: xr.Dataset, era5: xr.Dataset) -> None:
    with pytest.raises(GeocodeError, match="unknown geocode scheme"):
        partition(era5, "h3", 3)
    with pytest.raises(GeocodeError, match=r"1\.\.12"):
        partition(era5, "geohash", 13)
    with pytest.raises(GeocodeError, match=r"1\.\.31"):
        partition(era5, "quadkey", 32)
    no_crs = xr.Dataset(
        {"v": (("y", "x"), np.zeros((3, 3)))}, coords={"y": [0.0, 1, 2], "x": [0.0, 1, 2]}
    )
    with pytest.raises(CRSError, match="partitioning by geocode"):
        partition(no_crs, "geohash", 5)


def _projected(ny: int, nx: int, crs: str, west: float, north: float, res: float) -> xr.Dataset:
    values = np.broadcast_to(np.float32(0.0), (ny, nx))
    ds = xr.Dataset(
        {"v": (("y", "x"), values)},
        coords={"y": north - res * (np.arange(ny) + 0.5), "x": west + res * (np.arange(nx) + 0.5)},
    )
    ds.attrs["crs"] = crs
    return ds


@pytest.mark.parametrize(
    ("ds", "scheme", "precision"),
    [
        (_projected(600, 700, "EPSG:32633", 465000, 5080000, 10.0), "geohash", 7),
        (_projected(600, 700, "EPSG:32633", 465000, 5080000, 10.0), "quadkey", 17),
        (_projected(400, 400, "EPSG:32660", 700000, 5000000, 100.0), "geohash", 5),  # antimeridian
        (_projected(300, 300, "EPSG:3413", -300000, 300000, 2000.0), "quadkey", 6),  # north pole
        (_projected(300, 300, "+proj=sinu +R=6371007.181", -1111950, 5559752, 463.3), "geohash", 5),
    ],
    ids=["utm-geohash", "utm-quadkey", "antimeridian", "polar", "modis-sinusoidal"],
)
def test_large_projected_grids_plan_exactly(ds: xr.Dataset, scheme: str, precision: int) -> None:
    """Large windows are planned from an interpolated lattice; the result must be exact."""
    parts = partition(ds, scheme, precision, block_pixels=50_000)  # several row blocks
    lon, lat = pixel_lonlat(ds)
    module = geohash if scheme == "geohash" else quadkey
    expected = module.encode(lat, lon, precision)
    np.testing.assert_array_equal(parts.labels().values, expected)
    codes, counts = np.unique(expected, return_counts=True)
    assert parts.codes == tuple(codes.tolist())
    assert [parts.pixel_count(c) for c in parts.codes] == counts.tolist()
    for code in parts.codes[:: max(1, len(parts) // 20)]:
        rows, cols = np.nonzero(expected == code)
        s = parts.slices(code)
        assert (s["y"].start, s["y"].stop) == (rows.min(), rows.max() + 1)
        assert (s["x"].start, s["x"].stop) == (cols.min(), cols.max() + 1)
