"""Image metrics: the one implementation validation and evaluate share."""

from __future__ import annotations

import torch

from pix2pix_unet.metrics.image import image_scores


def test_image_scores():
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    same = image_scores(a, a)
    assert torch.allclose(same["ssim"], torch.ones(2), atol=1e-4) and same["l1"].abs().max() == 0
    b = (a + 0.2).clamp(-1, 1)  # in [0, 1] units: an error of at most 0.1
    scores = image_scores(b, a)
    mse = ((b - a) / 2).pow(2).flatten(1).mean(1)
    assert torch.allclose(scores["psnr"], 10 * torch.log10(1 / mse), atol=1e-3)
    assert torch.allclose(scores["l1"], (b - a).abs().flatten(1).mean(1))
    assert (scores["ssim"] < 1).all()
