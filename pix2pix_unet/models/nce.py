"""CUT's projection head (Park et al., ECCV 2020): a small MLP per encoder layer that maps sampled feature
vectors into the space where PatchNCE (:func:`~pix2pix_unet.losses.unpaired.patch_nce_loss`) compares them."""

from __future__ import annotations

import torch
from torch import nn


class PatchProjector(nn.Module):
    """One ``Linear(C_l, dim) -> ReLU -> Linear(dim, dim)`` per layer of widths ``channels``.

    Shape:
        ``forward([(B, N, C_l) per layer])`` -> ``[(B, N, dim) per layer]``.
    """

    def __init__(self, channels: list[int], dim: int = 256) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim)) for c in channels)

    def forward(self, patches: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(patches) != len(self.heads):
            raise ValueError(f"PatchProjector has {len(self.heads)} heads, got {len(patches)} layers of patches")
        return [head(p) for head, p in zip(self.heads, patches)]


__all__ = ["PatchProjector"]
