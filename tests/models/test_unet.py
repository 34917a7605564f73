"""U-Net (Small is Beautiful, Sec. II-D.2, Fig. 6): shapes, errors, gradients, real NDMI fit."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.errors import DimensionError
from workbench.models.unet import UNet, ndmi

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("torch_one_thread")]


@pytest.mark.parametrize(
    ("depth", "hw"),
    [(1, (2, 2)), (2, (8, 12)), (3, (32, 32)), (4, (16, 48))],
)
def test_output_has_input_size(depth: int, hw: tuple[int, int]) -> None:
    net = UNet(in_channels=3, out_channels=2, depth=depth, base_channels=4)
    out = net(torch.rand(2, 3, *hw))
    assert out.shape == (2, 2, *hw)
    assert out.abs().max() <= 1.0  # tanh head


def test_widths_double_and_cap() -> None:
    net = UNet(depth=5, base_channels=8, max_channels=32)
    assert net.widths == (8, 16, 32, 32, 32)
    assert isinstance(UNet(output_activation="identity").output_activation, torch.nn.Identity)


@pytest.mark.parametrize("hw", [(30, 32), (32, 20), (7, 7)])
def test_size_not_divisible_raises(hw: tuple[int, int]) -> None:
    net = UNet(depth=3, base_channels=4)
    with pytest.raises(DimensionError, match=r"divisible by 2\*\*3 = 8") as err:
        net(torch.rand(1, 3, *hw))
    assert str(hw) in str(err.value)


def test_wrong_channels_and_bad_args_raise() -> None:
    with pytest.raises(DimensionError, match=r"\(batch, 3, height, width\).*\(1, 4, 8, 8\)"):
        UNet(depth=2)(torch.rand(1, 4, 8, 8))
    with pytest.raises(DimensionError, match="depth must be a positive int"):
        UNet(depth=0)
    with pytest.raises(DimensionError, match="output_activation"):
        UNet(output_activation="relu")  # type: ignore[arg-type]


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    net = UNet(depth=3, base_channels=4, dropout=0.1)
    net(torch.rand(2, 3, 16, 16)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_skip_connections_carry_fine_detail() -> None:
    # A decoder fed only by the 1/2**depth bottleneck could not depend on a single input pixel
    # this sharply; with the skips the output near the pixel changes most.
    torch.manual_seed(0)
    net = UNet(depth=3, base_channels=4).eval()
    x = torch.rand(1, 3, 16, 16)
    y = x.clone()
    y[0, :, 3, 3] += 1.0
    diff = (net(y) - net(x)).abs()[0, 0]
    assert diff[:8, :8].sum() > diff[8:, 8:].sum()


def test_overfits_real_rgb_to_ndmi(s2_scene) -> None:  # type: ignore[no-untyped-def]
    rgb = s2_scene.chips(16, "B04", "B03", "B02")[:16]  # 16 real 16x16 chips: R, G, B
    nir_swir = s2_scene.chips(16, "B08", "B11")[:16]
    x = torch.from_numpy(rgb)
    target = ndmi(torch.from_numpy(nir_swir[:, :1]), torch.from_numpy(nir_swir[:, 1:]))
    assert target.shape == (16, 1, 16, 16)
    assert float(target.std()) > 0.05  # real spatial structure to learn, not a constant

    torch.manual_seed(0)
    net = UNet(in_channels=3, out_channels=1, depth=2, base_channels=16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] / 20, losses  # ~100x with seeds 0, 1, 2
    # ... and well below the best constant map (the mean NDMI): it learned spatial structure
    assert losses[-1] < 0.75 * float(target.var())  # ~0.41-0.48 x var with seeds 0, 1, 2
