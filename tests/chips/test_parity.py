"""ChipSet == xbatcher.BatchGenerator: same number of chips, same order, same values and coords."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
import xbatcher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench  # noqa: F401
from workbench.chips import ChipSet
from workbench.data.synthetic import s2_like


def expected_array(
    ds: xr.Dataset | xr.DataArray, gen: xbatcher.BatchGenerator, i: int
) -> np.ndarray:
    """Chip ``i`` as (C, *chip) from xbatcher's own selector: variables x non-chipped dims."""
    sel = gen._batch_selectors.selectors[i][0]
    dims = list(gen.input_dims)
    arrays = [ds] if isinstance(ds, xr.DataArray) else [ds[v] for v in ds.data_vars]
    parts = []
    for var in arrays:
        other = [d for d in var.dims if d not in dims]
        values = var.isel(sel).transpose(*other, *dims).values
        parts.append(values.reshape(-1, *[gen.input_dims[d] for d in dims]))
    return np.concatenate(parts, axis=0)


def assert_parity(
    obj: xr.Dataset | xr.DataArray, input_dims: dict, overlap: dict | None = None
) -> None:
    gen = xbatcher.BatchGenerator(obj, input_dims=input_dims, input_overlap=overlap or {})
    chips = ChipSet(obj, input_dims, input_overlap=overlap)
    assert len(chips) == len(gen)
    picks = sorted({0, len(gen) - 1, len(gen) // 2, *range(min(len(gen), 5))})
    for i in picks:
        xr.testing.assert_identical(chips[i], gen[i])
    got = chips.to_numpy()
    assert got.shape == (len(gen), got.shape[1], *input_dims.values())
    for i in range(len(gen)):
        np.testing.assert_array_equal(got[i], expected_array(obj, gen, i))


@pytest.mark.parametrize(
    ("input_dims", "overlap"),
    [
        ({"lat": 4, "lon": 4}, None),
        ({"lon": 3, "lat": 5}, {"lat": 2}),
        ({"time": 2, "lat": 4, "lon": 3}, {"time": 1, "lon": 2}),
        ({"time": 1, "lat": 8, "lon": 8}, None),
        ({"lat": 8}, {"lat": 7}),
    ],
)
def test_dataset_parity(input_dims: dict, overlap: dict | None, cube_factory) -> None:
    assert_parity(cube_factory(time=4, lat=9, lon=10), input_dims, overlap)


@pytest.mark.parametrize("input_dims", [{"lat": 4, "lon": 3}, {"time": 2, "lon": 5}])
def test_dataarray_parity(input_dims: dict, cube_factory) -> None:
    assert_parity(cube_factory(time=3, lat=8, lon=10).t2m, input_dims, {"lon": 1})


def test_stacked_sample_dims_parity() -> None:
    """Two non-chipped dims (time, band) are stacked into ``sample`` as xbatcher does."""
    ds = s2_like(time=3, y=12, x=10)
    assert_parity(ds, {"y": 4, "x": 5}, {"y": 1})


def test_variables_subset_is_xbatcher_on_the_subset(cube_factory) -> None:
    ds = cube_factory(time=3, lat=8, lon=8)
    chips = ds.wb.chips({"lat": 4, "lon": 4}, variables=["u10"])
    gen = xbatcher.BatchGenerator(ds[["u10"]], input_dims={"lat": 4, "lon": 4})
    xr.testing.assert_identical(chips[3], gen[3])
    assert chips.variables == ["u10"]
    np.testing.assert_array_equal(chips.to_numpy([3])[0], gen[3].u10.values)


def test_chip_values_encode_their_origin(cube_factory) -> None:
    """The cube's value t*10000 + i*100 + j tells where every pixel came from."""
    ds = cube_factory(time=4, lat=8, lon=8)
    chips = ds.wb.chips({"time": 2, "lat": 3, "lon": 4}, {"time": 1, "lat": 1})
    batch = chips.to_numpy()
    for k in range(len(chips)):
        sel = chips.selector(k)
        t0, i0, j0 = sel["time"].start, sel["lat"].start, sel["lon"].start
        assert batch[k, 0, 0, 0, 0] == t0 * 10_000 + i0 * 100 + j0
        assert batch[k, 1, 1, 2, 3] == -((t0 + 1) * 10_000 + (i0 + 2) * 100 + j0 + 3)


@st.composite
def specs(draw: st.DrawFn) -> tuple[dict, dict, dict, int]:
    sizes = {
        "time": draw(st.integers(1, 5)),
        "lat": draw(st.integers(1, 12)),
        "lon": draw(st.integers(1, 12)),
    }
    chosen = draw(st.lists(st.sampled_from(list(sizes)), min_size=1, max_size=3, unique=True))
    input_dims = {d: draw(st.integers(1, sizes[d])) for d in chosen}
    overlap = {d: draw(st.integers(0, s - 1)) for d, s in input_dims.items() if draw(st.booleans())}
    chunks = {d: draw(st.integers(1, n)) for d, n in sizes.items()}
    return sizes, input_dims, overlap, chunks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs())
def test_parity_property(spec: tuple[dict, dict, dict, dict], cube_factory) -> None:
    """Any shapes, chipped dims in any order, any valid overlap; in memory and chunked (dask)."""
    sizes, input_dims, overlap, chunks = spec
    ds = cube_factory(**sizes)
    assert_parity(ds, input_dims, overlap)
    chips = ChipSet(ds, input_dims, overlap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunked = ChipSet(ds.chunk(chunks), input_dims, overlap)
    np.testing.assert_array_equal(chunked.to_numpy(), chips.to_numpy())
    rng = np.random.default_rng(len(chips))
    pick = rng.integers(0, len(chips), size=min(7, len(chips)))
    np.testing.assert_array_equal(chunked.to_numpy(pick), chips.to_numpy()[pick])


def test_select_is_a_view_in_the_given_order(cube_factory) -> None:
    ds = cube_factory(time=2, lat=8, lon=8)
    chips = ds.wb.chips({"lat": 4, "lon": 4})
    view = chips.select([3, 0, 2])
    assert len(view) == 3
    xr.testing.assert_identical(view[0], chips[3])
    assert view.selector(1) == chips.selector(0)
    np.testing.assert_array_equal(view.to_numpy(), chips.to_numpy([3, 0, 2]))
    np.testing.assert_array_equal(view.select([2]).to_numpy(), chips.to_numpy([2]))
    mask = np.array([True, False, True, False])
    assert view.select(slice(1, None)).ids.tolist() == [0, 2]
    assert chips.select(mask).ids.tolist() == [0, 2]
    assert chips[1:3].ids.tolist() == [1, 2]
    xr.testing.assert_identical(chips[-1], chips[3])


def test_iteration_matches_xbatcher(cube_factory) -> None:
    ds = cube_factory(time=2, lat=6, lon=6)
    gen = xbatcher.BatchGenerator(ds, input_dims={"lat": 3, "lon": 2})
    for ours, theirs in zip(ds.wb.chips({"lat": 3, "lon": 2}), gen, strict=True):
        xr.testing.assert_identical(ours, theirs)


@pytest.fixture(scope="module")
def era5_cf(tmp_path_factory) -> xr.Dataset:
    """The real ERA5 file written CF-style with bounds, opened with ``decode_coords="all"``.

    ``latitude_bnds(latitude, bnds)``, ``longitude_bnds(longitude, bnds)`` and
    ``time_bnds(time, bnds)``: coordinates on a dim (``bnds``) that no data variable uses.
    """
    from workbench.testing import shared_data

    src = xr.open_dataset(shared_data("era5_reanalysis/era5_t2m_uk_2019-03.nc"))
    ds = src.isel(time=slice(0, 48)).load()
    half = 0.125
    ds["latitude_bnds"] = (
        ("latitude", "bnds"),
        np.stack([ds.latitude + half, ds.latitude - half], 1),
    )
    ds["longitude_bnds"] = (
        ("longitude", "bnds"),
        np.stack([ds.longitude - half, ds.longitude + half], 1),
    )
    hour = np.timedelta64(1, "h")
    ds["time_bnds"] = (("time", "bnds"), np.stack([ds.time.values, ds.time.values + hour], 1))
    ds.latitude.attrs["bounds"] = "latitude_bnds"
    ds.longitude.attrs["bounds"] = "longitude_bnds"
    ds.time.attrs["bounds"] = "time_bnds"
    path = tmp_path_factory.mktemp("cf") / "era5_cf.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    opened = xr.open_dataset(path, engine="h5netcdf", decode_coords="all").load()
    assert {"latitude_bnds", "longitude_bnds", "time_bnds"} <= set(opened.coords)
    return opened


@pytest.mark.parametrize(
    ("input_dims", "overlap"),
    [
        ({"latitude": 8, "longitude": 8}, None),  # time and bnds stacked into sample
        ({"time": 6, "latitude": 8, "longitude": 8}, {"time": 2}),
        ({"longitude": 16}, {"longitude": 4}),
    ],
)
def test_cf_bounds_coordinates_kept_as_xbatcher_keeps_them(era5_cf, input_dims, overlap) -> None:
    gen = xbatcher.BatchGenerator(era5_cf, input_dims=input_dims, input_overlap=overlap or {})
    chips = era5_cf.wb.chips(input_dims, overlap)
    assert len(chips) == len(gen)
    for i in sorted({0, 1, len(gen) // 2, len(gen) - 1}):
        xr.testing.assert_identical(chips[i], gen[i])
        assert list(chips[i].sizes.items()) == list(gen[i].sizes.items())  # ("sample", ...)
    assert chips.variables == ["t2m"]  # the bounds stay coordinates, not channels
    last = len(gen) - 1
    np.testing.assert_array_equal(
        chips.to_numpy([last])[0], expected_array(era5_cf[["t2m"]], gen, last)
    )
