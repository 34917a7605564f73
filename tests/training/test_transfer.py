"""GLCM texture vectors, k-means clusters, warm-start plans (paper Sec. II-E)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed on this leg; the torch leg runs it"
)
from workbench.training.data import group_by_code
from workbench.training.transfer import (
    GLCM_PROPERTIES,
    glcm_features,
    texture_clusters,
    texture_vector,
    to_gray_levels,
    transfer_plan,
)

pytestmark = pytest.mark.torch


def test_eighteen_values_property_major():
    flat = np.zeros((8, 8), dtype=np.uint8)
    f = glcm_features(flat, levels=8)
    assert f.shape == (18,)
    values = dict(zip(GLCM_PROPERTIES, f.reshape(6, 3), strict=True))
    assert np.allclose(values["energy"], 1.0)
    assert np.allclose(values["contrast"], 0.0)
    stripes = np.tile(np.array([0, 7], dtype=np.uint8), (8, 4))  # vertical stripes
    c = dict(zip(GLCM_PROPERTIES, glcm_features(stripes, levels=8).reshape(6, 3), strict=True))
    assert c["contrast"][0] == pytest.approx(49.0)  # horizontal neighbours always differ by 7
    assert c["contrast"][2] == pytest.approx(0.0)  # vertical neighbours are equal


def test_gray_levels_use_channel_mean_and_range():
    chips = np.stack([np.zeros((3, 4, 4)), np.ones((3, 4, 4))])
    g = to_gray_levels(chips, levels=16, value_range=(0.0, 1.0))
    assert g.dtype == np.uint8
    assert g[0].max() == 0
    assert g[1].min() == 15


def test_real_partitions_cluster_deterministically(s2_chips):
    codes = s2_chips.geocodes("geohash", 7)
    groups = group_by_code(codes)
    features = {
        c: texture_vector(s2_chips.to_numpy(idx)[:, :3, 0]) for c, idx in list(groups.items())[:20]
    }
    labels = texture_clusters(features, seed=0)
    assert set(labels) == set(features)
    assert 2 <= len(set(labels.values())) <= 12
    assert texture_clusters(features, seed=0) == labels
    assert len(set(texture_clusters(features, n_clusters=3).values())) == 3


def test_transfer_plan_stays_within_cluster_and_worker():
    assignment = {"w0": ["a", "b", "c", "d"], "w1": ["e", "f"]}
    clusters = {"a": 0, "b": 1, "c": 0, "d": 1, "e": 0, "f": 0}
    order, warm = transfer_plan(assignment, clusters)
    assert order == {"w0": ["a", "c", "b", "d"], "w1": ["e", "f"]}
    assert warm == {"a": None, "c": "a", "b": None, "d": "b", "e": None, "f": "e"}
    for codes in order.values():
        for i, code in enumerate(codes):
            src = warm[code]
            assert src is None or (clusters[src] == clusters[code] and src in codes[:i])
