"""Zero-shot denoising: ``pix2pix-unet denoise --zero-shot IMAGE``, for one noisy image and no training set.

A :class:`~pix2pix_unet.models.tiny.TinyDenoiser` is fitted to the image itself with ZS-N2N's loss
(:func:`~pix2pix_unet.losses.self_supervised.zero_shot_loss`), which needs neither a clean image nor the noise
level, then denoises it whole. The image is scaled to [0, 1] by its own min..max (8-bit, 16-bit or float) and the
output is written back in the input's units and dtype. Noise must be independent from pixel to pixel: the
residual diagnostics (:func:`~pix2pix_unet.metrics.residual.residual_diagnostics`) say when it is not.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from .config import ZeroShotConfig
from .io import DatasetError, read_image, write_image
from .losses.self_supervised import zero_shot_loss
from .metrics.residual import residual_diagnostics, residual_warnings
from .models.tiny import TinyDenoiser

WARMUP_STEPS = 10  # timed before the step count is fitted to the time limit
LIMIT_SHARE = 0.9  # of the time limit, for the steps; the rest is reading, the last pass and writing


@dataclass
class ZeroShotResult:
    """What one image's fit did: its steps and seconds, and the residual diagnostics."""

    path: Path
    output: Path
    steps: int
    seconds: float
    loss: float
    diagnostics: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"input": str(self.path), "output": str(self.output), "steps": self.steps,
                "seconds": round(self.seconds, 2), "loss": self.loss, **self.diagnostics, "warnings": self.warnings}


def _windows(image: torch.Tensor, crop: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` random ``crop`` x ``crop`` windows of ``image (1, C, H, W)`` (the whole image when it is no
    larger, or ``crop`` is 0), at even offsets so each window's 2 x 2 cells are the image's."""
    _, _, h, w = image.shape
    if crop == 0 or (h <= crop and w <= crop):
        return image
    ch, cw = min(crop, h), min(crop, w)
    ys = torch.randint(0, (h - ch) // 2 + 1, (batch,), generator=generator) * 2
    xs = torch.randint(0, (w - cw) // 2 + 1, (batch,), generator=generator) * 2
    return torch.cat([image[..., y: y + ch, x: x + cw] for y, x in zip(ys.tolist(), xs.tolist())])


def _dihedral_mean(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of ``net`` over the 8 flips and 90-degree rotations of ``x``, each turned back."""
    outs = []
    for k in range(4):
        for flip in (False, True):
            y = torch.rot90(x, k, (-2, -1))
            y = y.flip(-1) if flip else y
            y = net(y)
            y = y.flip(-1) if flip else y
            outs.append(torch.rot90(y, -k, (-2, -1)))
    return torch.stack(outs).mean(0)


def fit(noisy: torch.Tensor, cfg: ZeroShotConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Fit a tiny denoiser to ``noisy (1, C, H, W)`` (on a [0, 1] scale) and return its output ``(1, C, H, W)``
    with ``{"steps", "seconds", "loss"}``.

    The rate is ``cfg.lr`` for the first half of the steps and half of it after (ZS-N2N's schedule). With a time
    limit, the first ``WARMUP_STEPS`` are timed and the steps lowered to what fits ``LIMIT_SHARE`` of it.
    """
    cfg.validate()
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    net = TinyDenoiser(noisy.shape[1], cfg.width)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    start, steps, step, loss = time.perf_counter(), cfg.steps, 0, torch.zeros(())
    while step < steps:
        for group in optimiser.param_groups:
            group["lr"] = cfg.lr * (0.5 if step >= steps // 2 else 1.0)
        loss = zero_shot_loss(net, _windows(noisy, cfg.crop, cfg.batch, generator))["total"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        if step == WARMUP_STEPS and cfg.time_limit_s is not None:
            per_step = (time.perf_counter() - start) / step
            steps = min(steps, max(step, math.floor(cfg.time_limit_s * LIMIT_SHARE / per_step)))
    with torch.no_grad():
        out = (_dihedral_mean(net, noisy) if cfg.tta else net(noisy)).clamp(0, 1)
    return out, {"steps": step, "seconds": time.perf_counter() - start, "loss": float(loss.detach())}


def _to_unit(pixels: np.ndarray, path: Path) -> tuple[torch.Tensor, float, float]:
    """``(H, W, C)`` pixels -> ``(1, C, H, W)`` on [0, 1] by the image's own min..max, and that min and max."""
    values = pixels.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    if not high > low:
        raise DatasetError(f"{path} is constant ({low:g} everywhere): there is nothing to denoise")
    return rearrange(torch.from_numpy((values - low) / (high - low)), "h w c -> 1 c h w"), low, high


def _from_unit(unit: torch.Tensor, low: float, high: float, dtype: np.dtype) -> np.ndarray:
    """``(1, C, H, W)`` on [0, 1] -> ``(H, W, C)`` pixels of ``dtype`` in the input's units."""
    values = rearrange(unit, "1 c h w -> h w c").numpy() * (high - low) + low
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def denoise_file(path: Path, output: Path, cfg: ZeroShotConfig) -> ZeroShotResult:
    """Denoise the image at ``path`` on its own and write the result to ``output`` in the input's dtype.

    Raises:
        DatasetError: the file cannot be read, is too small (under 4 x 4 px) or is constant; names it.
    """
    image = read_image(path)
    h, w, _ = image.pixels.shape
    if min(h, w) < 4:
        raise DatasetError(f"{path} is {w}x{h} px: zero-shot denoising needs at least 4 x 4")
    noisy, low, high = _to_unit(image.pixels, path)
    denoised, info = fit(noisy, cfg)
    write_image(output, _from_unit(denoised, low, high, image.pixels.dtype))
    diagnostics = residual_diagnostics(noisy[0], denoised[0])
    result = ZeroShotResult(path, output, int(info["steps"]), info["seconds"], info["loss"], diagnostics)
    if cfg.time_limit_s is not None and info["steps"] < cfg.steps:
        result.warnings.append(f"{path}: the {cfg.time_limit_s:g}-s limit allowed {info['steps']} of "
                               f"{cfg.steps} steps (raise --time-limit, or lower --crop)")
    result.warnings += residual_warnings(str(path), diagnostics)
    return result


__all__ = ["ZeroShotResult", "denoise_file", "fit"]
