"""The UNet generator: an encoder-decoder with skip connections, assembled from blocks.

Layout (``depth`` = number of 2x downsamplings)::

    stem ─► enc[1] ─► … ─► enc[n] ─► bottleneck
     │        │              │            │
     └skip    └skip          └skip        ▼
    head ◄─ dec[0] ◄─ … ◄─ dec[n-1] ◄─────┘

With ``conv_unit=none`` (pix2pix) the stem is the first 4x4 stride-2 conv and the
head the last transposed conv, so every level is a single sampling conv. With a
convolution unit (U-Net) the stem runs that unit at full resolution and the head
is a 1x1 conv. With ``residual`` the head's output is added to the input (DnCNN,
NAFNet): the net learns the correction, and starts as the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Architecture, ConfigError, ConvUnit, FinalActivation, Skip, UNetConfig
from .blocks import BOTTLENECKS, CONV_UNITS, DOWNSAMPLERS, SKIPS, UPSAMPLERS, StridedDown, apply_spectral_norm
from .generator import Generator, count_parameters, pad_to_multiple, register, resolve_export_dir


def conv_units(in_channels: int, out_channels: int, cfg: UNetConfig) -> nn.Module:
    """``cfg.units_per_level`` convolution units in a row, the first changing the channels; the identity
    for ``conv_unit=none``."""
    unit = CONV_UNITS[cfg.conv_unit]
    if unit is None:
        return nn.Identity()
    units = [unit(in_channels, out_channels, cfg)] + [unit(out_channels, out_channels, cfg)
                                                       for _ in range(cfg.units_per_level - 1)]
    return units[0] if len(units) == 1 else nn.Sequential(*units)


class EncoderLevel(nn.Module):
    """Halve the resolution, then run the convolution unit (if any)."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, innermost: bool) -> None:
        super().__init__()
        # pix2pix leaves the innermost (1x1) level un-normalised: instance norm would zero it.
        self.down = DOWNSAMPLERS[cfg.down](in_channels, out_channels, cfg, norm=not innermost)
        self.conv = conv_units(self.down.out_channels, out_channels, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.down(x))


class DecoderLevel(nn.Module):
    """Double the resolution, merge the encoder skip, then run the convolution unit (if any)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, cfg: UNetConfig, *, dropout: float,
                 skip: Skip | None = None) -> None:
        super().__init__()
        self.up = UPSAMPLERS[cfg.up](in_channels, skip_channels, cfg, dropout=dropout)
        self.skip = SKIPS[skip or cfg.skip](skip_channels, skip_channels, cfg)
        self.conv = conv_units(self.skip.out_channels, out_channels, cfg)
        self.out_channels = self.skip.out_channels if cfg.conv_unit is ConvUnit.NONE else out_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(self.skip(self.up(x), skip))


_FINAL = {FinalActivation.TANH: nn.Tanh, FinalActivation.SIGMOID: nn.Sigmoid, FinalActivation.NONE: nn.Identity}


@register(Architecture.UNET)
class UNet(Generator):
    """UNet generator for image-to-image translation.

    Args:
        config: the architecture; see :class:`~pix2pix_unet.config.UNetConfig`.

    Shape:
        - Input: ``(B, in_channels, H, W)`` for any ``H, W``: padded to a multiple of
          ``config.factor`` by reflection and cropped back.
        - Output: ``(B, out_channels, H, W)``.

    Examples:
        >>> net = UNet(UNetConfig(depth=3, base_channels=8))
        >>> net(torch.randn(2, 3, 30, 45)).shape
        torch.Size([2, 3, 30, 45])
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = cfg = config
        pix2pix_style = cfg.conv_unit is ConvUnit.NONE
        # One width per stored feature level, doubling and capped.
        num_levels = cfg.depth if pix2pix_style else cfg.depth + 1
        widths = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(num_levels)]

        if pix2pix_style:
            self.stem: nn.Module = StridedDown(cfg.in_channels, widths[0], cfg, act=False, norm=False)
        else:
            self.stem = conv_units(cfg.in_channels, widths[0], cfg)
        self.encoder = nn.ModuleList(
            EncoderLevel(widths[i - 1], widths[i], cfg, innermost=i == num_levels - 1) for i in range(1, num_levels)
        )
        self.bottleneck = BOTTLENECKS[cfg.bottleneck](widths[-1], cfg)

        decoder = []
        channels = widths[-1]
        for k, i in enumerate(range(num_levels - 1, 0, -1)):  # k = 0 is the innermost level
            dropout = cfg.dropout if 1 <= k <= cfg.dropout_levels else 0.0
            top = i == 1  # the level whose skip is the full-resolution (pix2pix: half-resolution) stem
            level = DecoderLevel(channels, widths[i - 1], widths[i - 1], cfg, dropout=dropout,
                                 skip=Skip.NONE if top and not cfg.top_skip else None)
            decoder.append(level)
            channels = level.out_channels
        self.decoder = nn.ModuleList(decoder)

        if pix2pix_style:
            head = [nn.ReLU(), nn.ConvTranspose2d(channels, cfg.out_channels, 4, stride=2, padding=1)]
        else:
            head = [nn.Conv2d(channels, cfg.out_channels, 1)]
        self.head = nn.Sequential(*head, _FINAL[cfg.final_activation]())
        if cfg.residual:  # the net starts as the identity and learns the correction
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)
        if cfg.spectral_norm:
            apply_spectral_norm(self)

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The padded input, the stem's output and every encoder level's, finest first (the skips)."""
        self.check_input(x)
        x = pad_to_multiple(x, self.config.factor)
        features = [x, self.stem(x)]
        for level in self.encoder:
            features.append(level(features[-1]))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        # 1. pad to a multiple of the downsampling factor           (b, c, H', W')
        h, w = x.shape[-2:]
        inputs = x
        x = pad_to_multiple(x, self.config.factor)
        # 2. encode, keeping every level for the skips              (b, c_i, H'/2^i, W'/2^i)
        skips = [self.stem(x)]
        for level in self.encoder:
            skips.append(level(skips[-1]))
        # 3. bottleneck on the deepest level                        (b, c_n, H'/2^n, W'/2^n)
        x = self.bottleneck(skips.pop())
        # 4. decode, merging the skip of each level on the way up
        for level in self.decoder:
            x = level(x, skips.pop())
        # 5. head to the output channels, crop the padding away     (b, out, H, W)
        out = self.head(x)[..., :h, :w]
        # 6. residual: the head predicts a correction to the input (extra input channels, such as a mask, excluded)
        return out + inputs[:, : self.config.out_channels] if self.config.residual else out


__all__ = ["UNet", "pad_to_multiple", "count_parameters", "resolve_export_dir", "ConfigError"]
