"""SpAGAN, the spatial-attention GAN for cloud removal of *Small is Beautiful* (Sec. II-D.3).

The paper's Fig. 7 generator: three standard residual blocks, three spatial attentive blocks,
two more residual blocks and a final convolution. A spatial attentive block (after SPANet,
Wang et al. 2019, which SpA-GAN uses as its generator) computes an attention map with a spatial
attention module, four-direction IRNNs (identity-initialised recurrent passes along rows and
columns, weighted per direction by a small convolutional branch) that gather context from the
whole chip, and gates a residual block with it: ``h = relu(res(h) * attention + h)``. The first
attention map is trained towards the cloud mask. Fig. 8's discriminator: six convolutional
blocks (convolution, batch norm, leaky ReLU; the last a convolution to patch logits) judging
``(cloudy, candidate)`` pairs, conditional as in pix2pix.

:class:`SpAGAN` holds both networks and trains under any workbench strategy with one optimizer:
given the cloudy input alone ``(B, C, H, W)`` it returns the generated image and the attention
map ``(B, C + 1, H, W)``; given a training pack ``(cloudy, clear, mask)`` stacked on channels
``(B, 2C + 1, H, W)`` it also returns each sample's adversarial terms (broadcast to one channel):
the discriminator's loss on the real pair and on the detached fake, and the generator's loss
through a *detached copy* of the discriminator's parameters, so one backward pass gives each
network only its own gradient (simultaneous gradient descent on both players).
:func:`spagan_loss` adds ``lambda_l1 * L1`` to the clear image and the attention loss.
:func:`psnr` and :func:`ssim` score generated images.

Examples
--------
>>> import torch
>>> gan = SpAGAN(channels=3, width=8, disc_width=8)
>>> cloudy, clear = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
>>> mask = torch.rand(2, 1, 16, 16)
>>> tuple(gan(cloudy).shape), tuple(gan(torch.cat([cloudy, clear, mask], 1)).shape)
((2, 4, 16, 16), (2, 5, 16, 16))
>>> loss = spagan_loss(gan(torch.cat([cloudy, clear, mask], 1)), torch.cat([clear, mask], 1))
>>> loss.ndim, bool(loss > 0)
(0, True)
"""

from __future__ import annotations

from workbench._optional import lazy_import
from workbench.errors import DimensionError

lazy_import("torch", purpose="workbench.models.spagan")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

__all__ = [
    "SpAGAN",
    "SpAGANGenerator",
    "SpAGANDiscriminator",
    "spagan_loss",
    "psnr",
    "ssim",
]


class _Residual(nn.Module):
    """Two 3x3 convolutions; the caller adds the skip."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out


class _IRNN(nn.Module):
    """Recurrent passes in four directions: ``h_i = relu(w * h_{i-1} + b + x_i)`` per channel.

    ``w`` starts at 1 and ``b`` at 0 (identity initialisation, Le et al. 2015). Returns the
    passes towards the right, left, bottom and top, each ``(B, C, H, W)``.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4, width))
        self.bias = nn.Parameter(torch.zeros(4, width))

    @staticmethod
    def _scan(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, reverse: bool) -> torch.Tensor:
        """Run the recurrence along the last axis (no in-place writes: vmap-friendly)."""
        cols = x.unbind(-1)
        order = range(len(cols) - 1, -1, -1) if reverse else range(len(cols))
        w, b = w[:, None], b[:, None]
        out: list[torch.Tensor] = []
        h: torch.Tensor | None = None
        for i in order:
            h = cols[i] if h is None else F.relu(w * h + b + cols[i])
            out.append(h)
        if reverse:
            out.reverse()
        return torch.stack(out, dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        w, b = self.weight, self.bias
        right = self._scan(x, w[0], b[0], reverse=False)
        left = self._scan(x, w[1], b[1], reverse=True)
        xt = x.transpose(-1, -2)
        down = self._scan(xt, w[2], b[2], reverse=False).transpose(-1, -2)
        up = self._scan(xt, w[3], b[3], reverse=True).transpose(-1, -2)
        return right, left, down, up


class _SpatialAttention(nn.Module):
    """Spatial attention module: two direction-weighted IRNN rounds -> a map in [0, 1]."""

    def __init__(self, width: int) -> None:
        super().__init__()
        half = max(1, width // 2)
        self.directions = nn.Sequential(
            nn.Conv2d(width, half, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(half, half, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(half, 4, 1),
            nn.Sigmoid(),
        )
        self.inp = nn.Conv2d(width, width, 1)
        self.irnn1, self.irnn2 = _IRNN(width), _IRNN(width)
        self.mix1 = nn.Conv2d(4 * width, width, 1)
        self.mix2 = nn.Conv2d(4 * width, width, 1)
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.directions(x)
        h = self.inp(x)
        for irnn, mix in ((self.irnn1, self.mix1), (self.irnn2, self.mix2)):
            passes = irnn(h)
            h = mix(torch.cat([p * weights[:, i : i + 1] for i, p in enumerate(passes)], 1))
        att: torch.Tensor = torch.sigmoid(self.out(F.relu(h)))
        return att


class _AttentiveBlock(nn.Module):
    """Spatial attentive block: attention map gating ``depth`` residual blocks."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.attention = _SpatialAttention(width)
        self.blocks = nn.ModuleList(_Residual(width) for _ in range(depth))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = self.attention(h)
        for block in self.blocks:
            h = F.relu(block(h) * att + h)
        return h, att


class SpAGANGenerator(nn.Module):
    """Fig. 7: conv, 3 residual, 3 spatial attentive, 2 residual blocks, conv.

    Returns the generated image and the first attention map ``(B, 1, H, W)``.
    """

    def __init__(self, channels: int = 3, width: int = 16, attentive_depth: int = 1) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU())
        self.head = nn.ModuleList(_Residual(width) for _ in range(3))
        self.attentive = nn.ModuleList(_AttentiveBlock(width, attentive_depth) for _ in range(3))
        self.tail = nn.ModuleList(_Residual(width) for _ in range(2))
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the generated image and the first attention map."""
        h = self.inp(x)
        for block in self.head:
            h = F.relu(block(h) + h)
        first: torch.Tensor | None = None
        for sab in self.attentive:
            h, att = sab(h)
            first = att if first is None else first
        for block in self.tail:
            h = F.relu(block(h) + h)
        assert first is not None
        return self.out(h), first


class SpAGANDiscriminator(nn.Module):
    """Fig. 8: six convolutional blocks on a ``(cloudy, candidate)`` pair -> patch logits."""

    def __init__(self, channels: int = 3, width: int = 16) -> None:
        super().__init__()
        widths = [2 * channels, width, 2 * width, 2 * width, 2 * width, 2 * width]
        strides = [2, 2, 1, 1, 1]
        layers: list[nn.Module] = []
        for i, stride in enumerate(strides):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, stride=stride, padding=1))
            if i:  # no normalisation on the first block, as in pix2pix
                layers.append(nn.BatchNorm2d(widths[i + 1], track_running_stats=False))
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Conv2d(widths[-1], 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """Return patch logits of ``(cloudy, candidate)`` stacked on channels."""
        out: torch.Tensor = self.net(pair)
        return out


class SpAGAN(nn.Module):
    """Generator and discriminator in one module (see the module docstring).

    Parameters
    ----------
    channels : int
        Image bands (3 for RGB).
    width, disc_width : int
        Feature channels of the generator and of the discriminator's first block.
    attentive_depth : int
        Residual blocks gated by each attention map.
    """

    def __init__(
        self, channels: int = 3, width: int = 16, disc_width: int = 16, attentive_depth: int = 1
    ) -> None:
        super().__init__()
        self.channels = channels
        self.generator = SpAGANGenerator(channels, width, attentive_depth)
        self.discriminator = SpAGANDiscriminator(channels, disc_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(cloudy)`` -> ``(fake, attention)``; ``(cloudy, clear, mask)`` -> ``+ adversarial``."""
        c = self.channels
        if x.ndim != 4 or x.shape[1] not in (c, 2 * c + 1):
            raise DimensionError(
                f"SpAGAN takes (batch, {c}, H, W) cloudy images, or (batch, {2 * c + 1}, H, W) "
                f"training packs (cloudy, clear, mask); got {tuple(x.shape)}"
            )
        cloudy = x[:, :c]
        fake, att = self.generator(cloudy)
        if x.shape[1] == c:
            return torch.cat([fake, att], 1)
        clear = x[:, c : 2 * c]
        disc = self.discriminator
        real = disc(torch.cat([cloudy, clear], 1))
        fake_d = disc(torch.cat([cloudy, fake.detach()], 1))
        d_loss = F.softplus(-real).mean(dim=(1, 2, 3)) + F.softplus(fake_d).mean(dim=(1, 2, 3))
        frozen = {k: v.detach() for k, v in disc.named_parameters()}
        fake_g = torch.func.functional_call(disc, frozen, (torch.cat([cloudy, fake], 1),))
        g_adv = F.softplus(-fake_g).mean(dim=(1, 2, 3))
        adv = (d_loss + g_adv)[:, None, None, None].expand(-1, 1, *x.shape[2:])
        return torch.cat([fake, att, adv], 1)


def spagan_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    lambda_l1: float = 100.0,
    lambda_attention: float = 1.0,
) -> torch.Tensor:
    """``lambda_l1 * L1(fake, clear) + lambda_attention * MSE(attention, mask) + adversarial``.

    ``prediction`` is :class:`SpAGAN`'s output, ``target`` the clear image and the cloud mask
    stacked on channels ``(B, C + 1, H, W)``. Without adversarial channel (a model given only
    cloudy images) the loss has no adversarial term.
    """
    c = target.shape[1] - 1
    if prediction.shape[1] not in (c + 1, c + 2) or prediction.shape[2:] != target.shape[2:]:
        raise DimensionError(
            f"spagan_loss needs a SpAGAN output with {c + 1} or {c + 2} channels for a target "
            f"(clear, mask) of {c + 1}; got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    loss = lambda_l1 * F.l1_loss(prediction[:, :c], target[:, :c])
    loss = loss + lambda_attention * F.mse_loss(prediction[:, c], target[:, c])
    if prediction.shape[1] == c + 2:
        loss = loss + prediction[:, c + 1].mean()
    return loss


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image, dB: ``10 log10(range^2 / MSE)`` -> ``(B,)``.

    Examples
    --------
    >>> import torch
    >>> round(float(psnr(torch.full((1, 1, 4, 4), 0.1), torch.zeros(1, 1, 4, 4))[0]), 1)
    20.0
    """
    mse = ((prediction - target) ** 2).flatten(1).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-12))


def ssim(
    prediction: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    *,
    window: int = 7,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Structural similarity of each image (Wang et al. 2004), mean over channels -> ``(B,)``.

    A Gaussian window (``window`` px, ``sigma``) slid over the valid positions; constants
    ``K1 = 0.01``, ``K2 = 0.03``. Chips must be at least ``window`` px on each side.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(2, 3, 16, 16)
    >>> [round(float(v), 4) for v in ssim(x, x)]
    [1.0, 1.0]
    """
    if min(prediction.shape[-2:]) < window:
        raise DimensionError(
            f"ssim needs images of at least {window} px, got {tuple(prediction.shape)}"
        )
    c = prediction.shape[1]
    ax = torch.arange(window, dtype=prediction.dtype) - (window - 1) / 2
    g = torch.exp(-(ax**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(prediction), blur(target)
    var_x = blur(prediction * prediction) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(prediction * target) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return s.flatten(1).mean(dim=1)
