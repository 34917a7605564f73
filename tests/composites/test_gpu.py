"""The composite and resampling kernels on CuPy arrays give the NumPy results (GPU only)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.composites import coarsen, composite, refine, spectral_cloud_mask
from workbench.data.synthetic import s2_like
from workbench.testing import requires_gpu

pytestmark = [pytest.mark.gpu, requires_gpu()]


def _on_gpu(ds):
    import cupy

    return ds.map(lambda v: v.copy(data=cupy.asarray(v.values)), keep_attrs=True)


@pytest.mark.parametrize("method", ["median", "best", "latest"])
def test_composite_on_cupy_equals_numpy(method):
    import cupy

    ds = s2_like(time=4, y=32, x=32, cloud_fraction=0.3, seed=2)
    cpu = composite(ds, cloud_mask="cloud_mask", method=method)
    gpu = composite(_on_gpu(ds), cloud_mask="cloud_mask", method=method)
    assert isinstance(gpu.reflectance.data, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(gpu.reflectance.data), cpu.reflectance.values)
    np.testing.assert_array_equal(gpu.source_time.values, cpu.source_time.values)


def test_resample_and_cloud_test_on_cupy():
    import cupy

    ds = s2_like(time=1, y=16, x=16, bands=("B02", "B03", "B04", "B08", "B11", "B12"))
    gds = _on_gpu(ds)
    for method in ("average", "mode", "nearest"):
        np.testing.assert_allclose(
            cupy.asnumpy(coarsen(gds, 2, method).reflectance.data),
            coarsen(ds, 2, method).reflectance.values,
        )
    for method in ("nearest", "bilinear", "cubic"):
        np.testing.assert_allclose(
            cupy.asnumpy(refine(gds, 2, method).reflectance.data),
            refine(ds, 2, method).reflectance.values,
            rtol=1e-6,
        )
    flags = spectral_cloud_mask(gds)
    np.testing.assert_array_equal(cupy.asnumpy(flags.data), spectral_cloud_mask(ds).values)
