"""A straightforward eager pix2pix step, written the way the original implementation does it.

This is the baseline the optimised :func:`pix2pix_unet.training.step.train_step` is
measured against (``bench_train.py --compare-plain``) and checked against for equal
losses (``tests/training/test_perf.py``): NCHW tensors, per-tensor Adam, no
compilation, D called separately on the fake and the real pair, G then D updated
with zeroed gradients, vanilla GAN + L1.
"""

from __future__ import annotations

import torch
from torch import nn


class ReferenceStep:
    """Holds the nets and their optimisers; ``__call__(inputs, target)`` runs one step and returns its losses."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, lr: float = 2e-4, l1_weight: float = 100.0):
        self.generator, self.discriminator = generator, discriminator
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999), foreach=False)
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999), foreach=False)
        self.criterion = nn.BCEWithLogitsLoss()
        self.l1 = nn.L1Loss()
        self.l1_weight = l1_weight

    def _gan(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        return self.criterion(logits, torch.full_like(logits, 1.0 if real else 0.0))

    def __call__(self, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        fake = self.generator(inputs)
        # D: fake pair, then real pair
        for p in self.discriminator.parameters():
            p.requires_grad = True
        self.opt_d.zero_grad()
        pred_fake = self.discriminator(inputs, fake.detach())[0]
        pred_real = self.discriminator(inputs, target)[0]
        loss_d = (self._gan(pred_fake, False) + self._gan(pred_real, True)) * 0.5
        loss_d.backward()
        self.opt_d.step()
        # G: fool D, stay close in L1
        for p in self.discriminator.parameters():
            p.requires_grad = False
        self.opt_g.zero_grad()
        pred_fake = self.discriminator(inputs, fake)[0]
        loss_g_gan = self._gan(pred_fake, True)
        loss_g_l1 = self.l1(fake, target)
        loss_g = loss_g_gan + self.l1_weight * loss_g_l1
        loss_g.backward()
        self.opt_g.step()
        return {"d_total": loss_d.item(), "g_gan": loss_g_gan.item(), "g_l1": loss_g_l1.item(), "g_total": loss_g.item()}
