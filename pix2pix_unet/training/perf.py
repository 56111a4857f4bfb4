"""Speed options applied to the nets, optimisers and batches (see :class:`~pix2pix_unet.config.PerfConfig`)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..config import PerfConfig


def compile_enabled(cfg: PerfConfig, device: torch.device) -> bool:
    """``perf.compile`` if set, else on for CUDA (where it pays back its compile time) and off elsewhere."""
    return cfg.compile if cfg.compile is not None else device.type == "cuda"


def resolve(cfg: PerfConfig, device: torch.device) -> PerfConfig:
    """``cfg`` with every automatic (None) option decided for ``device``.

    On CPU both channels-last and inductor made the pix2pix step slower
    (benchmarks/bench_train.py --compare-plain: 1.11x and 1.16x the plain eager
    step's time), so automatic means CUDA only.
    """
    on_cuda = device.type == "cuda"
    return PerfConfig(
        channels_last=cfg.channels_last if cfg.channels_last is not None else on_cuda,
        compile=compile_enabled(cfg, device),
        fused_adam=cfg.fused_adam,
    )


def speed_up_modules(modules: Iterable[nn.Module], cfg: PerfConfig, device: torch.device) -> None:
    """Convert to channels-last and compile in place (``nn.Module.compile`` keeps state_dict keys and types,
    so checkpoints and exports do not depend on these options)."""
    cfg = resolve(cfg, device)
    for module in modules:
        if cfg.channels_last:
            module.to(memory_format=torch.channels_last)
        if compile_enabled(cfg, device):
            module.compile()


def to_memory_format(x: torch.Tensor, cfg: PerfConfig) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last and x.ndim == 4 else x


def adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float], cfg: PerfConfig) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where asked (supported on CPU and CUDA)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=cfg.fused_adam or None)
