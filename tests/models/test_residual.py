"""The residual generator (output = input + G(input)) and NAFNet's block."""

import dataclasses

import pytest
import torch

from pix2pix_unet.config import GENERATOR_PRESETS, ConfigError, ConvUnit, Norm, UNetConfig
from pix2pix_unet.models import UNet
from pix2pix_unet.models.blocks import LayerNorm2d, NAFBlock, SimpleGate

TINY_NAF = dataclasses.replace(GENERATOR_PRESETS["nafnet"], depth=2, base_channels=8, max_channels=16)


@pytest.mark.parametrize("cfg", [TINY_NAF, UNetConfig(depth=3, base_channels=8, max_channels=32)],
                         ids=["nafnet", "pix2pix"])
def test_residual_generator_starts_as_the_identity_and_adds_its_head(cfg):
    net = UNet(dataclasses.replace(cfg, in_channels=4, out_channels=3, residual=True)).eval()
    x = torch.randn(2, 4, 29, 37)  # 3 image channels + a hole mask, which is not added
    assert torch.equal(net(x), x[:, :3])  # the zero-initialised head
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    plain = UNet(dataclasses.replace(net.config, residual=False)).eval()
    plain.load_state_dict(net.state_dict())
    torch.testing.assert_close(net(x), x[:, :3] + plain(x))


def test_residual_needs_at_least_as_many_inputs_as_outputs():
    with pytest.raises(ConfigError, match="in_channels=1 must be at least out_channels=3"):
        UNetConfig(in_channels=1, out_channels=3, residual=True).validate()


@pytest.mark.slow
def test_residual_generator_learns_away_from_the_identity():
    net = UNet(dataclasses.replace(TINY_NAF, residual=True))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    target = x.flip(-1)
    first = (net(x) - target).abs().mean().item()
    for _ in range(30):
        loss = (net(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first


def test_layer_norm_normalises_each_pixel_over_channels():
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    y = LayerNorm2d(6)(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 5, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(2, 5, 7), atol=1e-3, rtol=0)
    crop = LayerNorm2d(6)(x[..., :2, :3])  # per pixel: a crop is normalised as in the whole image
    torch.testing.assert_close(crop, y[..., :2, :3])


def test_simple_gate_multiplies_the_two_halves():
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(SimpleGate()(x), x[:, :4] * x[:, 4:])


def test_naf_block_is_the_identity_until_its_scales_move_and_projects_channels():
    cfg = UNetConfig(conv_unit=ConvUnit.NAF, norm=Norm.LAYER)
    block = NAFBlock(8, 8, cfg)
    x = torch.randn(2, 8, 11, 13)
    assert torch.equal(block(x), x)
    wider = NAFBlock(5, 8, cfg)
    assert wider(torch.randn(2, 5, 11, 13)).shape == (2, 8, 11, 13)
