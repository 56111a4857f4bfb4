"""ZS-N2N's denoiser: three convolutions and about 22 k parameters (for 3 channels at width 48), small enough to
be fitted to the one noisy image it denoises (:mod:`pix2pix_unet.zero_shot`)."""

from __future__ import annotations

import torch
from torch import nn


class TinyDenoiser(nn.Module):
    """``(B, C, H, W)`` noisy -> denoised, as the input less a predicted noise: conv 3x3, LeakyReLU, conv 3x3,
    LeakyReLU, conv 1x1. Any size; the receptive field is 5 x 5 px.

    Args:
        channels: image channels.
        width: features of the two hidden layers.
    """

    def __init__(self, channels: int, width: int = 48) -> None:
        super().__init__()
        if channels < 1 or width < 1:
            raise ValueError(f"TinyDenoiser needs channels >= 1 and width >= 1, got {channels} and {width}")
        self.noise = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, channels, 1),
        )

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        # 1. the noise the image holds                                          (b, c, h, w)
        noise = self.noise(noisy)
        # 2. the image without it                                               (b, c, h, w)
        return noisy - noise
