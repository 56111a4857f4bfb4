"""UNet++ (Zhou et al. 2018, "UNet++: A Nested U-Net Architecture for Medical Image Segmentation").

The encoder is the UNet's (column ``j = 0``); the skips are nested, dense pathways of
nodes ``X^{i,j}`` (level ``i``, column ``j``), each the convolution unit over every
earlier node of its level and the upsampled node below-left of it::

    X^{i,j} = conv_unit([X^{i,0}, ..., X^{i,j-1}, up(X^{i+1,j-1})])      i + j <= depth

    X^{0,0} ─────► X^{0,1} ─────► X^{0,2} ─────► X^{0,3} ─► head
       │      ↗       │  ⤴︎    ↗     │  ⤴︎    ↗
    X^{1,0} ─────► X^{1,1} ─────► X^{1,2}
       │      ↗       │  ⤴︎    ↗
    X^{2,0} ─────► X^{2,1}
       │      ↗
    X^{3,0} (bottleneck)

The top nodes ``X^{0,1..depth}`` are full-resolution outputs; the last gets the head,
and with ``deep_supervision`` every one does (the segment objective weighs their losses;
``deep_output`` picks the last head or their mean at inference, and ``prune_to=k`` the
head of ``X^{0,k}``, running only the nodes with ``i + j <= k``: the paper's pruning).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Architecture, UNetConfig
from .blocks import BOTTLENECKS, UPSAMPLERS
from .generator import register
from .multihead import MultiHeadGenerator
from .unet import EncoderLevel, conv_units


class NestedNode(nn.Module):
    """``X^{i,j}``: upsample the node below-left to this level's width, concatenate it after the ``j`` earlier
    nodes of this level, then run the convolution unit.

    Shape:
        ``j x (B, c, h, w), (B, c_below, h/2, w/2) -> (B, c, h, w)``.
    """

    def __init__(self, below_channels: int, channels: int, column: int, cfg: UNetConfig, *, dropout: float) -> None:
        super().__init__()
        self.up = UPSAMPLERS[cfg.up](below_channels, channels, cfg, dropout=dropout)
        self.conv = conv_units((column + 1) * channels, channels, cfg)

    def forward(self, same_level: list[torch.Tensor], below: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([*same_level, self.up(below)], dim=1))


@register(Architecture.UNETPP)
class UNetPlusPlus(MultiHeadGenerator):
    """UNet++ generator; see the module docstring.

    Args:
        config: ``architecture=unet++`` and a convolution unit (``conv_unit`` other than none);
            ``depth`` levels below the first, widths ``base_channels * 2**i`` capped at ``max_channels``.

    Shape:
        - Input: ``(B, in_channels, H, W)`` for any ``H, W`` (padded to ``config.factor`` and cropped back).
        - Output: ``(B, out_channels, H, W)``; with ``deep=True`` also each of the ``config.num_heads`` heads'.

    Examples:
        >>> cfg = UNetConfig(architecture=Architecture.UNETPP, depth=3, base_channels=8, conv_unit=ConvUnit.DOUBLE,
        ...                  down=Down.MAXPOOL, deep_supervision=True)
        >>> net = UNetPlusPlus(cfg)
        >>> [h.shape for h in net(torch.randn(2, 3, 30, 45), deep=True).heads]
        [torch.Size([2, 3, 30, 45]), torch.Size([2, 3, 30, 45]), torch.Size([2, 3, 30, 45])]
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = cfg = config
        n = cfg.depth
        widths = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(n + 1)]

        # column 0: the UNet's encoder, X^{0,0} at full resolution
        self.stem = conv_units(cfg.in_channels, widths[0], cfg)
        self.encoder = nn.ModuleList(EncoderLevel(widths[i - 1], widths[i], cfg, innermost=False)
                                     for i in range(1, n + 1))
        self.bottleneck = BOTTLENECKS[cfg.bottleneck](widths[n], cfg)

        # columns 1..n: X^{i,j} for i = 0..n-j; dropout on the upsamplings just above the innermost, as in the UNet
        def dropout(level: int) -> float:
            return cfg.dropout if 1 <= n - 1 - level <= cfg.dropout_levels else 0.0

        self.columns = nn.ModuleList(
            nn.ModuleList(NestedNode(widths[i + 1], widths[i], j, cfg, dropout=dropout(i)) for i in range(n - j + 1))
            for j in range(1, n + 1)
        )
        self.build_heads([widths[0]] * n, [1] * n)

    def decode(self, x: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
        """``X^{0,1..k}`` for ``k = levels`` (default ``depth``): only the nodes with ``i + j <= k`` run, so
        ``levels=k`` is the paper's pruned UNet++ L^k (the bottleneck runs only for ``k = depth``)."""
        n = self.config.depth
        k = levels or n
        # 1. the encoder column X^{i,0}, i <= k                          (b, w_i, H'/2^i, W'/2^i)
        grid = [[self.stem(x)]]
        for level in self.encoder[:k]:
            grid.append([level(grid[-1][0])])
        # 2. bottleneck on the deepest node                              (b, w_n, H'/2^n, W'/2^n)
        if k == n:
            grid[n][0] = self.bottleneck(grid[n][0])
        # 3. column by column, X^{i,j} from X^{i,0..j-1} and X^{i+1,j-1}  (b, w_i, H'/2^i, W'/2^i)
        for j, column in enumerate(self.columns[:k], start=1):
            for i, node in enumerate(column[: k - j + 1]):
                grid[i].append(node(grid[i][:j], grid[i + 1][j - 1]))
        # 4. the full-resolution outputs X^{0,1..k}                     k x (b, w_0, H', W')
        return grid[0][1:]


__all__ = ["UNetPlusPlus", "NestedNode"]
