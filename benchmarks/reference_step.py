"""A straightforward eager pix2pix step, written the way the original implementation does it.

This is the baseline the optimised :func:`pix2pix_unet.training.step.train_step` is
measured against (``bench_train.py --compare-plain``) and checked against for equal
losses (``tests/training/test_perf.py``): NCHW tensors, per-tensor Adam, no
compilation, D called separately on the fake and the real pair, G then D updated
with zeroed gradients, vanilla GAN + L1.

Run as a script, it times itself in a process of its own, as a user's plain
training script would run (default allocator, no speed settings), and prints the
step times as JSON:

    python benchmarks/reference_step.py --preset pix2pix --size 256 --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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


def fixed_batch(channels: tuple[int, int], size: int, batch_size: int, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and target batch both sides of the comparison time on: uniform in [-1, 1], seed 0."""
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.rand(batch_size, c, size, size, generator=gen) * 2 - 1 for c in channels)
    return x.to(device), y.to(device)


def main(argv: list[str] | None = None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pix2pix_unet.config import GENERATOR_PRESETS, PatchGANConfig, UNetConfig, from_dict
    from pix2pix_unet.models import Discriminator, build_generator

    p = argparse.ArgumentParser(description="Time the plain eager step in a process of its own; prints JSON.")
    p.add_argument("--preset", default="pix2pix", choices=sorted(GENERATOR_PRESETS))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    gen_cfg = from_dict(UNetConfig, {"preset": args.preset})
    step = ReferenceStep(build_generator(gen_cfg).to(device),
                         Discriminator(gen_cfg.in_channels, gen_cfg.out_channels, PatchGANConfig()).to(device))
    x, y = fixed_batch((gen_cfg.in_channels, gen_cfg.out_channels), args.size, args.batch_size, device)
    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        step(x, y)  # .item() on the losses waits for the device
        if i >= args.warmup:
            times.append(1000 * (time.perf_counter() - start))
    result = {"step_ms": times}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
