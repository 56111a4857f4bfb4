"""Unpaired translation's losses, as pure functions of tensors, and CycleGAN's image pool.

- :func:`cycle_loss` and :func:`identity_loss`: CycleGAN (Zhu et al., ICCV 2017): an image translated to the
  other domain and back must come back (L1), and an image already in the target domain must pass unchanged.
- :func:`patch_nce_loss`: CUT's PatchNCE (Park et al., ECCV 2020): a patch of the output must be closer, in a
  learned feature space, to the input patch at the same place than to the input's other patches (InfoNCE with
  temperature ``tau``; the negatives come from the same image, as in CUT's default).
- :func:`multilayer_nce_loss`: PatchNCE averaged over the generator's encoder layers, on the patches
  :class:`~pix2pix_unet.models.nce.PatchProjector` sampled and projected.
- :class:`ImagePool`: the discriminator sees a history of generated images rather than only the latest
  (Shrivastava et al. 2017; CycleGAN's pool of 50), with its own seeded RNG so a resumed run draws the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..config import GanLoss, UnpairedConfig
from .adversarial import Logits, discriminator_loss, generator_adversarial_loss


def cycle_loss(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between ``real`` and its round trip A -> B -> A (or B -> A -> B)."""
    return F.l1_loss(reconstructed, real)


def identity_loss(same: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between a target-domain image and what the generator makes of it (it should change nothing)."""
    return F.l1_loss(same, real)


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


def multilayer_nce_loss(pairs: list[tuple[torch.Tensor, torch.Tensor]], tau: float = 0.07) -> torch.Tensor:
    """CUT's PatchNCE averaged over layers: ``pairs`` holds each layer's projected ``(queries, keys)``
    (:meth:`~pix2pix_unet.models.nce.PatchProjector.pairs`: the output's patches and the source's, at the same
    locations)."""
    return torch.stack([patch_nce_loss(q, k, tau) for q, k in pairs]).mean()


def cycle_discriminator_losses(judge: Callable[[torch.Tensor, str], Logits], outputs: dict[str, Any],
                               real_a: torch.Tensor, real_b: torch.Tensor, pools: dict[str, "ImagePool"],
                               gan: GanLoss) -> dict[str, torch.Tensor]:
    """Each domain's discriminator on its real images and on pooled generated ones (D_B always; D_A when
    ``outputs`` holds ``fake_a``, CycleGAN). ``judge(image, domain)`` is the pair of discriminators."""
    losses = {}
    for domain, real, fake in (("b", real_b, "fake_b"), ("a", real_a, "fake_a")):
        if fake in outputs:
            generated = pools[domain].query(outputs[fake].detach())
            losses[f"d_{domain}"] = discriminator_loss(judge(real, domain), judge(generated, domain), gan)
    losses["d_total"] = torch.stack(list(losses.values())).sum()
    return losses


def unpaired_generator_losses(judge: Callable[[torch.Tensor, str], Logits], outputs: dict[str, Any],
                              real_a: torch.Tensor, real_b: torch.Tensor, cfg: UnpairedConfig,
                              gan: GanLoss) -> dict[str, torch.Tensor]:
    """The generators' losses from one training forward's ``outputs``
    (:class:`~pix2pix_unet.models.unpaired.UnpairedTranslator`): fool the discriminators, plus CycleGAN's cycle
    and identity terms or CUT's PatchNCE (and its identity term)."""
    losses = {"g_gan_b": generator_adversarial_loss(judge(outputs["fake_b"], "b"), gan)}
    if "fake_a" in outputs:  # CycleGAN
        losses["g_gan_a"] = generator_adversarial_loss(judge(outputs["fake_a"], "a"), gan)
        losses["g_cycle"] = cycle_loss(outputs["rec_a"], real_a) + cycle_loss(outputs["rec_b"], real_b)
        total = losses["g_gan_a"] + losses["g_gan_b"] + cfg.cycle_weight * losses["g_cycle"]
        if "idt_a" in outputs:
            losses["g_identity"] = identity_loss(outputs["idt_a"], real_a) + identity_loss(outputs["idt_b"], real_b)
            total = total + cfg.cycle_weight * cfg.identity_weight * losses["g_identity"]
    else:  # CUT: the NCE identity term shares the weight, and the two are averaged, as in the reference
        losses["g_nce"] = multilayer_nce_loss(outputs["nce"], cfg.nce_tau)
        nce = losses["g_nce"]
        if "nce_idt" in outputs:
            losses["g_nce_idt"] = multilayer_nce_loss(outputs["nce_idt"], cfg.nce_tau)
            nce = 0.5 * (nce + losses["g_nce_idt"])
        total = losses["g_gan_b"] + cfg.resolved_nce_weight * nce
    losses["g_total"] = total
    return losses


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


__all__ = ["ImagePool", "cycle_discriminator_losses", "cycle_loss", "identity_loss", "multilayer_nce_loss",
           "patch_nce_loss", "unpaired_generator_losses"]
