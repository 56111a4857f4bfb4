"""How fast this machine trains the run's generator: the pixels a second one training step gets through.

The crop and batch rule (:func:`~.rules.crop_and_depth`) sizes each step so that the time budget affords
enough steps. What a step costs depends on the generator (a NAFNet level costs many times a pix2pix
level), on the CPU or GPU, and on its threads, so it is measured here rather than assumed: a few
forward and backward passes of the user's generator on random images, timed after one warm-up pass.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from ..config import UNetConfig
from ..models import build_generator

SIDE, BATCH = 128, 2  # the probe's images: large enough that per-pixel work dominates the per-call overhead
PROBE_DEPTH = 5  # deeper levels at 128 px would reach 2 px; they cost next to nothing anyway
TIMED = 2  # passes timed after the warm-up one


def pixels_per_second(generator: UNetConfig, in_channels: int, device: str | torch.device | None = None) -> float:
    """Pixels a second of training (forward, an L1 loss, backward, Adam) of ``generator`` on ``device`` (the
    GPU training would use, else the CPU, with the threads training will use)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = dataclasses.replace(generator, in_channels=in_channels, depth=min(generator.depth, PROBE_DEPTH))
    net = build_generator(cfg, pretrained=False).to(device).train()
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x = torch.randn(BATCH, in_channels, SIDE, SIDE, device=device)
    seconds = []
    for _ in range(1 + TIMED):
        start = time.perf_counter()
        out = net(x)
        loss = (out if isinstance(out, torch.Tensor) else out[0]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return BATCH * SIDE * SIDE / min(seconds[1:])


__all__ = ["pixels_per_second"]
