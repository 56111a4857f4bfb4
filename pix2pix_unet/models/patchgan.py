"""Conditional PatchGAN discriminators: each output logit judges one patch of the (input, output) pair."""

from __future__ import annotations

import torch
from torch import nn

from ..config import DiscriminatorKind, PatchGANConfig
from .blocks import conv_bias, make_norm


class NLayerPatchGAN(nn.Module):
    """The pix2pix PatchGAN: ``n_layers`` 4x4 stride-2 convs, then two stride-1 convs.

    ``n_layers=3`` gives the paper's 70x70 receptive field.

    Shape:
        - Input: ``(B, in_channels, H, W)`` (condition and image concatenated).
        - Output: a list of every block's features; the last is ``(B, 1, H', W')`` logits.
    """

    def __init__(self, in_channels: int, cfg: PatchGANConfig) -> None:
        super().__init__()
        bias = conv_bias(cfg.norm)
        width = cfg.base_channels
        blocks = [nn.Sequential(nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2))]
        for n in range(1, cfg.n_layers + 1):
            stride = 2 if n < cfg.n_layers else 1  # the last block keeps the resolution
            out = cfg.base_channels * min(2**n, 8)
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=bias),
                    make_norm(cfg.norm, out),
                    nn.LeakyReLU(0.2),
                )
            )
            width = out
        blocks.append(nn.Sequential(nn.Conv2d(width, 1, 4, stride=1, padding=1)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class PixelGAN(nn.Module):
    """The 1x1 PatchGAN: judges each pixel's colour alone (pix2pix's ``pixel`` D)."""

    def __init__(self, in_channels: int, cfg: PatchGANConfig) -> None:
        super().__init__()
        width = cfg.base_channels
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.LeakyReLU(0.2)),
                nn.Sequential(
                    nn.Conv2d(width, width * 2, 1, bias=conv_bias(cfg.norm)),
                    make_norm(cfg.norm, width * 2),
                    nn.LeakyReLU(0.2),
                ),
                nn.Sequential(nn.Conv2d(width * 2, 1, 1)),
            ]
        )

    forward = NLayerPatchGAN.forward


_KINDS = {DiscriminatorKind.NLAYER: NLayerPatchGAN, DiscriminatorKind.PIXEL: PixelGAN}


class Discriminator(nn.Module):
    """Conditional discriminator: concatenates the condition and the (real or fake) image.

    Args:
        condition_channels: channels of the generator input.
        image_channels: channels of the generator output.
        config: which PatchGAN and its width, depth and norm.

    Shape:
        - ``forward(condition, image)``: ``(B, Cc, H, W), (B, Ci, H, W)`` -> logits ``(B, 1, H', W')``.
        - ``features(condition, image)``: every block's output, the logits last.
    """

    def __init__(self, condition_channels: int, image_channels: int, config: PatchGANConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.net = _KINDS[config.kind](condition_channels + image_channels, config)

    def features(self, condition: torch.Tensor, image: torch.Tensor) -> list[torch.Tensor]:
        return self.net(torch.cat([condition, image], dim=1))

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.features(condition, image)[-1]
