import pytest
import torch

from pix2pix_unet import from_pretrained
from pix2pix_unet.config import GENERATOR_PRESETS, ConvUnit, Down, Norm, UNetConfig, Up
from pix2pix_unet.models import UNet, count_parameters, pad_to_multiple

TINY = dict(depth=3, base_channels=8, max_channels=32)


@pytest.mark.parametrize("size", [(32, 32), (31, 45), (1, 1), (17, 64), (100, 3)])
@pytest.mark.parametrize("style", ["pix2pix", "unet"])
def test_any_size_round_trips(size, style):
    extra = {} if style == "pix2pix" else dict(conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL)
    net = UNet(UNetConfig(in_channels=2, out_channels=5, **TINY, **extra)).eval()
    out = net(torch.randn(2, 2, *size))
    assert out.shape == (2, 5, *size)


@pytest.mark.parametrize(
    "cfg",
    [
        UNetConfig(**TINY),
        UNetConfig(**TINY, norm=Norm.INSTANCE, up=Up.BILINEAR),
        UNetConfig(**TINY, norm=Norm.GROUP, norm_groups=4, conv_unit=ConvUnit.DOUBLE, down=Down.AVGPOOL, up=Up.NEAREST),
        UNetConfig(**TINY, norm=Norm.NONE, conv_unit=ConvUnit.DOUBLE, down=Down.STRIDED),
    ],
    ids=["pix2pix", "instance-bilinear", "group-double-avgpool-nearest", "none-double-strided"],
)
def test_gradients_reach_every_parameter(cfg):
    net = UNet(cfg).train()
    net(torch.randn(2, 3, 32, 32)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_pix2pix_preset_matches_paper():
    net = UNet(GENERATOR_PRESETS["pix2pix"])
    # The reference "unet_256" with BatchNorm: 54.414 M parameters.
    assert count_parameters(net) == 54_413_955
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 3
    assert net.config.factor == 256


def test_small_default_size():
    assert count_parameters(UNet(GENERATOR_PRESETS["small"])) == 7_314_755


def test_dropout_only_in_inner_decoder_levels():
    net = UNet(UNetConfig(depth=6, base_channels=8, dropout=0.5, dropout_levels=2))
    has_dropout = [any(isinstance(m, torch.nn.Dropout) for m in level.modules()) for level in net.decoder]
    assert has_dropout == [False, True, True, False, False]


def test_wrong_channels_named():
    net = UNet(UNetConfig(**TINY))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(1, 4, 32, 32\)"):
        net(torch.randn(1, 4, 32, 32))


def test_pad_to_multiple():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    y = pad_to_multiple(x, 4)
    assert y.shape == (1, 1, 4, 4) and torch.equal(y[..., :3, :4], x)
    assert pad_to_multiple(torch.zeros(1, 1, 1, 1), 8).shape == (1, 1, 8, 8)  # too small to reflect


def test_save_and_from_pretrained(tmp_path):
    net = UNet(UNetConfig(**TINY, final_activation="sigmoid")).eval()
    net.save_pretrained(tmp_path / "g", step=3)
    loaded = from_pretrained(str(tmp_path / "g"))
    assert loaded.config == net.config and loaded.metadata["step"] == 3
    x = torch.randn(1, 3, 20, 20)
    assert torch.equal(loaded(x), net(x))


def test_from_pretrained_missing_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        UNet.from_pretrained(tmp_path)


def test_encoder_features_are_the_skips_finest_first():
    net = UNet(UNetConfig(depth=3, base_channels=8, max_channels=32, conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL))
    features = net.encoder_features(torch.randn(2, 3, 30, 45))  # padded to 32 x 48
    assert [tuple(f.shape) for f in features] == [(2, 3, 32, 48), (2, 8, 32, 48), (2, 16, 16, 24), (2, 32, 8, 12),
                                                  (2, 32, 4, 6)]
