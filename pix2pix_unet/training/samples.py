"""Sample grids: one row per example, input | output | target."""

from __future__ import annotations

from pathlib import Path

import torch
from einops import rearrange
from torchvision.utils import make_grid, save_image


def to_display(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> (B, 3, H, W) in [0, 1]: gray repeated, extra channels dropped."""
    x = x.float().clamp(-1, 1).add(1).div(2)
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    return x[:, :3] if x.shape[1] >= 3 else torch.cat([x, x[:, -1:].expand(-1, 3 - x.shape[1], -1, -1)], dim=1)


def sample_grid(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A (3, H', W') grid with a row per example and the columns input | output | target."""
    columns = torch.stack([to_display(inputs), to_display(outputs), to_display(targets)], dim=1)  # (b, 3, c, h, w)
    return make_grid(rearrange(columns, "b k c h w -> (b k) c h w"), nrow=3, padding=2, pad_value=1.0)


def save_sample_grid(path: Path, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(sample_grid(inputs.cpu(), outputs.cpu(), targets.cpu()), str(path))
    return path
