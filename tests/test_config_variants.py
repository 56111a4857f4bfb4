"""Config keys of the architecture variants: parsing, presets, and impossible combinations named."""

import pytest

from pix2pix_unet.config import (
    GENERATOR_PRESETS, Bottleneck, ConfigError, ConvUnit, GanLoss, Skip, from_dict, load_config, save_config,
    UNetConfig,
)


def test_variant_keys_parse_and_round_trip(tmp_path):
    cfg = load_config(None, [
        "generator.preset=aspp-unet", "generator.aspp_rates=[1, 2, 4]", "generator.skip=attention",
        "generator.spectral_norm=true", "discriminator.num_scales=2", "discriminator.spectral_norm=true",
        "discriminator.norm=instance", "loss.gan=wgan-gp", "loss.gp_weight=5", "loss.fm_weight=10",
        "optim.d_steps_per_g=3", "optim.lr_d=0.0004",
    ])
    assert cfg.generator.bottleneck is Bottleneck.ASPP and cfg.generator.aspp_rates == [1, 2, 4]
    assert cfg.generator.skip is Skip.ATTENTION and cfg.loss.gan is GanLoss.WGAN_GP and cfg.loss.gp_weight == 5.0
    save_config(cfg, tmp_path / "config.yaml", version="x")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_presets_do_not_share_lists():
    a = from_dict(UNetConfig, {"preset": "aspp-unet"})
    a.aspp_rates.append(99)
    assert GENERATOR_PRESETS["aspp-unet"].aspp_rates == [1, 3, 6, 9]


def test_presets_are_what_they_say():
    p = GENERATOR_PRESETS
    assert p["attention-unet"].skip is Skip.ATTENTION and p["res-unet"].conv_unit is ConvUnit.RESIDUAL
    assert p["lite"].conv_unit is ConvUnit.SEPARABLE and p["aspp-unet"].bottleneck is Bottleneck.ASPP


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["generator.aspp_rates=[]"], r"generator.aspp_rates=\[\]"),
        (["generator.aspp_rates=[1, 0]"], r"generator.aspp_rates=\[1, 0\]"),
        (["generator.aspp_rates=3"], "generator.aspp_rates=3"),
        (["generator.dilation=0"], "generator.dilation=0"),
        (["generator.skip=gated"], "generator.skip='gated'"),
        (["discriminator.num_scales=0"], "discriminator.num_scales=0"),
        (["loss.fm_weight=-1"], "loss.fm_weight=-1"),
        (["loss.gan=wgan"], "loss.gan='wgan'"),
        (["optim.d_steps_per_g=0"], "optim.d_steps_per_g=0"),
        (["loss.gan=wgan-gp"], "discriminator.norm=batch"),  # the default D norm
        (["optim.d_steps_per_g=2", "grad_accum=2"], "grad_accum=2"),
        (["segment.deep_weights=[-1.0, 2.0]"], r"segment.deep_weights=\[-1.0, 2.0\] must be a list of weights >= 0"),
        (["segment.deep_weights=[1.0]"], "generator.deep_supervision=false"),
        (["generator.deep_supervision=true"], "needs a generator with extra output heads"),  # architecture=unet
        (["generator.preset=unet3+", "generator.prune_to=2"], "prune_to=2 picks a trained UNet\\+\\+ head"),
    ],
)
def test_bad_variant_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
