"""Small named blocks the UNet and the discriminators are assembled from.

Each variant family (convolution unit, downsampling, upsampling, skip merge,
bottleneck) is a registry from the config enum to a factory with one fixed
signature, so a new block is one class plus one registry line and the UNet
itself never changes. Sampling blocks are pre-activation (act, conv, norm) as in
pix2pix; convolution units are post-activation (conv, norm, act) as in U-Net.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..config import Activation, Bottleneck, ConvUnit, Down, Norm, Skip, UNetConfig, Up

# --------------------------------------------------------------------------- primitives


def make_norm(kind: Norm, channels: int, groups: int = 8) -> nn.Module:
    """A normalisation layer; instance norm is pix2pix's (no affine, no running stats)."""
    if kind is Norm.BATCH:
        return nn.BatchNorm2d(channels)
    if kind is Norm.INSTANCE:
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind is Norm.GROUP:
        return nn.GroupNorm(min(groups, channels), channels)
    return nn.Identity()


def make_activation(kind: Activation) -> nn.Module:
    return {
        Activation.RELU: lambda: nn.ReLU(inplace=False),
        Activation.LEAKY_RELU: lambda: nn.LeakyReLU(0.2),
        Activation.GELU: nn.GELU,
        Activation.SILU: nn.SiLU,
    }[kind]()


def conv_bias(norm: Norm) -> bool:
    """Batch and group norm subtract the mean and add their own shift, so a conv bias is wasted."""
    return norm in (Norm.NONE, Norm.INSTANCE)


# --------------------------------------------------------------------------- convolution units


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-norm-act layers: the original U-Net's unit."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig) -> None:
        bias = conv_bias(cfg.norm)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
            make_activation(cfg.activation),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
            make_activation(cfg.activation),
        )


ConvUnitFactory = Callable[[int, int, UNetConfig], nn.Module]
CONV_UNITS: dict[ConvUnit, ConvUnitFactory | None] = {
    ConvUnit.NONE: None,  # the level is its sampling conv alone (pix2pix)
    ConvUnit.DOUBLE: DoubleConv,
}

# --------------------------------------------------------------------------- downsampling


class StridedDown(nn.Sequential):
    """(act) -> 4x4 stride-2 conv -> (norm): pix2pix's encoder step, halving the resolution."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, act: bool = True, norm: bool = True) -> None:
        layers: list[nn.Module] = [make_activation(Activation.LEAKY_RELU)] if act else []
        layers.append(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=conv_bias(cfg.norm)))
        if norm:
            layers.append(make_norm(cfg.norm, out_channels, cfg.norm_groups))
        super().__init__(*layers)
        self.out_channels = out_channels


class PoolDown(nn.Sequential):
    """2x2 max or average pooling; keeps the channel count."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, act: bool = True, norm: bool = True,
                 pool: type[nn.Module] = nn.MaxPool2d) -> None:
        super().__init__(pool(2))
        self.out_channels = in_channels


DOWNSAMPLERS: dict[Down, Callable[..., nn.Module]] = {
    Down.STRIDED: StridedDown,
    Down.MAXPOOL: lambda i, o, cfg, **kw: PoolDown(i, o, cfg, pool=nn.MaxPool2d, **kw),
    Down.AVGPOOL: lambda i, o, cfg, **kw: PoolDown(i, o, cfg, pool=nn.AvgPool2d, **kw),
}

# --------------------------------------------------------------------------- upsampling


class TransposedUp(nn.Sequential):
    """ReLU -> 4x4 stride-2 transposed conv -> norm -> (dropout): pix2pix's decoder step."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [
            nn.ReLU(),
            nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=conv_bias(cfg.norm)),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class ResizeUp(nn.Sequential):
    """Resize 2x (bilinear or nearest) -> ReLU -> 3x3 conv -> norm -> (dropout); free of checkerboard artefacts."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, dropout: float = 0.0,
                 mode: str = "bilinear") -> None:
        layers: list[nn.Module] = [
            nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {})),
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=conv_bias(cfg.norm)),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


UPSAMPLERS: dict[Up, Callable[..., nn.Module]] = {
    Up.TRANSPOSED: TransposedUp,
    Up.BILINEAR: lambda i, o, cfg, **kw: ResizeUp(i, o, cfg, mode="bilinear", **kw),
    Up.NEAREST: lambda i, o, cfg, **kw: ResizeUp(i, o, cfg, mode="nearest", **kw),
}

# --------------------------------------------------------------------------- skip merges


class ConcatSkip(nn.Module):
    """Concatenate decoder features and the encoder skip on channels."""

    def __init__(self, channels: int, skip_channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.out_channels = channels + skip_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, skip], dim=1)


SKIPS: dict[Skip, Callable[[int, int, UNetConfig], nn.Module]] = {
    Skip.CONCAT: ConcatSkip,
}

# --------------------------------------------------------------------------- bottlenecks

BOTTLENECKS: dict[Bottleneck, Callable[[int, UNetConfig], nn.Module]] = {
    Bottleneck.NONE: lambda channels, cfg: nn.Identity(),
}
