"""UNet 3+ (Huang et al. 2020, "UNet 3+: A Full-Scale Connected UNet for Medical Image Segmentation").

The encoder is the UNet's. Each decoder level ``X_d^i`` gathers every scale: each
encoder level at or above it (``X_e^j``, ``j <= i``), max-pooled down by ``2^(i-j)``,
and each deeper decoder level (``X_d^j``, ``j > i``; the deepest is the bottleneck),
upsampled bilinearly by ``2^(j-i)``; every one of them goes through a 3x3
conv-norm-act to ``fullscale_channels`` (64 in the paper), then the concatenation of
the ``depth + 1`` of them through one more 3x3 conv-norm-act::

    X_e^0 ──────────────────────────────────────────────► X_d^0 ─► head (main)
    X_e^1 ─────────────────────────────► X_d^1 ─┬─ up 2 ─► ⋮
    X_e^2 ────────────► X_d^2 ─┬─ up 2 ─► ⋮     └─ up 4 ─► ⋮
    X_e^3 = X_d^3 ─ up 2 ─►  ⋮  └─ up 4 ─►  ⋮  ...   (and every X_e^j, j < i, max-pooled into X_d^i)

With ``deep_supervision`` every decoder level and the bottom get a 1x1 head, upsampled
bilinearly to full size (the paper's full-scale deep supervision); otherwise only
``X_d^0`` does. The paper's optional classification-guided module is not built.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Architecture, UNetConfig
from .blocks import BOTTLENECKS, ConvNormAct
from .generator import register
from .multihead import MultiHeadGenerator
from .unet import EncoderLevel, conv_units


class FullScaleLevel(nn.Module):
    """Decoder level ``X_d^i`` of UNet 3+ from every encoder level ``j <= i`` and every deeper decoder level.

    Args:
        level: ``i``.
        encoder_channels: the channels of ``X_e^0 .. X_e^i``.
        decoder_channels: the channels of ``X_d^{i+1} .. X_d^n``.
        cfg: ``fullscale_channels`` per scale, the norm and the activation.
        dropout: after the fusion conv, or 0.

    Shape:
        ``[(B, c_j, H/2^j, W/2^j)] for j <= i, [(B, c_j, H/2^j, W/2^j)] for j > i -> (B, (n+1) * c, H/2^i, W/2^i)``.
    """

    def __init__(self, level: int, encoder_channels: list[int], decoder_channels: list[int], cfg: UNetConfig,
                 *, dropout: float) -> None:
        super().__init__()
        c = cfg.fullscale_channels
        self.from_encoder = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2 ** (level - j)) if j < level else nn.Identity(), ConvNormAct(ch, c, cfg))
            for j, ch in enumerate(encoder_channels)
        )
        self.from_decoder = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2**k, mode="bilinear", align_corners=False),
                          ConvNormAct(ch, c, cfg))
            for k, ch in enumerate(decoder_channels, start=1)
        )
        width = c * (len(encoder_channels) + len(decoder_channels))
        self.fuse = nn.Sequential(ConvNormAct(width, width, cfg), *([nn.Dropout(dropout)] if dropout > 0 else []))
        self.out_channels = width

    def forward(self, encoder: list[torch.Tensor], decoder: list[torch.Tensor]) -> torch.Tensor:
        # 1. every scale resampled to this level and brought to c channels   (n+1) x (b, c, h, w)
        parts = [f(e) for f, e in zip(self.from_encoder, encoder)] + [f(d) for f, d in zip(self.from_decoder, decoder)]
        # 2. concatenate and fuse                                             (b, (n+1)c, h, w)
        return self.fuse(torch.cat(parts, dim=1))


@register(Architecture.UNET3P)
class UNet3Plus(MultiHeadGenerator):
    """UNet 3+ generator; see the module docstring.

    Args:
        config: ``architecture=unet3+`` and a convolution unit (the encoder's); ``fullscale_channels`` per scale.

    Shape:
        - Input: ``(B, in_channels, H, W)`` for any ``H, W`` (padded to ``config.factor`` and cropped back).
        - Output: ``(B, out_channels, H, W)``; with ``deep=True`` also each of the ``config.num_heads`` heads'
          (the bottom first, ``X_d^0``'s last).

    Examples:
        >>> cfg = UNetConfig(architecture=Architecture.UNET3P, depth=3, base_channels=8, conv_unit=ConvUnit.DOUBLE,
        ...                  down=Down.MAXPOOL, fullscale_channels=8)
        >>> UNet3Plus(cfg)(torch.randn(2, 3, 30, 45)).shape
        torch.Size([2, 3, 30, 45])
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = cfg = config
        n = cfg.depth
        widths = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(n + 1)]

        self.stem = conv_units(cfg.in_channels, widths[0], cfg)
        self.encoder = nn.ModuleList(EncoderLevel(widths[i - 1], widths[i], cfg, innermost=False)
                                     for i in range(1, n + 1))
        self.bottleneck = BOTTLENECKS[cfg.bottleneck](widths[n], cfg)

        decoder, deeper = [], [widths[n]]  # deeper: the channels of X_d^{i+1..n}, shallowest first
        for i in range(n - 1, -1, -1):
            dropout = cfg.dropout if 1 <= n - 1 - i <= cfg.dropout_levels else 0.0
            level = FullScaleLevel(i, widths[: i + 1], deeper, cfg, dropout=dropout)
            decoder.append(level)
            deeper = [level.out_channels, *deeper]
        self.decoder = nn.ModuleList(decoder)  # X_d^{n-1} first
        self.build_heads(deeper[::-1], [2**i for i in range(n, -1, -1)])

    def decode(self, x: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
        """Every output level (``levels`` is for pruning, which UNet 3+ does not have: every decoder level
        needs the bottom)."""
        n = self.config.depth
        # 1. encode, keeping every level                                 (b, w_i, H'/2^i, W'/2^i)
        encoder = [self.stem(x)]
        for level in self.encoder:
            encoder.append(level(encoder[-1]))
        # 2. bottleneck: the deepest decoder level X_d^n                 (b, w_n, H'/2^n, W'/2^n)
        decoder = [self.bottleneck(encoder[n])]  # X_d^{i..n}, shallowest first
        # 3. decoder levels n-1 .. 0, each from every scale               (b, (n+1)c, H'/2^i, W'/2^i)
        for i, level in zip(range(n - 1, -1, -1), self.decoder):
            decoder.insert(0, level(encoder[: i + 1], decoder))
        # 4. the output levels, coarsest first: X_d^n .. X_d^0
        return decoder[::-1]


__all__ = ["UNet3Plus", "FullScaleLevel"]
