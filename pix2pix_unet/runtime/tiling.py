"""Overlap-tile inference for images too large to run whole (the U-Net paper's strategy).

The image is padded to the generator's multiple exactly as :class:`~pix2pix_unet.models.UNet`
pads a whole image, then cut into ``tile`` x ``tile`` tiles whose origins are
multiples of ``2 ** depth``, so every tile sees the same strided-conv grid as the
whole image would. Each tile's output is weighted by a window that falls off only
on the sides that have a neighbour, and the weighted sum is divided by the summed
weights, so seams blend away.

With the ``linear`` window the first quarter of each overlap is context only
(weight 0: the U-Net paper's "predict the centre, use the border as context"),
then the two tiles cross-fade linearly. When the generator's receptive field
fits in that quarter and its norms do not depend on the tile (batch norm in eval
mode, or none), the tiled output equals the whole-image output. Instance norm
normalises each tile by its own statistics, so tiles differ slightly and only
the blending hides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from ..config import BlendWindow, ConfigError
from ..models.unet import pad_to_multiple


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one (padded) image lie.

    ``ys`` and ``xs`` are the tile origins on each axis, ``tile_h`` x ``tile_w``
    the tile size (the tile, or the padded image where that is smaller), and
    ``step`` the distance between neighbouring origins.
    """

    height: int
    width: int
    ys: list[int]
    xs: list[int]
    tile_h: int
    tile_w: int
    step: int

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def origins(self) -> Iterator[tuple[int, int]]:
        for y in self.ys:
            for x in self.xs:
                yield y, x


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    return [*range(0, length - tile, step), length - tile]


def plan_tiles(height: int, width: int, tile: int, overlap: int, factor: int) -> TilePlan:
    """Tile origins for an image of ``height`` x ``width`` (already padded to ``factor``).

    The step ``tile - overlap`` is rounded down to a multiple of ``factor``, so
    the real overlap may be larger than asked.

    Raises:
        ConfigError: ``tile`` is not a multiple of ``factor``, or ``overlap`` leaves
            no whole ``factor`` to step by.
    """
    if tile % factor:
        raise ConfigError(f"inference.tile={tile} must be a multiple of the generator's 2**depth = {factor}")
    step = (tile - overlap) // factor * factor
    if step < factor:
        raise ConfigError(
            f"inference.overlap={overlap} is too large for tile={tile}: the step between tiles must be at "
            f"least the generator's 2**depth = {factor}"
        )
    return TilePlan(height, width, _starts(height, tile, step), _starts(width, tile, step),
                    min(tile, height), min(tile, width), step)


def window_1d(length: int, overlap: int, before: bool, after: bool, kind: BlendWindow) -> torch.Tensor:
    """Blend weights along one axis of a tile; only sides with a neighbour (``before``/``after``) fall off.

    Args:
        length: the tile's extent on this axis.
        overlap: pixels shared with each neighbour.
        before: whether a neighbouring tile lies before this one on this axis.
        after: whether a neighbouring tile lies after this one on this axis.
        kind: ``linear`` (zero over the first quarter of the overlap, then a linear
            ramp whose mirror image sums with it to 1) or ``gaussian`` (a half-Gaussian
            across the overlap, sigma = overlap / 3, never exactly zero).
    """
    weights = torch.ones(length)
    if kind is BlendWindow.LINEAR:
        context = overlap // 4
        ramp_len = overlap - 2 * context
        ramp = (torch.arange(ramp_len) + 0.5) / max(ramp_len, 1)
        edge = torch.cat([torch.zeros(context), ramp])
        if before:
            weights[: len(edge)] = edge
        if after:
            weights[length - len(edge):] = edge.flip(0)
        return weights
    # a half-Gaussian across the overlap band: 1 at its inner edge, exp(-4.5) at the tile's edge
    depth = torch.arange(overlap, 0, -1) - 0.5  # distance from the band's inner edge, tile edge first
    fall = torch.exp(-(depth**2) / (2 * (max(overlap, 1) / 3) ** 2))
    if before and overlap:
        weights[:overlap] = fall
    if after and overlap:
        weights[length - overlap:] = fall.flip(0)
    return weights


def tile_window(plan: TilePlan, y: int, x: int, overlap: int, kind: BlendWindow) -> torch.Tensor:
    """``(tile_h, tile_w)`` weights for the tile at origin ``(y, x)``."""
    wy = window_1d(plan.tile_h, overlap, y > 0, y + plan.tile_h < plan.height, kind)
    wx = window_1d(plan.tile_w, overlap, x > 0, x + plan.tile_w < plan.width, kind)
    return wy[:, None] * wx[None, :]


@torch.no_grad()
def predict_tiled(
    forward: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    tile: int,
    overlap: int,
    factor: int,
    window: BlendWindow = BlendWindow.LINEAR,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Run ``forward`` over overlapping tiles of ``image`` and blend the outputs.

    Args:
        forward: the generator (in eval mode), mapping ``(B, C, h, w)`` to ``(B, C', h, w)``.
        image: ``(C, H, W)``, on the CPU; only tiles go to ``device``.
        tile: tile side, in pixels.
        overlap: pixels shared by neighbouring tiles.
        factor: the generator's ``2 ** depth``.
        window: how tiles are weighted where they overlap.
        batch_size: tiles per forward pass.
        progress: show a progress bar over the tiles.

    Returns:
        ``(C', H, W)`` float32 on the CPU.
    """
    # 1. pad as the UNet pads a whole image                      (c, H', W')
    h, w = image.shape[-2:]
    padded = pad_to_multiple(image[None].float(), factor)[0]
    plan = plan_tiles(padded.shape[-2], padded.shape[-1], tile, overlap, factor)
    real_overlap = tile - plan.step  # the step is rounded to the factor, so this may exceed `overlap`
    # 2. run the tiles in batches, accumulating weighted outputs (c', H', W')
    out: torch.Tensor | None = None
    weight_sum = torch.zeros(padded.shape[-2:])
    origins = list(plan.origins())
    bar = tqdm(total=len(origins), desc="tiles", unit="tile", leave=False, disable=not progress)
    for i in range(0, len(origins), batch_size):
        chunk = origins[i: i + batch_size]
        batch = torch.stack([padded[:, y: y + plan.tile_h, x: x + plan.tile_w] for y, x in chunk])
        result = forward(batch.to(device)).float().cpu()  # (b, c', tile_h, tile_w)
        if out is None:
            out = torch.zeros(result.shape[1], *padded.shape[-2:])
        for (y, x), tile_out in zip(chunk, result):
            weights = tile_window(plan, y, x, real_overlap, window)
            out[:, y: y + plan.tile_h, x: x + plan.tile_w] += tile_out * weights
            weight_sum[y: y + plan.tile_h, x: x + plan.tile_w] += weights
        bar.update(len(chunk))
    bar.close()
    # 3. normalise by the summed weights and crop the padding away (c', H, W)
    assert out is not None
    return (out / weight_sum)[:, :h, :w]


__all__ = ["TilePlan", "plan_tiles", "predict_tiled", "tile_window", "window_1d"]
