"""Small named blocks the UNet and the discriminators are assembled from, in 2D or 3D.

Each variant family (convolution unit, downsampling, upsampling, skip merge,
bottleneck) is a registry from the config enum to a factory with one fixed
signature, so a new block is one class plus one registry line and the UNet
itself never changes. Sampling blocks are pre-activation (act, conv, norm) as in
pix2pix; convolution units are post-activation (conv, norm, act) as in U-Net.

The dimension is composition too: every factory takes a :class:`Grid` (2 or 3 spatial axes, the conv kernel and
the sampling stride per axis at its level), and builds its layers from the grid's ``Conv``, ``MaxPool``, ...
rather than from ``nn.Conv2d``. A 3D UNet is the same blocks with ``Grid(dims=3, ...)``; an anisotropic one has
1 x 3 x 3 kernels and 1 x 2 x 2 strides on the levels where z is still coarse (:attr:`UNetConfig.kernels`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from kornia.filters import MaxBlurPool2D
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..config import Activation, Bottleneck, ConvUnit, Down, Norm, Skip, UNetConfig, Up
from .transformer import TransformerBottleneck

# --------------------------------------------------------------------------- primitives

_LAYERS = {
    2: {"Conv": nn.Conv2d, "ConvTranspose": nn.ConvTranspose2d, "MaxPool": nn.MaxPool2d, "AvgPool": nn.AvgPool2d,
        "BatchNorm": nn.BatchNorm2d, "InstanceNorm": nn.InstanceNorm2d, "AdaptiveAvgPool": nn.AdaptiveAvgPool2d},
    3: {"Conv": nn.Conv3d, "ConvTranspose": nn.ConvTranspose3d, "MaxPool": nn.MaxPool3d, "AvgPool": nn.AvgPool3d,
        "BatchNorm": nn.BatchNorm3d, "InstanceNorm": nn.InstanceNorm3d, "AdaptiveAvgPool": nn.AdaptiveAvgPool3d},
}


@dataclass(frozen=True)
class Grid:
    """What a block is built for: ``dims`` spatial axes (2: ``(B, C, H, W)``, 3: ``(B, C, D, H, W)``), its conv
    ``kernel`` per axis (3, or 1 on an axis too coarse to convolve yet) and its ``stride`` per axis (the
    downsampling it does, or the upsampling it undoes: 2, or 1 on an axis not pooled at this level)."""

    dims: int = 2
    kernel: tuple[int, ...] = (3, 3)
    stride: tuple[int, ...] = (2, 2)

    @classmethod
    def of(cls, cfg: UNetConfig, resolution: int, sampling: int | None = None) -> "Grid":
        """The grid at ``resolution`` (0: full, k: after k downsamplings) whose sampling is the downsampling
        ``sampling`` (by default ``resolution``: from this resolution to the next)."""
        sampling = resolution if sampling is None else sampling
        strides, kernels = cfg.strides, cfg.kernels
        stride = strides[min(sampling, len(strides) - 1)] if strides else (2,) * cfg.dims
        return cls(cfg.dims, kernels[min(resolution, len(kernels) - 1)], stride)

    @property
    def Conv(self) -> type[nn.Module]:  # noqa: N802 (a class, as nn.Conv2d)
        return _LAYERS[self.dims]["Conv"]

    @property
    def ConvTranspose(self) -> type[nn.Module]:  # noqa: N802
        return _LAYERS[self.dims]["ConvTranspose"]

    @property
    def MaxPool(self) -> type[nn.Module]:  # noqa: N802
        return _LAYERS[self.dims]["MaxPool"]

    @property
    def AvgPool(self) -> type[nn.Module]:  # noqa: N802
        return _LAYERS[self.dims]["AvgPool"]

    @property
    def AdaptiveAvgPool(self) -> type[nn.Module]:  # noqa: N802
        return _LAYERS[self.dims]["AdaptiveAvgPool"]

    def padding(self, dilation: int = 1) -> tuple[int, ...]:
        """The padding that keeps the resolution under :attr:`kernel` with ``dilation``."""
        return tuple(dilation * (k // 2) for k in self.kernel)

    def dilated(self, dilation: int) -> tuple[int, ...]:
        """The dilation per axis: ``dilation`` where the kernel is 3, 1 where it is 1."""
        return tuple(dilation if k > 1 else 1 for k in self.kernel)

    def sampling_kernel(self) -> tuple[int, ...]:
        """pix2pix's 4-wide strided kernel on the halved axes (padding 1), 1 on the others (padding 0)."""
        return tuple(4 if s == 2 else 1 for s in self.stride)

    def sampling_padding(self) -> tuple[int, ...]:
        return tuple(1 if s == 2 else 0 for s in self.stride)


PLANE = Grid()  # the 2D grid every block defaults to


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel (or voxel) of a ``(B, C, *spatial)`` map, with a per-channel
    scale and shift.

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
        # channels-last so F.layer_norm normalises the channel axis             (b, *spatial, c)
        y = F.layer_norm(x.movedim(1, -1), x.shape[1:2], self.weight, self.bias, self.eps)
        return y.movedim(-1, 1)  # (b, c, *spatial)


def make_norm(kind: Norm, channels: int, groups: int = 8, dims: int = 2) -> nn.Module:
    """A normalisation layer for ``dims`` spatial axes; instance norm is pix2pix's (no affine, no running
    stats)."""
    if kind is Norm.LAYER:
        return LayerNorm2d(channels)
    if kind is Norm.BATCH:
        return _LAYERS[dims]["BatchNorm"](channels)
    if kind is Norm.INSTANCE:
        return _LAYERS[dims]["InstanceNorm"](channels, affine=False, track_running_stats=False)
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
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d,
                                                           nn.ConvTranspose3d, nn.Linear))]
    for layer in layers:
        spectral_norm(layer)
    return module


def conv3x3(in_channels: int, out_channels: int, *, bias: bool, dilation: int = 1, grid: Grid = PLANE) -> nn.Module:
    """A 3x3 (3x3x3, or the grid's kernel) conv that keeps the resolution (padding = dilation)."""
    return grid.Conv(in_channels, out_channels, grid.kernel, padding=grid.padding(dilation),
                     dilation=grid.dilated(dilation), bias=bias)


class SeparableConv2d(nn.Sequential):
    """Depthwise 3x3 conv (one filter per input channel) then pointwise 1x1 conv (MobileNet, Xception); in
    3D with the grid's kernel.

    About ``1/9 + 1/out_channels`` of a full 3x3 conv's weights and multiply-adds.
    """

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool, dilation: int = 1,
                 grid: Grid = PLANE) -> None:
        super().__init__(
            grid.Conv(in_channels, in_channels, grid.kernel, padding=grid.padding(dilation),
                      dilation=grid.dilated(dilation), groups=in_channels, bias=False),
            grid.Conv(in_channels, out_channels, 1, bias=bias),
        )


ConvFactory = Callable[..., nn.Module]  # (in_channels, out_channels, *, bias, grid) -> resolution-keeping conv


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

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, conv: ConvFactory = conv3x3,
                 grid: Grid = PLANE) -> None:
        bias = conv_bias(cfg.norm)
        super().__init__(
            conv(in_channels, out_channels, bias=bias, grid=grid),
            make_norm(cfg.norm, out_channels, cfg.norm_groups, grid.dims),
            make_activation(cfg.activation),
            conv(out_channels, out_channels, bias=bias, grid=grid),
            make_norm(cfg.norm, out_channels, cfg.norm_groups, grid.dims),
            make_activation(cfg.activation),
        )


class ResidualUnit(nn.Module):
    """Residual block (He et al. 2016; Res-UNet): ``act(conv-norm-act-conv-norm(x) + shortcut(x))``.

    The shortcut is the identity when the channel count is unchanged, otherwise a
    1x1 conv-norm projection.
    """

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, grid: Grid = PLANE) -> None:
        super().__init__()
        bias = conv_bias(cfg.norm)
        self.body = nn.Sequential(
            conv3x3(in_channels, out_channels, bias=bias, grid=grid),
            make_norm(cfg.norm, out_channels, cfg.norm_groups, grid.dims),
            make_activation(cfg.activation),
            conv3x3(out_channels, out_channels, bias=bias, grid=grid),
            make_norm(cfg.norm, out_channels, cfg.norm_groups, grid.dims),
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                grid.Conv(in_channels, out_channels, 1, bias=bias),
                make_norm(cfg.norm, out_channels, cfg.norm_groups, grid.dims),
            )
        self.act = make_activation(cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))  # (b, c_out, *spatial)


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

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, expand: int = 2,
                 grid: Grid = PLANE) -> None:
        super().__init__()
        c, conv = out_channels, grid.Conv
        self.project = nn.Identity() if in_channels == c else conv(in_channels, c, 1)
        self.norm1, self.norm2 = LayerNorm2d(c), LayerNorm2d(c)
        self.spatial = nn.Sequential(
            conv(c, expand * c, 1),
            conv(expand * c, expand * c, grid.kernel, padding=grid.padding(), groups=expand * c),
            SimpleGate(),
        )
        self.attention = nn.Sequential(grid.AdaptiveAvgPool(1), conv(expand * c // 2, expand * c // 2, 1))
        self.mix = conv(expand * c // 2, c, 1)
        self.ffn = nn.Sequential(conv(c, expand * c, 1), SimpleGate(), conv(expand * c // 2, c, 1))
        self.beta = nn.Parameter(torch.zeros(1, c, *[1] * grid.dims))
        self.gamma = nn.Parameter(torch.zeros(1, c, *[1] * grid.dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1. project to the block's width                                    (b, c, h, w)
        x = self.project(x)
        # 2. spatial mixing: 1x1 up, depthwise 3x3, gate, channel attention  (b, expand*c/2, h, w)
        y = self.spatial(self.norm1(x))
        y = y * self.attention(y)
        x = x + self.beta * self.mix(y)  # (b, c, h, w)
        # 3. gated feed-forward on each pixel                                (b, c, h, w)
        return x + self.gamma * self.ffn(self.norm2(x))


ConvUnitFactory = Callable[..., nn.Module]  # (in_channels, out_channels, cfg, grid=PLANE) -> module
CONV_UNITS: dict[ConvUnit, ConvUnitFactory | None] = {
    ConvUnit.NONE: None,  # the level is its sampling conv alone (pix2pix)
    ConvUnit.DOUBLE: DoubleConv,
    ConvUnit.RESIDUAL: ResidualUnit,
    ConvUnit.SEPARABLE: partial(DoubleConv, conv=SeparableConv2d),
    ConvUnit.DILATED: lambda i, o, cfg, grid=PLANE: DoubleConv(i, o, cfg, conv=partial(conv3x3, dilation=cfg.dilation),
                                                              grid=grid),
    ConvUnit.NAF: NAFBlock,
}

# --------------------------------------------------------------------------- downsampling


class StridedDown(nn.Sequential):
    """(act) -> 4x4 stride-2 conv -> (norm): pix2pix's encoder step, halving the resolution."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, act: bool = True, norm: bool = True,
                 grid: Grid = PLANE) -> None:
        layers: list[nn.Module] = [make_activation(Activation.LEAKY_RELU)] if act else []
        layers.append(grid.Conv(in_channels, out_channels, grid.sampling_kernel(), stride=grid.stride,
                                padding=grid.sampling_padding(), bias=conv_bias(cfg.norm)))
        if norm:
            layers.append(make_norm(cfg.norm, out_channels, cfg.norm_groups, grid.dims))
        super().__init__(*layers)
        self.out_channels = out_channels


class PoolDown(nn.Sequential):
    """2x2 (2x2x2, or the grid's stride) max or average pooling; keeps the channel count."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, act: bool = True, norm: bool = True,
                 pool: str = "MaxPool", grid: Grid = PLANE) -> None:
        super().__init__(getattr(grid, pool)(grid.stride))
        self.out_channels = in_channels


class BlurPoolDown(nn.Sequential):
    """N2V2's down-sampling (Höck et al. 2022, after Zhang 2019): a 2x2 max at stride 1, then a 3x3 binomial
    blur at stride 2 (kornia's ``MaxBlurPool2D``). Shift-robust, without the aliasing that shows as
    checkerboards in blind-spot outputs; keeps the channel count."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, act: bool = True,
                 norm: bool = True, grid: Grid = PLANE) -> None:
        super().__init__(MaxBlurPool2D(3))
        self.out_channels = in_channels


DOWNSAMPLERS: dict[Down, Callable[..., nn.Module]] = {
    Down.STRIDED: StridedDown,
    Down.MAXPOOL: lambda i, o, cfg, **kw: PoolDown(i, o, cfg, pool="MaxPool", **kw),
    Down.AVGPOOL: lambda i, o, cfg, **kw: PoolDown(i, o, cfg, pool="AvgPool", **kw),
    Down.BLURPOOL: BlurPoolDown,
}

# --------------------------------------------------------------------------- upsampling


class TransposedUp(nn.Sequential):
    """ReLU -> 4x4 stride-2 transposed conv -> norm -> (dropout): pix2pix's decoder step."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, dropout: float = 0.0,
                 grid: Grid = PLANE) -> None:
        layers: list[nn.Module] = [
            nn.ReLU(),
            grid.ConvTranspose(in_channels, out_channels, grid.sampling_kernel(), stride=grid.stride,
                               padding=grid.sampling_padding(), bias=conv_bias(cfg.norm)),
            make_norm(cfg.norm, out_channels, cfg.norm_groups, grid.dims),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class ResizeUp(nn.Sequential):
    """Resize 2x (bilinear or nearest; trilinear in 3D, by the grid's stride) -> ReLU -> 3x3 conv -> norm ->
    (dropout); free of checkerboard artefacts."""

    def __init__(self, in_channels: int, out_channels: int, cfg: UNetConfig, *, dropout: float = 0.0,
                 mode: str = "bilinear", grid: Grid = PLANE) -> None:
        if mode == "bilinear" and grid.dims == 3:
            mode = "trilinear"
        scale = 2 if grid.dims == 2 else tuple(float(s) for s in grid.stride)
        layers: list[nn.Module] = [
            nn.Upsample(scale_factor=scale, mode=mode, **({} if mode == "nearest" else {"align_corners": False})),
            nn.ReLU(),
            grid.Conv(in_channels, out_channels, grid.kernel, padding=grid.padding(), bias=conv_bias(cfg.norm)),
            make_norm(cfg.norm, out_channels, cfg.norm_groups, grid.dims),
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

    def __init__(self, channels: int, skip_channels: int, cfg: UNetConfig, grid: Grid = PLANE) -> None:
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

    def __init__(self, channels: int, skip_channels: int, cfg: UNetConfig, grid: Grid = PLANE) -> None:
        super().__init__()
        inner = max(1, skip_channels // 2)
        self.w_g = grid.Conv(channels, inner, 1)
        self.w_x = grid.Conv(skip_channels, inner, 1, bias=False)  # one bias (b_g) is enough before the sum
        self.psi = grid.Conv(inner, 1, 1)
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

    def __init__(self, channels: int, skip_channels: int, cfg: UNetConfig, grid: Grid = PLANE) -> None:
        super().__init__()
        self.out_channels = channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return x


SKIPS: dict[Skip, Callable[..., nn.Module]] = {  # (channels, skip_channels, cfg, grid=PLANE)
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

    def __init__(self, channels: int, cfg: UNetConfig, grid: Grid = PLANE) -> None:
        super().__init__()
        width = max(1, channels // 4)
        bias = conv_bias(cfg.norm)

        def branch(rate: int) -> nn.Module:
            conv = grid.Conv(channels, width, 1, bias=bias) if rate == 1 else conv3x3(
                channels, width, bias=bias, dilation=rate, grid=grid)
            return nn.Sequential(conv, make_norm(cfg.norm, width, cfg.norm_groups, grid.dims),
                                 make_activation(cfg.activation))

        self.branches = nn.ModuleList(branch(rate) for rate in cfg.aspp_rates)
        self.image_pool = nn.Sequential(grid.AdaptiveAvgPool(1), grid.Conv(channels, width, 1),
                                        make_activation(cfg.activation))
        self.project = nn.Sequential(
            grid.Conv(width * (len(self.branches) + 1), channels, 1, bias=bias),
            make_norm(cfg.norm, channels, cfg.norm_groups, grid.dims),
            make_activation(cfg.activation),
        )

    @property
    def num_branches(self) -> int:
        """Parallel branches, the image-level one included."""
        return len(self.branches) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1. parallel atrous branches                                  k x (b, c/4, *spatial)
        features = [branch(x) for branch in self.branches]
        # 2. image-level features, the same at every pixel              (b, c/4, *spatial)
        pooled = self.image_pool(x)
        features.append(pooled.expand(*pooled.shape[:2], *x.shape[2:]))
        # 3. concatenate and project back                               (b, c, *spatial)
        return self.project(torch.cat(features, dim=1))


BOTTLENECKS: dict[Bottleneck, Callable[..., nn.Module]] = {  # (channels, cfg, grid=PLANE)
    Bottleneck.NONE: lambda channels, cfg, grid=PLANE: nn.Identity(),
    Bottleneck.ASPP: ASPP,
    Bottleneck.TRANSFORMER: lambda channels, cfg, grid=PLANE: TransformerBottleneck(channels, cfg),  # 2D only
}
