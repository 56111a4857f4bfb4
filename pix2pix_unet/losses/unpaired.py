"""Unpaired translation's losses, as pure functions of tensors, and CycleGAN's image pool.

- :func:`cycle_loss` and :func:`identity_loss`: CycleGAN (Zhu et al., ICCV 2017): an image translated to the
  other domain and back must come back (L1), and an image already in the target domain must pass unchanged.
- :func:`patch_nce_loss`: CUT's PatchNCE (Park et al., ECCV 2020): a patch of the output must be closer, in a
  learned feature space, to the input patch at the same place than to the input's other patches (InfoNCE with
  temperature ``tau``; the negatives come from the same image, as in CUT's default).
- :func:`sample_locations` / :func:`gather_patches`: the same random locations drawn once per layer for the
  query (output) and key (input) features; :func:`multilayer_nce_loss` puts them together over the generator's
  encoder layers.
- :class:`ImagePool`: the discriminator sees a history of generated images rather than only the latest
  (Shrivastava et al. 2017; CycleGAN's pool of 50), with its own seeded RNG so a resumed run draws the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F


def cycle_loss(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between ``real`` and its round trip A -> B -> A (or B -> A -> B)."""
    return F.l1_loss(reconstructed, real)


def identity_loss(same: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between a target-domain image and what the generator makes of it (it should change nothing)."""
    return F.l1_loss(same, real)


def sample_locations(feature: torch.Tensor, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num`` distinct flat spatial locations of ``feature (B, C, H, W)`` (all of them, in order, when ``num``
    is at least ``H * W``), on the feature's device."""
    h, w = feature.shape[-2:]
    if num >= h * w:
        return torch.arange(h * w, device=feature.device)
    return torch.randperm(h * w, generator=generator)[:num].to(feature.device)


def gather_patches(feature: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The feature vectors of ``feature (B, C, H, W)`` at the flat locations ``ids (N,)``: ``(B, N, C)``."""
    return feature.flatten(2).transpose(1, 2)[:, ids]


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """PatchNCE of ``query (B, N, C)`` (output patches) against ``key (B, N, C)`` (input patches at the same
    locations; no gradient flows to it), both L2-normalised here.

    For each query patch, the key at its own location is the positive and the image's other ``N - 1`` keys are
    the negatives: the cross-entropy of ``softmax(q . k / tau)`` with the positive as the class. The minimum
    over unit vectors is reached when every query equals its key and the keys are far apart.
    """
    q = F.normalize(query, dim=-1)
    k = F.normalize(key.detach(), dim=-1)
    # 1. every query against every key of its image                     (b, n, n)
    logits = torch.bmm(q, k.transpose(1, 2)) / tau
    # 2. the positive is the key at the query's own location (the diagonal)
    target = torch.arange(q.shape[1], device=q.device).expand(q.shape[0], -1)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def multilayer_nce_loss(encode: Callable[[torch.Tensor], list[torch.Tensor]],
                        project: Callable[[list[torch.Tensor]], list[torch.Tensor]], source: torch.Tensor,
                        output: torch.Tensor, layers: Sequence[int], num_patches: int = 256, tau: float = 0.07,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """CUT's PatchNCE over several encoder layers, averaged: ``encode`` (the generator's
    :meth:`~pix2pix_unet.models.Generator.encoder_features`) runs on the ``source`` image and on the ``output``
    made from it; on each of ``layers`` the same ``num_patches`` locations are taken from both, ``project``
    (a :class:`~pix2pix_unet.models.nce.PatchProjector` over those layers) maps them, and the output's patches
    are the queries, the source's the keys."""
    source_features, output_features = encode(source), encode(output)
    keys, queries = [], []
    for layer in layers:
        where = sample_locations(source_features[layer], num_patches, generator)
        keys.append(gather_patches(source_features[layer], where))
        queries.append(gather_patches(output_features[layer], where))
    pairs = zip(project(queries), project(keys))
    return torch.stack([patch_nce_loss(q, k, tau) for q, k in pairs]).mean()


class ImagePool:
    """A history of generated images for the discriminator (CycleGAN's pool, ``size`` 50).

    ``query(images)`` returns one image per input: until the pool holds ``size`` images each input is stored
    and returned; after that, each input is returned with probability 1/2, or else stored in place of a random
    pooled image, which is returned instead. ``size=0`` returns the inputs. The pool's RNG and images are in
    :meth:`state_dict`, so a resumed run continues exactly.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"image pool size={size} must be >= 0")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.rng) < 0.5:
                i = int(torch.randint(len(self.images), (), generator=self.rng))
                out.append(self.images[i].to(image.device))
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "rng": self.rng.get_state(),
                "images": torch.stack(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size = int(state["size"])
        self.rng.set_state(state["rng"])
        self.images = list(state["images"]) if state["images"].numel() else []  # moved to the inputs' device on use


__all__ = ["ImagePool", "cycle_loss", "gather_patches", "identity_loss", "multilayer_nce_loss", "patch_nce_loss",
           "sample_locations"]
