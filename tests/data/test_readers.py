"""Readers: GRIB files checked message by message; backends called by class; quiet exits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench import open_datacube
from workbench.data.readers import backend, check_grib
from workbench.errors import DataReadError
from workbench.testing import requires


def test_check_grib_counts_the_real_file(era5_grib):
    assert check_grib(era5_grib) == 744  # 31 days x 24 hourly messages


# cuts inside a message (a file cut between two messages is a valid, shorter GRIB file)
@pytest.mark.parametrize("share", [0.4, 0.999])
def test_truncated_grib_is_loud(tmp_path, era5_grib, share):
    data = era5_grib.read_bytes()
    cut = tmp_path / "cut.grib"
    cut.write_bytes(data[: int(len(data) * share)])
    with pytest.raises(DataReadError, match=r"truncated GRIB file: message \d+ at byte \d+") as err:
        check_grib(cut)
    assert "complete" in str(err.value)
    assert "Download or copy the file again" in str(err.value)


@requires("cfgrib")
def test_open_datacube_refuses_a_truncated_grib(tmp_path, era5_grib):
    cut = tmp_path / "era5.grib"
    cut.write_bytes(era5_grib.read_bytes()[: len(era5_grib.read_bytes()) // 2 + 1000])
    with pytest.raises(DataReadError, match=r"era5\.grib.*truncated GRIB file"):
        open_datacube(cut)


def test_not_grib_at_all(tmp_path):
    empty = tmp_path / "empty.grib"
    empty.write_bytes(b"")
    with pytest.raises(DataReadError, match="empty"):
        check_grib(empty)
    junk = tmp_path / "junk.grib"
    junk.write_bytes(b"not a grib file at all")
    with pytest.raises(DataReadError, match="no GRIB message"):
        check_grib(junk)


def test_backends_are_classes():
    assert backend("zarr").__name__ == "ZarrBackendEntrypoint"
    assert backend("h5netcdf").__name__ == "H5netcdfBackendEntrypoint"


def test_a_script_that_keeps_a_geotiff_open_exits_quietly(data_dir):
    """rasterio >= 1.5 printed ``Error in sys.excepthook`` when a script ended with a file open."""
    tif = data_dir / "rasterio_landsat7_rgb" / "RGB.byte.tif"
    code = (
        "import sys, workbench as wb\n"
        "ds = wb.open_datacube(sys.argv[1])\n"
        "print(ds.band_data.isel(band=0, y=300, x=300).item())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tif)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() != "nan"  # the file was read
    assert "excepthook" not in proc.stderr, proc.stderr
