"""Real-ESRGAN's second-order degradation: seeded, shape-preserving, within its configured ranges."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pix2pix_unet.config import ConfigError, SecondOrderConfig, from_dict, to_dict
from pix2pix_unet.data.second_order import (
    blur, gaussian_kernel, generalized_gaussian_kernel, plateau_kernel, random_blur_kernel, second_order, sinc_kernel,
)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clean_batch(channels: int = 3, size: tuple[int, int] = (48, 48), n: int = 3) -> torch.Tensor:
    """Smooth images with edges, so every stage has something to change."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size[0]), torch.linspace(0, 1, size[1]), indexing="ij")
    image = torch.stack([x, y, (x > 0.5).float()])[:channels]
    return torch.stack([image, image.flip(-1), image.flip(-2), 1 - image][:n])


def nothing() -> SecondOrderConfig:
    """Every stage off, no resize, working size = the clean size."""
    cfg = SecondOrderConfig(scale=1)
    for blur_stage in (cfg.blur1, cfg.blur2):
        blur_stage.p = 0.0
    for resize_stage in (cfg.resize1, cfg.resize2):
        resize_stage.probs = [0.0, 0.0, 1.0]
    for stage in (cfg.noise1, cfg.noise2, cfg.jpeg1, cfg.jpeg2):
        stage.p = 0.0
    cfg.final.sinc_p = 0.0
    return cfg


def second_moment_sigma(kernel: torch.Tensor) -> torch.Tensor:
    """The std along x of each ``(n, k, k)`` kernel, px."""
    r = torch.arange(kernel.shape[-1], dtype=kernel.dtype) - kernel.shape[-1] // 2
    return (kernel.sum(-2) * r**2).sum(-1).sqrt()


def total_variation(x: torch.Tensor) -> float:
    return (x.diff(dim=-1).abs().mean() + x.diff(dim=-2).abs().mean()).item()


def support(kernel: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Per kernel: first and last nonzero row, first and last nonzero column."""
    out = []
    for k in kernel:
        rows, cols = k.abs().sum(1).nonzero()[:, 0], k.abs().sum(0).nonzero()[:, 0]
        out.append((int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])))
    return out


# --------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("channels", [1, 3])
def test_seeded_and_seeds_differ(channels):
    clean = clean_batch(channels)
    first = second_order(clean, SecondOrderConfig(), seeded(3))
    again = second_order(clean, SecondOrderConfig(), seeded(3))
    other = second_order(clean, SecondOrderConfig(), seeded(4))
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 1e-3


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("size", "scale"), [((45, 61), 1), ((45, 61), 4), ((148, 180), 4), ((6, 9), 4)])
def test_shape_range_and_8_bit_grid(channels, size, scale):
    """Odd sizes and odd working sizes (148x180 / 4 = 37x45; 6x9 / 4 = 1x2) keep the shape."""
    clean = clean_batch(channels, size, n=2)
    out = second_order(clean, SecondOrderConfig(scale=scale), seeded(1))
    assert out.shape == clean.shape and out.dtype == clean.dtype
    assert 0 <= out.min() and out.max() <= 1
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)


def test_every_sample_is_degraded_its_own_way():
    image = clean_batch(3, n=1)
    out = second_order(image.expand(4, -1, -1, -1), SecondOrderConfig(), seeded(0))
    for i in range(4):
        for j in range(i):
            assert (out[i] - out[j]).abs().mean() > 1e-3, (i, j)


def test_global_rng_when_no_generator():
    torch.manual_seed(5)
    first = second_order(clean_batch(), SecondOrderConfig())
    torch.manual_seed(5)
    assert torch.equal(first, second_order(clean_batch(), SecondOrderConfig()))


@pytest.mark.parametrize("channels", [1, 3])
def test_nothing_on_returns_the_input_up_to_8_bits(channels):
    clean = torch.rand(3, channels, 37, 45, generator=seeded(0))
    out = second_order(clean, nothing(), seeded(0))
    assert (out - clean).abs().max() <= 0.5 / 255 + 1e-6


def test_scale_alone_is_a_down_and_up_resize():
    clean = clean_batch(3, (64, 64))
    out = second_order(clean, dataclasses.replace(nothing(), scale=4), seeded(0))
    assert (out - clean).abs().mean() > 5e-3  # detail lost at 16x16
    assert (out.mean((-2, -1)) - clean.mean((-2, -1))).abs().max() < 0.02  # but the same image


def test_gaussian_noise_std_stays_in_its_sigma_range():
    cfg = nothing()
    cfg.noise1 = dataclasses.replace(cfg.noise1, p=1.0, gaussian_p=1.0, gray_p=0.0, sigma=[5.0, 20.0])
    clean = torch.full((8, 3, 64, 64), 0.5)
    std = (second_order(clean, cfg, seeded(0)) - clean).std((1, 2, 3))  # (8,)
    assert (std > 5 / 255 * 0.95).all() and (std < 20 / 255 * 1.05).all(), std * 255
    assert std.max() - std.min() > 2 / 255  # each sample its own sigma


def test_gray_noise_is_shared_by_the_channels():
    cfg = nothing()
    cfg.noise2 = dataclasses.replace(cfg.noise2, p=1.0, gaussian_p=1.0, gray_p=1.0, sigma=[10.0, 10.0])
    out = second_order(torch.full((2, 3, 32, 32), 0.5), cfg, seeded(0))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert out.std() > 5 / 255


def test_poisson_noise_follows_the_shot_noise_law():
    """BasicSR's shot noise: ``Poisson(x v) / v - x`` with v = 256 for an image using 256 levels,
    times ``scale``: its std at x = 0.5 is ``scale * sqrt(0.5 / 256)``."""
    cfg = nothing()
    cfg.noise1 = dataclasses.replace(cfg.noise1, p=1.0, gaussian_p=0.0, gray_p=0.0, poisson_scale=[2.0, 2.0])
    clean = torch.full((4, 3, 64, 64), 128 / 255)
    clean[:, :, :4, :] = torch.arange(256.0).reshape(4, 64) / 255  # all 256 levels, in the first rows
    noise = (second_order(clean, cfg, seeded(0)) - clean)[:, :, 4:]
    expected = 2.0 * math.sqrt(128 / 255 / 256)
    assert abs(noise.std().item() / expected - 1) < 0.1


def test_blur_only_smooths_and_keeps_the_mean():
    cfg = nothing()
    cfg.blur1.p = 1.0
    clean = (torch.rand(4, 1, 48, 48, generator=seeded(1)) > 0.5).float()
    out = second_order(clean, cfg, seeded(0))
    assert total_variation(out) < 0.7 * total_variation(clean)
    assert (out.mean() - clean.mean()).abs() < 0.02


def test_bad_batch_names_its_shape():
    with pytest.raises(ValueError, match=r"\(2, 2, 16, 16\)"):
        second_order(torch.rand(2, 2, 16, 16), SecondOrderConfig())


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("stage", ["blur1", "blur2"])
def test_random_kernels_sum_to_one_and_are_centred(stage):
    kernel = random_blur_kernel(256, getattr(SecondOrderConfig(), stage), seeded(0))
    assert kernel.shape == (256, 21, 21)
    assert torch.allclose(kernel.sum((-2, -1)), torch.ones(256), atol=1e-5)
    assert torch.allclose(kernel, kernel.flip(-2, -1), atol=1e-6)  # every type is point-symmetric
    for top, bottom, left, right in support(kernel):
        assert top == 20 - bottom and left == 20 - right  # centred, so of odd size


def test_random_kernel_sizes_are_odd_and_in_range():
    """Wide Gaussians fill their whole square, so the nonzero support is the sampled size."""
    cfg = SecondOrderConfig().blur1
    cfg = dataclasses.replace(cfg, kernel_probs=[1, 0, 0, 0, 0, 0], sinc_p=0.0, sigma=[3.0, 3.0])
    sizes = {bottom - top + 1 for top, bottom, _, _ in support(random_blur_kernel(200, cfg, seeded(0)))}
    assert sizes == set(range(7, 22, 2))
    nine = random_blur_kernel(16, dataclasses.replace(cfg, kernel_size=[9, 9]), seeded(0))
    assert {bottom - top + 1 for top, bottom, _, _ in support(nine)} == {9}


def test_random_kernel_sigma_stays_in_range():
    cfg = dataclasses.replace(SecondOrderConfig().blur1, kernel_probs=[1, 0, 0, 0, 0, 0], sinc_p=0.0,
                              kernel_size=[21, 21], sigma=[0.8, 2.5])
    sigma = second_moment_sigma(random_blur_kernel(64, cfg, seeded(0)))
    assert (sigma > 0.8 * 0.97).all() and (sigma < 2.5 * 1.03).all(), sigma
    assert sigma.max() - sigma.min() > 1.0


def test_gaussian_kernel_has_its_sigmas_and_angle():
    kernel = gaussian_kernel(21, 2.0, 1.0, 0.0)[0]
    assert torch.isclose(second_moment_sigma(kernel[None]), torch.tensor(2.0), rtol=1e-3)
    assert torch.isclose(second_moment_sigma(kernel.T[None]), torch.tensor(1.0), rtol=1e-3)
    turned = gaussian_kernel(21, 2.0, 1.0, math.pi / 2)[0]
    assert torch.allclose(turned, kernel.T, atol=1e-6)


def test_generalized_gaussian_with_beta_1_is_the_gaussian():
    """Real-ESRGAN's generalized Gaussian is ``exp(-q^beta / 2)`` of the quadratic form q: beta = 1
    (not 2, as for ``exp(-|x|^beta)``) is the Gaussian."""
    sigma_x, sigma_y, angle = torch.tensor([0.7, 2.0]), torch.tensor([0.7, 1.2]), torch.tensor([0.0, 0.6])
    assert torch.allclose(generalized_gaussian_kernel(15, sigma_x, sigma_y, angle, 1.0),
                          gaussian_kernel(15, sigma_x, sigma_y, angle), atol=1e-7)
    flat, gauss = generalized_gaussian_kernel(15, 2.0, 2.0, 0.0, 4.0)[0], gaussian_kernel(15, 2.0, 2.0, 0.0)[0]
    assert flat[7, 8] / flat[7, 7] > gauss[7, 8] / gauss[7, 7]  # a higher beta is flatter on top
    assert flat[7, 12] / flat[7, 7] < gauss[7, 12] / gauss[7, 7]  # and falls off faster


def test_plateau_kernel_is_flat_topped():
    kernel = plateau_kernel(21, 3.0, 3.0, 0.0, 2.0)[0]
    assert torch.isclose(kernel.sum(), torch.tensor(1.0))
    assert kernel[10, 11] > 0.9 * kernel[10, 10]  # near the centre it is nearly flat
    assert kernel[10, 16] < 0.5 * kernel[10, 10]


def frequency_response(kernel: torch.Tensor, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The real frequency response of a centred point-symmetric kernel on an ``n x n`` grid, and
    each bin's radius (radians per pixel)."""
    k = kernel.shape[-1]
    padded = torch.zeros(n, n)
    padded[:k, :k] = kernel
    response = torch.fft.fft2(torch.roll(padded, (-(k // 2), -(k // 2)), (0, 1))).real
    f = torch.fft.fftfreq(n) * 2 * math.pi
    return response, torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def test_sinc_kernel_with_cutoff_pi_passes_nearly_everything():
    """A disc of radius pi fills the band but its corners: it leaves an image all but unchanged."""
    kernel = sinc_kernel(21, math.pi)[0]
    response, radius = frequency_response(kernel)
    passband = response[radius <= 0.7 * math.pi]
    assert passband.min() > 0.85 and passband.max() < 1.15
    assert response[32, 32].abs() < 0.1  # the (pi, pi) corner is outside the disc
    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    smooth = (0.5 + 0.4 * torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y))[None, None]
    assert (blur(smooth, kernel[None]) - smooth).abs().max() < 5e-3


def test_sinc_kernel_cuts_above_its_cutoff():
    response, radius = frequency_response(sinc_kernel(21, math.pi / 3)[0])
    assert response[radius <= 0.7 * math.pi / 3].min() > 0.85
    assert response[radius >= 1.3 * math.pi / 3].abs().max() < 0.15


def test_blur_fits_its_kernel_to_tiny_images():
    tiny = torch.rand(2, 3, 3, 2, generator=seeded(0))
    out = blur(tiny, gaussian_kernel(21, torch.tensor([3.0, 0.3]), 3.0, 0.0))
    assert out.shape == tiny.shape and torch.isfinite(out).all()


# --------------------------------------------------------------------------- config


def test_defaults_validate_and_survive_the_loader():
    cfg = SecondOrderConfig()
    cfg.validate()
    assert from_dict(SecondOrderConfig, to_dict(cfg)) == cfg
    partial = from_dict(SecondOrderConfig, {"blur2": {"p": 0.5}, "noise2": {"gray_p": 0.1}})
    assert partial.blur2.sigma == [0.2, 1.5] and partial.noise2.sigma == [1.0, 25.0]  # second-order defaults kept


@pytest.mark.parametrize(("key", "value"), [
    ("scale", 0),
    ("blur1.p", 1.5),
    ("blur1.sinc_p", -0.1),
    ("blur1.sigma", [3.0, 0.2]),
    ("blur2.betag", [0.0, 4.0]),
    ("blur1.kernel_size", [8, 21]),
    ("blur1.kernel_size", [1, 21]),
    ("blur2.kernel_size", [7, 23]),
    ("blur1.kernel_probs", [0.5, 0.25, 0.12, 0.03, 0.12, 0.03]),
    ("blur1.kernel_probs", [0.5, 0.5]),
    ("resize1.probs", [0.2, 0.7, 0.2]),
    ("resize2.factor", [1.1, 1.5]),
    ("resize1.factor", [0.15]),
    ("noise1.gray_p", 2.0),
    ("noise2.sigma", [25.0, 1.0]),
    ("noise1.poisson_scale", [-1.0, 3.0]),
    ("jpeg2.quality", [0.0, 95.0]),
    ("jpeg1.p", 1.01),
    ("final.sinc_p", -0.5),
    ("final.kernel_size", [7, 20]),
    ("final.resize_first_p", 3.0),
])
def test_validate_names_the_bad_key_and_value(key, value):
    cfg = SecondOrderConfig()
    *path, name = key.split(".")
    node = cfg
    for part in path:
        node = getattr(node, part)
    setattr(node, name, value)
    with pytest.raises(ConfigError, match=rf"restore\.second_order\.{key}\b.*{value!s}".replace("[", r"\[")):
        cfg.validate()


def test_restore_degrades_with_the_pipeline_when_enabled_then_holes():
    from pix2pix_unet.config import RestoreConfig
    from pix2pix_unet.data.degrade import degrade

    cfg = RestoreConfig(second_order=SecondOrderConfig(enabled=True, scale=2))
    clean = torch.rand(3, 3, 48, 48)
    a, mask = degrade(clean, cfg, torch.Generator().manual_seed(0))
    b, _ = degrade(clean, cfg, torch.Generator().manual_seed(0))
    assert mask is None and torch.equal(a, b) and a.shape == clean.shape
    assert torch.equal(a, second_order(clean, cfg.second_order, torch.Generator().manual_seed(0)))
    cfg.inpaint.p = 1.0
    holed, mask = degrade(clean, cfg, torch.Generator().manual_seed(0))
    assert mask.shape == (3, 1, 48, 48) and mask.sum() > 0
    assert torch.all(holed[mask.expand_as(holed) > 0] == 0.5)
