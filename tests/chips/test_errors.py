"""Bad input gets typed errors that name the bad value and the fix."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import workbench  # noqa: F401
from workbench.chips import ChipSet
from workbench.chips.grid import normalize_positions
from workbench.data.synthetic import era5_like, s2_like
from workbench.errors import ChipSpecError, DimensionError, EmptyChipError, GeocodeError


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return era5_like(time=4, lat=16, lon=16)


def test_unknown_dim_lists_the_data_dims(ds) -> None:
    with pytest.raises(DimensionError, match=r"\['latitude'\].*\['time', 'lat', 'lon'\]"):
        ds.wb.chips({"latitude": 4})


def test_overlap_on_an_unchipped_dim(ds) -> None:
    with pytest.raises(DimensionError, match=r"input_overlap names dimension\(s\) \['time'\]"):
        ds.wb.chips({"lat": 4}, {"time": 1})


@pytest.mark.parametrize(
    ("dims", "overlap", "match"),
    [
        ({"lat": 32}, None, "larger than the data \\(16\\); use a chip size <= 16"),
        ({"lat": 4}, {"lat": 4}, "overlap 4 along 'lat' must be smaller than the chip size 4"),
        ({"lat": 4}, {"lat": 9}, "overlap 9"),
        ({"lat": 0}, None, "chip size along 'lat' must be >= 1, got 0"),
        ({"lat": -3}, None, "must be >= 1, got -3"),
        ({"lat": 4}, {"lat": -1}, "overlap along 'lat' must be >= 0"),
        ({"lat": 2.5}, None, "must be an integer, got 2.5"),
        ({"lat": True}, None, "must be an integer"),
        ({}, None, "non-empty mapping"),
        ([("lat", 4)], None, "non-empty mapping"),
    ],
)
def test_bad_sizes(ds, dims, overlap, match) -> None:
    with pytest.raises(ChipSpecError, match=match):
        ds.wb.chips(dims, overlap)


def test_unknown_variables(ds) -> None:
    with pytest.raises(
        ChipSpecError, match=r"unknown variable\(s\) \['sst'\]; the data variables are"
    ):
        ds.wb.chips({"lat": 4}, variables=["t2m", "sst"])
    with pytest.raises(ChipSpecError, match="more than once"):
        ds.wb.chips({"lat": 4}, variables=["t2m", "t2m"])
    with pytest.raises(ChipSpecError, match="DataArray"):
        ds.t2m.wb.chips({"lat": 4}, variables=["u10"])
    assert ds.t2m.wb.chips({"lat": 4}, variables=["t2m"]).variables == ["t2m"]


def test_variables_that_cannot_be_stacked() -> None:
    s2 = s2_like(time=2, y=16, x=16).assign(cover=("time", np.array([0.1, 0.2])))
    # chosen explicitly: fail at once, naming the variable and the missing dims
    with pytest.raises(
        DimensionError, match=r"'cover' has dims \('time',\) and lacks the chipped dim"
    ):
        s2.wb.chips({"y": 8, "x": 8}, variables=["reflectance", "cover"])
    # by default: chips[i] works (xbatcher keeps such variables whole), arrays need a choice
    chips = s2.wb.chips({"y": 8, "x": 8})
    assert "cover" in chips[0]
    with pytest.raises(DimensionError, match=r"variables=\['reflectance', 'cloud_mask'\]"):
        chips.to_numpy([0])
    ok = s2.wb.chips({"y": 8, "x": 8}, variables=["reflectance", "cloud_mask"])
    assert ok.to_numpy([0]).shape == (1, 2 * 5 + 2, 8, 8)


def test_not_xarray() -> None:
    with pytest.raises(ChipSpecError, match="xarray Dataset or DataArray, got ndarray"):
        ChipSet(np.zeros((4, 4)), {"x": 2})


def test_indices(ds) -> None:
    chips = ds.wb.chips({"lat": 8, "lon": 8})
    with pytest.raises(IndexError, match="chip index 4 out of range for 4 chips"):
        chips[4]
    with pytest.raises(IndexError, match="out of range"):
        chips.to_numpy([0, 9])
    with pytest.raises(ChipSpecError, match="boolean mask"):
        chips.select([True, False])
    with pytest.raises(ChipSpecError, match="integers"):
        normalize_positions([0.5], 4)
    assert chips.to_numpy([]).shape == (0, 16, 8, 8)
    assert chips.to_numpy(2).shape == (1, 16, 8, 8)


def test_empty_selection_and_geocode_scheme(ds) -> None:
    chips = ds.wb.chips({"lat": 8, "lon": 8})
    with pytest.raises(EmptyChipError):
        chips.select([]).batches(4)
    with pytest.raises(GeocodeError, match="unknown geocode scheme 'h3'"):
        chips.geocodes("h3")
