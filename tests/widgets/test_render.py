"""Device-agnostic thumbnail rendering (workbench.chips.render), on NumPy and, if present, CuPy."""

from __future__ import annotations

import io

import numpy as np
import pytest

from workbench.chips.render import (
    COLORMAPS,
    PreviewError,
    array_namespace,
    colorize,
    encode_png,
    encode_pngs,
    render,
    stretch,
    to_host,
)
from workbench.testing import requires_gpu

PIL_Image = pytest.importorskip("PIL.Image")


def decode(png: bytes) -> np.ndarray:
    return np.asarray(PIL_Image.open(io.BytesIO(png)))


@pytest.fixture
def batch() -> np.ndarray:
    rng = np.random.default_rng(42)
    x = rng.normal(size=(5, 4, 16, 12)).astype(np.float32)
    x[1, 2, :3, :] = np.nan  # partial NaN in one channel
    return x


def test_percentile_stretch_matches_numpy_nanpercentile(batch):
    out = stretch(batch, "percentile", (5, 95))
    lo = np.nanpercentile(batch, 5, axis=(2, 3), keepdims=True)
    hi = np.nanpercentile(batch, 95, axis=(2, 3), keepdims=True)
    expected = np.clip((batch - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.isnan(out[1, 2, :3]).all()
    assert not np.isnan(out[1, 2, 3:]).any()


def test_global_stretch_shares_limits_across_the_batch(batch):
    out = stretch(batch, "global", (0, 100))
    lo = np.nanmin(batch, axis=(0, 2, 3))
    hi = np.nanmax(batch, axis=(0, 2, 3))
    expected = (batch - lo[None, :, None, None]) / (hi - lo)[None, :, None, None]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_minmax_and_fixed_limits(batch):
    mm = stretch(batch, "minmax")
    assert np.nanmin(mm, axis=(2, 3)) == pytest.approx(0.0)
    assert np.nanmax(mm, axis=(2, 3)) == pytest.approx(1.0)
    fixed = stretch(np.array([[[[-1.0, 0.0, 0.5, 2.0]]]]), (0.0, 1.0))
    assert fixed.ravel().tolist() == [0.0, 0.0, 0.5, 1.0]


def test_constant_and_all_nan_images_do_not_divide_by_zero():
    x = np.zeros((2, 1, 4, 4), dtype=np.float32)
    x[1] = np.nan
    out = stretch(x)
    assert (out[0] == 0).all()
    assert np.isnan(out[1]).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stretch_method": "bogus"}, "unknown stretch 'bogus'"),
        ({"stretch_method": (1.0, 1.0)}, "vmax > vmin"),
        ({"percentiles": (90, 10)}, "percentiles must satisfy"),
        ({"cmap": "jet"}, "unknown colormap 'jet'"),
        ({"bands": [0, 1]}, "1 channel .* or 3"),
        ({"bands": 7}, "band 7 is not a channel index of a 4-channel batch"),
    ],
)
def test_bad_options_raise_preview_error(batch, kwargs, match):
    with pytest.raises(PreviewError, match=match):
        render(batch, **kwargs)
    assert issubclass(PreviewError, ValueError)


def test_wrong_rank_is_rejected():
    with pytest.raises(PreviewError, match=r"\(B, C, H, W\)"):
        render(np.zeros((1, 1, 1, 2, 2)))


def test_colormap_endpoints_are_the_anchor_colours():
    rgb = colorize(np.array([0.0, 1.0]), "viridis")
    first, last = COLORMAPS["viridis"][0], COLORMAPS["viridis"][-1]
    assert rgb[0].tolist() == [int(first[i : i + 2], 16) for i in (1, 3, 5)]
    assert rgb[1].tolist() == [int(last[i : i + 2], 16) for i in (1, 3, 5)]


def test_rgb_composite_takes_channels_in_the_given_order():
    x = np.zeros((1, 3, 2, 2), dtype=np.float32)
    x[0, 2] = 1.0  # only channel 2 is bright
    out = render(x, bands=[2, 1, 0], stretch_method=(0.0, 1.0))
    assert out.shape == (1, 2, 2, 3)
    assert out[0, 0, 0].tolist() == [255, 0, 0]


def test_nan_pixels_become_transparent(batch):
    out = render(batch, bands=[0, 1, 2])
    assert out.shape == (5, 16, 12, 4)
    assert (out[1, :3, :, 3] == 0).all()
    assert (out[1, 3:, :, 3] == 255).all()
    assert (out[0, ..., 3] == 255).all()


def test_integer_input_and_single_image_are_accepted():
    img = np.arange(64, dtype=np.uint16).reshape(8, 8)
    out = render(img, stretch_method="minmax", cmap="gray")
    assert out.shape == (1, 8, 8, 3)
    assert out[0, 0, 0].tolist() == [0, 0, 0]
    assert out[0, -1, -1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("png_filter", ["none", "paeth"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_roundtrip_is_lossless(channels, png_filter):
    img = np.random.default_rng(channels).integers(0, 256, (13, 17, channels), dtype=np.uint8)
    back = decode(encode_png(img, png_filter=png_filter))
    np.testing.assert_array_equal(back.reshape(img.shape), img)


def test_paeth_shrinks_smooth_images():
    ramp = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8)[..., None].repeat(3, -1)
    assert len(encode_png(ramp, png_filter="paeth")) < len(encode_png(ramp)) / 2
    with pytest.raises(PreviewError, match="png_filter 'jpeg'"):
        encode_png(ramp, png_filter="jpeg")


def test_encode_pngs_writes_opaque_rgba_as_rgb(batch):
    images = render(batch, bands=[0, 1, 2])
    pngs = encode_pngs(images)
    assert [decode(p).shape[-1] for p in pngs] == [3, 4, 3, 3, 3]
    np.testing.assert_array_equal(decode(pngs[1]), images[1])


def test_encode_png_rejects_floats():
    with pytest.raises(PreviewError, match="uint8"):
        encode_png(np.zeros((2, 2, 3), dtype=np.float32))


def test_numpy_namespace_and_host_copy():
    x = np.ones(3)
    assert array_namespace(x) is np
    assert to_host(x) is x


@pytest.mark.gpu
@requires_gpu()
def test_cupy_renders_the_same_pixels_on_the_gpu(batch):
    import cupy as cp

    on_gpu = render(cp.asarray(batch), bands=[3, 1, 0])
    assert array_namespace(on_gpu) is cp
    np.testing.assert_array_equal(to_host(on_gpu), render(batch, bands=[3, 1, 0]))
    assert encode_pngs(on_gpu) == encode_pngs(render(batch, bands=[3, 1, 0]))
