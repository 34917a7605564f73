"""Device-agnostic array helpers: pick NumPy or CuPy by the input's type.

Code that works on pixels calls ``xp = array_namespace(x)`` and uses ``xp.where``,
``xp.asarray`` ... so the same lines run on the CPU (NumPy, exercised by the test
suite) and on the GPU (CuPy). CuPy is never imported here: it is detected from the
module of the array's type, so this module stays importable without it.

Examples
--------
>>> import numpy as np
>>> x = np.arange(3.0)
>>> array_namespace(x).__name__, is_cupy(x)
('numpy', False)
>>> to_numpy(x).tolist()
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["array_namespace", "is_cupy", "to_numpy"]


def is_cupy(x: Any) -> bool:
    """Return whether ``x`` is a CuPy array (without importing CuPy).

    Parameters
    ----------
    x : object
        Any object.

    Returns
    -------
    bool
        True when the type of ``x`` comes from the ``cupy`` package.

    Examples
    --------
    >>> is_cupy([1, 2]), is_cupy(np.zeros(2))
    (False, False)
    """
    return type(x).__module__.split(".", 1)[0] == "cupy"


def array_namespace(*arrays: Any) -> ModuleType:
    """Return the array module (``numpy`` or ``cupy``) that matches the inputs.

    Parameters
    ----------
    *arrays : array-like
        Arrays (NumPy, CuPy, scalars or lists). If any of them is a CuPy array, the
        namespace is ``cupy``; otherwise ``numpy``.

    Returns
    -------
    types.ModuleType
        ``numpy`` or ``cupy``.

    Examples
    --------
    >>> array_namespace(np.ones(2), 3.0).__name__
    'numpy'
    """
    for x in arrays:
        if is_cupy(x):
            # the array exists, so cupy is already imported
            return sys.modules["cupy"]
    return np


def to_numpy(x: Any) -> np.ndarray[Any, Any]:
    """Return ``x`` as a NumPy array, copying it from the GPU when it is a CuPy array.

    Parameters
    ----------
    x : array-like
        A NumPy or CuPy array, or anything :func:`numpy.asarray` accepts.

    Returns
    -------
    numpy.ndarray
        A host array (no copy when ``x`` already is one).

    Examples
    --------
    >>> to_numpy([1, 2]).dtype.kind
    'i'
    """
    if is_cupy(x):
        return np.asarray(x.get())
    return np.asarray(x)
