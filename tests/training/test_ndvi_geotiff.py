"""The GeoTIFF route to the NDVI chips gives the NetCDF cube's chips (tutorial 04's data)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.data.samples import sample_path
from workbench.errors import DataReadError

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
from workbench.training.ndvi import ndvi_holdout, s2_geotiff_ndvi_chips, s2_ndvi_chips

pytest.importorskip("torch")


pytestmark = pytest.mark.torch


def test_geotiff_chips_match_the_netcdf_chips():
    tif = s2_geotiff_ndvi_chips(sample_path("s2_geotiff"), chip=8, dates=[0, 3])
    nc = s2_ndvi_chips(sample_path("s2_netcdf"), chip=8, dates=[0, 3])
    assert len(tif) == len(nc) == 288
    assert tif.channel_names == nc.channel_names
    np.testing.assert_allclose(tif.to_numpy(), nc.to_numpy(), atol=1e-4)
    assert list(tif.geocodes("geohash", 7)) == list(nc.geocodes("geohash", 7))


def test_holdout_keeps_every_cell_on_both_sides():
    train, val = ndvi_holdout(s2_geotiff_ndvi_chips(sample_path("s2_geotiff")), precision=7)
    assert (len(train), len(val)) == (576, 144)
    assert set(train.geocodes("geohash", 7)) == set(val.geocodes("geohash", 7))


def test_a_folder_without_scenes_is_a_data_read_error(tmp_path):
    with pytest.raises(DataReadError, match="no S2_L1C_"):
        s2_geotiff_ndvi_chips(tmp_path)
