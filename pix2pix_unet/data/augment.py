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


class VolumeAugmentation(nn.Module):
    """Random flips along every axis and 90-degree turns in the (y, x) plane, the same for a volume, its label
    map and its float maps; with ``intensity``, a random gain and offset of the volume's values.

    The turns stay in-plane: with anisotropic voxels a turn through z would make a coarse axis fine. Elastic
    deformation in 3D is not done. Runs on the batch's device with the global torch RNG.

    Args:
        flip: flips along z, y and x, each with probability 0.5.
        turn: 90-degree in-plane turns (0-3, uniform); needs square patches.
        intensity: gain in [0.8, 1.2] and offset in [-0.1, 0.1] on the [-1, 1] values.

    Shape:
        ``(B, C, Z, Y, X), (B, Z, Y, X) int, (B, M, Z, Y, X)`` -> the same shapes.
    """

    def __init__(self, flip: bool, turn: bool, intensity: bool) -> None:
        super().__init__()
        self.flip, self.turn, self.intensity = flip, turn, intensity

    def forward(self, image: torch.Tensor, labels: torch.Tensor,
                maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for x, y, m in zip(image, labels, maps):  # (c, z, y, x), (z, y, x), (m, z, y, x)
            # 1. flips: axis -3, -2, -1 of every tensor are z, y, x
            if self.flip:
                axes = [a for a in (-3, -2, -1) if torch.rand(()) < 0.5]
                if axes:
                    x, y, m = x.flip(axes), y.flip(axes), m.flip(axes)
            # 2. a turn in the (y, x) plane
            if self.turn and x.shape[-1] == x.shape[-2]:
                k = int(torch.randint(4, ()))
                x, y, m = (t.rot90(k, (-2, -1)) for t in (x, y, m))
            # 3. gain and offset of the values
            if self.intensity:
                gain, offset = 0.8 + 0.4 * torch.rand(()), 0.2 * torch.rand(()) - 0.1
                x = x * gain.to(x.device) + offset.to(x.device)
            out.append((x, y, m))
        return tuple(torch.stack(parts) for parts in zip(*out))  # type: ignore[return-value]
