"""One pix2pix optimisation step: a discriminator update, then a generator update.

``train_step`` holds no state of its own: it takes the nets, their optimisers and
a batch, and returns its losses (detached) for logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from torch import nn

from ..config import LossConfig
from ..losses import discriminator_loss, generator_adversarial_loss, l1_loss


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


class Objective(Protocol):
    """What D and G minimise; a task (``pix2pix_unet/tasks``) brings its own. ``target`` is
    whatever the task's batches carry. Returning no D losses leaves D untouched."""

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: Any) -> dict[str, torch.Tensor]: ...

    def generator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                         target: Any) -> dict[str, torch.Tensor]: ...


@dataclass
class Pix2PixObjective:
    """The pix2pix losses above: GAN + L1 to the target image."""

    cfg: LossConfig

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        return discriminator_losses(discriminator, inputs, fake, target, self.cfg)

    def generator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                         target: torch.Tensor) -> dict[str, torch.Tensor]:
        return generator_losses(discriminator, inputs, fake, target, self.cfg)


def train_step(
    accelerator: Accelerator,
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    inputs: torch.Tensor,
    target: Any,
    cfg: LossConfig,
    objective: Objective | None = None,
) -> dict[str, torch.Tensor]:
    """Update D, then G, on one batch; returns every loss, detached.

    ``objective`` defaults to the pix2pix losses with ``cfg``. Under
    ``accelerator.accumulate`` the optimisers only step (and zero) on
    gradient-sync micro-batches, so accumulation needs nothing here.
    """
    objective = objective or Pix2PixObjective(cfg)
    # 1. generate                                                 (b, c_out, h, w)
    with accelerator.autocast():
        fake = generator(inputs)

    # 2. discriminator step on real and fake pairs
    set_requires_grad(discriminator, True)
    with accelerator.autocast():
        d_losses = objective.discriminator_losses(discriminator, inputs, fake, target)
    if d_losses:
        accelerator.backward(d_losses["d_total"])
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)

    # 3. generator step through a frozen D; the unwrapped D skips DDP's gradient hooks
    set_requires_grad(discriminator, False)
    with accelerator.autocast():
        g_losses = objective.generator_losses(accelerator.unwrap_model(discriminator), inputs, fake, target)
    accelerator.backward(g_losses["g_total"])
    opt_g.step()
    opt_g.zero_grad(set_to_none=True)
    set_requires_grad(discriminator, True)

    return {k: v.detach() for k, v in {**d_losses, **g_losses}.items()}
