"""Silent failures made loud: empty dimensions and damaged chunks raise typed errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import workbench
from workbench.chips import ChipSet
from workbench.data.synthetic import s2_like
from workbench.errors import DataReadError, DimensionError
from workbench.testing import shared_data


def test_zero_length_dimension_is_refused() -> None:
    ds = s2_like(time=2, y=16, x=16)
    empty = ds.sel(band=[])  # a selection by labels that matched none
    with pytest.raises(
        DimensionError, match=r"'reflectance' has the zero-length dimension\(s\) \['band'\]"
    ):
        empty.wb.chips({"y": 8, "x": 8})
    with pytest.raises(DimensionError, match="zero-length"):
        ChipSet(empty.reflectance, {"y": 8, "x": 8})


def _era5_store(tmp_path: Path, zarr_format: int) -> Path:
    ds = xr.open_dataset(shared_data("era5_reanalysis/era5_t2m_uk_2019-03.nc")).isel(
        time=slice(0, 48)
    )
    path = tmp_path / f"era5_v{zarr_format}.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.load().chunk({"time": 24, "latitude": 16, "longitude": 16}).to_zarr(
            path, zarr_format=zarr_format, consolidated=True
        )
    return path


def _damage(store: Path, zarr_format: int) -> Path:
    """Truncate one chunk of t2m to half its bytes (an interrupted copy)."""
    root = store / "t2m"
    chunk = root / ("c/1/1/0" if zarr_format == 3 else "1.1.0")
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])
    return chunk


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("sync", [True, False])
def test_damaged_chunk_names_variable_and_chunk(tmp_path, zarr_format, sync) -> None:
    store = _era5_store(tmp_path, zarr_format)
    _damage(store, zarr_format)
    ds = workbench.open_datacube(store)
    chips = ds.wb.chips({"time": 24, "latitude": 16, "longitude": 16})
    with workbench.set_options(zarr_sync_reads=sync):
        with pytest.raises(DataReadError, match=r"variable 't2m'.*chunk 1[.]1[.]0") as err:
            chips.to_numpy()
        assert "damaged or truncated" in str(err.value)
        chips.select([0]).to_numpy()  # chunks that are whole still read
        with pytest.raises(DataReadError, match=r"could not read chip 9"):
            chips[9]  # time 24:48, latitude 16:32, longitude 0:16: chunk 1.1.0


def test_damaged_chunk_in_a_batch_stream(tmp_path) -> None:
    store = _era5_store(tmp_path, 3)
    _damage(store, 3)
    chips = workbench.open_datacube(store).wb.chips({"time": 1, "latitude": 16, "longitude": 16})
    with pytest.raises(DataReadError, match=r"chunk 1\.1\.0"):
        for _ in chips.batches(8):
            pass
    assert np.isfinite(chips.select(np.arange(3)).to_numpy()).all()
