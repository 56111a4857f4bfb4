"""Conditional PatchGAN discriminators: each output logit judges one patch of the (input, output) pair."""

from __future__ import annotations

import torch
from torch import nn

from ..config import DiscriminatorKind, PatchGANConfig
from .blocks import Grid, apply_spectral_norm, conv_bias, make_norm


class NLayerPatchGAN(nn.Module):
    """The pix2pix PatchGAN: ``n_layers`` 4x4 stride-2 convs, then two stride-1 convs (4x4x4 in 3D).

    ``n_layers=3`` gives the paper's 70x70 receptive field.

    Shape:
        - Input: ``(B, in_channels, H, W)`` (condition and image concatenated; ``dims=3``: ``(B, C, D, H, W)``).
        - Output: a list of every block's features; the last is ``(B, 1, H', W')`` logits.
    """

    def __init__(self, in_channels: int, cfg: PatchGANConfig, dims: int = 2) -> None:
        super().__init__()
        bias = conv_bias(cfg.norm)
        width = cfg.base_channels
        conv = Grid(dims).Conv
        blocks = [nn.Sequential(conv(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2))]
        for n in range(1, cfg.n_layers + 1):
            stride = 2 if n < cfg.n_layers else 1  # the last block keeps the resolution
            out = cfg.base_channels * min(2**n, 8)
            blocks.append(
                nn.Sequential(
                    conv(width, out, 4, stride=stride, padding=1, bias=bias),
                    make_norm(cfg.norm, out, dims=dims),
                    nn.LeakyReLU(0.2),
                )
            )
            width = out
        blocks.append(nn.Sequential(conv(width, 1, 4, stride=1, padding=1)))
        self.blocks = nn.ModuleList(blocks)
        # n_layers halvings, then two 4x4 stride-1 convs that each lose a pixel: >= 3 px must be left.
        self.min_size = 3 * 2**cfg.n_layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


class PixelGAN(nn.Module):
    """The 1x1 PatchGAN: judges each pixel's colour alone (pix2pix's ``pixel`` D)."""

    def __init__(self, in_channels: int, cfg: PatchGANConfig, dims: int = 2) -> None:
        super().__init__()
        width = cfg.base_channels
        conv = Grid(dims).Conv
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(conv(in_channels, width, 1), nn.LeakyReLU(0.2)),
                nn.Sequential(
                    conv(width, width * 2, 1, bias=conv_bias(cfg.norm)),
                    make_norm(cfg.norm, width * 2, dims=dims),
                    nn.LeakyReLU(0.2),
                ),
                nn.Sequential(conv(width * 2, 1, 1)),
            ]
        )
        self.min_size = 1

    forward = NLayerPatchGAN.forward


_KINDS = {DiscriminatorKind.NLAYER: NLayerPatchGAN, DiscriminatorKind.PIXEL: PixelGAN}


class Discriminator(nn.Module):
    """Conditional, optionally multi-scale discriminator on the condition and the (real or fake) image.

    With ``config.num_scales = n`` (pix2pixHD) there are ``n`` PatchGANs of the
    same shape but separate weights; scale ``k`` judges the pair average-pooled
    ``k`` times by 2, so the coarser scales see more of the image per patch.

    Args:
        condition_channels: channels of the generator input.
        image_channels: channels of the generator output.
        config: which PatchGAN, its width, depth, norm, scales and spectral norm.
        dims: 2 for images, 3 for volumes (the generator's ``dims``).

    Shape:
        - ``forward(condition, image)``: ``(B, Cc, H, W), (B, Ci, H, W)`` -> one logits map
          ``(B, 1, H_k, W_k)`` per scale, finest first.
        - ``features(condition, image)``: per scale, every block's output, the logits last.

    Examples:
        >>> d = Discriminator(3, 3, PatchGANConfig(num_scales=2))
        >>> [t.shape for t in d(torch.randn(1, 3, 256, 256), torch.randn(1, 3, 256, 256))]
        [torch.Size([1, 1, 30, 30]), torch.Size([1, 1, 14, 14])]
    """

    def __init__(self, condition_channels: int, image_channels: int, config: PatchGANConfig, dims: int = 2) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.scales = nn.ModuleList(
            _KINDS[config.kind](condition_channels + image_channels, config, dims) for _ in range(config.num_scales)
        )
        # pix2pixHD's downsampling between scales; padding not counted so borders are not darkened.
        self.downsample = Grid(dims).AvgPool(3, stride=2, padding=1, count_include_pad=False)
        if config.spectral_norm:
            apply_spectral_norm(self)

    def features(self, condition: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        # 1. the conditional pair                                       (b, cc + ci, h, w)
        x = torch.cat([condition, image], dim=1)
        # 2. each scale judges its own resolution, then halves it for the next
        features = []
        for k, net in enumerate(self.scales):
            if k > 0:
                x = self.downsample(x)  # (b, cc + ci, h / 2^k, w / 2^k)
            if min(x.shape[2:]) < net.min_size:
                seen, given = "x".join(map(str, x.shape[2:])), "x".join(map(str, condition.shape[2:]))
                raise ValueError(
                    f"discriminator scale {k} sees {seen} px (the {given} input pooled {k} times), but "
                    f"n_layers={self.config.n_layers} needs at least {net.min_size} px along every axis: use larger "
                    "crops, fewer num_scales or fewer n_layers"
                )
            features.append(net(x))
        return features

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> list[torch.Tensor]:
        return [scale[-1] for scale in self.features(condition, image)]
