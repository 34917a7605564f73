"""One real 2-engine ipyparallel cluster per test module, and the real S2 NDVI chips."""

from __future__ import annotations

import pytest

from workbench.testing import shared_data

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
pytest.importorskip("ipyparallel")


@pytest.fixture(scope="module")
def ipp_cluster():
    """A loopback cluster with 2 engines, started once per module and stopped after it."""
    from workbench.cluster import ClusterSpec, IpyparallelCluster

    cluster = IpyparallelCluster.start(ClusterSpec(n=2))
    # import torch on the engines once, so the first test does not pay for it
    cluster.client[:].execute("import torch", block=True)
    yield cluster
    cluster.stop()


@pytest.fixture
def launcher(ipp_cluster):
    from workbench.cluster import IpyparallelLauncher

    return IpyparallelLauncher(ipp_cluster)


@pytest.fixture(scope="session")
def s2_chips():
    from workbench.training.ndvi import s2_ndvi_chips

    return s2_ndvi_chips(shared_data("eolearn_s2_slovenia/eolearn_s2_slovenia.nc"), chip=8)


def regression_data(n: int = 128, seed: int = 0):
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    y = x[:, 0].mean(dim=(1, 2)) - 0.5 * x[:, 2].mean(dim=(1, 2))
    return TensorDataset(x, y)


@pytest.fixture
def make_data():
    return regression_data
