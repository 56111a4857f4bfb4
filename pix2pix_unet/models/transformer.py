"""The transformer bottleneck (TransUNet, Chen et al. 2021): ViT blocks over the deepest feature map.

Every pixel of the UNet's deepest map becomes a token; a position embedding
says where it is; ``depth`` pre-norm blocks (multi-head self-attention, then an
MLP, each with a residual) mix information across the whole image; the tokens
are folded back into a map. Position embeddings live on a fixed ``grid`` x
``grid`` lattice and are resampled to the token grid at hand, so the model runs
at any image size (as ViTs fine-tuned at a new resolution do, but on every call).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..config import PositionEmbedding, TransformerConfig, UNetConfig, check_token_width


def grid_coordinates(size: int, grid: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Centres of ``size`` cells spanning ``grid`` lattice cells, in lattice units: ``0 .. grid - 1`` when
    ``size == grid``. The same sampling as bilinear resizing with ``align_corners=False``."""
    return (torch.arange(size, device=device, dtype=dtype) + 0.5) * (grid / size) - 0.5


def sinusoidal_embedding(dim: int, h: int, w: int, grid: int, device: torch.device,
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """2D sin-cos position embedding ``(1, dim, h, w)`` (MAE's): a quarter of the channels each for
    ``sin y``, ``cos y``, ``sin x``, ``cos x`` at geometric frequencies, positions in ``grid`` units."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, device=device, dtype=dtype) / quarter)  # (d/4,)
    y = grid_coordinates(h, grid, device, dtype)[:, None] * omega  # (h, d/4)
    x = grid_coordinates(w, grid, device, dtype)[:, None] * omega  # (w, d/4)
    # 1. one embedding per row and per column                   (d/2, h), (d/2, w)
    rows = rearrange(torch.cat([y.sin(), y.cos()], dim=1), "h d -> d h")
    cols = rearrange(torch.cat([x.sin(), x.cos()], dim=1), "w d -> d w")
    # 2. broadcast to the grid and stack                         (1, d, h, w)
    rows = rows[:, :, None].expand(-1, -1, w)
    cols = cols[:, None, :].expand(-1, h, -1)
    return torch.cat([rows, cols], dim=0)[None]


class PositionEmbedding2d(nn.Module):
    """Where each token is, ``(1, dim, h, w)`` for any ``h, w``: a learned ``grid`` x ``grid`` table
    resized bilinearly, or fixed sin-cos of the same lattice coordinates."""

    def __init__(self, dim: int, cfg: TransformerConfig) -> None:
        super().__init__()
        self.dim, self.grid, self.kind = dim, cfg.grid, cfg.position
        self.table: nn.Parameter | None = None
        if cfg.position is PositionEmbedding.LEARNED:
            self.table = nn.Parameter(torch.zeros(1, dim, cfg.grid, cfg.grid))
            nn.init.trunc_normal_(self.table, std=0.02)  # ViT's init

    def forward(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return sinusoidal_embedding(self.dim, h, w, self.grid, like.device, like.dtype)
        return F.interpolate(self.table, size=(h, w), mode="bilinear", align_corners=False)


class Attention(nn.Module):
    """Multi-head self-attention with ``scaled_dot_product_attention`` (a fused kernel where there is one)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1. queries, keys, values per head                          3 x (b, heads, n, d/heads)
        q, k, v = rearrange(self.qkv(x), "b n (three heads d) -> three b heads n d", three=3, heads=self.heads)
        # 2. softmax(q k^T / sqrt(d)) v                               (b, heads, n, d/heads)
        y = F.scaled_dot_product_attention(q, k, v)
        # 3. heads side by side, mixed                                (b, n, d)
        return self.out(rearrange(y, "b heads n d -> b n (heads d)"))


class TransformerBlock(nn.Module):
    """Pre-norm ViT block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = max(1, round(dim * mlp_ratio))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))  # (b, n, d)
        return x + self.mlp(self.norm2(x))  # (b, n, d)


class TransformerBottleneck(nn.Module):
    """TransUNet's encoder transformer at the deepest level of a UNet: a ``(B, C, h, w)`` map in and out.

    Args:
        channels: channels of the deepest feature map.
        cfg: the generator's config; ``cfg.transformer`` sets depth, heads, width and positions.

    Shape:
        - Input: ``(B, channels, h, w)``, any ``h, w`` (``h * w`` tokens).
        - Output: ``(B, channels, h, w)``.
    """

    def __init__(self, channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        t = cfg.transformer
        dim = t.dim or channels
        check_token_width(t, dim, "generator.transformer",
                          "generator.transformer.dim" if t.dim else "the deepest level's channels")
        self.project_in = nn.Conv2d(channels, dim, 1) if dim != channels else nn.Identity()
        self.position = PositionEmbedding2d(dim, t)
        self.blocks = nn.ModuleList(TransformerBlock(dim, t.heads, t.mlp_ratio) for _ in range(t.depth))
        self.norm = nn.LayerNorm(dim)
        self.project_out = nn.Conv2d(dim, channels, 1) if dim != channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # 1. to the token width, plus where each token is           (b, d, h, w)
        x = self.project_in(x)
        x = x + self.position(h, w, x)
        # 2. one token per pixel, through the blocks                (b, h*w, d)
        tokens = rearrange(x, "b d h w -> b (h w) d")
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        # 3. back to a map at the input's width                     (b, c, h, w)
        return self.project_out(rearrange(tokens, "b (h w) d -> b d h w", h=h, w=w))


__all__ = ["TransformerBottleneck", "TransformerBlock", "Attention", "PositionEmbedding2d", "sinusoidal_embedding",
           "grid_coordinates"]
