"""Linear probing of frozen encoder features.

The evaluation protocol of He et al. (2022), *Masked Autoencoders Are Scalable Vision
Learners* (Sec. 4 and appendix A.2: a BatchNorm without affine parameters before a linear
classifier on frozen features), used by Tsaris et al. (2024), *Pretraining Billion-scale
Geospatial Foundational Models on Frontier* (seed ``billion-scale-geospatial-fm-frontier.txt``)
to score pretrained ViTs on scene classification.

Examples
--------
>>> import torch
>>> from workbench.models.probe import fit_linear_probe_features
>>> g = torch.Generator().manual_seed(0)
>>> feats = torch.cat([torch.randn(20, 4, generator=g) - 2, torch.randn(20, 4, generator=g) + 2])
>>> labels = torch.tensor([3] * 20 + [8] * 20)
>>> result = fit_linear_probe_features(feats, labels, feats, labels)
>>> result.accuracy, result.classes
(1.0, (3, 8))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from workbench._optional import lazy_import
from workbench.errors import DimensionError

lazy_import("torch", purpose="workbench.models.probe")

import torch  # noqa: E402
from torch import nn  # noqa: E402

__all__ = [
    "LinearProbe",
    "ProbeResult",
    "extract_features",
    "fit_linear_probe",
    "fit_linear_probe_features",
]


class LinearProbe(nn.Module):
    """``BatchNorm1d(affine=False)`` then ``torch.nn.Linear``: a linear classifier on features.

    The normalisation only standardises the features (it has no weights), so the probe stays
    linear, as in He et al. (2022), appendix A.2.

    Examples
    --------
    >>> import torch
    >>> tuple(LinearProbe(16, 5)(torch.randn(4, 16)).shape)
    (4, 5)
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features, affine=False, eps=1e-6, momentum=None)
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_features)`` features to ``(N, num_classes)`` logits."""
        out: torch.Tensor = self.linear(self.norm(features))
        return out


@dataclass(frozen=True, eq=False)
class ProbeResult:
    """Outcome of a linear probe fit.

    Attributes
    ----------
    accuracy : float
        Top-1 accuracy on the evaluation set.
    train_accuracy : float
        Top-1 accuracy on the training set.
    baseline_accuracy : float
        Accuracy on the evaluation set of always predicting the training set's majority class.
    classes : tuple of int
        Label values, in the order of the probe's outputs.
    probe : LinearProbe
        The fitted probe (eval mode).
    losses : tuple of float
        Training loss per epoch.
    """

    accuracy: float
    train_accuracy: float
    baseline_accuracy: float
    classes: tuple[int, ...]
    probe: LinearProbe = field(repr=False)
    losses: tuple[float, ...] = field(repr=False)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted label values (not indices) for ``(N, D)`` features."""
        with torch.no_grad():
            idx = self.probe(features).argmax(dim=1)
        return torch.tensor(self.classes, device=idx.device)[idx]


def extract_features(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    batch_size: int = 256,
) -> torch.Tensor:
    """Run a frozen encoder over ``images`` in batches: no gradients, eval mode, ``(N, D)`` out.

    ``encoder`` is a module or a bound method of one (e.g. ``mae.encoder_features``); that
    module is put in eval mode for the pass and restored afterwards.

    Examples
    --------
    >>> import torch
    >>> tuple(extract_features(torch.nn.Flatten(), torch.rand(5, 2, 3, 3), batch_size=2).shape)
    (5, 18)
    """
    owner = encoder if isinstance(encoder, nn.Module) else getattr(encoder, "__self__", None)
    was_training = owner.training if isinstance(owner, nn.Module) else False
    if isinstance(owner, nn.Module):
        owner.eval()
    try:
        with torch.no_grad():
            out = [encoder(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    finally:
        if isinstance(owner, nn.Module):
            owner.train(was_training)
    features = torch.cat(out).flatten(1)
    return features


def _accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == targets).float().mean())


def fit_linear_probe_features(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    eval_features: torch.Tensor,
    eval_labels: torch.Tensor,
    *,
    epochs: int = 300,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> ProbeResult:
    """Fit a :class:`LinearProbe` on precomputed features (full-batch Adam) and score it.

    Labels may be any integers (e.g. land-cover codes 1, 2, 3, 8); evaluation labels never
    seen in training count as errors.

    Raises
    ------
    DimensionError
        If features are not 2-D, lengths differ, or fewer than two classes are in training.
    """
    for name, feats, labels in (
        ("train", train_features, train_labels),
        ("eval", eval_features, eval_labels),
    ):
        if feats.ndim != 2 or labels.ndim != 1 or len(feats) != len(labels) or len(feats) == 0:
            raise DimensionError(
                f"{name} features must be (N, D) and labels (N,) with N > 0, got "
                f"{tuple(feats.shape)} and {tuple(labels.shape)}."
            )
    if train_features.shape[1] != eval_features.shape[1]:
        raise DimensionError(
            f"train and eval features differ in width: {train_features.shape[1]} vs "
            f"{eval_features.shape[1]}; extract both with the same encoder."
        )
    classes = torch.unique(train_labels.long().cpu())
    if len(classes) < 2:
        raise DimensionError(
            f"a probe needs at least two classes in the training labels, got {classes.tolist()}; "
            "sample more chips or other areas."
        )
    device = train_features.device
    classes = classes.to(device)

    def to_index(labels: torch.Tensor) -> torch.Tensor:
        labels = labels.long().to(device)
        idx = torch.searchsorted(classes, labels).clamp(max=len(classes) - 1)
        return torch.where(classes[idx] == labels, idx, torch.full_like(idx, -1))

    y_train, y_eval = to_index(train_labels), to_index(eval_labels)
    counts = torch.bincount(y_train, minlength=len(classes))
    baseline = float((y_eval == counts.argmax()).float().mean())

    torch.manual_seed(seed)
    probe = LinearProbe(train_features.shape[1], len(classes)).to(device)
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    x_train = train_features.detach().float()
    losses = []
    probe.train()
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(probe(x_train), y_train)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(loss.detach()))
    probe.eval()
    with torch.no_grad():
        train_acc = _accuracy(probe(x_train), y_train)
        acc = _accuracy(probe(eval_features.detach().float()), y_eval)
    return ProbeResult(
        accuracy=acc,
        train_accuracy=train_acc,
        baseline_accuracy=baseline,
        classes=tuple(int(c) for c in classes.tolist()),
        probe=probe,
        losses=tuple(losses),
    )


def fit_linear_probe(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    eval_images: torch.Tensor,
    eval_labels: torch.Tensor,
    *,
    epochs: int = 300,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
) -> ProbeResult:
    """Linear-probe a frozen encoder: extract features, fit a linear classifier, score it.

    Parameters
    ----------
    encoder : callable
        Maps ``(B, C, H, W)`` images to ``(B, D)`` features, e.g.
        ``MaskedAutoencoderViT.encoder_features``. It is not trained.
    train_images, eval_images : torch.Tensor
        ``(N, C, H, W)`` images.
    train_labels, eval_labels : torch.Tensor
        ``(N,)`` integer labels (any values).
    epochs, lr, weight_decay : optional
        Full-batch Adam schedule of the probe.
    batch_size : int
        Batch size of the feature extraction.
    seed : int
        Seed of the probe's initialisation.

    Returns
    -------
    ProbeResult
        ``.accuracy`` on the evaluation set, next to ``.baseline_accuracy`` (majority class).

    Examples
    --------
    >>> import torch
    >>> from workbench.models.mae import MaskedAutoencoderViT, get_config
    >>> mae = MaskedAutoencoderViT(get_config("tiny"), img_size=8, patch_size=4)
    >>> x = torch.rand(12, 3, 8, 8)
    >>> x[6:] += 1.0  # two visibly different groups of images
    >>> y = torch.tensor([2] * 6 + [3] * 6)
    >>> result = fit_linear_probe(mae.encoder_features, x, y, x, y, epochs=50)
    >>> result.accuracy > result.baseline_accuracy
    True
    """
    train = extract_features(encoder, train_images, batch_size=batch_size)
    evaluation = extract_features(encoder, eval_images, batch_size=batch_size)
    return fit_linear_probe_features(
        train,
        train_labels,
        evaluation,
        eval_labels,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
    )
