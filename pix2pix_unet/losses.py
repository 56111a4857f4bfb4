"""Losses as pure functions of logits and images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import GanLoss


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: GanLoss) -> torch.Tensor:
    """The discriminator's loss: real pairs towards "real", generated pairs towards "fake".

    Halved for vanilla and LSGAN as in pix2pix, so D learns more slowly than G.
    """
    if kind is GanLoss.HINGE:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return 0.5 * (_towards(real_logits, True, kind) + _towards(fake_logits, False, kind))


def generator_adversarial_loss(fake_logits: torch.Tensor, kind: GanLoss) -> torch.Tensor:
    """The generator's adversarial loss: its pairs judged "real"."""
    if kind is GanLoss.HINGE:
        return -fake_logits.mean()
    return _towards(fake_logits, True, kind)


def _towards(logits: torch.Tensor, real: bool, kind: GanLoss) -> torch.Tensor:
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if kind is GanLoss.VANILLA:
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(logits, target)


def l1_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(fake, real)
