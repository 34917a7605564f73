"""Texture-aware transfer learning between partitions (Sec. II-E of *Small is Beautiful*).

"Regions with similar textural qualities will benefit from transfer learning": each partition
(geocode) gets a texture vector from grey-level co-occurrence matrices (GLCM), k-means groups
the partitions into texture clusters, and a partition's model is warm-started from a model
already trained on a partition of the same cluster.

The vector follows the paper: six GLCM properties (dissimilarity, homogeneity, contrast,
energy, ASM, correlation), each from three matrices (offsets at 0, 45 and 90 degrees), averaged
over the chips of the partition: 18 values. The cluster count is chosen by the silhouette score
(the paper read it off the silhouette elbow: 12 clusters for its data).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> smooth = np.tile(np.linspace(0, 1, 16), (4, 3, 16, 1))       # 4 RGB chips, gentle ramp
>>> noisy = rng.random((4, 3, 16, 16))                             # 4 RGB chips of noise
>>> f = {"a": texture_vector(smooth), "b": texture_vector(noisy), "c": texture_vector(smooth * 0.9)}
>>> f["a"].shape
(18,)
>>> labels = texture_clusters(f, n_clusters=2)
>>> labels["a"] == labels["c"] != labels["b"]
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workbench._optional import lazy_import
from workbench.errors import TrainingError

__all__ = [
    "GLCM_PROPERTIES",
    "GLCM_ANGLES",
    "to_gray_levels",
    "glcm_features",
    "texture_vector",
    "texture_clusters",
    "transfer_plan",
]

#: The six GLCM properties of the paper, in the order of the feature vector.
GLCM_PROPERTIES = ("dissimilarity", "homogeneity", "contrast", "energy", "ASM", "correlation")
#: The three offsets' angles (radians): the "3 unique" matrices per property.
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2)


def to_gray_levels(
    chips: np.ndarray[Any, Any],
    *,
    levels: int = 32,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Grey-level images ``(N, H, W)`` in ``0 .. levels-1`` from chips ``(N, C, H, W)``.

    Axes between the channels and the last two (e.g. a time axis of length one) count as
    channels. The grey value is the channel mean; ``value_range`` (default: the 2nd-98th
    percentile of these chips) is mapped onto the levels. NaNs become level 0.
    """
    x = np.asarray(chips, dtype=np.float64)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim > 4:
        x = x.reshape(x.shape[0], -1, *x.shape[-2:])
    if x.ndim != 4:
        raise TrainingError(f"texture features need chips (N, C, H, W), got shape {x.shape}")
    gray = np.nanmean(x, axis=1) if x.shape[1] > 1 else x[:, 0]
    finite = gray[np.isfinite(gray)]
    if value_range is None:
        lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
    else:
        lo, hi = value_range
    scale = (levels - 1) / (hi - lo) if hi > lo else 0.0
    q = np.clip(np.nan_to_num((gray - lo) * scale, nan=0.0), 0, levels - 1)
    return np.rint(q).astype(np.uint8)


def glcm_features(gray: np.ndarray[Any, Any], *, levels: int = 32) -> np.ndarray[Any, Any]:
    """Compute the 18 GLCM values of a grey-level image ``(H, W)`` (property-major, 3 angles).

    Uses :func:`skimage.feature.graycomatrix` (distance 1, symmetric, normalised) and
    :func:`skimage.feature.graycoprops`.
    """
    feature = lazy_import("skimage.feature", purpose="GLCM texture features (--transfer glcm)")
    glcm = feature.graycomatrix(
        np.asarray(gray, dtype=np.uint8),
        distances=[1],
        angles=list(GLCM_ANGLES),
        levels=levels,
        symmetric=True,
        normed=True,
    )
    values = [np.asarray(feature.graycoprops(glcm, prop))[0] for prop in GLCM_PROPERTIES]
    out: np.ndarray[Any, Any] = np.nan_to_num(np.concatenate(values), nan=0.0)
    return out


def texture_vector(
    chips: np.ndarray[Any, Any],
    *,
    levels: int = 32,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray[Any, Any]:
    """Texture of a partition: mean :func:`glcm_features` over its chips ``(N, C, H, W)``."""
    gray = to_gray_levels(chips, levels=levels, value_range=value_range)
    if len(gray) == 0:
        raise TrainingError("a partition without chips has no texture; drop empty partitions")
    out: np.ndarray[Any, Any] = np.mean([glcm_features(g, levels=levels) for g in gray], axis=0)
    return out


def texture_clusters(
    features: Mapping[str, np.ndarray[Any, Any]],
    *,
    n_clusters: int | None = None,
    max_clusters: int = 12,
    seed: int = 0,
) -> dict[str, int]:
    """Group partitions by texture with k-means on standardised texture vectors.

    Parameters
    ----------
    features : mapping of str to array
        Texture vector per partition (:func:`texture_vector`).
    n_clusters : int, optional
        Number of clusters; default: the k in ``2 .. max_clusters`` with the best silhouette
        score (scikit-learn).
    max_clusters : int
        Upper bound of the automatic choice (the paper found 12).
    seed : int
        Seed of k-means.

    Returns
    -------
    dict of str to int
        Cluster label per partition.
    """
    cluster = lazy_import("sklearn.cluster", purpose="texture clusters (--transfer glcm)")
    skm = lazy_import("sklearn.metrics", purpose="texture clusters (--transfer glcm)")
    codes = sorted(features)
    if not codes:
        return {}
    x = np.stack([np.asarray(features[c], dtype=np.float64) for c in codes])
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    n = len(codes)
    distinct = len({tuple(np.round(r, 12)) for r in x})
    if n_clusters is not None:
        if n_clusters < 1:
            raise TrainingError(f"n_clusters must be >= 1, got {n_clusters!r}")
        ks = [min(n_clusters, distinct)]
    else:
        ks = list(range(2, min(max_clusters, distinct - 1) + 1)) or [1]
    best: tuple[float, Any] | None = None
    for k in ks:
        km = cluster.KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
        score = skm.silhouette_score(x, km.labels_) if 1 < k < n else 0.0
        if best is None or score > best[0]:
            best = (score, km.labels_)
    assert best is not None
    return {c: int(label) for c, label in zip(codes, best[1], strict=True)}


def transfer_plan(
    assignment: Mapping[str, Sequence[str]], clusters: Mapping[str, int]
) -> tuple[dict[str, list[str]], dict[str, str | None]]:
    """Order each worker's partitions by texture cluster and pick each one's warm start.

    Within a worker, partitions of one cluster are trained one after another; the first of
    each cluster starts from the initial model, every later one from the partition of the same
    cluster trained just before it on the same worker. No weights cross workers.

    Parameters
    ----------
    assignment : mapping of str to sequence of str
        Partitions per worker.
    clusters : mapping of str to int
        Texture cluster per partition.

    Returns
    -------
    order : dict of str to list of str
        Training order per worker.
    warm_start : dict of str to str or None
        Source partition of each partition's initial weights.

    Examples
    --------
    >>> transfer_plan({"w0": ["a", "b", "c"]}, {"a": 1, "b": 0, "c": 1})
    ({'w0': ['b', 'a', 'c']}, {'b': None, 'a': None, 'c': 'a'})
    """
    order: dict[str, list[str]] = {}
    warm: dict[str, str | None] = {}
    for worker, codes in assignment.items():
        ordered = sorted(codes, key=lambda c: (clusters.get(c, -1), c))
        order[worker] = ordered
        last: dict[int, str] = {}
        for code in ordered:
            label = clusters.get(code, -1)
            warm[code] = last.get(label) if label >= 0 else None
            last[label] = code
    return order, warm
