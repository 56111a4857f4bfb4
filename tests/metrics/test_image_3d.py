"""PSNR and SSIM of volumes, checked by hand, and the classical denoisers a 3D restorer is compared with."""

from __future__ import annotations

import math

import kornia.metrics
import pytest
import torch

from pix2pix_unet.metrics.classical import gaussian, nlm
from pix2pix_unet.metrics.image import image_scores


def unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] values as the [-1, 1] tensors the metrics take."""
    return x.mul(2).sub(1)


def test_psnr_of_a_volume_is_over_every_voxel():
    target = torch.rand(2, 1, 6, 16, 16) * 0.8
    shifted = target + torch.tensor([0.1, 0.01])[:, None, None, None, None]  # MSE 1e-2 and 1e-4
    scores = image_scores(unit(shifted), unit(target))
    assert scores["psnr"].tolist() == pytest.approx([20.0, 40.0], abs=1e-3)
    assert scores["l1"].tolist() == pytest.approx([0.2, 0.02], abs=1e-5)  # in [-1, 1] units


def test_ssim_of_constant_volumes_is_the_luminance_term():
    a, b = torch.full((1, 1, 12, 16, 16), 0.5), torch.full((1, 1, 12, 16, 16), 0.6)
    c1 = 0.01**2  # (K1 * peak)^2; no contrast or structure, so SSIM is (2ab + C1) / (a^2 + b^2 + C1)
    expected = (2 * 0.5 * 0.6 + c1) / (0.5**2 + 0.6**2 + c1)
    assert float(image_scores(unit(a), unit(b))["ssim"][0]) == pytest.approx(expected, abs=1e-5)
    assert float(image_scores(unit(a), unit(a))["ssim"][0]) == pytest.approx(1.0, abs=1e-6)


def test_ssim_of_a_stack_of_one_slice_is_that_slice_s_2d_ssim():
    torch.manual_seed(0)
    x, y = torch.rand(1, 1, 24, 24), torch.rand(1, 1, 24, 24)
    flat = float(kornia.metrics.ssim(x, y, 11).mean())
    stacked = image_scores(unit(x[:, :, None].expand(-1, -1, 12, -1, -1)),
                           unit(y[:, :, None].expand(-1, -1, 12, -1, -1)))["ssim"]
    assert float(stacked[0]) == pytest.approx(flat, abs=1e-5)
    noisier = image_scores(unit((x + 0.2 * torch.randn_like(x)).clamp(0, 1)[:, :, None].expand(-1, -1, 12, -1, -1)),
                           unit(x[:, :, None].expand(-1, -1, 12, -1, -1)))["ssim"]
    assert 0 < float(noisier[0]) < 1


def test_volume_ssim_is_kornia_s_3d_ssim_computed_exactly_and_fits_thin_volumes():
    torch.manual_seed(1)
    a = torch.rand(1, 1, 12, 20, 20)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    reference = float(kornia.metrics.ssim3d(a.double(), b.double(), 11).mean())  # float64: exact, but slow
    assert float(image_scores(unit(b), unit(a))["ssim"][0]) == pytest.approx(reference, abs=1e-6)
    thin = image_scores(unit(b[:, :, :3]), unit(a[:, :, :3]))["ssim"]  # 3 slices: the window is mirrored
    assert math.isfinite(float(thin[0])) and 0 < float(thin[0]) < 1


def smooth_volume() -> torch.Tensor:
    """``(1, 1, 12, 32, 32)`` in [0.2, 0.8]: a slowly varying volume, which denoisers should recover."""
    z, y, x = torch.meshgrid(torch.linspace(0, 1, 12), torch.linspace(0, 1, 32), torch.linspace(0, 1, 32),
                             indexing="ij")
    return (0.5 + 0.3 * torch.sin(3 * x) * torch.cos(2 * y) * torch.cos(z))[None, None]


def test_nlm_and_gaussian_denoise_volumes_in_3d():
    clean = smooth_volume()
    noisy = (clean + 0.08 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    before = float(image_scores(unit(noisy), unit(clean))["psnr"][0])
    for restored in (nlm(noisy), gaussian(noisy, (0.7, 1.5, 1.5))):
        assert restored.shape == clean.shape
        assert float(image_scores(unit(restored), unit(clean))["psnr"][0]) > before + 3
    with pytest.raises(ValueError, match="one sigma per spatial axis"):
        gaussian(noisy, (1.0, 1.0))
