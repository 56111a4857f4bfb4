"""UNet 3+'s full-scale skips: every decoder level gathers depth + 1 scales of fullscale_channels each."""

import torch

from pix2pix_unet.config import Architecture, ConvUnit, Down, UNetConfig
from pix2pix_unet.models import UNet3Plus


def test_every_decoder_level_gathers_every_scale():
    cfg = UNetConfig(architecture=Architecture.UNET3P, depth=3, base_channels=4, max_channels=64,
                     conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL, dropout=0.0, fullscale_channels=5,
                     deep_supervision=True)
    net = UNet3Plus(cfg)
    for k, level in enumerate(net.decoder):  # X_d^2, X_d^1, X_d^0
        i = cfg.depth - 1 - k
        assert len(level.from_encoder) == i + 1 and len(level.from_decoder) == cfg.depth - i
        assert level.out_channels == 5 * (cfg.depth + 1)
    features = net.decode(torch.randn(1, 3, 32, 32))
    # coarsest first: the bottom X_d^3 (32 channels), then X_d^2 .. X_d^0 (4 scales x 5 channels)
    assert [tuple(f.shape) for f in features] == [(1, 32, 4, 4), (1, 20, 8, 8), (1, 20, 16, 16), (1, 20, 32, 32)]
    assert net.head_scales == [8, 4, 2, 1]
