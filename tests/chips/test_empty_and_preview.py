"""All-NaN chips (kept by default, dropped on request) and the preview façade."""

from __future__ import annotations

import numpy as np
import pytest

import workbench  # noqa: F401
from workbench.data.synthetic import era5_like, s2_like
from workbench.errors import ChipSpecError, EmptyChipError


@pytest.fixture
def holey():
    ds = era5_like(time=2, lat=16, lon=16, variables=("t2m", "u10"))
    ds["t2m"][:, :8, :8] = np.nan  # chip 0 of t2m is all NaN
    ds["u10"][:, :8, :8] = np.nan  # and of u10
    ds["u10"][:, 8:, 8:] = np.nan  # chip 3: half its channels NaN
    ds["t2m"][0, 0, 8] = np.nan  # chip 1: one NaN pixel
    return ds


def test_nan_chips_kept_by_default(holey) -> None:
    chips = holey.wb.chips({"lat": 8, "lon": 8})
    assert len(chips) == 4
    assert np.isnan(chips.to_numpy([0])).all()


def test_drop_empty(holey) -> None:
    chips = holey.wb.chips({"lat": 8, "lon": 8})
    assert chips.drop_empty().ids.tolist() == [1, 2, 3]
    assert chips.drop_empty(how="any").ids.tolist() == [2]
    assert chips.select([3, 0, 2]).drop_empty().ids.tolist() == [3, 2]  # order kept
    with pytest.raises(EmptyChipError, match="all 1 chips are all-NaN"):
        chips.select([0]).drop_empty()
    with pytest.raises(ChipSpecError, match="how must be"):
        chips.drop_empty(how="some")


def test_drop_empty_on_integers_keeps_everything() -> None:
    ds = s2_like(time=2, y=16, x=16)
    chips = ds.wb.chips({"y": 8, "x": 8}, variables=["cloud_mask"])
    assert len(chips.drop_empty()) == len(chips)


def test_drop_empty_from_a_store(holey, tmp_path) -> None:
    import warnings

    import xarray as xr

    from workbench.data.synthetic import write_zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_zarr(holey, tmp_path / "h.zarr", chunks={"time": 1, "lat": 8, "lon": 8})
        lazy = xr.open_zarr(tmp_path / "h.zarr", chunks=None)
    chips = lazy.wb.chips({"lat": 8, "lon": 8}, variables=["t2m", "u10"])
    assert chips.drop_empty().ids.tolist() == [1, 2, 3]


def test_preview_builds_the_gallery() -> None:
    pytest.importorskip("anywidget")
    gallery_mod = pytest.importorskip("workbench.widgets.gallery")
    ds = s2_like(time=1, y=32, x=32)
    chips = ds.wb.chips({"y": 16, "x": 16}, variables=["reflectance"])
    widget = chips.preview(n=3)
    assert isinstance(widget, gallery_mod.ChipGallery)
