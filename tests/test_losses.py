import math

import pytest
import torch

from pix2pix_unet.config import GanLoss
from pix2pix_unet.losses import discriminator_loss, generator_adversarial_loss, l1_loss


def test_vanilla_matches_bce():
    real, fake = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    # logits 0 -> p = 0.5 -> BCE = log 2 for both terms, halved sum
    assert discriminator_loss(real, fake, GanLoss.VANILLA).item() == pytest.approx(math.log(2))
    assert generator_adversarial_loss(fake, GanLoss.VANILLA).item() == pytest.approx(math.log(2))


def test_lsgan_and_hinge_values():
    real, fake = torch.ones(1, 1, 2, 2), -torch.ones(1, 1, 2, 2)
    assert discriminator_loss(real, torch.zeros_like(fake), GanLoss.LSGAN).item() == 0.0
    assert generator_adversarial_loss(torch.zeros_like(fake), GanLoss.LSGAN).item() == 1.0
    assert discriminator_loss(real, fake, GanLoss.HINGE).item() == 0.0  # both at the margin
    assert discriminator_loss(-real, -fake, GanLoss.HINGE).item() == 4.0
    assert generator_adversarial_loss(fake, GanLoss.HINGE).item() == 1.0


@pytest.mark.parametrize("kind", list(GanLoss))
def test_d_loss_prefers_correct_logits(kind):
    good = discriminator_loss(torch.full((4,), 3.0), torch.full((4,), -3.0), kind)
    bad = discriminator_loss(torch.full((4,), -3.0), torch.full((4,), 3.0), kind)
    assert good < bad


def test_l1():
    assert l1_loss(torch.ones(3), torch.zeros(3)).item() == 1.0
