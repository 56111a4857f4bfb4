"""Overlap-tile inference: equals whole-image inference where it can, and leaves no seam where it cannot."""

from __future__ import annotations

import pytest
import torch

from pix2pix_unet.config import BlendWindow, ConfigError, UNetConfig, from_dict
from pix2pix_unet.models import UNet
from pix2pix_unet.runtime.tiling import plan_tiles, predict_tiled, tile_window, window_1d


def eval_unet(**overrides) -> UNet:
    torch.manual_seed(0)
    net = UNet(from_dict(UNetConfig, {"depth": 3, "base_channels": 8, "max_channels": 32, **overrides}))
    for module in net.modules():  # running statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize(
    "overrides",
    [
        {"norm": "batch"},  # pix2pix blocks, batch norm in eval mode
        {"norm": "none", "conv_unit": "double", "down": "maxpool", "depth": 2, "dropout": 0.0},  # U-Net blocks
    ],
)
def test_tiled_equals_whole_image(overrides):
    """A 150x190 image (not a multiple of 8) fits whole and in 64-px tiles; the outputs agree."""
    net = eval_unet(**overrides)
    image = torch.rand(3, 150, 190) * 2 - 1
    with torch.no_grad():
        whole = net(image[None])[0]
    tiled = predict_tiled(net, image, tile=96, overlap=64, factor=net.config.factor, batch_size=5)
    plan = plan_tiles(152, 192, 96, 64, net.config.factor)
    assert len(plan) > 4  # really tiled, on both axes
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-5), (tiled - whole).abs().max()


def test_windows_sum_to_one_where_tiles_overlap():
    plan = plan_tiles(160, 224, 64, 32, 8)
    total = torch.zeros(160, 224)
    for y, x in plan.origins():
        total[y: y + 64, x: x + 64] += tile_window(plan, y, x, 64 - plan.step, BlendWindow.LINEAR)
    assert torch.allclose(total, torch.ones_like(total))


def test_windows_fall_off_only_towards_neighbours():
    inner = window_1d(64, 32, before=True, after=True, kind=BlendWindow.LINEAR)
    assert inner[:8].eq(0).all() and inner[-8:].eq(0).all()  # a quarter of the overlap is context only
    assert inner[32] == 1
    border = window_1d(64, 32, before=False, after=True, kind=BlendWindow.GAUSSIAN)
    assert border[:32].eq(1).all() and 0 < border[-1] < 0.02 and (border.diff() <= 0).all()


def seam_strength(out: torch.Tensor, radius: int = 8) -> float:
    """The largest ratio of one column's horizontal gradient to the median of its neighbours' within ``radius``.

    A seam is a jump at one column, so it stands out from its neighbourhood; a
    smooth cross-fade does not.
    """
    dx = (out[..., 1:] - out[..., :-1]).abs().mean(dim=(0, 1))  # one value per column boundary
    ratios = []
    for c in range(len(dx)):
        around = torch.cat([dx[max(0, c - radius): c], dx[c + 1: c + 1 + radius]])
        ratios.append(float(dx[c] / around.median()))
    return max(ratios)


@pytest.mark.parametrize("window", list(BlendWindow))
def test_no_seam_where_tiles_disagree(window):
    """Per-tile statistics (what instance norm uses) make tiles disagree; blending hides the cut.

    The stand-in generator subtracts each tile's mean, so 64-px tiles of a ramp
    disagree by about 0.5 (a quarter of the output range); stitched without
    overlap they jump by that much, blended they must not.
    """
    def per_tile_mean_removed(batch: torch.Tensor) -> torch.Tensor:
        return batch - batch.mean(dim=(2, 3), keepdim=True)

    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 256), indexing="ij")
    image = torch.stack([xx, torch.sin(3 * xx) * yy])  # smooth, with a trend across the tiles
    assert seam_strength(per_tile_mean_removed(image[None])[0]) < 1.2  # the whole image: no seam
    hard = predict_tiled(per_tile_mean_removed, image, tile=64, overlap=0, factor=8)
    assert seam_strength(hard) > 20  # the check sees a seam when there is one

    blended = predict_tiled(per_tile_mean_removed, image, tile=64, overlap=32, factor=8, window=window)
    assert seam_strength(blended) < 2.0


def test_tile_size_must_fit_the_generator():
    with pytest.raises(ConfigError, match="tile=100 must be a multiple .* 64"):
        plan_tiles(512, 512, 100, 32, 64)
    with pytest.raises(ConfigError, match="overlap=100 is too large for tile=128"):
        plan_tiles(512, 512, 128, 100, 64)
    plan = plan_tiles(512, 512, 256, 100, 64)  # the step 156 is rounded down to 128
    assert plan.step == 128 and plan.ys == [0, 128, 256]
