"""Index-first helpers: selectors, centres, bounds, time ranges and geocodes, without pixels."""

from __future__ import annotations

import numpy as np
import pygeohash
import pytest
from pyproj import Transformer

import workbench  # noqa: F401
from workbench.data.synthetic import era5_like, s2_like
from workbench.errors import CRSError, DimensionError


def test_lonlat_centres_and_bounds() -> None:
    ds = era5_like(time=6, lat=8, lon=12)  # 1-degree pixels, bbox (-10, 50, 2, 58)
    chips = ds.wb.chips({"time": 2, "lat": 4, "lon": 4}, {"time": 1})
    lon, lat = chips.centers()
    assert len(lon) == len(chips) == 5 * 2 * 3
    assert (lon[0], lat[0]) == (-8.0, 56.0)
    assert chips.bounds(0) == (-10.0, 54.0, -6.0, 58.0)
    assert chips.bounds(len(chips) - 1) == (-2.0, 50.0, 2.0, 54.0)
    first, last = chips.time(3)  # fourth chip: time origin 0 (3 chips per time step... row-major)
    sel = chips.selector(3)
    assert first == ds.time.values[sel["time"].start]
    assert last == ds.time.values[sel["time"].stop - 1]


def test_unchipped_time_spans_the_data() -> None:
    ds = era5_like(time=5, lat=8, lon=8)
    chips = ds.wb.chips({"lat": 4, "lon": 4})
    assert chips.time(2) == (ds.time.values[0], ds.time.values[-1])
    assert ds.isel(time=0).wb.chips({"lat": 4}).time(0) is None  # scalar time coord: no time dim


def test_projected_centres_match_pyproj() -> None:
    ds = s2_like(time=1, y=40, x=40)
    chips = ds.wb.chips({"y": 10, "x": 20}, {"y": 5})
    lon, lat = chips.centers()
    to_ll = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    for i in (0, len(chips) - 1):
        sel = chips.selector(i)
        x = ds.x.values[sel["x"]].mean()
        y = ds.y.values[sel["y"]].mean()
        elon, elat = to_ll.transform(x, y)
        assert lon[i] == pytest.approx(elon, abs=1e-9)
        assert lat[i] == pytest.approx(elat, abs=1e-9)
        west, south, east, north = chips.bounds(i)
        assert west < lon[i] < east
        assert south < lat[i] < north
    data_w, _, _, data_n = ds.wb.bounds
    west, south, east, north = chips.bounds(0)  # the north-west chip
    assert data_w - 1e-9 <= west < east
    assert north <= data_n + 1e-9
    assert west == pytest.approx(data_w, abs=1e-4)
    assert north == pytest.approx(data_n, abs=1e-4)


def test_geocodes_of_centres() -> None:
    ds = s2_like(time=1, y=64, x=64)
    chips = ds.wb.chips({"y": 16, "x": 16})
    codes = chips.geocodes("geohash", precision=7)
    lon, lat = chips.centers()
    assert codes.shape == (len(chips),)
    assert codes.tolist() == [pygeohash.encode(a, o, 7) for a, o in zip(lat, lon, strict=True)]
    quad = chips.geocodes("quadkey", precision=12)
    assert all(len(q) == 12 and set(q) <= set("0123") for q in quad)
    view = chips.select([5, 1])
    assert view.geocodes("geohash", 7).tolist() == [codes[5], codes[1]]


def test_no_crs_is_a_typed_error() -> None:
    import xarray as xr

    ds = xr.Dataset({"v": (("row", "col"), np.zeros((8, 8), np.float32))})
    chips = ds.wb.chips({"row": 4, "col": 4})
    assert chips.to_numpy([0]).shape == (1, 1, 4, 4)
    with pytest.raises(DimensionError, match="spatial dimensions"):  # no spatial dims at all
        chips.centers()
    projected = xr.Dataset(
        {"v": (("y", "x"), np.zeros((8, 8), np.float32))},
        coords={"x": np.arange(8.0) * 10, "y": np.arange(8.0) * 10},
    )
    with pytest.raises(CRSError):
        projected.wb.chips({"y": 4, "x": 4}).bounds(0)
