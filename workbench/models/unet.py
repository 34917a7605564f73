"""A small U-Net for image-to-image translation: RGB reflectance -> NDMI map.

Follows the NDMI model of Sec. II-D.2 and Fig. 6 of *Small is Beautiful: ... spatial deep
learning orchestration* (seed ``small-is-beautiful-spatial-dl-orchestration.txt``): an encoder of
blocks of 2-D convolution, batch normalisation and LeakyReLU that each halve the resolution, and
a decoder of ``Conv2DTranspose`` blocks joined to the encoder by skip connections at every level
("preserving the underlying land and road structures"). The block layout is the pix2pix
generator the paper cites for image translation (Isola et al. 2017): 4x4 stride-2 convolutions,
LeakyReLU(0.2) down, ReLU up, ``tanh`` output (NDMI lies in ``[-1, 1]``).

Examples
--------
>>> import torch
>>> from workbench.models.unet import UNet
>>> net = UNet(in_channels=3, out_channels=1, depth=3, base_channels=8)
>>> tuple(net(torch.rand(2, 3, 32, 48)).shape)
(2, 1, 32, 48)
"""

from __future__ import annotations

from typing import Literal

from workbench._optional import lazy_import
from workbench.errors import DimensionError

lazy_import("torch", purpose="workbench.models.unet")

import torch  # noqa: E402
from torch import nn  # noqa: E402

__all__ = ["UNet", "ndmi"]


def ndmi(nir: torch.Tensor, swir: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Normalised Difference Moisture Index ``(NIR - SWIR) / (NIR + SWIR)``.

    For Sentinel-2: ``nir`` = B08, ``swir`` = B11 (reflectance). ``eps`` guards empty pixels.

    Examples
    --------
    >>> import torch
    >>> ndmi(torch.tensor([0.3]), torch.tensor([0.1]))
    tensor([0.5000])
    """
    return (nir - swir) / (nir + swir + eps)


def _down(c_in: int, c_out: int, slope: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(slope),
    )


def _up(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net of Conv2D-BatchNorm-LeakyReLU blocks with Conv2DTranspose skip-joined decoder.

    The NDMI-map model of *Small is Beautiful* (Sec. II-D.2, Fig. 6), sized by ``depth`` and
    ``base_channels`` so it trains on a CPU.

    Parameters
    ----------
    in_channels : int
        Input bands (3: R, G, B = Sentinel-2 B04, B03, B02).
    out_channels : int
        Output maps (1: NDMI).
    depth : int
        Number of resolution halvings; height and width must be divisible by ``2**depth``.
    base_channels : int
        Filters of the first block; doubled at every level up to ``max_channels``.
    max_channels : int
        Cap on the filters of a block.
    negative_slope : float
        LeakyReLU slope of the encoder (0.2 as in pix2pix).
    dropout : float
        Dropout in the decoder blocks (0 disables it).
    output_activation : {"tanh", "identity"}
        ``"tanh"`` bounds the output to ``[-1, 1]`` (normalised-difference indices).

    Raises
    ------
    DimensionError
        If a size argument is not positive (at construction) or an input's channels or size do
        not fit the network (at call time).

    Examples
    --------
    >>> import torch
    >>> net = UNet(depth=2, base_channels=4)
    >>> out = net(torch.rand(1, 3, 8, 8))
    >>> tuple(out.shape), bool(out.abs().max() <= 1)
    ((1, 1, 8, 8), True)
    >>> net(torch.rand(1, 3, 10, 8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workbench.errors.DimensionError: UNet(depth=2) needs height and width divisible by 2**2 = 4...
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        *,
        depth: int = 4,
        base_channels: int = 16,
        max_channels: int = 256,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        output_activation: Literal["tanh", "identity"] = "tanh",
    ) -> None:
        super().__init__()
        sizes = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "depth": depth,
            "base_channels": base_channels,
            "max_channels": max_channels,
        }
        for key, value in sizes.items():
            if not isinstance(value, int) or value < 1:
                raise DimensionError(f"UNet {key} must be a positive int, got {value!r}.")
        if output_activation not in ("tanh", "identity"):
            raise DimensionError(
                f"UNet output_activation must be 'tanh' or 'identity', got {output_activation!r}."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        self.widths = tuple(widths)
        self.down = nn.ModuleList()
        c_prev = in_channels
        for width in widths:
            self.down.append(_down(c_prev, width, negative_slope))
            c_prev = width
        # up[i] maps level i+1 (half the resolution) to level i; its output joins skip i.
        self.up = nn.ModuleList()
        for i in range(depth - 1):
            c_in = widths[i + 1] if i + 1 == depth - 1 else 2 * widths[i + 1]
            self.up.append(_up(c_in, widths[i], dropout))
        c_last = 2 * widths[0] if depth > 1 else widths[0]
        self.head = nn.ConvTranspose2d(c_last, out_channels, kernel_size=4, stride=2, padding=1)
        self.output_activation: nn.Module = (
            nn.Tanh() if output_activation == "tanh" else nn.Identity()
        )

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise DimensionError(
                f"UNet expects (batch, {self.in_channels}, height, width) input, got "
                f"{tuple(x.shape)}; select {self.in_channels} bands or build "
                f"UNet(in_channels={x.shape[1] if x.ndim == 4 else '...'})."
            )
        factor = 2**self.depth
        h, w = int(x.shape[2]), int(x.shape[3])
        if h % factor or w % factor:
            raise DimensionError(
                f"UNet(depth={self.depth}) needs height and width divisible by "
                f"2**{self.depth} = {factor}, got ({h}, {w}); chip to a multiple of {factor} "
                f"(e.g. {max(factor, h - h % factor)} x {max(factor, w - w % factor)}) "
                "or lower depth."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``."""
        self._check(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips[-1]
        for i in reversed(range(self.depth - 1)):
            x = torch.cat([self.up[i](x), skips[i]], dim=1)
        out: torch.Tensor = self.output_activation(self.head(x))
        return out
