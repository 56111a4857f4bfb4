"""The real-vs-generated classifier: chance on one distribution, near 1 on two that differ, image-disjoint."""

from __future__ import annotations

import pytest
import torch

from pix2pix_unet.metrics.realness import random_patches, real_vs_generated


def textures(n: int, smooth: bool, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 48, 48, generator=g) * 2 - 1 for _ in range(n)]
    if smooth:  # a blurred kind: what a generator that lost the fine texture makes
        images = [torch.nn.functional.avg_pool2d(x[None], 5, 1, 2)[0] for x in images]
    return images


def test_it_tells_two_kinds_apart_and_not_one_from_itself():
    assert real_vs_generated(textures(6, False, 0), textures(6, True, 1), steps=150) > 0.9
    assert 0.3 < real_vs_generated(textures(6, False, 0), textures(6, False, 1), steps=150) < 0.7


def test_patches_and_errors():
    g = torch.Generator().manual_seed(0)
    patches = random_patches([torch.zeros(1, 20, 50), torch.zeros(1, 40, 40)], 32, 3, g)  # the first resized up
    assert patches.shape == (6, 1, 32, 32)
    with pytest.raises(ValueError, match="at least 2 images a side"):
        real_vs_generated(textures(1, False, 0), textures(3, False, 1))


def test_the_callers_random_state_is_untouched_and_no_grad_is_no_obstacle():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with torch.no_grad():  # as in an evaluation
        real_vs_generated(textures(2, False, 0), textures(2, True, 1), steps=5)
    assert torch.equal(torch.rand(3), expected)
