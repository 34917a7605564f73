"""Fixtures for the training tests: a small regression dataset and the real S2 NDVI chips."""

from __future__ import annotations

import pytest

from workbench.testing import shared_data

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)


def regression_data(n: int = 64, seed: int = 0, chip: int = 8):
    """RGB-like chips whose target is a smooth function of the bands (learnable by the CNN)."""
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, chip, chip, generator=g)
    y = x[:, 0].mean(dim=(1, 2)) - 0.5 * x[:, 2].mean(dim=(1, 2))
    return TensorDataset(x, y)


@pytest.fixture
def make_data():
    return regression_data


@pytest.fixture(scope="session")
def s2_path():
    return shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc")


@pytest.fixture(scope="session")
def s2_chips(s2_path):
    """720 file-backed 8x8 RGB -> NDVI chips of the real Sentinel-2 cube."""
    from workbench.training.ndvi import s2_ndvi_chips

    return s2_ndvi_chips(s2_path, chip=8)
