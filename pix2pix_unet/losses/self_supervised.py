"""Denoising losses that need no clean image, as pure functions of tensors.

- :func:`pair_downsample` and :func:`zero_shot_loss`: ZS-N2N (Mansour & Heckel, CVPR 2023). Each 2x2 cell of a
  noisy image gives two half-resolution images from its two diagonals; their noise is independent and their
  signal nearly the same, so each is a Noise2Noise target for the other. A consistency term asks the denoised
  halves to match the halves of the denoised image.
- :func:`neighbour_pair` and :func:`neighbour_loss`: Neighbor2Neighbor (Huang et al., CVPR 2021): from each 2x2
  cell two different neighbouring pixels, chosen at random per cell, make two sub-images; one denoised predicts
  the other, with a regulariser from the denoised whole image.
- :func:`blind_spot_mask`: Noise2Void's blind spots, N2V2's median replacement (Höck et al. 2022).
- :func:`grid_mask` and :func:`masked_mse`: Noise2Self's J-invariant loss on held-out noisy pixels (Batson &
  Royer, ICML 2019), which chooses checkpoints without clean images.

The images are ``(B, C, H, W)`` on any scale; ``H`` and ``W`` are cut down to even sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange


def _even(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return x[..., : h - h % 2, : w - w % 2]


def pair_downsample(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, H, W)`` -> two ``(B, C, H/2, W/2)`` images: the means of each 2x2 cell's two diagonals
    (top-left with bottom-right, and top-right with bottom-left), which share no pixel."""
    x = _even(x)
    c = x.shape[1]
    main = x.new_tensor([[0.5, 0.0], [0.0, 0.5]]).expand(c, 1, 2, 2)
    anti = x.new_tensor([[0.0, 0.5], [0.5, 0.0]]).expand(c, 1, 2, 2)
    return F.conv2d(x, main, stride=2, groups=c), F.conv2d(x, anti, stride=2, groups=c)


def zero_shot_loss(denoise: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor) -> dict[str, torch.Tensor]:
    """ZS-N2N's objective for ``denoise`` on ``noisy (B, C, H, W)``: the symmetric Noise2Noise residual between
    the two diagonal halves, plus the consistency between denoised halves and halves of the denoised image.

    Returns:
        ``{"total", "residual", "consistency"}``, scalars.
    """
    # 1. the two halves, and each denoised                                    (b, c, h/2, w/2)
    first, second = pair_downsample(noisy)
    out_first, out_second = denoise(first), denoise(second)
    # 2. Noise2Noise between the halves: each denoised half predicts the other noisy one
    residual = 0.5 * (F.mse_loss(out_first, second) + F.mse_loss(out_second, first))
    # 3. consistency: the halves of the denoised image match the denoised halves
    whole_first, whole_second = pair_downsample(denoise(_even(noisy)))
    consistency = 0.5 * (F.mse_loss(out_first, whole_first) + F.mse_loss(out_second, whole_second))
    return {"total": residual + consistency, "residual": residual, "consistency": consistency}


# the 8 ordered neighbour pairs of a 2x2 cell, its pixels numbered tl 0, tr 1, bl 2, br 3
NEIGHBOURS = ((0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2))


def neighbour_choice(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each image of ``x (B, C, H, W)`` and each 2x2 cell, one of the :data:`NEIGHBOURS` pairs drawn at
    random: ``(B, H/2, W/2, 2)`` pixel numbers in the cell."""
    b, h, w = x.shape[0], x.shape[-2] // 2, x.shape[-1] // 2
    drawn = torch.randint(0, len(NEIGHBOURS), (b, h, w), generator=generator)
    return torch.tensor(NEIGHBOURS, dtype=torch.long)[drawn].to(x.device)


def neighbour_subsample(x: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, H, W)`` -> the two ``(B, C, H/2, W/2)`` images of ``choice`` (:func:`neighbour_choice`); the same
    choice sub-samples the noisy image and, for the regulariser, the denoised one alike."""
    x = _even(x)
    b, c, h, w = x.shape
    # 1. the cell's four pixels in order tl, tr, bl, br                     (b, c, 4, h/2, w/2)
    cells = torch.stack([x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]], dim=2)
    # 2. the chosen pixel of each cell, for each of the two images          (b, c, h/2, w/2)
    index = rearrange(choice, "b h w k -> b 1 1 h w k").expand(b, c, 1, h // 2, w // 2, 2)
    return (torch.gather(cells, 2, index[..., 0]).squeeze(2), torch.gather(cells, 2, index[..., 1]).squeeze(2))


def neighbour_pair(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbor2Neighbor's sub-sampler: ``(B, C, H, W)`` -> two ``(B, C, H/2, W/2)`` images that take, from each
    2x2 cell, two different pixels that are neighbours (side by side or one above the other), drawn per cell and
    per image; every channel of a pixel goes together."""
    return neighbour_subsample(x, neighbour_choice(x, generator))


def neighbour_loss(out_first: torch.Tensor, second: torch.Tensor, whole_first: torch.Tensor,
                   whole_second: torch.Tensor, gamma: float) -> dict[str, torch.Tensor]:
    """Neighbor2Neighbor's objective: the denoised first sub-image ``out_first`` predicts the noisy second one,
    and the regulariser asks their difference to match the difference of the two sub-images of the denoised
    whole image (``whole_first``, ``whole_second``, computed without gradient), weighted by ``gamma``.

    Returns:
        ``{"total", "reconstruction", "regulariser"}``, scalars.
    """
    reconstruction = F.mse_loss(out_first, second)
    regulariser = F.mse_loss(out_first - second, whole_first.detach() - whole_second.detach())
    return {"total": reconstruction + gamma * regulariser, "reconstruction": reconstruction,
            "regulariser": regulariser}


def blind_spot_mask(x: torch.Tensor, fraction: float,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """N2V2's blind spots in ``x (B, C, H, W)``: a random ``fraction`` of the pixels (at least one an image), each
    replaced by the median of its 8 neighbours (reflected at the border; all channels of a pixel together), and
    the mask ``(B, 1, H, W)`` of those pixels.

    No two blind spots are neighbours (a drawn pixel with another in its 3 x 3 window is dropped), so a hidden
    pixel's own value is nowhere in the masked image: the network cannot learn the identity, and predicting the
    noisy value there teaches it the clean one.
    """
    b, c, h, w = x.shape
    # 1. which pixels: a random share, none beside another, at least one in each image   (b, 1, h, w)
    drawn = (torch.rand(b, 1, h, w, generator=generator) < fraction).float()
    alone = F.avg_pool2d(drawn, 3, stride=1, padding=1, count_include_pad=True).mul(9).round() == 1
    mask = (drawn > 0) & alone
    forced = torch.randint(0, h * w, (b,), generator=generator)
    empty = mask.view(b, -1).sum(1) == 0
    mask.view(b, -1)[empty.nonzero()[:, 0], forced[empty]] = True
    mask = mask.to(device=x.device, dtype=x.dtype)
    # 2. the median of each pixel's 8 neighbours                                         (b, c, h, w)
    patches = F.unfold(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3).view(b, c, 9, h, w)
    median = torch.cat([patches[:, :, :4], patches[:, :, 5:]], dim=2).median(dim=2).values
    return x * (1 - mask) + median * mask, mask


def grid_mask(x: torch.Tensor, offset: int, spacing: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise2Self's J-invariant masking of ``x (B, C, H, W)``: the pixels of one of the ``spacing**2`` grid
    phases (``offset``) replaced by the mean of their 4 neighbours (reflected at the border), and the mask
    ``(1, 1, H, W)`` of those pixels. A prediction at a masked pixel then never sees that pixel's own value."""
    h, w = x.shape[-2:]
    dy, dx = divmod(offset % spacing ** 2, spacing)
    mask = torch.zeros(1, 1, h, w, device=x.device, dtype=x.dtype)
    mask[..., dy::spacing, dx::spacing] = 1
    c = x.shape[1]
    ring = x.new_tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]]).expand(c, 1, 3, 3)
    around = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), ring, groups=c)
    return x * (1 - mask) + around * mask, mask


def masked_mse(output: torch.Tensor, noisy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean squared difference on the masked pixels between the output of the masked input and the noisy
    image: Noise2Self's self-supervised loss, which in expectation is the error to the clean image plus the noise
    variance, so it ranks checkpoints as PSNR would without a clean image."""
    weights = mask.expand_as(noisy)
    return ((output - noisy) ** 2 * weights).sum() / weights.sum().clamp_min(1)


__all__ = ["NEIGHBOURS", "blind_spot_mask", "grid_mask", "masked_mse", "neighbour_choice", "neighbour_loss", "neighbour_pair",
           "neighbour_subsample", "pair_downsample", "zero_shot_loss"]
