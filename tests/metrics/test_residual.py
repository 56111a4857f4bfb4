"""Residual diagnostics: pure noise removed, and a structured residual."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from pix2pix_unet.metrics.residual import neighbour_correlation, residual_diagnostics, residual_warnings


def test_removing_exactly_white_noise_gives_a_ratio_near_1_and_no_correlation():
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0.2, 0.8, 128, dtype=np.float32), (1, 128, 1))
    noise = rng.normal(0, 0.05, clean.shape).astype(np.float32)
    d = residual_diagnostics(torch.from_numpy(clean + noise), torch.from_numpy(clean))
    assert abs(d["sigma_ratio"] - 1) < 0.1 and abs(d["residual_std"] - 0.05) < 0.003
    assert abs(d["residual_correlation"]) < 0.05 and d["structured"] == 0.0
    assert abs(d["noise_scale_ratio"] - 1) < 0.3 and d["correlated"] == 0.0  # independent noise halves over 2 x 2


def test_a_structured_residual_is_flagged_and_over_removal_shows_in_the_ratio():
    rng = np.random.default_rng(1)
    clean = np.zeros((1, 128, 128), np.float32)
    smooth = gaussian_filter(rng.normal(0, 1, clean.shape), (0, 1.5, 1.5)).astype(np.float32)
    smooth *= 0.05 / smooth.std()
    d = residual_diagnostics(torch.from_numpy(clean + smooth), torch.from_numpy(clean))
    assert d["residual_correlation"] > 0.5 and d["structured"] == 1.0
    assert d["noise_scale_ratio"] > 2.5 and d["correlated"] == 1.0  # the input's noise is correlated too
    white = rng.normal(0, 0.02, clean.shape).astype(np.float32)
    edges = np.zeros_like(clean)
    edges[:, :, 64:] = 0.5  # the output also flattened a step edge: more was removed than the noise
    d = residual_diagnostics(torch.from_numpy(edges + white), torch.from_numpy(np.zeros_like(clean)))
    assert d["sigma_ratio"] > 3


def test_neighbour_correlation_of_constant_and_checkerboard():
    assert neighbour_correlation(np.ones((1, 8, 8))) == 0.0
    board = (np.indices((8, 8)).sum(0) % 2 * 2 - 1)[None].astype(float)
    assert neighbour_correlation(board) < -0.8


def test_the_warnings_name_the_file_and_say_which_kind():
    flags = {"correlated": 1.0, "structured": 0.0, "noise_scale_ratio": 4.2, "residual_correlation": 0.1}
    (warning,) = residual_warnings("cells.tif", flags)
    assert warning.startswith("cells.tif: its noise looks correlated") and "4.2x" in warning
    assert residual_warnings("a.png", {**flags, "correlated": 0.0}) == []
    (warning,) = residual_warnings("a.png", {**flags, "correlated": 0.0, "structured": 1.0})
    assert "structure may have been removed" in warning


def test_an_output_that_keeps_the_noise_is_named():
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(np.tile(np.linspace(0.2, 0.8, 64), (1, 64, 1))).float()
    noisy = clean + torch.from_numpy(rng.normal(0, 0.1, clean.shape)).float()
    d = residual_diagnostics(noisy, noisy * 0.99 + clean * 0.01)  # removes 1 % of the noise: near the identity
    assert d["kept"] == 1.0 and d["structured"] == 0.0
    (warning,) = residual_warnings("cells.tif", d)
    assert warning.startswith("cells.tif: the output keeps most of the input's noise")
    assert residual_diagnostics(noisy, clean)["kept"] == 0.0  # the noise removed
    assert residual_diagnostics(clean, clean)["kept"] == 0.0  # a clean input kept is no fault
