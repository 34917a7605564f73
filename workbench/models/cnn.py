"""The NDVI regression CNN of *Small is Beautiful* (Sec. II-D.1, Fig. 5).

"Several cells of convolutional layers and activation functions followed by two fully-connected
layers", predicting one value per chip: the chip's mean NDVI from its RGB reflectance. The model
is deliberately plain ("not specifically optimized for NDVI prediction"): each cell is two 3x3
convolutions with ReLU and a 2x2 max-pool; no batch normalisation, so data-parallel replicas
hold no buffers and every byte they exchange is a gradient.

Examples
--------
>>> import torch
>>> from workbench.models.cnn import NDVIRegressor, chip_ndvi
>>> net = NDVIRegressor(in_channels=3, chip_size=8)
>>> tuple(net(torch.rand(4, 3, 8, 8)).shape)
(4,)
>>> round(float(chip_ndvi(torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 0.3))[0]), 4)
0.5
"""

from __future__ import annotations

from collections.abc import Sequence

from workbench._optional import lazy_import
from workbench.errors import DimensionError

lazy_import("torch", purpose="workbench.models.cnn")

import torch  # noqa: E402
from torch import nn  # noqa: E402

__all__ = ["NDVIRegressor", "chip_ndvi", "chip_mean_mse"]


def chip_ndvi(red: torch.Tensor, nir: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean NDVI ``(NIR - red) / (NIR + red)`` of each chip: ``(B, *spatial) -> (B,)``.

    For Sentinel-2, ``red`` is B04 and ``nir`` is B08 (reflectance). ``eps`` guards empty
    pixels (both bands zero).

    Examples
    --------
    >>> import torch
    >>> chip_ndvi(torch.tensor([[0.1, 0.1]]), torch.tensor([[0.3, 0.1]]))
    tensor([0.2500])
    """
    ndvi = (nir - red) / (nir + red + eps)
    return ndvi.flatten(1).mean(dim=1)


def chip_mean_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between one prediction per chip and the chip's mean target: the NDVI loss.

    ``target`` is the per-pixel target of each chip ``(B, ...)``, e.g. an NDVI chip; its mean
    over everything but the batch axis is the regression target.

    Examples
    --------
    >>> import torch
    >>> float(chip_mean_mse(torch.tensor([0.5]), torch.tensor([[[0.0, 1.0]]])))
    0.0
    """
    return nn.functional.mse_loss(prediction, target.flatten(1).mean(dim=1))


def _size2(chip_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(chip_size, int):
        return chip_size, chip_size
    sizes = tuple(int(s) for s in chip_size)
    if len(sizes) != 2:
        raise DimensionError(f"chip_size must be an int or (height, width), got {chip_size!r}")
    return sizes[0], sizes[1]


class NDVIRegressor(nn.Module):
    """Convolutional cells + two fully connected layers -> one value per chip (Fig. 5).

    Parameters
    ----------
    in_channels : int
        Input bands (3 for RGB: B04, B03, B02).
    chip_size : int or (int, int)
        Chip height and width in pixels; must be divisible by ``2 ** cells``.
    width : int
        Channels of the first cell; each following cell doubles them.
    cells : int
        Convolutional cells (conv-ReLU-conv-ReLU-maxpool).
    hidden : int
        Units of the first fully connected layer.

    Raises
    ------
    DimensionError
        If the chip is too small for ``cells`` poolings, or a size is not positive.

    Examples
    --------
    >>> import torch
    >>> net = NDVIRegressor(in_channels=3, chip_size=(16, 8), width=4, cells=3, hidden=8)
    >>> net(torch.zeros(2, 3, 16, 8)).shape
    torch.Size([2])
    >>> sum(p.numel() for p in NDVIRegressor().parameters())
    6409
    """

    def __init__(
        self,
        in_channels: int = 3,
        chip_size: int | Sequence[int] = 8,
        *,
        width: int = 8,
        cells: int = 2,
        hidden: int = 32,
    ) -> None:
        super().__init__()
        h, w = _size2(chip_size)
        for name, value in {"in_channels": in_channels, "width": width, "hidden": hidden}.items():
            if value < 1:
                raise DimensionError(f"{name} must be >= 1, got {value!r}")
        if cells < 1 or h < 1 or w < 1 or h % 2**cells or w % 2**cells:
            raise DimensionError(
                f"chip_size {(h, w)} must be positive and divisible by 2**cells = {2**cells} "
                f"(cells={cells}); use fewer cells or chips of e.g. {2**cells * 2} px"
            )
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(cells):
            out = width * 2**i
            layers += [
                nn.Conv2d(c, out, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(out, out, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c = out
        self.in_channels = in_channels
        self.chip_size = (h, w)
        self.features = nn.Sequential(*layers)
        flat = c * (h // 2**cells) * (w // 2**cells)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict one value per chip: ``(B, C, H, W) -> (B,)``.

        Chips with a time axis of length one, ``(B, C, 1, H, W)`` (a ChipSet chipped with
        ``{"time": 1, "y": ..., "x": ...}``), are accepted too.
        """
        if x.ndim == 5 and x.shape[2] == 1:
            x = x[:, :, 0]
        if x.ndim != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.chip_size:
            raise DimensionError(
                f"NDVIRegressor expects input (batch, {self.in_channels}, {self.chip_size[0]}, "
                f"{self.chip_size[1]}), got {tuple(x.shape)}; check chip size and bands"
            )
        out: torch.Tensor = self.head(self.features(x))
        return out.squeeze(1)
