"""One pix2pix optimisation step: a discriminator update, then a generator update.

``train_step`` holds no state of its own: it takes the nets, their optimisers and
a batch, and returns its losses (detached) for logging.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import nn

from ..config import LossConfig
from ..losses import discriminator_loss, generator_adversarial_loss, l1_loss
from .faults import restore_buffers, snapshot_buffers, update_is_finite


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def generator_losses(
    discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, cfg: LossConfig
) -> dict[str, torch.Tensor]:
    """G's losses: fool D on its pair, and stay close to the target in L1."""
    adversarial = generator_adversarial_loss(discriminator(inputs, fake), cfg.gan)
    l1 = l1_loss(fake, target)
    total = cfg.gan_weight * adversarial + cfg.l1_weight * l1
    return {"g_total": total, "g_gan": adversarial, "g_l1": l1}


def discriminator_losses(
    discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, cfg: LossConfig
) -> dict[str, torch.Tensor]:
    """D's loss on real and (detached) fake pairs, judged in one forward pass.

    One pass over the stacked batch (not two) keeps DistributedDataParallel to a
    single forward per backward.
    """
    pairs_in = torch.cat([inputs, inputs])
    pairs_out = torch.cat([target, fake.detach()])
    real_logits, fake_logits = discriminator(pairs_in, pairs_out).chunk(2)
    loss = discriminator_loss(real_logits, fake_logits, cfg.gan)
    return {
        "d_total": cfg.gan_weight * loss,
        "d_real": real_logits.detach().mean(),
        "d_fake": fake_logits.detach().mean(),
    }


def train_step(
    accelerator: Accelerator,
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    inputs: torch.Tensor,
    target: torch.Tensor,
    cfg: LossConfig,
) -> dict[str, torch.Tensor]:
    """Update D, then G, on one batch; returns every loss, detached, plus ``skipped``.

    Under ``accelerator.accumulate`` the optimisers only step (and zero) on
    gradient-sync micro-batches, so accumulation needs nothing here.

    An update whose loss or gradients hold a NaN or inf is not applied (its
    gradients are dropped); ``skipped`` is then 1.0 instead of 0.0, and both nets'
    running statistics are put back as they were before this batch.
    """
    buffers = snapshot_buffers(generator, discriminator)

    # 1. generate                                                 (b, c_out, h, w)
    with accelerator.autocast():
        fake = generator(inputs)

    # 2. discriminator step on real and fake pairs
    set_requires_grad(discriminator, True)
    with accelerator.autocast():
        d_losses = discriminator_losses(discriminator, inputs, fake, target, cfg)
    accelerator.backward(d_losses["d_total"])
    d_applied = update_is_finite(accelerator, d_losses.values(), discriminator)
    if d_applied:
        opt_d.step()
    opt_d.zero_grad(set_to_none=True)

    # 3. generator step through a frozen D; the unwrapped D skips DDP's gradient hooks
    set_requires_grad(discriminator, False)
    with accelerator.autocast():
        g_losses = generator_losses(accelerator.unwrap_model(discriminator), inputs, fake, target, cfg)
    accelerator.backward(g_losses["g_total"])
    g_applied = update_is_finite(accelerator, g_losses.values(), generator)
    if g_applied:
        opt_g.step()
    opt_g.zero_grad(set_to_none=True)
    set_requires_grad(discriminator, True)
    if not (d_applied and g_applied):
        restore_buffers(buffers)

    skipped = torch.tensor(float(not (d_applied and g_applied)))
    return {**{k: v.detach() for k, v in {**d_losses, **g_losses}.items()}, "skipped": skipped}
