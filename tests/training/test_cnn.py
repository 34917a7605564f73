"""The NDVI regression CNN (paper Fig. 5)."""

from __future__ import annotations

import pytest

from workbench.errors import DimensionError

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.models import NDVIRegressor, chip_ndvi
from workbench.models.cnn import chip_mean_mse

pytestmark = pytest.mark.torch


def test_structure_conv_cells_then_two_linear_layers():
    net = NDVIRegressor(in_channels=3, chip_size=16, width=4, cells=3, hidden=8)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 6
    assert len(linears) == 2
    assert linears[-1].out_features == 1
    assert net(torch.rand(5, 3, 16, 16)).shape == (5,)


def test_accepts_a_singleton_time_axis():
    net = NDVIRegressor(chip_size=8)
    x = torch.rand(2, 3, 1, 8, 8)
    assert torch.equal(net(x), net(x[:, :, 0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chip_size": 6, "cells": 2}, "divisible by 2\\*\\*cells = 4"),
        ({"width": 0}, "width must be >= 1"),
    ],
)
def test_bad_sizes_are_dimension_errors(kwargs, match):
    with pytest.raises(DimensionError, match=match):
        NDVIRegressor(**kwargs)


def test_wrong_input_shape_names_expected_and_got():
    net = NDVIRegressor(chip_size=8)
    with pytest.raises(
        DimensionError, match=r"expects input \(batch, 3, 8, 8\), got \(2, 4, 8, 8\)"
    ):
        net(torch.rand(2, 4, 8, 8))


def test_ndvi_target_and_loss():
    red, nir = torch.full((2, 4, 4), 0.1), torch.full((2, 4, 4), 0.3)
    assert torch.allclose(chip_ndvi(red, nir), torch.tensor([0.5, 0.5]), atol=1e-4)
    y = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    assert float(chip_mean_mse(torch.tensor([0.0, 1.0]), y)) == 0.0
    assert float(chip_mean_mse(torch.tensor([1.0, 1.0]), y)) == pytest.approx(0.5)


def test_real_s2_ndvi_target_matches_bands(s2_path):
    """The cube's ndvi equals (B08 - B04) / (B08 + B04) of the same date: the target is sound."""
    import numpy as np
    import xarray as xr

    with xr.open_dataset(s2_path) as ds:
        refl = ds.reflectance.isel(ref_time=0)
        b4, b8 = refl.sel(band="B04").values, refl.sel(band="B08").values
        ndvi = ds.ndvi.sel(time=ds.ref_time.values[0]).values
    ours = chip_ndvi(torch.from_numpy(b4[None]), torch.from_numpy(b8[None]), eps=0.0)
    assert float(ours[0]) == pytest.approx(float(np.mean(ndvi)), abs=1e-4)
