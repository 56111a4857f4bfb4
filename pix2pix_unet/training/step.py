"""One pix2pix optimisation step: discriminator update(s), then a generator update.

``train_step`` holds no state of its own: it takes the nets, their optimisers and
a batch, and returns its losses (detached) for logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from accelerate import Accelerator
from torch import nn

from ..config import LossConfig
from ..losses import (
    PENALISED, discriminator_loss, feature_matching_loss, generator_adversarial_loss, gradient_penalty, interpolate,
    l1_loss, perceptual_loss,
)
from .faults import guarded_step, restore_buffers, snapshot_buffers


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def generator_losses(
    discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, cfg: LossConfig,
    features: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """G's losses: fool D on its pair, stay close to the target in L1, with ``fm_weight`` in D's features
    and, with ``vgg_weight`` and ``features`` (:class:`~pix2pix_unet.models.vgg.VGGFeatures`), in VGG's.

    ``discriminator`` is the unwrapped :class:`~pix2pix_unet.models.Discriminator`.
    """
    fake_features = discriminator.features(inputs, fake)
    adversarial = generator_adversarial_loss([scale[-1] for scale in fake_features], cfg.gan)
    l1 = l1_loss(fake, target)
    total = cfg.gan_weight * adversarial + cfg.l1_weight * l1
    losses = {"g_total": total, "g_gan": adversarial, "g_l1": l1}
    if cfg.fm_weight > 0:
        with torch.no_grad():  # the real pair's features are the fixed target
            real_features = discriminator.features(inputs, target)
        losses["g_fm"] = feature_matching_loss(real_features, fake_features)
        losses["g_total"] = losses["g_total"] + cfg.fm_weight * losses["g_fm"]
    if features is not None and cfg.vgg_weight > 0:
        losses["g_vgg"] = perceptual_loss(features, fake, target)
        losses["g_total"] = losses["g_total"] + cfg.vgg_weight * losses["g_vgg"]
    return losses


def discriminator_losses(
    discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor, target: torch.Tensor, cfg: LossConfig
) -> dict[str, torch.Tensor]:
    """D's loss on real and (detached) fake pairs.

    Real and fake pairs go through D in separate forward passes, as in pix2pix:
    a batch-norm D must never normalise real and fake images together, or it can
    tell them apart by their batch statistics. For ``wgan-gp`` the interpolates
    between real and fake images get a third pass, and the gradient penalty on
    them is added with weight ``gp_weight``.
    """
    # 1. judge each kind of pair on its own                        [(b, 1, h', w') per scale]
    images = {"real": target, "fake": fake.detach()}
    penalised = cfg.gan in PENALISED
    if penalised:
        images["interpolated"] = interpolate(target, fake.detach()).requires_grad_(True)
    logits = {kind: discriminator(inputs, image) for kind, image in images.items()}
    # 2. the adversarial loss, averaged over scales
    loss = discriminator_loss(logits["real"], logits["fake"], cfg.gan)
    losses = {
        "d_total": cfg.gan_weight * loss,
        "d_real": torch.stack([r.detach().mean() for r in logits["real"]]).mean(),
        "d_fake": torch.stack([f.detach().mean() for f in logits["fake"]]).mean(),
    }
    # 3. WGAN-GP: penalise the critic's gradient norm at the interpolates
    if penalised:
        losses["d_gp"] = gradient_penalty(logits["interpolated"], images["interpolated"])
        losses["d_total"] = losses["d_total"] + cfg.gp_weight * losses["d_gp"]
    return losses


class Objective(Protocol):
    """What D and G minimise; a task (``pix2pix_unet/tasks``) brings its own. ``target`` is
    whatever the task's batches carry. Returning no D losses leaves D untouched.

    An objective whose ``deep_supervision`` attribute is true gets, besides the output
    ``fake``, every output head of the generator: ``generator_losses(..., heads=[...])``
    (see :class:`~pix2pix_unet.models.MultiHeadGenerator`).
    """

    deep_supervision: bool

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: Any) -> dict[str, torch.Tensor]: ...

    def generator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                         target: Any) -> dict[str, torch.Tensor]: ...


@dataclass
class Pix2PixObjective:
    """The pix2pix losses above: GAN + L1 to the target image (+ feature matching, + VGG with ``features``)."""

    cfg: LossConfig
    features: nn.Module | None = None  # VGGFeatures, when loss.vgg_weight > 0 (the translate task loads it)
    deep_supervision = False  # the output alone; no heads

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        return discriminator_losses(discriminator, inputs, fake, target, self.cfg)

    def generator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                         target: torch.Tensor) -> dict[str, torch.Tensor]:
        return generator_losses(discriminator, inputs, fake, target, self.cfg, self.features)


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
    # 1. generate; with deep supervision also every head's output  (b, c_out, h, w) [+ heads x (b, c_out, h, w)]
    deep = objective.deep_supervision
    with accelerator.autocast():
        fake, heads = generator(inputs, deep=True) if deep else (generator(inputs), None)
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
