"""UNet++ and UNet 3+ (the generators with output heads): odd sizes, gradients everywhere, deep-supervision
heads at full size, last/mean outputs, residual start, config errors, save/reload and ONNX parity."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pix2pix_unet import from_pretrained
from pix2pix_unet.config import (
    GENERATOR_PRESETS, Architecture, Bottleneck, ConfigError, ConvUnit, DeepOutput, Down, FinalActivation, Norm,
    Skip, UNetConfig, Up,
)
from pix2pix_unet.models import GeneratorOutputs, UNet3Plus, UNetPlusPlus, build_generator
from tests.models.test_unet_variants import assert_gradients_everywhere

MULTIHEAD = {"unet++": UNetPlusPlus, "unet3+": UNet3Plus}


def tiny(name: str, **changes) -> UNetConfig:
    """The preset's blocks at a test size: 3 levels, 8 -> 32 channels, 8 channels per full-scale skip."""
    return dataclasses.replace(GENERATOR_PRESETS[name], **{"depth": 3, "base_channels": 8, "max_channels": 32,
                                                           "fullscale_channels": 8, **changes})


@pytest.mark.parametrize("name", MULTIHEAD)
def test_the_preset_builds_its_class(name):
    assert type(build_generator(tiny(name))) is MULTIHEAD[name]


@pytest.mark.slow
@pytest.mark.parametrize("deep", [False, True], ids=["one-head", "deep"])
@pytest.mark.parametrize("name", MULTIHEAD)
def test_odd_sizes_and_gradients_reach_every_parameter(name, deep):
    net = build_generator(tiny(name, in_channels=2, out_channels=5, deep_supervision=deep,
                               deep_output=DeepOutput.MEAN if deep else DeepOutput.LAST)).train()
    x = torch.randn(2, 2, 29, 43)
    assert net(x).shape == (2, 5, 29, 43)
    assert_gradients_everywhere(net, x)  # with deep=True through the mean of the heads


@pytest.mark.parametrize("name, heads", [("unet++", 3), ("unet3+", 4)])
def test_deep_supervision_heads_give_full_size_outputs(name, heads):
    net = build_generator(tiny(name, out_channels=4, deep_supervision=True)).eval()
    assert net.config.num_heads == heads == len(net.heads)
    x = torch.randn(2, 3, 21, 34)
    with torch.no_grad():
        out = net(x, deep=True)
    assert isinstance(out, GeneratorOutputs) and len(out.heads) == heads
    assert all(h.shape == (2, 4, 21, 34) for h in out.heads)
    assert torch.equal(out.output, out.heads[-1]) and torch.equal(net(x), out.output)  # deep_output=last
    assert not any(torch.equal(out.heads[0], h) for h in out.heads[1:])  # each head its own output
    mean = dataclasses.replace(net.config, deep_output=DeepOutput.MEAN)
    net_mean = build_generator(mean).eval()
    net_mean.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.allclose(net_mean(x), torch.stack(out.heads).mean(0), atol=1e-6)


@pytest.mark.parametrize("name", MULTIHEAD)
def test_each_head_gets_gradients_from_its_own_loss(name):
    net = build_generator(tiny(name, deep_supervision=True)).train()
    heads = net(torch.randn(2, 3, 24, 24), deep=True).heads
    heads[0].square().mean().backward()
    assert net.heads[0].weight.grad is not None and all(h.weight.grad is None for h in net.heads[1:])


@pytest.mark.parametrize("name", MULTIHEAD)
def test_residual_starts_as_the_identity(name):
    net = build_generator(tiny(name, in_channels=4, residual=True, final_activation=FinalActivation.NONE,
                               deep_supervision=True, deep_output=DeepOutput.MEAN)).eval()
    x = torch.randn(1, 4, 19, 26)
    with torch.no_grad():
        assert torch.equal(net(x), x[:, :3])


@pytest.mark.parametrize("name", MULTIHEAD)
def test_block_variants_compose(name):
    net = build_generator(tiny(name, conv_unit=ConvUnit.RESIDUAL, down=Down.STRIDED, up=Up.BILINEAR,
                               norm=Norm.GROUP, norm_groups=4, bottleneck=Bottleneck.ASPP, spectral_norm=True,
                               dropout=0.3, dropout_levels=1)).train()
    x = torch.randn(2, 3, 17, 30)
    assert net(x).shape == (2, 3, 17, 30)
    assert any("parametrizations" in n for n, _ in net.named_parameters())


@pytest.mark.parametrize("name", MULTIHEAD)
def test_save_and_reload_give_the_same_output(name, tmp_path):
    torch.manual_seed(0)
    net = build_generator(tiny(name, deep_supervision=True, deep_output=DeepOutput.MEAN))
    net.train()(torch.randn(2, 3, 32, 32))  # move the batch-norm statistics off their start
    net.eval().save_pretrained(tmp_path / "g")
    loaded = from_pretrained(tmp_path / "g")
    assert type(loaded) is type(net) and loaded.config == net.config
    x = torch.randn(1, 3, 23, 37)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", MULTIHEAD)
def test_onnx_export_matches_pytorch(name, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from pix2pix_unet.export import export_onnx, onnx_max_difference
    from pix2pix_unet.tasks import task_from_export

    torch.manual_seed(0)
    # two levels keep the trace short; every head is in the graph through their mean
    net = build_generator(tiny(name, depth=2, out_channels=2, deep_supervision=True,
                               deep_output=DeepOutput.MEAN)).eval()
    net.save_pretrained(tmp_path / "g", task="translate", direction="AtoB")
    loaded = from_pretrained(tmp_path / "g")
    path = export_onnx(loaded, task_from_export(loaded.metadata, tmp_path / "g"), tmp_path / "g.onnx")
    assert onnx_max_difference(loaded, path) < 1e-4  # a batch of 2 at a size other than the traced one


CONFIG_ERRORS = {
    "conv_unit=none": (dict(conv_unit=ConvUnit.NONE, down=Down.STRIDED), "conv_unit=none"),
    "attention skips": (dict(skip=Skip.ATTENTION), "skip=attention"),
    "mean without heads": (dict(deep_output=DeepOutput.MEAN), "deep_output=mean"),
    "fullscale 0": (dict(fullscale_channels=0), "fullscale_channels=0"),
}


@pytest.mark.parametrize("name", MULTIHEAD)
@pytest.mark.parametrize("changes, message", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_impossible_options_are_named(name, changes, message):
    with pytest.raises(ConfigError, match=message):
        build_generator(tiny(name, **changes))


def test_deep_supervision_needs_a_generator_with_heads():
    with pytest.raises(ConfigError, match="deep_supervision=true needs .*architecture=unet\\+\\+ or unet3\\+"):
        UNetConfig(architecture=Architecture.UNET, deep_supervision=True).validate()


def test_wrong_input_channels_are_named():
    with pytest.raises(ValueError, match=r"UNetPlusPlus expects \(B, 3, H, W\) input, got shape \(1, 2, 16, 16\)"):
        build_generator(tiny("unet++"))(torch.randn(1, 2, 16, 16))


@pytest.mark.slow
@pytest.mark.parametrize("name", MULTIHEAD)
def test_the_transformer_bottleneck_runs_at_the_deepest_node(name):
    net = build_generator(tiny(name, bottleneck=Bottleneck.TRANSFORMER, deep_supervision=True,
                               deep_output=DeepOutput.MEAN)).train()
    assert type(net.bottleneck).__name__ == "TransformerBottleneck"
    x = torch.randn(2, 3, 21, 27)
    assert net(x).shape == (2, 3, 21, 27)
    assert_gradients_everywhere(net, x)
