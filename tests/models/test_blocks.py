"""The UNet's building blocks one by one: shapes, the property each block exists for, registries."""

import pytest
import torch
from torch import nn

from pix2pix_unet.config import Activation, Architecture, Bottleneck, ConfigError, ConvUnit, Down, Norm, Skip, UNetConfig
from pix2pix_unet.models import UNet
from pix2pix_unet.models.blocks import (
    ASPP, BOTTLENECKS, CONV_UNITS, DOWNSAMPLERS, SKIPS, BlurPoolDown, NoSkip, AttentionSkip, DoubleConv, ResidualUnit, SeparableConv2d,
    apply_spectral_norm, make_norm,
)

CFG = UNetConfig(depth=3, base_channels=8, max_channels=32)


def test_every_enum_value_has_a_block():
    assert set(CONV_UNITS) == set(ConvUnit) and set(SKIPS) == set(Skip) and set(BOTTLENECKS) == set(Bottleneck)
    assert set(DOWNSAMPLERS) == set(Down)


def test_blur_pool_halves_and_is_steadier_under_a_one_pixel_shift_than_max_pool():
    down = BlurPoolDown(4, 8, CFG)
    assert down.out_channels == 4 and down(torch.randn(2, 4, 32, 32)).shape == (2, 4, 16, 16)
    # a fine stripe pattern: 2x2 max pooling's output flips with a one-pixel shift, the blurred one much less
    x = torch.zeros(1, 1, 32, 32)
    x[..., ::3, :] = 1.0
    shifted = torch.roll(x, 1, dims=-2)

    def change(pool):
        return (pool(x) - pool(shifted)).abs().mean().item()

    assert change(BlurPoolDown(1, 1, CFG)) < 0.5 * change(nn.MaxPool2d(2))


def test_no_top_skip_drops_only_the_full_resolution_skip():
    net = UNet(UNetConfig(depth=3, base_channels=8, max_channels=32, conv_unit=ConvUnit.DOUBLE, down=Down.BLURPOOL,
                          top_skip=False))
    kinds = [type(level.skip) for level in net.decoder]
    assert kinds[-1] is NoSkip and NoSkip not in kinds[:-1]
    assert net(torch.randn(1, 3, 27, 35)).shape == (1, 3, 27, 35)


def test_skip_none_and_top_skip_outside_unet_are_errors():
    with pytest.raises(ConfigError, match="skip=none"):
        UNetConfig(skip=Skip.NONE).validate()
    with pytest.raises(ConfigError, match="top_skip=false"):
        UNetConfig(architecture=Architecture.UNETPP, conv_unit=ConvUnit.DOUBLE, top_skip=False).validate()


@pytest.mark.parametrize("unit", [u for u in ConvUnit if u is not ConvUnit.NONE])
def test_conv_units_keep_the_resolution_of_odd_inputs(unit):
    block = CONV_UNITS[unit](5, 12, CFG)
    assert block(torch.randn(2, 5, 13, 7)).shape == (2, 12, 13, 7)


def test_residual_shortcut_is_identity_or_projection():
    cfg = UNetConfig(norm=Norm.NONE, activation=Activation.RELU)
    same, wider = ResidualUnit(8, 8, cfg), ResidualUnit(8, 16, cfg)
    assert isinstance(same.shortcut, nn.Identity)
    assert isinstance(wider.shortcut[0], nn.Conv2d) and wider.shortcut[0].kernel_size == (1, 1)
    # with the residual branch silenced the unit passes its input through: act(0 + x)
    nn.init.zeros_(same.body[-2].weight)
    nn.init.zeros_(same.body[-2].bias)
    x = torch.randn(2, 8, 9, 9)
    assert torch.equal(same(x), torch.relu(x))


def test_separable_unit_is_depthwise_then_pointwise_and_cheaper():
    conv = SeparableConv2d(16, 32, bias=False)
    depthwise, pointwise = conv
    assert depthwise.groups == 16 and depthwise.kernel_size == (3, 3) and pointwise.kernel_size == (1, 1)
    n_sep = sum(p.numel() for p in CONV_UNITS[ConvUnit.SEPARABLE](16, 32, CFG).parameters())
    n_full = sum(p.numel() for p in DoubleConv(16, 32, CFG).parameters())
    assert n_sep < n_full / 4


def test_dilated_unit_uses_the_configured_rate():
    cfg = UNetConfig(dilation=3)
    convs = [m for m in CONV_UNITS[ConvUnit.DILATED](4, 4, cfg).modules() if isinstance(m, nn.Conv2d)]
    assert [c.dilation for c in convs] == [(3, 3), (3, 3)] and [c.padding for c in convs] == [(3, 3), (3, 3)]
    # receptive field of two dilated 3x3 convs: 2 * 2 * rate + 1 = 13 px
    x = torch.zeros(1, 4, 31, 31, requires_grad=True)
    CONV_UNITS[ConvUnit.DILATED](4, 4, UNetConfig(dilation=3, norm=Norm.NONE)).eval()(x)[0, :, 15, 15].sum().backward()
    rows = x.grad[0].abs().sum((0, 2)).nonzero()
    assert rows.max() - rows.min() + 1 == 13


def test_attention_gate_shape_and_range():
    gate = AttentionSkip(16, 8, CFG)
    x, skip = torch.randn(3, 16, 11, 7) * 10, torch.randn(3, 8, 11, 7) * 10  # large: push the sigmoid to its ends
    alpha = gate.gate(x, skip)
    assert alpha.shape == (3, 1, 11, 7)
    assert alpha.min() >= 0 and alpha.max() <= 1 and alpha.std() > 0
    out = gate(x, skip)
    assert out.shape == (3, 24, 11, 7) and gate.out_channels == 24
    assert torch.equal(out[:, :16], x) and torch.allclose(out[:, 16:], skip * alpha)


def test_attention_gate_can_close_the_skip():
    gate = AttentionSkip(4, 4, CFG)
    nn.init.zeros_(gate.psi.weight)
    nn.init.constant_(gate.psi.bias, -30.0)  # sigmoid(-30) ~ 1e-13
    out = gate(torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5))
    assert out[:, 4:].abs().max() < 1e-10


def test_aspp_branches_follow_the_rates():
    cfg = UNetConfig(aspp_rates=[1, 2, 5])
    aspp = ASPP(32, cfg)
    assert aspp.num_branches == 4  # three atrous branches + image pooling
    first_convs = [branch[0] for branch in aspp.branches]
    assert [c.kernel_size for c in first_convs] == [(1, 1), (3, 3), (3, 3)]
    assert [c.dilation for c in first_convs] == [(1, 1), (2, 2), (5, 5)]
    assert aspp.project[0].in_channels == 4 * 8  # each branch has channels // 4
    assert aspp(torch.randn(2, 32, 9, 6)).shape == (2, 32, 9, 6)


def test_aspp_image_branch_works_for_one_image():
    aspp = ASPP(16, UNetConfig(norm=Norm.BATCH)).train()
    assert aspp(torch.randn(1, 16, 4, 4)).shape == (1, 16, 4, 4)  # no batch norm on the 1x1 pooled map


def test_spectral_norm_bounds_every_conv():
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1))
    nn.init.normal_(net[0].weight, std=3.0)
    apply_spectral_norm(net)
    assert all(hasattr(m, "parametrizations") for m in net)
    for _ in range(30):  # one power iteration per training forward
        net(torch.randn(1, 3, 8, 8))
    sigma = torch.linalg.matrix_norm(net[0].weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=1e-3)


def test_group_norm_accepts_channels_the_group_count_does_not_divide():
    norm = make_norm(Norm.GROUP, 12, groups=8)
    assert norm.num_groups == 4 and norm(torch.randn(2, 12, 3, 3)).shape == (2, 12, 3, 3)
