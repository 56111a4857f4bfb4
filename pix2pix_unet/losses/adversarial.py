"""Losses as pure functions of logits, features and images.

The GAN losses take one logits tensor or a list of them, one per discriminator
scale, and average over the scales.
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F

from ..config import GanLoss

Logits = Union[torch.Tensor, Sequence[torch.Tensor]]


def discriminator_loss(real_logits: Logits, fake_logits: Logits, kind: GanLoss) -> torch.Tensor:
    """The discriminator's loss: real pairs towards "real", generated pairs towards "fake".

    Halved for vanilla and LSGAN as in pix2pix, so D learns more slowly than G.
    For ``wgan-gp`` this is the critic's Wasserstein term only; the gradient
    penalty is :func:`gradient_penalty`, added by the training step.
    """
    reals, fakes = _scales(real_logits), _scales(fake_logits)
    if len(reals) != len(fakes):
        raise ValueError(f"real logits have {len(reals)} scales but fake logits {len(fakes)}")
    return torch.stack([_D_LOSSES[kind](r, f) for r, f in zip(reals, fakes)]).mean()


def generator_adversarial_loss(fake_logits: Logits, kind: GanLoss) -> torch.Tensor:
    """The generator's adversarial loss: its pairs judged "real"."""
    return torch.stack([_G_LOSSES[kind](f) for f in _scales(fake_logits)]).mean()


def _towards(logits: torch.Tensor, real: bool, kind: GanLoss) -> torch.Tensor:
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if kind is GanLoss.VANILLA:
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(logits, target)


def _halved_towards(kind: GanLoss) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda real, fake: 0.5 * (_towards(real, True, kind) + _towards(fake, False, kind))


_D_LOSSES: dict[GanLoss, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    GanLoss.VANILLA: _halved_towards(GanLoss.VANILLA),
    GanLoss.LSGAN: _halved_towards(GanLoss.LSGAN),
    GanLoss.HINGE: lambda real, fake: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(),
    GanLoss.WGAN_GP: lambda real, fake: fake.mean() - real.mean(),
}
_G_LOSSES: dict[GanLoss, Callable[[torch.Tensor], torch.Tensor]] = {
    GanLoss.VANILLA: lambda fake: _towards(fake, True, GanLoss.VANILLA),
    GanLoss.LSGAN: lambda fake: _towards(fake, True, GanLoss.LSGAN),
    GanLoss.HINGE: lambda fake: -fake.mean(),
    GanLoss.WGAN_GP: lambda fake: -fake.mean(),
}
# Losses whose discriminator step adds gradient_penalty (weight loss.gp_weight).
PENALISED: frozenset[GanLoss] = frozenset({GanLoss.WGAN_GP})


def _scales(logits: Logits) -> list[torch.Tensor]:
    return [logits] if isinstance(logits, torch.Tensor) else list(logits)


def l1_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(fake, real)


def charbonnier_loss(fake: torch.Tensor, real: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((fake - real)^2 + eps^2))``: L1 away from 0, smooth at 0 (Lai et al. 2017; NAFNet, Restormer)."""
    return ((fake - real).float().square() + eps**2).sqrt().mean()


def perceptual_loss(features: Callable[[torch.Tensor], list[torch.Tensor]], fake: torch.Tensor,
                    real: torch.Tensor) -> torch.Tensor:
    """L1 between the feature maps ``features`` gives for ``fake`` and ``real`` (Johnson et al. 2016),
    averaged over the layers; the real image's features are the fixed target."""
    with torch.no_grad():
        targets = features(real)
    return torch.stack([F.l1_loss(f, t) for f, t in zip(features(fake), targets)]).mean()


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]], fake_features: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """pix2pixHD's feature matching: L1 between D's features of the fake and the real pair.

    Every block's output except the last (the logits) counts; the L1 is averaged
    over those layers, then over the scales. The real features are detached, so
    only the generator learns from this loss. (pix2pixHD sums over the layers with
    weight ``4 / num_layers``, so its ``lambda_feat=10`` is ``fm_weight=40`` here.)

    Args:
        real_features: per scale, the list of D block outputs for (condition, target).
        fake_features: the same for (condition, generated).
    """
    if len(real_features) != len(fake_features):
        raise ValueError(f"real features have {len(real_features)} scales but fake features {len(fake_features)}")
    per_scale = []
    for real, fake in zip(real_features, fake_features):
        pairs = list(zip(real[:-1], fake[:-1]))
        if not pairs:
            raise ValueError("feature matching needs a discriminator with at least one block before the logits")
        per_scale.append(torch.stack([F.l1_loss(f, r.detach()) for r, f in pairs]).mean())
    return torch.stack(per_scale).mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random points on the lines between real and fake images, one mixing weight per sample (WGAN-GP)."""
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype, generator=generator)
    return eps * real + (1 - eps) * fake


def gradient_penalty(logits: Logits, interpolates: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017): ``mean((||grad_x critic(x)||_2 - 1)^2)`` at ``interpolates``.

    The critic value of a sample is its patch logits averaged over the patches
    and over the scales, the same reduction the Wasserstein loss uses, so the
    constraint is on the function the loss actually compares. The result keeps
    its graph (``create_graph``): backpropagating it trains D.

    Args:
        logits: D's logits for ``interpolates`` (one tensor, or one per scale); every
            tensor's first dimension is the batch.
        interpolates: the images D judged; must require grad and be part of the
            graph of ``logits``.
    """
    if not interpolates.requires_grad:
        raise ValueError("gradient_penalty: interpolates must require grad and be D's input")
    critic = torch.stack([s.float().flatten(1).mean(1) for s in _scales(logits)]).mean(0)  # (b,)
    (grad,) = torch.autograd.grad(critic.sum(), interpolates, create_graph=True)
    norm = (grad.flatten(1).square().sum(1) + 1e-12).sqrt()  # eps: the sqrt's gradient is infinite at 0
    return (norm - 1).square().mean()
