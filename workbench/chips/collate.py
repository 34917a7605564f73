"""Zero-copy hand-over of chip batches to torch, and the choice of device.

A NumPy batch becomes a tensor with :func:`torch.from_numpy` (same memory); a CuPy
batch with :func:`torch.from_dlpack` (same GPU memory). A copy happens only when the
batch must move between host and GPU.

Examples
--------
>>> import numpy as np
>>> batch = np.zeros((2, 3, 4, 4), dtype=np.float32)
>>> tensor = to_tensor(batch, resolve_device("cpu"))
>>> tensor.shape, tensor.data_ptr() == batch.ctypes.data
(torch.Size([2, 3, 4, 4]), True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from workbench._array import is_cupy
from workbench._optional import has_gpu, lazy_import
from workbench.errors import GPUUnavailableError
from workbench.options import OPTIONS

if TYPE_CHECKING:
    import torch as torch_

__all__ = ["resolve_device", "to_tensor"]


def _torch() -> Any:
    return lazy_import("torch", purpose="chips as torch tensors")


def resolve_device(device: Any = "auto", data_on_gpu: bool = False) -> torch_.device:
    """Return the torch device that batches go to.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or torch.device or str
        ``"auto"``: the ``workbench.options`` device if it is not ``"auto"``; else
        ``cuda`` when the data is on the GPU or a GPU is usable (:func:`workbench.has_gpu`),
        else ``cpu``.
    data_on_gpu : bool
        Whether the data already lives on the GPU (CuPy).

    Raises
    ------
    GPUUnavailableError
        A CUDA device is asked for but torch cannot use one.

    Examples
    --------
    >>> resolve_device("cpu").type
    'cpu'
    """
    torch = _torch()
    if isinstance(device, str) and device == "auto":
        preferred = OPTIONS.get("device", "auto")
        if preferred != "auto":
            device = preferred
        else:
            device = "cuda" if (data_on_gpu or has_gpu()) and torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GPUUnavailableError(
            f"device={device!r} was asked for, but torch sees no CUDA device "
            f"(torch {torch.__version__}); use device='cpu' or device='auto'"
        )
    return cast("torch_.device", dev)


def to_tensor(array: Any, device: torch_.device) -> torch_.Tensor:
    """Wrap a NumPy or CuPy array as a tensor on ``device``, without a copy when possible.

    Parameters
    ----------
    array : numpy.ndarray or cupy.ndarray
        The batch.
    device : torch.device
        Target device.
    """
    torch = _torch()
    if is_cupy(array):
        tensor = torch.from_dlpack(array)
        return cast("torch_.Tensor", tensor if tensor.device == device else tensor.to(device))
    host = np.ascontiguousarray(array)
    if not host.flags.writeable:
        host = host.copy()
    tensor = torch.from_numpy(host)
    if device.type != "cpu":
        tensor = tensor.to(device, non_blocking=True)
    return cast("torch_.Tensor", tensor)
