"""Paired augmentation on the device: input and target always get the same geometry."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn


class PairedAugmentation(nn.Module):
    """Random crop and horizontal flip applied identically to both sides of a pair.

    Built on kornia's ``AugmentationSequential`` with two ``input`` keys, so one
    set of sampled parameters drives both tensors; it runs on whatever device the
    batch is on.

    Args:
        crop_size: square crop, or None to keep the size.
        flip: random horizontal flips.

    Shape:
        ``(B, Ca, H, W), (B, Cb, H, W)`` -> ``(B, Ca, h, w), (B, Cb, h, w)``.
    """

    def __init__(self, crop_size: int | None, flip: bool) -> None:
        super().__init__()
        ops: list[nn.Module] = []
        if crop_size is not None:
            ops.append(K.RandomCrop((crop_size, crop_size)))
        if flip:
            ops.append(K.RandomHorizontalFlip())
        self.crop_size = crop_size
        self.pipeline = K.AugmentationSequential(*ops, data_keys=["input", "input"]) if ops else None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pipeline is None:
            return a, b
        if self.crop_size is not None and min(a.shape[-2:]) < self.crop_size:
            raise ValueError(f"crop_size={self.crop_size} is larger than the images ({a.shape[-2]}x{a.shape[-1]})")
        out_a, out_b = self.pipeline(a, b)
        return out_a, out_b
