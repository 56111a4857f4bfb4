"""Small named blocks the UNet and the discriminators are assembled from.

Each variant family (convolution unit, downsampling, upsampling, skip merge,
bottleneck) is a registry from the config enum to a factory with one fixed
signature, so a new block is one class plus one registry line and the UNet
itself never changes. Sampling blocks are pre-activation (act, conv, norm) as in
pix2pix; convolution units are post-activation (conv, norm, act) as in U-Net.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from einops import repeat
from kornia.filters import MaxBlurPool2D
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..config import Activation, Bottleneck, ConvUnit, Down, Norm, Skip, UNetConfig, Up
from .transformer import TransformerBottleneck

# --------------------------------------------------------------------------- primitives


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a ``(B, C, H, W)`` map, with a per-channel scale and shift.

    Unlike ``GroupNorm(1, C)``, which pools the statistics over the whole image, each
    pixel is normalised on its own (NAFNet, ConvNeXt), so it behaves the same on a
    64-px crop and on a whole photo.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last so F.layer_norm normalises the channel axis             (b, h, w, c)
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)  # (b, c, h, w)


def make_norm(kind: Norm, channels: int, groups: int = 8) -> nn.Module:
    """A normalisation layer; instance norm is pix2pix's (no affine, no running stats)."""
    if kind is Norm.LAYER:
        return LayerNorm2d(channels)
    if kind is Norm.BATCH:
        return nn.BatchNorm2d(channels)
    if kind is Norm.INSTANCE:
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind is Norm.GROUP:
        return nn.GroupNorm(math.gcd(groups, channels), channels)  # a group count that divides channels
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
    return norm in (Norm.NONE, Norm.INSTANCE, Norm.LAYER)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Reparametrise every conv, transposed conv and linear weight in ``module`` to spectral norm 1, in place.

    Miyato et al. (2018): each weight is divided by its largest singular value,
    estimated by one power iteration per training forward. Parameters are then
    named ``...parametrizations.weight.original``.
    """
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    for layer in layers:
        spectral_norm(layer)
    return module


def conv3x3(in_channels: int, out_channels: int, *, bias: bool, dilation: int = 1) -> nn.Module:
    """A 3x3 conv that keeps the resolution (padding = dilation)."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=bias)


class SeparableConv2d(nn.Sequential):
    """Depthwise 3x3 conv (one filter per input channel) then pointwise 1x1 conv (MobileNet, Xception).

    About ``1/9 + 1/out_channels`` of a full 3x3 conv's weights and multiply-adds.
    """

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=dilation, dilation=dilation, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=bias),
        )


ConvFactory = Callable[..., nn.Module]  # (in_channels, out_channels, *, bias) -> resolution-keeping conv


class ConvNormAct(nn.Sequential):
    """One 3x3 conv-norm-act layer (UNet 3+'s unit for its full-scale skips and fusions)."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig) -> None:
        super().__init__(
            conv3x3(in_channels, out_channels, bias=conv_bias(cfg.norm)),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
            make_activation(cfg.activation),
        )


# --------------------------------------------------------------------------- convolution units


class DoubleConv(nn.Sequential):
    """Two conv-norm-act layers: the original U-Net's unit with 3x3 convs.

    ``conv`` swaps the convolution (depthwise-separable, dilated) and keeps the rest.
    """

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, conv: ConvFactory = conv3x3) -> None:
        bias = conv_bias(cfg.norm)
        super().__init__(
            conv(in_channels, out_channels, bias=bias),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
            make_activation(cfg.activation),
            conv(out_channels, out_channels, bias=bias),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
            make_activation(cfg.activation),
        )


class ResidualUnit(nn.Module):
    """Residual block (He et al. 2016; Res-UNet): ``act(conv-norm-act-conv-norm(x) + shortcut(x))``.

    The shortcut is the identity when the channel count is unchanged, otherwise a
    1x1 conv-norm projection.
    """

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        bias = conv_bias(cfg.norm)
        self.body = nn.Sequential(
            conv3x3(in_channels, out_channels, bias=bias),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
            make_activation(cfg.activation),
            conv3x3(out_channels, out_channels, bias=bias),
            make_norm(cfg.norm, out_channels, cfg.norm_groups),
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=bias), make_norm(cfg.norm, out_channels, cfg.norm_groups)
            )
        self.act = make_activation(cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))  # (b, c_out, h, w)


class SimpleGate(nn.Module):
    """NAFNet's activation: split the channels in two halves and multiply them, ``(B, 2C) -> (B, C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet's block (Chen et al. 2022, "Simple Baselines for Image Restoration"), activation-free.

    ``y = x + beta * conv(SCA(gate(dwconv(conv(LN(x))))))`` then
    ``out = y + gamma * conv(gate(conv(LN(y))))``, where the gate is
    :class:`SimpleGate` and SCA ("simplified channel attention") scales each
    channel by a 1x1 conv of its global mean. ``beta`` and ``gamma`` start at 0,
    so the block starts as the identity. A 1x1 projection comes first where the
    channel count changes. Its norm is always per-pixel LayerNorm; ``cfg.norm``
    applies to the sampling layers between the levels.
    """

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, expand: int = 2) -> None:
        super().__init__()
        c = out_channels
        self.project = nn.Identity() if in_channels == c else nn.Conv2d(in_channels, c, 1)
        self.norm1, self.norm2 = LayerNorm2d(c), LayerNorm2d(c)
        self.spatial = nn.Sequential(
            nn.Conv2d(c, expand * c, 1),
            nn.Conv2d(expand * c, expand * c, 3, padding=1, groups=expand * c),
            SimpleGate(),
        )
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(expand * c // 2, expand * c // 2, 1))
        self.mix = nn.Conv2d(expand * c // 2, c, 1)
        self.ffn = nn.Sequential(nn.Conv2d(c, expand * c, 1), SimpleGate(), nn.Conv2d(expand * c // 2, c, 1))
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1. project to the block's width                                    (b, c, h, w)
        x = self.project(x)
        # 2. spatial mixing: 1x1 up, depthwise 3x3, gate, channel attention  (b, expand*c/2, h, w)
        y = self.spatial(self.norm1(x))
        y = y * self.attention(y)
        x = x + self.beta * self.mix(y)  # (b, c, h, w)
        # 3. gated feed-forward on each pixel                                (b, c, h, w)
        return x + self.gamma * self.ffn(self.norm2(x))


ConvUnitFactory = Callable[[int, int, UNetConfig], nn.Module]
CONV_UNITS: dict[ConvUnit, ConvUnitFactory | None] = {
    ConvUnit.NONE: None,  # the level is its sampling conv alone (pix2pix)
    ConvUnit.DOUBLE: DoubleConv,
    ConvUnit.RESIDUAL: ResidualUnit,
    ConvUnit.SEPARABLE: partial(DoubleConv, conv=SeparableConv2d),
    ConvUnit.DILATED: lambda i, o, cfg: DoubleConv(i, o, cfg, conv=partial(conv3x3, dilation=cfg.dilation)),
    ConvUnit.NAF: NAFBlock,
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


class BlurPoolDown(nn.Sequential):
    """N2V2's down-sampling (Höck et al. 2022, after Zhang 2019): a 2x2 max at stride 1, then a 3x3 binomial
    blur at stride 2 (kornia's ``MaxBlurPool2D``). Shift-robust, without the aliasing that shows as
    checkerboards in blind-spot outputs; keeps the channel count."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, act: bool = True,
                 norm: bool = True) -> None:
        super().__init__(MaxBlurPool2D(3))
        self.out_channels = in_channels


DOWNSAMPLERS: dict[Down, Callable[..., nn.Module]] = {
    Down.STRIDED: StridedDown,
    Down.MAXPOOL: lambda i, o, cfg, **kw: PoolDown(i, o, cfg, pool=nn.MaxPool2d, **kw),
    Down.AVGPOOL: lambda i, o, cfg, **kw: PoolDown(i, o, cfg, pool=nn.AvgPool2d, **kw),
    Down.BLURPOOL: BlurPoolDown,
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


class AttentionSkip(nn.Module):
    """Attention U-Net's skip (Oktay et al. 2018): a gate from the coarser level weights the skip, then concat.

    ``alpha = sigmoid(psi(relu(W_x skip + W_g g)))``, one weight in [0, 1] per
    skip pixel, where the gating signal ``g`` is the decoder's features coming up
    from the coarser level (already upsampled to the skip's resolution, as in the
    common 2D implementations; the paper resamples the skip to the coarse grid
    instead). The paper's gate has no normalisation, and neither has this one.
    """

    def __init__(self, channels: int, skip_channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        inner = max(1, skip_channels // 2)
        self.w_g = nn.Conv2d(channels, inner, 1)
        self.w_x = nn.Conv2d(skip_channels, inner, 1, bias=False)  # one bias (b_g) is enough before the sum
        self.psi = nn.Conv2d(inner, 1, 1)
        self.out_channels = channels + skip_channels

    def gate(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The attention coefficients ``(B, 1, H, W)`` in [0, 1] for ``skip``, gated by ``x``."""
        return torch.sigmoid(self.psi(F.relu(self.w_g(x) + self.w_x(skip))))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # 1. attention coefficients from the gating signal and the skip      (b, 1, h, w)
        alpha = self.gate(x, skip)
        # 2. weight the skip and concatenate                                 (b, c + c_skip, h, w)
        return torch.cat([x, skip * alpha], dim=1)


class NoSkip(nn.Module):
    """No merge: the level sees the decoder features alone (N2V2's top level, ``top_skip=false``)."""

    def __init__(self, channels: int, skip_channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.out_channels = channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return x


SKIPS: dict[Skip, Callable[[int, int, UNetConfig], nn.Module]] = {
    Skip.CONCAT: ConcatSkip,
    Skip.ATTENTION: AttentionSkip,
    Skip.NONE: NoSkip,
}

# --------------------------------------------------------------------------- bottlenecks


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabv3, Chen et al. 2017) at the UNet's deepest level.

    One branch per rate in ``cfg.aspp_rates`` (rate 1: a 1x1 conv; otherwise a 3x3
    conv with that dilation), each conv-norm-act with ``channels // 4`` outputs,
    plus an image-level branch (global average pool, 1x1 conv, act, broadcast to
    every pixel). The branches are concatenated and projected back to ``channels``
    by a 1x1 conv-norm-act. The image branch has no norm: on a 1x1 map batch norm
    fails for batch size 1 and instance norm outputs zeros.
    """

    def __init__(self, channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        width = max(1, channels // 4)
        bias = conv_bias(cfg.norm)

        def branch(rate: int) -> nn.Module:
            conv = nn.Conv2d(channels, width, 1, bias=bias) if rate == 1 else conv3x3(channels, width, bias=bias,
                                                                                      dilation=rate)
            return nn.Sequential(conv, make_norm(cfg.norm, width, cfg.norm_groups), make_activation(cfg.activation))

        self.branches = nn.ModuleList(branch(rate) for rate in cfg.aspp_rates)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, width, 1),
                                        make_activation(cfg.activation))
        self.project = nn.Sequential(
            nn.Conv2d(width * (len(self.branches) + 1), channels, 1, bias=bias),
            make_norm(cfg.norm, channels, cfg.norm_groups),
            make_activation(cfg.activation),
        )

    @property
    def num_branches(self) -> int:
        """Parallel branches, the image-level one included."""
        return len(self.branches) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # 1. parallel atrous branches                                  k x (b, c/4, h, w)
        features = [branch(x) for branch in self.branches]
        # 2. image-level features, the same at every pixel              (b, c/4, h, w)
        features.append(repeat(self.image_pool(x), "b c 1 1 -> b c h w", h=h, w=w))
        # 3. concatenate and project back                               (b, c, h, w)
        return self.project(torch.cat(features, dim=1))


BOTTLENECKS: dict[Bottleneck, Callable[[int, UNetConfig], nn.Module]] = {
    Bottleneck.NONE: lambda channels, cfg: nn.Identity(),
    Bottleneck.ASPP: ASPP,
    Bottleneck.TRANSFORMER: TransformerBottleneck,
}
