"""Generator presets and block combinations: odd sizes, gradients everywhere, pinned sizes, export."""

import dataclasses

import pytest
import torch

from pix2pix_unet import from_pretrained
from pix2pix_unet.config import GENERATOR_PRESETS, Activation, Bottleneck, ConvUnit, Down, Norm, Skip, UNetConfig, Up
from pix2pix_unet.models import UNet, build_generator, count_parameters

# Full-size parameter counts (the table in docs/variants.md comes from benchmarks/model_table.py).
PRESET_PARAMETERS = {
    "pix2pix": 54_413_955,
    "small": 7_314_755,
    "unet": 39_394_563,
    "attention-unet": 39_743_687,
    "res-unet": 40_793_283,
    "lite": 2_299_406,
    "aspp-unet": 48_311_811,
    "nafnet": 1_579_939,
    "res-unet-lite": 1_964_995,
    "spade": 1_383_075,  # SPADEGenerator (3 input channels here; one per class in use)
    "spade-256": 45_223_235,
    "unet++": 11_799_235,
    "unet3+": 26_963_331,  # the paper's 26.97 M
    "trans-unet": 8_908_931,
    "resnet34-unet": 25_222_931,
    "vgg11-unet": 18_551_587,
}


SLOW = {"vgg11-unet", "naf-3-units-avgpool-attention-layer"}  # over 2 s each on a 2-core CPU


def marked(cases: dict) -> list:
    """``cases`` as parameters named by their keys, those in :data:`SLOW` marked slow."""
    return [pytest.param(value, id=key, marks=[pytest.mark.slow] if key in SLOW else []) for key, value in cases.items()]


def tiny(cfg: UNetConfig, **changes) -> UNetConfig:
    """The same blocks at a test size: 3 levels, 8 -> 32 channels."""
    return dataclasses.replace(cfg, depth=3, base_channels=8, max_channels=32, **changes)


def assert_gradients_everywhere(net: torch.nn.Module, x: torch.Tensor) -> None:
    # zero-initialised layer scales (NAFNet's beta, gamma; the last BN of timm's residual blocks) pass no
    # gradient at step 0 only
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma", "bn2.weight", "bn3.weight")) and not p.any():
                p.fill_(0.1)
    net(x).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_every_preset_is_pinned():
    assert set(PRESET_PARAMETERS) == set(GENERATOR_PRESETS)


@pytest.mark.parametrize("name", list(GENERATOR_PRESETS))
def test_preset_parameter_count(name):
    assert count_parameters(build_generator(GENERATOR_PRESETS[name])) == PRESET_PARAMETERS[name]


@pytest.mark.parametrize("name", marked({name: name for name in GENERATOR_PRESETS}))
def test_preset_blocks_on_odd_sizes_with_gradients_everywhere(name):
    net = build_generator(tiny(GENERATOR_PRESETS[name], in_channels=2, out_channels=5)).train()
    x = torch.randn(2, 2, 29, 43)
    assert net(x).shape == (2, 5, 29, 43)
    assert_gradients_everywhere(net, x)


COMBINATIONS = {
    "residual-avgpool-bilinear-attention-aspp-group": dict(
        conv_unit=ConvUnit.RESIDUAL, down=Down.AVGPOOL, up=Up.BILINEAR, skip=Skip.ATTENTION,
        bottleneck=Bottleneck.ASPP, norm=Norm.GROUP, norm_groups=4,
    ),
    "separable-strided-nearest-attention-instance-gelu": dict(
        conv_unit=ConvUnit.SEPARABLE, down=Down.STRIDED, up=Up.NEAREST, skip=Skip.ATTENTION, norm=Norm.INSTANCE,
        activation=Activation.GELU,
    ),
    "dilated-maxpool-transposed-aspp-nonorm-silu": dict(
        conv_unit=ConvUnit.DILATED, dilation=3, down=Down.MAXPOOL, bottleneck=Bottleneck.ASPP, aspp_rates=[1, 2],
        norm=Norm.NONE, activation=Activation.SILU,
    ),
    "pix2pix-attention-aspp-spectral": dict(skip=Skip.ATTENTION, bottleneck=Bottleneck.ASPP, spectral_norm=True),
    "residual-strided-spectral": dict(conv_unit=ConvUnit.RESIDUAL, down=Down.STRIDED, spectral_norm=True),
    "n2v2-naf-blurpool-no-top-skip": dict(  # N2V2's blind-spot UNet on NAFNet blocks
        conv_unit=ConvUnit.NAF, down=Down.BLURPOOL, up=Up.BILINEAR, top_skip=False, norm=Norm.LAYER,
    ),
    "pix2pix-no-top-skip": dict(top_skip=False),
    "naf-3-units-avgpool-attention-layer": dict(
        conv_unit=ConvUnit.NAF, units_per_level=3, down=Down.AVGPOOL, up=Up.BILINEAR, skip=Skip.ATTENTION,
        norm=Norm.LAYER,
    ),
}


@pytest.mark.parametrize("changes", marked(COMBINATIONS))
def test_block_combinations(changes):
    net = UNet(tiny(UNetConfig(), **changes)).train()
    x = torch.randn(2, 3, 21, 34)
    assert net(x).shape == (2, 3, 21, 34)
    assert_gradients_everywhere(net, x)


def test_spectral_norm_generator_round_trips(tmp_path):
    net = UNet(tiny(UNetConfig(), spectral_norm=True, skip=Skip.ATTENTION, bottleneck=Bottleneck.ASPP))
    assert any("parametrizations" in n for n, _ in net.named_parameters())
    net.train()(torch.randn(2, 3, 32, 32))  # a power iteration moves the spectral norm's u, v buffers
    net.eval().save_pretrained(tmp_path / "g")
    loaded = from_pretrained(tmp_path / "g")
    assert loaded.config == net.config
    x = torch.randn(1, 3, 19, 23)
    assert torch.equal(loaded(x), net(x))
