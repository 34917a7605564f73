"""SpAGAN: the paper's generator and discriminator, gradients kept apart, PSNR and SSIM."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.errors import DimensionError
from workbench.models.spagan import SpAGAN, psnr, spagan_loss, ssim

pytestmark = pytest.mark.torch


def _pack(n=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    clear = torch.rand(n, 3, size, size, generator=g) * 0.3
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.5).float()
    cloudy = clear * (1 - mask) + 0.9 * mask
    return torch.cat([cloudy, clear, mask], 1), torch.cat([clear, mask], 1)


def test_the_papers_architecture_at_laptop_size():
    gan = SpAGAN()
    gen = gan.generator
    assert len(gen.head) == 3
    assert len(gen.attentive) == 3
    assert len(gen.tail) == 2
    convs = [m for m in gan.discriminator.net if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6
    assert sum(p.numel() for p in gan.parameters()) < 150_000
    assert not list(gan.buffers())  # no running statistics: replicas exchange only gradients


def test_shapes_and_errors():
    gan = SpAGAN()
    x, y = _pack()
    assert gan(x[:, :3]).shape == (4, 4, 16, 16)
    out = gan(x)
    assert out.shape == (4, 5, 16, 16)
    assert (out[:, 3] >= 0).all()
    assert (out[:, 3] <= 1).all()
    with pytest.raises(DimensionError, match="training packs"):
        gan(torch.rand(2, 5, 16, 16))
    with pytest.raises(DimensionError, match="spagan_loss"):
        spagan_loss(torch.rand(2, 3, 16, 16), y[:2])


def test_each_player_gets_only_its_own_gradient():
    torch.manual_seed(0)
    gan = SpAGAN()
    x, _y = _pack()
    out = gan(x)
    # the adversarial channel alone: D's loss reaches D, G's term reaches G, not D
    out[:, 4].mean().backward()
    d_grad = [p.grad.clone() for p in gan.discriminator.parameters()]
    gan.zero_grad()
    fake, _ = gan.generator(x[:, :3])
    real = gan.discriminator(torch.cat([x[:, :3], x[:, 3:6]], 1))
    fake_d = gan.discriminator(torch.cat([x[:, :3], fake.detach()], 1))
    d_only = (
        torch.nn.functional.softplus(-real).mean(dim=(1, 2, 3))
        + torch.nn.functional.softplus(fake_d).mean(dim=(1, 2, 3))
    ).mean()
    d_only.backward()
    for a, p in zip(d_grad, gan.discriminator.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)
    gan.zero_grad()
    gan(x)[:, 4].mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.generator.parameters())


def test_training_lowers_the_reconstruction_error():
    torch.manual_seed(0)
    gan = SpAGAN(width=8, disc_width=8)
    x, y = _pack(n=8)
    opt = torch.optim.Adam(gan.parameters(), lr=2e-3, betas=(0.5, 0.999))
    with torch.no_grad():
        before = float(torch.nn.functional.l1_loss(gan(x[:, :3])[:, :3], y[:, :3]))
    for _ in range(40):
        opt.zero_grad()
        spagan_loss(gan(x), y).backward()
        opt.step()
    with torch.no_grad():
        after = float(torch.nn.functional.l1_loss(gan(x[:, :3])[:, :3], y[:, :3]))
    assert after < 0.5 * before


def test_psnr_and_ssim_agree_with_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 3, 16, 16, generator=g)
    b = (a + 0.1 * torch.rand(3, 3, 16, 16, generator=g)).clamp(0, 1)
    for i in range(3):
        ref_p = metrics.peak_signal_noise_ratio(b[i].numpy(), a[i].numpy(), data_range=1.0)
        ref_s = metrics.structural_similarity(
            a[i].numpy(), b[i].numpy(), channel_axis=0, data_range=1.0, gaussian_weights=True,
            sigma=1.5, use_sample_covariance=False, win_size=7,
        )  # fmt: skip
        assert float(psnr(a, b)[i]) == pytest.approx(ref_p, rel=1e-4)
        assert float(ssim(a, b)[i]) == pytest.approx(ref_s, abs=2e-3)
    assert np.allclose(ssim(a, a).numpy(), 1.0)
    with pytest.raises(DimensionError, match="at least 7 px"):
        ssim(a[..., :4, :4], b[..., :4, :4])
