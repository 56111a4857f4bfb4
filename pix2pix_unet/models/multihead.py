"""What the generators with several output heads share (UNet++, UNet 3+): deep supervision.

Such a generator decodes to several output levels (UNet++'s X^{0,j}, UNet 3+'s decoder levels).
Without ``deep_supervision`` only the last one gets a head; with it every level gets a 1x1 head,
brought to full size bilinearly. ``forward(x)`` always returns the one output tensor
(the last head, or the mean of the heads with ``deep_output=mean``), so predict, tiling,
ONNX export and the tasks see an ordinary generator; ``forward(x, deep=True)`` returns
that output and every head's, which the segment objective weighs (deep supervision).

The heads come through ``forward`` (a keyword) rather than a second method because a
generator wrapped by DistributedDataParallel synchronises the gradients of what its
``forward`` computed only.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DeepOutput, FinalActivation, UNetConfig
from .blocks import apply_spectral_norm
from .generator import Generator, pad_to_multiple

_FINAL = {FinalActivation.TANH: nn.Tanh, FinalActivation.SIGMOID: nn.Sigmoid, FinalActivation.NONE: nn.Identity}


class GeneratorOutputs(NamedTuple):
    """``forward(x, deep=True)``: the output ``forward(x)`` returns, and each head's output, all
    ``(B, out_channels, H, W)``, in the generator's order (coarsest first, the main head last)."""

    output: torch.Tensor
    heads: list[torch.Tensor]


class MultiHeadGenerator(Generator):
    """Base of a generator with output heads on several decoder levels; see the module docstring.

    A subclass builds its layers, calls :meth:`build_heads` with the channels and the
    downsampling factor of each output level (coarsest first), and implements
    :meth:`decode`: padded input -> the features of those levels.
    """

    def build_heads(self, channels: list[int], scales: list[int]) -> None:
        """One 1x1 head per output level kept (all with ``deep_supervision``, else the last), then the
        final activation; with ``residual`` the heads start at zero, so the net starts as the identity."""
        cfg = self.config
        keep = slice(None) if cfg.deep_supervision else slice(-1, None)
        self.head_levels = list(range(len(channels)))[keep]  # which decoded levels get a head
        self.head_scales = scales[keep]
        self.heads = nn.ModuleList(nn.Conv2d(channels[i], cfg.out_channels, 1) for i in self.head_levels)
        self.final = _FINAL[cfg.final_activation]()
        if cfg.residual:
            for head in self.heads:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        if cfg.spectral_norm:
            apply_spectral_norm(self)

    def decode(self, x: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
        """The features of the output levels, coarsest first, from the padded input ``(B, C, H', W')``: all of
        them, or the first ``levels`` (computing only what those need)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, deep: bool = False) -> torch.Tensor | GeneratorOutputs:
        """The output ``(B, out_channels, H, W)``; with ``deep`` also every head's (all computed, unpruned)."""
        cfg = self.config
        self.check_input(x)
        # 1. pad to a multiple of the downsampling factor                (b, c, H', W')
        h, w = x.shape[-2:]
        # 2. decode the output levels: all of them, or up to `prune_to` at inference (pruned UNet++)
        levels = cfg.prune_to if not deep else None
        features = self.decode(pad_to_multiple(x, cfg.factor), levels)
        # 3. each head: 1x1 conv at its level's resolution, bilinear up to full size (the two commute, and the
        #    conv is cheaper before), crop the padding away               n_heads x (b, out, H, W)
        heads = []
        for level, scale, head in zip(self.head_levels, self.head_scales, self.heads):
            if level >= len(features):  # pruned away
                break
            y = head(features[level])
            if scale > 1:
                y = F.interpolate(y, scale_factor=scale, mode="bilinear", align_corners=False)
            heads.append(self.final(y[..., :h, :w]))
        # 4. the output: the last head, or the mean of them all          (b, out, H, W)
        output = torch.stack(heads).mean(0) if cfg.deep_output is DeepOutput.MEAN else heads[-1]
        # 5. residual: the heads predict a correction to the input (extra input channels, such as a mask, excluded)
        if cfg.residual:
            identity = x[:, : cfg.out_channels]
            output, heads = output + identity, [y + identity for y in heads]
        return GeneratorOutputs(output, heads) if deep else output


__all__ = ["MultiHeadGenerator", "GeneratorOutputs"]
