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

With ``dims=3`` (Çiçek et al. 2016) every block is built in 3D and the net maps ``(B, C, D, H, W)`` volumes;
each level's :class:`~pix2pix_unet.models.blocks.Grid` carries its kernel and stride per axis, from the voxel
``spacing`` (:attr:`~pix2pix_unet.config.UNetConfig.strides`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Architecture, ConfigError, ConvUnit, FinalActivation, Skip, UNetConfig
from .blocks import BOTTLENECKS, CONV_UNITS, DOWNSAMPLERS, PLANE, SKIPS, UPSAMPLERS, Grid, StridedDown, apply_spectral_norm
from .generator import Generator, count_parameters, pad_to_multiple, register, resolve_export_dir


def conv_units(in_channels: int, out_channels: int, cfg: UNetConfig, grid: Grid = PLANE) -> nn.Module:
    """``cfg.units_per_level`` convolution units in a row, the first changing the channels; the identity
    for ``conv_unit=none``."""
    unit = CONV_UNITS[cfg.conv_unit]
    if unit is None:
        return nn.Identity()
    units = [unit(in_channels, out_channels, cfg, grid=grid)] + [unit(out_channels, out_channels, cfg, grid=grid)
                                                                  for _ in range(cfg.units_per_level - 1)]
    return units[0] if len(units) == 1 else nn.Sequential(*units)


class EncoderLevel(nn.Module):
    """Halve the resolution (by ``down``'s stride), then run the convolution unit (if any) on ``conv``'s grid."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, innermost: bool,
                 down: Grid = PLANE, conv: Grid = PLANE) -> None:
        super().__init__()
        # pix2pix leaves the innermost (1x1) level un-normalised: instance norm would zero it.
        self.down = DOWNSAMPLERS[cfg.down](in_channels, out_channels, cfg, norm=not innermost, grid=down)
        self.conv = conv_units(self.down.out_channels, out_channels, cfg, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.down(x))


class DecoderLevel(nn.Module):
    """Double the resolution, merge the encoder skip, then run the convolution unit (if any)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, cfg: UNetConfig, *, dropout: float,
                 skip: Skip | None = None, grid: Grid = PLANE) -> None:
        super().__init__()
        self.up = UPSAMPLERS[cfg.up](in_channels, skip_channels, cfg, dropout=dropout, grid=grid)
        self.skip = SKIPS[skip or cfg.skip](skip_channels, skip_channels, cfg, grid=grid)
        self.conv = conv_units(self.skip.out_channels, out_channels, cfg, grid)
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
        - Input: ``(B, in_channels, H, W)`` for any ``H, W`` (``dims=3``: ``(B, in_channels, D, H, W)``): padded
          to a multiple of ``config.axis_factors`` by reflection and cropped back.
        - Output: ``(B, out_channels, H, W)`` (``(B, out_channels, D, H, W)``).

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
        # the grid of each stored level: its resolution (downsamplings so far) and the downsampling that made it
        shift = 1 if pix2pix_style else 0  # pix2pix's stem is the first downsampling
        grids = [Grid.of(cfg, i + shift, max(0, i + shift - 1)) for i in range(num_levels)]

        if pix2pix_style:
            self.stem: nn.Module = StridedDown(cfg.in_channels, widths[0], cfg, act=False, norm=False, grid=grids[0])
        else:
            self.stem = conv_units(cfg.in_channels, widths[0], cfg, grids[0])
        self.encoder = nn.ModuleList(
            EncoderLevel(widths[i - 1], widths[i], cfg, innermost=i == num_levels - 1, down=grids[i], conv=grids[i])
            for i in range(1, num_levels)
        )
        self.bottleneck = BOTTLENECKS[cfg.bottleneck](widths[-1], cfg, grid=grids[-1])

        decoder = []
        channels = widths[-1]
        for k, i in enumerate(range(num_levels - 1, 0, -1)):  # k = 0 is the innermost level
            dropout = cfg.dropout if 1 <= k <= cfg.dropout_levels else 0.0
            top = i == 1  # the level whose skip is the full-resolution (pix2pix: half-resolution) stem
            # up to level i - 1's resolution, undoing the downsampling that made level i
            up = Grid.of(cfg, i - 1 + shift, i - 1 + shift)
            level = DecoderLevel(channels, widths[i - 1], widths[i - 1], cfg, dropout=dropout,
                                 skip=Skip.NONE if top and not cfg.top_skip else None, grid=up)
            decoder.append(level)
            channels = level.out_channels
        self.decoder = nn.ModuleList(decoder)

        if pix2pix_style:
            first = Grid.of(cfg, 0, 0)
            head = [nn.ReLU(), first.ConvTranspose(channels, cfg.out_channels, first.sampling_kernel(),
                                                   stride=first.stride, padding=first.sampling_padding())]
        else:
            head = [grids[0].Conv(channels, cfg.out_channels, 1)]
        self.head = nn.Sequential(*head, _FINAL[cfg.final_activation]())
        if cfg.residual:  # the net starts as the identity and learns the correction
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)
        if cfg.spectral_norm:
            apply_spectral_norm(self)

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The padded input, the stem's output and every encoder level's, finest first (the skips)."""
        self.check_input(x)
        x = pad_to_multiple(x, self.config.axis_factors)
        features = [x, self.stem(x)]
        for level in self.encoder:
            features.append(level(features[-1]))
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        # 1. pad to a multiple of the downsampling factors          (b, c, [D',] H', W')
        size = x.shape[2:]
        inputs = x
        x = pad_to_multiple(x, self.config.axis_factors)
        # 2. encode, keeping every level for the skips              (b, c_i, [D'/s_i,] H'/2^i, W'/2^i)
        skips = [self.stem(x)]
        for level in self.encoder:
            skips.append(level(skips[-1]))
        # 3. bottleneck on the deepest level                        (b, c_n, H'/2^n, W'/2^n)
        x = self.bottleneck(skips.pop())
        # 4. decode, merging the skip of each level on the way up
        for level in self.decoder:
            x = level(x, skips.pop())
        # 5. head to the output channels, crop the padding away     (b, out, [D,] H, W)
        out = self.head(x)[(..., *(slice(0, n) for n in size))]
        # 6. residual: the head predicts a correction to the input (extra input channels, such as a mask, excluded)
        return out + inputs[:, : self.config.out_channels] if self.config.residual else out


__all__ = ["UNet", "pad_to_multiple", "count_parameters", "resolve_export_dir", "ConfigError"]
