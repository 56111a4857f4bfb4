"""The SPADE generator (Park et al. 2019): label map -> image, the label map re-injected at every scale.

Layout (``depth`` = n, widths doubling from ``base_channels`` up to ``max_channels``)::

    label map ─► nearest 1/2^n ─► conv ─► SPADEResBlock ─► up ─► … ─► SPADEResBlock ─► conv ─► image
                                              ▲                            ▲
                           label map at 1/2^n ┘       label map at 1/1 ───┘

There is no encoder: the image is painted from the label map alone, at the
coarsest scale first. Every residual block normalises its features without
learned parameters (``config.norm``: batch, instance, group or none) and then
modulates them with a per-pixel scale and shift computed from the label map
resized to the block's resolution (:class:`SPADE`), so the layout is not washed
out by the normalisation as it is in a UNet fed the one-hot map once.

With ``noise_channels > 0`` every sample draws a random vector that joins the
label map as extra constant channels at every SPADE norm (OASIS's 3D noise,
constant over the image): one layout then gives a different image per draw.

The input is the one-hot label map the translate task decodes
(``--task translate labels.format=index``), so ``in_channels`` is the number of classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import repeat
from torch import nn

from ..config import Architecture, ConfigError, FinalActivation, Norm, UNetConfig
from .blocks import apply_spectral_norm, conv3x3
from .generator import Generator, pad_to_multiple, register

_FINAL = {FinalActivation.TANH: nn.Tanh, FinalActivation.SIGMOID: nn.Sigmoid, FinalActivation.NONE: nn.Identity}


def param_free_norm(kind: Norm, channels: int) -> nn.Module:
    """The normalisation SPADE modulates: no learned scale or shift of its own."""
    if kind is Norm.BATCH:
        return nn.BatchNorm2d(channels, affine=False)
    if kind is Norm.INSTANCE:
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind is Norm.GROUP:
        return nn.GroupNorm(1, channels, affine=False)
    if kind is Norm.NONE:
        return nn.Identity()
    raise ConfigError(f"generator.norm={kind.value!r} cannot be used by SPADE (batch, instance, group or none)")


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: ``norm(x) * (1 + gamma(m)) + beta(m)``, ``m`` the label map at x's size.

    Args:
        channels: channels of the features ``x``.
        label_channels: channels of the conditioning map (classes + noise channels).
        hidden: channels of the shared conv on the label map.
        norm: the parameter-free normalisation.

    Shape:
        ``x (B, channels, h, w)``, ``label_map (B, label_channels, H, W)`` -> ``(B, channels, h, w)``;
        the label map is resized to ``(h, w)`` by nearest neighbour, so one-hot stays one-hot.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int, norm: Norm) -> None:
        super().__init__()
        self.norm = param_free_norm(norm, channels)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        # 1. the label map at the features' resolution                  (b, k, h, w)
        m = F.interpolate(label_map, size=x.shape[-2:], mode="nearest")
        # 2. per-pixel scale and shift from it                          (b, c, h, w) each
        hidden = self.shared(m)
        gamma, beta = self.gamma(hidden), self.beta(hidden)
        # 3. normalise, then modulate
        return self.norm(x) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """Two (SPADE, leaky ReLU, 3x3 conv) steps plus a shortcut, learned (SPADE, 1x1 conv) where channels change."""

    def __init__(self, in_channels: int, out_channels: int, label_channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm_0 = SPADE(in_channels, label_channels, cfg.spade_hidden, cfg.norm)
        self.conv_0 = conv3x3(in_channels, middle, bias=True)
        self.norm_1 = SPADE(middle, label_channels, cfg.spade_hidden, cfg.norm)
        self.conv_1 = conv3x3(middle, out_channels, bias=True)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, label_channels, cfg.spade_hidden, cfg.norm)
            self.conv_s = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.act = nn.LeakyReLU(0.2)
        if cfg.spectral_norm:  # on the block's own convs, as in the paper; the SPADE convs stay plain
            for conv in (self.conv_0, self.conv_1, *([self.conv_s] if self.learned_shortcut else [])):
                apply_spectral_norm(conv)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, label_map)) if self.learned_shortcut else x
        dx = self.conv_0(self.act(self.norm_0(x, label_map)))
        dx = self.conv_1(self.act(self.norm_1(dx, label_map)))
        return shortcut + dx


@register(Architecture.SPADE)
class SPADEGenerator(Generator):
    """SPADE generator for label map -> image translation; see the module docstring.

    Args:
        config: ``in_channels`` = classes of the one-hot label map; ``depth`` = the 2x upsamplings from the
            coarsest scale; ``base_channels``/``max_channels`` the widths; ``norm`` the parameter-free norm;
            ``spade_hidden``, ``noise_channels`` and ``spectral_norm`` as in :class:`~pix2pix_unet.config.UNetConfig`.

    Shape:
        - Input: ``(B, in_channels, H, W)`` for any ``H, W`` (padded to a multiple of ``2**depth``, cropped back).
        - Output: ``(B, out_channels, H, W)``.

    Examples:
        >>> net = SPADEGenerator(UNetConfig(architecture=Architecture.SPADE, in_channels=5, depth=3,
        ...                                 base_channels=8, max_channels=16, spade_hidden=8))
        >>> net(torch.randn(2, 5, 30, 45)).shape
        torch.Size([2, 3, 30, 45])
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = cfg = config
        width = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(cfg.depth + 1)]
        label_channels = cfg.in_channels + cfg.noise_channels
        self.stem = nn.Conv2d(label_channels, width[-1], 3, padding=1)
        # one block per scale, coarsest first; each maps its level's width to the next finer level's
        self.blocks = nn.ModuleList(
            SPADEResBlock(width[level], width[max(level - 1, 0)], label_channels, cfg)
            for level in range(cfg.depth, -1, -1)
        )
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(width[0], cfg.out_channels, 3, padding=1),
                                  _FINAL[cfg.final_activation]())

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``noise (B, noise_channels)``: the per-sample vectors; drawn from N(0, 1) when None."""
        cfg = self.config
        self.check_input(x, "one-hot label maps")
        # 1. pad to a multiple of 2**depth                               (b, k, H', W')
        h, w = x.shape[-2:]
        label_map = pad_to_multiple(x, cfg.factor)
        # 2. the conditioning: the label map, plus each sample's noise vector as constant channels
        if cfg.noise_channels:
            if noise is None:
                noise = torch.randn(x.shape[0], cfg.noise_channels, device=x.device, dtype=x.dtype)
            if tuple(noise.shape) != (x.shape[0], cfg.noise_channels):
                raise ValueError(f"noise must be ({x.shape[0]}, {cfg.noise_channels}), got {tuple(noise.shape)}")
            planes = repeat(noise, "b z -> b z h w", h=label_map.shape[-2], w=label_map.shape[-1])
            label_map = torch.cat([label_map, planes.to(label_map.dtype)], dim=1)  # (b, k + z, H', W')
        # 3. start from the label map at the coarsest scale              (b, c_n, H'/2^n, W'/2^n)
        coarse = [s // cfg.factor for s in label_map.shape[-2:]]
        out = self.stem(F.interpolate(label_map, size=coarse, mode="nearest"))
        # 4. a SPADE block per scale, doubling the resolution between them
        for i, block in enumerate(self.blocks):
            out = block(out, label_map)
            if i < len(self.blocks) - 1:
                out = F.interpolate(out, scale_factor=2, mode="nearest")
        # 5. to the image, crop the padding away                          (b, out, H, W)
        return self.head(out)[..., :h, :w]


__all__ = ["SPADE", "SPADEResBlock", "SPADEGenerator", "param_free_norm"]
