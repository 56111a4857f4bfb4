"""One pix2pix optimisation step: discriminator update(s), then a generator update.

``train_step`` holds no state of its own: it takes the nets, their optimisers and
a batch, and returns its losses (detached) for logging.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from accelerate import Accelerator
from torch import nn

from ..config import LossConfig
from ..losses.objective import Objective, Pix2PixObjective
from .faults import guarded_step, restore_buffers, snapshot_buffers


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def train_step(
    accelerator: Accelerator,
    generator: nn.Module,
    discriminator: nn.Module | None,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    inputs: torch.Tensor,
    target: Any,
    cfg: LossConfig,
    d_steps: int = 1,
    on_phase: Callable[[str], None] | None = None,
    objective: Objective | None = None,
) -> dict[str, torch.Tensor]:
    """Update D ``d_steps`` times, then G once, on one batch; returns every loss, detached, plus ``skipped``.

    The D losses returned are those of the last D update. ``objective`` defaults
    to the pix2pix losses with ``cfg``. Under ``accelerator.accumulate`` the
    optimisers only step (and zero) on gradient-sync micro-batches, so
    accumulation needs nothing here (the config refuses ``d_steps > 1`` with
    accumulation).

    An update whose loss or gradients hold a NaN or inf is not applied (its
    gradients are dropped); ``skipped`` is then 1.0 instead of 0.0, and both nets'
    running statistics are put back as they were before this batch. With fused
    Adam all of this happens on the device: the step never waits for it
    (:func:`~pix2pix_unet.training.faults.guarded_step`).

    ``on_phase(name)``, if given, is called as each phase ends ("generate",
    "discriminator", "generator"); the benchmarks time the phases with it.
    """
    objective = objective or Pix2PixObjective(cfg)
    mark = on_phase or (lambda name: None)
    nets = [m for m in (generator, discriminator) if m is not None]
    buffers = snapshot_buffers(*nets)
    # 0. what the objective needs from G before the update, without gradient (Neighbor2Neighbor: G's output on
    #    the whole noisy image); most objectives need nothing
    with accelerator.autocast():
        target = objective.prepare_target(generator, target)
    # 1. generate; with deep supervision also every head's output  (b, c_out, h, w) [+ heads x (b, c_out, h, w)]
    deep = objective.deep_supervision
    with accelerator.autocast():
        fake, heads = objective.generate(generator, inputs, target)
    mark("generate")

    # 2. discriminator step(s) on real and fake pairs (none without a D: an objective with no adversarial term)
    d_skipped = torch.zeros((), device=accelerator.device)
    d_losses: dict[str, torch.Tensor] = {}
    if discriminator is not None:
        set_requires_grad(discriminator, True)
    for _ in range(d_steps if discriminator is not None else 0):
        with accelerator.autocast():
            d_losses = objective.discriminator_losses(discriminator, inputs, fake, target)
        if not d_losses:  # an objective without an adversarial term leaves D alone
            break
        accelerator.backward(d_losses["d_total"])
        d_skipped = torch.maximum(d_skipped, guarded_step(accelerator, opt_d, d_losses.values(), discriminator))
        opt_d.zero_grad(set_to_none=True)
    mark("discriminator")

    # 3. generator step through a frozen D; the unwrapped D skips DDP's gradient hooks
    frozen = accelerator.unwrap_model(discriminator) if discriminator is not None else None
    if discriminator is not None:
        set_requires_grad(discriminator, False)
    with accelerator.autocast():
        g_losses = (objective.generator_losses(frozen, inputs, fake, target, heads=heads) if deep
                    else objective.generator_losses(frozen, inputs, fake, target))
    accelerator.backward(g_losses["g_total"])
    g_skipped = guarded_step(accelerator, opt_g, g_losses.values(), generator)
    opt_g.zero_grad(set_to_none=True)
    if discriminator is not None:
        set_requires_grad(discriminator, True)
    skipped = torch.maximum(d_skipped, g_skipped)
    restore_buffers(buffers, where=skipped)
    mark("generator")

    return {**{k: v.detach() for k, v in {**d_losses, **g_losses}.items()}, "skipped": skipped}
