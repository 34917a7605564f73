"""workbench._array: NumPy/CuPy dispatch by the input's type (CuPy checked where present)."""

from __future__ import annotations

import numpy as np
import pytest

from workbench._array import array_namespace, is_cupy, to_numpy
from workbench.testing import requires_gpu


def test_numpy_inputs():
    x = np.arange(4.0)
    assert array_namespace(x) is np
    assert array_namespace(x, 2.0, [1, 2]) is np
    assert array_namespace() is np
    assert not is_cupy(x)
    assert to_numpy(x) is x
    assert to_numpy([1, 2]).tolist() == [1, 2]


def test_detection_by_module_without_importing_cupy():
    class FakeCupyArray:  # a type that claims to live in cupy, as cupy.ndarray does
        __module__ = "cupy._core.core"

        def get(self):
            return np.array([7])

    fake = FakeCupyArray()
    assert is_cupy(fake)
    assert to_numpy(fake).tolist() == [7]


@pytest.mark.gpu
@requires_gpu()
def test_cupy_arrays():
    import cupy

    x = cupy.arange(3)
    assert is_cupy(x)
    assert array_namespace(np.zeros(1), x) is cupy
    assert isinstance(to_numpy(x), np.ndarray)
