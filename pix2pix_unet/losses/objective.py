"""The pix2pix objective: what D and G minimise, as pure functions of the nets' outputs.

A task brings its own :class:`Objective` (segment's adds Dice and a weight map,
restore's its pixel and perceptual losses); the training step
(:func:`~pix2pix_unet.training.step.train_step`) only calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..config import LossConfig
from .adversarial import (
    PENALISED, discriminator_loss, feature_matching_loss, generator_adversarial_loss, gradient_penalty, interpolate,
    l1_loss, perceptual_loss,
)


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

    def generate(self, generator: nn.Module, inputs: torch.Tensor, target: Any) -> tuple[Any, Any]:
        """The training forward: ``(output, heads)``; ``output`` is what the losses receive as ``fake`` (a
        tensor, or whatever the objective's own forward returns), ``heads`` None without deep supervision."""
        ...

    def prepare_target(self, generator: nn.Module, target: Any) -> Any:
        """Called before each update: the target with what the losses need from the generator (computed without
        gradient); most objectives return it as it is."""
        ...

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

    def generate(self, generator: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, None]:
        return generator(inputs), None

    def prepare_target(self, generator: nn.Module, target: torch.Tensor) -> torch.Tensor:
        return target

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        return discriminator_losses(discriminator, inputs, fake, target, self.cfg)

    def generator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                         target: torch.Tensor) -> dict[str, torch.Tensor]:
        return generator_losses(discriminator, inputs, fake, target, self.cfg, self.features)


__all__ = ["Objective", "Pix2PixObjective", "discriminator_losses", "generator_losses"]
