"""Losses, as pure functions of tensors: adversarial and pixel losses (:mod:`.adversarial`), the pix2pix
objective a task plugs into the training step (:mod:`.objective`), and segmentation's (:mod:`.segment`)."""

from .adversarial import (
    PENALISED, charbonnier_loss, discriminator_loss, feature_matching_loss, generator_adversarial_loss,
    gradient_penalty, interpolate, l1_loss, perceptual_loss,
)
from .objective import Objective, Pix2PixObjective, discriminator_losses, generator_losses

__all__ = ["PENALISED", "Objective", "Pix2PixObjective", "charbonnier_loss", "discriminator_loss",
           "discriminator_losses", "feature_matching_loss", "generator_adversarial_loss", "generator_losses",
           "gradient_penalty", "interpolate", "l1_loss", "perceptual_loss"]
