"""A weight-free signal of how far generated images are from real ones: can a small network, trained from scratch
on these very images, tell them apart?

:func:`real_vs_generated` cuts random patches from each image, trains a 3-layer CNN on the patches of half the
real and half the generated images, and reports its accuracy on the patches of the other half (image-disjoint,
so it cannot remember an image). 0.5 means it cannot tell them apart; 1.0 that it always can. It needs no
pretrained weights, so it works where FID's Inception is not installed, and it looks at local texture, which
FID's 299-px global features blur.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def random_patches(images: list[torch.Tensor], size: int, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """``per_image`` random ``size`` x ``size`` patches of each ``(C, H, W)`` image (an image smaller than
    ``size`` is resized up first): ``(len(images) * per_image, C, size, size)``."""
    out = []
    for image in images:
        h, w = image.shape[-2:]
        if min(h, w) < size:
            image = F.interpolate(image[None].float(), size=(max(h, size), max(w, size)), mode="bilinear",
                                  align_corners=False)[0]
            h, w = image.shape[-2:]
        for _ in range(per_image):
            top = int(torch.randint(h - size + 1, (1,), generator=generator))
            left = int(torch.randint(w - size + 1, (1,), generator=generator))
            out.append(image[:, top: top + size, left: left + size].float())
    return torch.stack(out)


def _classifier(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1),
    )


def real_vs_generated(real: list[torch.Tensor], generated: list[torch.Tensor], patch: int = 32,
                      per_image: int = 32, steps: int = 200, seed: int = 0) -> float:
    """Held-out accuracy of a from-scratch CNN telling ``real`` from ``generated`` patches (see the module).

    Args:
        real, generated: ``(C, H, W)`` images in [-1, 1], at least 2 of each (one half trains, the other tests).

    Raises:
        ValueError: fewer than 2 images on a side.
    """
    if len(real) < 2 or len(generated) < 2:
        raise ValueError(f"real_vs_generated needs at least 2 images a side, got {len(real)} and {len(generated)}")
    rng = torch.Generator().manual_seed(seed)
    # the caller's random state is left as it was; it may be evaluating under no_grad
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        halves = []
        for images in (real, generated):
            k = len(images) // 2
            halves.append((random_patches(images[:k], patch, per_image, rng),
                           random_patches(images[k:], patch, per_image, rng)))
        (real_train, real_test), (fake_train, fake_test) = halves
        x = torch.cat([real_train, fake_train])
        y = torch.cat([torch.ones(len(real_train)), torch.zeros(len(fake_train))])
        net = _classifier(x.shape[1])
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        for _ in range(steps):
            batch = torch.randint(len(x), (64,), generator=rng)
            loss = F.binary_cross_entropy_with_logits(net(x[batch]).squeeze(1), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            right = (net(real_test).squeeze(1) > 0).float().sum() + (net(fake_test).squeeze(1) <= 0).float().sum()
    return float(right / (len(real_test) + len(fake_test)))


__all__ = ["random_patches", "real_vs_generated"]
