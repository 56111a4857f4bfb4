"""3D degradations: noise voxel by voxel, blur by an anisotropic Gaussian PSF set in micrometres, and the
degradations with no 3D meaning refused by name."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pix2pix_unet.config import ConfigError, RestoreConfig
from pix2pix_unet.data.degrade import degrade, gaussian_blur, psf_sigmas
from tests.tasks.test_degrade import only  # every degradation off but one


def point(shape: tuple[int, int, int] = (21, 21, 21)) -> torch.Tensor:
    """One bright voxel in the middle of a dark volume, ``(1, 1, Z, Y, X)``: blurred, it draws the PSF."""
    x = torch.zeros(1, 1, *shape)
    x[0, 0, shape[0] // 2, shape[1] // 2, shape[2] // 2] = 1.0
    return x


def spread(volume: torch.Tensor) -> list[float]:
    """The standard deviation, in voxels, of ``volume``'s mass along z, y and x."""
    mass = volume[0, 0].double() / volume.sum()
    out = []
    for axis in range(3):
        profile = mass.sum(dim=[a for a in range(3) if a != axis])
        at = torch.arange(len(profile), dtype=torch.float64)
        mean = (profile * at).sum()
        out.append(float(((at - mean) ** 2 * profile).sum().sqrt()))
    return out


def test_psf_sigmas_turn_micrometres_into_voxels_by_the_spacing():
    sigmas = psf_sigmas(torch.tensor([0.5, 1.0]), (2.0, 0.5, 0.5), axial_ratio=3.0)
    # 0.5 um laterally is 1 voxel of 0.5 um; axially 1.5 um is 0.75 of a 2 um slice
    assert torch.allclose(sigmas, torch.tensor([[0.75, 1.0, 1.0], [1.5, 2.0, 2.0]]))
    assert torch.allclose(psf_sigmas(torch.tensor([0.5]), None, 3.0), torch.tensor([[1.5, 0.5, 0.5]]))  # 1 um voxels
    with pytest.raises(ValueError, match="three positive numbers"):
        psf_sigmas(torch.tensor([0.5]), (2.0, 0.5), 3.0)


def test_the_3d_blur_spreads_a_point_by_each_axis_sigma():
    sigma = torch.tensor([[2.4, 1.2, 0.8]])
    blurred = gaussian_blur(point(), sigma)
    assert blurred.shape == (1, 1, 21, 21, 21) and abs(float(blurred.sum()) - 1) < 1e-5  # the mass is kept
    assert spread(blurred) == pytest.approx([2.4, 1.2, 0.8], rel=0.05)
    with pytest.raises(ValueError, match=r"\(B, 3\) sigmas"):
        gaussian_blur(point(), torch.tensor([1.0]))


def test_the_psf_is_longer_along_z_in_micrometres_whatever_the_voxels():
    spacing = (1.0, 0.25, 0.25)  # z sampled 4x coarser than y and x
    cfg = only("gaussian_blur", low=0.5, high=0.5)
    out, mask = degrade(point(), cfg, torch.Generator().manual_seed(0), spacing)
    assert mask is None
    z, y, x = (s * size for s, size in zip(spread(out), spacing))  # micrometres
    assert y == pytest.approx(0.5, rel=0.05) and x == pytest.approx(0.5, rel=0.05)
    assert z / y == pytest.approx(cfg.psf_axial_ratio, rel=0.05)  # longer along z, as a widefield PSF
    wider = dataclasses.replace(cfg, psf_axial_ratio=5.0)
    z5 = spread(degrade(point(), wider, torch.Generator().manual_seed(0), spacing)[0])[0] * spacing[0]
    assert z5 / y == pytest.approx(5.0, rel=0.05)


def test_noise_is_voxel_wise_per_volume_strength_and_seeded():
    clean = torch.full((2, 1, 8, 16, 16), 0.5)
    cfg = only("gaussian_noise", low=0.02, high=0.1)
    first, _ = degrade(clean, cfg, torch.Generator().manual_seed(1))
    again, _ = degrade(clean, cfg, torch.Generator().manual_seed(1))
    assert first.shape == clean.shape and torch.equal(first, again)
    stds = (first - clean).flatten(1).std(1)
    assert 0.015 < float(stds.min()) and float(stds.max()) < 0.11 and abs(float(stds[0] - stds[1])) > 1e-3
    # shot noise: the variance of counts / peak is value / peak, voxel by voxel
    shot, _ = degrade(clean, only("poisson_noise", low=100.0, high=100.0), torch.Generator().manual_seed(2))
    assert float((shot - clean).var()) == pytest.approx(0.5 / 100, rel=0.1)


@pytest.mark.parametrize("name", ["motion_blur", "downsample", "jpeg", "inpaint"])
def test_degradations_with_no_3d_meaning_are_refused_by_name(name):
    with pytest.raises(ConfigError, match=rf"restore\.{name}\.p=1\.0 .*restore\.{name}\.p=0"):
        degrade(torch.rand(1, 1, 8, 16, 16), only(name))


def test_the_defaults_name_every_2d_degradation_and_second_order_is_refused():
    with pytest.raises(ConfigError) as err:
        degrade(torch.rand(1, 1, 8, 16, 16), RestoreConfig())
    assert all(f"restore.{n}.p=0 " in str(err.value) + " " for n in ("motion_blur", "downsample", "jpeg"))
    cfg = only("gaussian_noise")
    cfg.second_order.enabled = True
    with pytest.raises(ConfigError, match="second_order.enabled=true"):
        degrade(torch.rand(1, 1, 8, 16, 16), cfg)
