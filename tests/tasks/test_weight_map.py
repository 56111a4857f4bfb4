"""The U-Net weight map against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pix2pix_unet.data.weight_map import border_weights, class_balance_weights, unet_weight_map


def test_gap_between_two_touching_objects_matches_the_formula():
    # Two 3-px objects with a 1-px gap in a 1x9 strip: 1 1 1 0 2 2 2 0 0
    instances = np.array([[1, 1, 1, 0, 2, 2, 2, 0, 0]])
    w = unet_weight_map(instances, class_balance=False, w0=10.0, sigma=5.0)
    # the gap (x=3): d1 = d2 = 1 px
    assert w[0, 3] == pytest.approx(1 + 10 * math.exp(-(1 + 1) ** 2 / (2 * 25)), rel=1e-6)
    # x=7: nearest is object 2 (1 px), second is object 1 (5 px: x=2 -> x=7)
    assert w[0, 7] == pytest.approx(1 + 10 * math.exp(-(1 + 5) ** 2 / 50), rel=1e-6)
    # x=8: 2 px and 6 px
    assert w[0, 8] == pytest.approx(1 + 10 * math.exp(-(2 + 6) ** 2 / 50), rel=1e-6)
    # object pixels get no border term
    assert np.allclose(w[0, [0, 1, 2, 4, 5, 6]], 1.0)


def test_diagonal_distances_are_euclidean():
    instances = np.zeros((5, 5), np.int64)
    instances[0, 0] = 1
    instances[4, 4] = 2
    w = border_weights(instances, w0=10.0, sigma=5.0)
    d = math.sqrt(2) * 2  # the centre (2, 2) is 2*sqrt(2) from both corners
    assert w[2, 2] == pytest.approx(10 * math.exp(-(2 * d) ** 2 / 50), rel=1e-6)


def test_class_balance_weights_are_inverse_frequencies():
    labels = np.array([[0, 0, 0, 1]])  # 3 background pixels, 1 object pixel, 2 classes
    w = class_balance_weights(labels)
    assert w[0, 0] == pytest.approx(4 / (2 * 3)) and w[0, 3] == pytest.approx(4 / (2 * 1))
    assert w.mean() == pytest.approx(1.0)


def test_one_object_has_no_border_term_and_windowing_is_exact():
    single = np.zeros((20, 20), np.int64)
    single[5:9, 5:9] = 1
    assert not border_weights(single).any()
    # far-apart objects in a large image: the windowed result equals the brute-force one
    rng = np.random.default_rng(0)
    instances = np.zeros((80, 80), np.int64)
    for k in range(1, 7):
        y, x = rng.integers(0, 70, 2)
        instances[y : y + 8, x : x + 8] = k
    from scipy import ndimage

    ids = [k for k in np.unique(instances) if k]
    dist = np.sort(np.stack([ndimage.distance_transform_edt(instances != k) for k in ids]), axis=0)
    brute = np.where(instances == 0, 10 * np.exp(-((dist[0] + dist[1]) ** 2) / 50), 0)
    assert np.allclose(border_weights(instances), brute, atol=10 * math.exp(-8))
