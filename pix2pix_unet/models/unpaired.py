"""What ``task=unpaired`` trains, as two modules the training loop treats as its generator and discriminator.

:class:`UnpairedTranslator` holds the A -> B generator and what its mode adds: the B -> A generator (CycleGAN)
or PatchNCE's projection head (CUT). Called with an A batch alone it is the A -> B generator (validation,
prediction); called with an A and a B batch it runs every pass the losses need in one forward, so that several
processes (DDP) see all of them. :class:`UnpairedDiscriminators` holds one unconditional PatchGAN per judged
domain. Only the A -> B generator is exported (:meth:`UnpairedTranslator.exported`).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from ..config import PatchGANConfig
from .generator import Generator
from .nce import PatchProjector
from .patchgan import Discriminator


class UnpairedTranslator(nn.Module):
    """G_AB with G_BA (``ba``, CycleGAN) or a :class:`~pix2pix_unet.models.nce.PatchProjector` (CUT).

    Args:
        ab: the A -> B generator (the export).
        ba: CycleGAN's B -> A generator, or None.
        projector: CUT's head over ``nce_layers`` of ``ab``'s encoder features, or None.
        identity: also translate the target domain's own images (CycleGAN's identity loss, CUT's NCE identity).
        nce_layers, num_patches: CUT's feature layers and the locations sampled on each.
        flip: FastCUT's flip equivariance: each training forward flips its batch left-right with probability 1/2
            and the output's features are flipped back before they are compared.
    """

    def __init__(self, ab: Generator, ba: Generator | None = None, projector: PatchProjector | None = None, *,
                 identity: bool = True, nce_layers: list[int] | None = None, num_patches: int = 256,
                 flip: bool = False) -> None:
        super().__init__()
        if (ba is None) == (projector is None):
            raise ValueError("an UnpairedTranslator takes either a B -> A generator (CycleGAN) or a projector (CUT)")
        self.ab, self.ba, self.projector = ab, ba, projector
        self.identity, self.nce_layers, self.num_patches, self.flip = identity, nce_layers or [], num_patches, flip

    @property
    def config(self):  # the exported generator's, for callers that check the input's channels
        return self.ab.config

    def exported(self) -> Generator:
        return self.ab

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor | dict[str, object]:
        if b is None:
            return self.ab(a)
        return self._cycle(a, b) if self.ba is not None else self._contrastive(a, b)

    def _cycle(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, object]:
        # 1. each way across and back                                    (b, c, h, w) each
        fake_b, fake_a = self.ab(a), self.ba(b)
        out: dict[str, object] = {"fake_b": fake_b, "fake_a": fake_a, "rec_a": self.ba(fake_b), "rec_b": self.ab(fake_a)}
        # 2. a target-domain image through its own generator should not change
        if self.identity:
            out.update(idt_a=self.ba(a), idt_b=self.ab(b))
        return out

    def _contrastive(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, object]:
        flipped = self.flip and bool(torch.rand(()) < 0.5)
        # 1. A -> B (FastCUT: of the flipped batch)                         (b, c, h, w)
        fake_b = self.ab(a.flip(-1) if flipped else a)
        out: dict[str, object] = {"fake_b": fake_b}
        # 2. PatchNCE pairs: the output's patches against the input's at the same places, per layer
        features = [f.flip(-1) for f in self.ab.encoder_features(fake_b)] if flipped else \
            self.ab.encoder_features(fake_b)
        out["nce"] = self.projector.pairs(self.ab.encoder_features(a), features, self.nce_layers, self.num_patches)
        # 3. the identity term: a B image through G_AB, and its patches against its own
        if self.identity:
            idt_b = self.ab(b)
            out["idt_b"] = idt_b
            out["nce_idt"] = self.projector.pairs(self.ab.encoder_features(b), self.ab.encoder_features(idt_b),
                                                  self.nce_layers, self.num_patches)
        return out


class UnpairedDiscriminators(nn.Module):
    """An unconditional PatchGAN per judged domain: ``b`` always, ``a`` for CycleGAN.

    Shape:
        ``forward(image, domain)``: ``(B, C, H, W)`` -> one logits map per scale.
    """

    def __init__(self, b_channels: int, a_channels: int | None, config: PatchGANConfig) -> None:
        super().__init__()
        judges = {"b": Discriminator(0, b_channels, config)}
        if a_channels is not None:
            judges["a"] = Discriminator(0, a_channels, config)
        self.judges = nn.ModuleDict(judges)

    def forward(self, image: torch.Tensor, domain: str = "b") -> list[torch.Tensor]:
        return self.judges[domain](image[:, :0], image)  # no condition: a (B, 0, H, W) tensor


__all__ = ["UnpairedDiscriminators", "UnpairedTranslator"]
