"""Linear probe on frozen MAE features (He et al. 2022 protocol) with real eo-learn land cover."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)

from workbench.errors import DimensionError
from workbench.models.mae import MaskedAutoencoderViT, get_config
from workbench.models.probe import (
    LinearProbe,
    extract_features,
    fit_linear_probe,
    fit_linear_probe_features,
)

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("torch_one_thread")]


def _blobs(n: int, labels: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = torch.cat([torch.randn(n, 6, generator=g) + 4 * i for i in range(len(labels))])
    return feats, torch.tensor([lab for lab in labels for _ in range(n)])


def test_probe_is_linear_on_standardised_features() -> None:
    probe = LinearProbe(6, 3)
    assert [type(m).__name__ for m in probe.children()] == ["BatchNorm1d", "Linear"]
    assert not list(probe.norm.parameters())  # no affine: the map stays linear


def test_fit_on_features_keeps_label_values_and_baseline() -> None:
    x_train, y_train = _blobs(30, (0, 2, 8))
    x_eval, y_eval = _blobs(10, (0, 2, 8), seed=1)
    result = fit_linear_probe_features(x_train, y_train, x_eval, y_eval, epochs=100)
    assert result.classes == (0, 2, 8)
    assert result.accuracy == 1.0
    assert result.train_accuracy == 1.0
    assert result.baseline_accuracy == pytest.approx(1 / 3)
    assert set(result.predict(x_eval).tolist()) == {0, 2, 8}
    assert result.losses[-1] < result.losses[0]


def test_unseen_eval_label_counts_as_error() -> None:
    x, y = _blobs(20, (1, 2))
    y_eval = y.clone()
    y_eval[:5] = 9  # a class the probe never saw
    result = fit_linear_probe_features(x, y, x, y_eval, epochs=100)
    assert result.accuracy == pytest.approx(35 / 40)


def test_bad_probe_inputs_raise() -> None:
    x, y = _blobs(5, (1, 2))
    with pytest.raises(DimensionError, match="at least two classes"):
        fit_linear_probe_features(x, torch.ones(10, dtype=torch.long), x, y)
    with pytest.raises(DimensionError, match=r"\(10, 6\) and \(9,\)"):
        fit_linear_probe_features(x, y[:9], x, y)
    with pytest.raises(DimensionError, match="differ in width"):
        fit_linear_probe_features(x, y, x[:, :3], y)


def test_extract_features_freezes_and_restores_mode() -> None:
    mae = MaskedAutoencoderViT(get_config("tiny"), img_size=8, patch_size=4).train()
    feats = extract_features(mae.encoder_features, torch.rand(5, 3, 8, 8), batch_size=2)
    assert feats.shape == (5, 32)
    assert not feats.requires_grad
    assert mae.training  # restored


def test_probe_beats_majority_class_on_real_land_cover(s2_scene) -> None:  # type: ignore[no-untyped-def]
    # 8x8 chips of all 13 bands on 3 clear dates, labelled by majority LULC class
    # (0 no data, 2 forest, 3 grassland, 4 shrubland, 8 artificial; forest dominates).
    size = 8
    x = s2_scene.chips(size)
    y = s2_scene.chip_labels(size)
    cells_x = s2_scene.lulc.shape[1] // size
    cell = np.tile(np.arange(len(x) // 3), 3)
    train = ((cell // cells_x) + (cell % cells_x)) % 2 == 0  # spatial checkerboard split
    assert train.sum() == (~train).sum() == 216
    mean = x[train].mean(axis=(0, 2, 3), keepdims=True)
    std = x[train].std(axis=(0, 2, 3), keepdims=True)
    xt = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(y)

    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(get_config("tiny"), in_chans=13, img_size=size, patch_size=2)
    opt = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    first = None
    for _ in range(40):  # short self-supervised pretraining on the training chips only
        loss, _, _ = mae(xt[train], mask_ratio=0.75, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first

    result = fit_linear_probe(mae.encoder_features, xt[train], yt[train], xt[~train], yt[~train])
    assert result.baseline_accuracy == pytest.approx(171 / 216)  # forest share of eval chips
    # Measured 0.89 with seeds 0, 1, 2 (baseline 0.79). Randomly initialised encoders also
    # reach 0.88-0.92 here: this checks the probing pipeline, not that pretraining helps.
    assert result.accuracy > result.baseline_accuracy + 0.05
