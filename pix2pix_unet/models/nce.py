"""CUT's projection head (Park et al., ECCV 2020): a small MLP per encoder layer that maps sampled feature
vectors into the space where PatchNCE (:func:`~pix2pix_unet.losses.unpaired.patch_nce_loss`) compares them."""

from __future__ import annotations

import torch
from torch import nn


def sample_locations(feature: torch.Tensor, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num`` distinct flat spatial locations of ``feature (B, C, H, W)`` (all of them, in order, when ``num``
    is at least ``H * W``), on the feature's device."""
    h, w = feature.shape[-2:]
    if num >= h * w:
        return torch.arange(h * w, device=feature.device)
    return torch.randperm(h * w, generator=generator)[:num].to(feature.device)


def gather_patches(feature: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The feature vectors of ``feature (B, C, H, W)`` at the flat locations ``ids (N,)``: ``(B, N, C)``."""
    return feature.flatten(2).transpose(1, 2)[:, ids]


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

    def pairs(self, source: list[torch.Tensor], output: list[torch.Tensor], layers: list[int], num_patches: int,
              generator: torch.Generator | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer of ``layers``: the projected ``(queries, keys)``, ``(B, N, dim)`` each, from the ``output``'s
        and the ``source``'s feature maps (the generator's encoder features of each) at the same ``num_patches``
        random locations."""
        keys, queries = [], []
        for layer in layers:
            where = sample_locations(source[layer], num_patches, generator)
            keys.append(gather_patches(source[layer], where))
            queries.append(gather_patches(output[layer], where))
        return list(zip(self(queries), self(keys)))


__all__ = ["PatchProjector", "gather_patches", "sample_locations"]
