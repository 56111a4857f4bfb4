"""``task=segment``'s settings: its loss, weight map, augmentation, intensities and instance mode."""

from __future__ import annotations

from dataclasses import dataclass

from .base import ConfigError, _positive
from .enums import Intensity, InstanceMode


@dataclass
class SegmentConfig:
    """``task=segment``: hybrid loss, U-Net weight map, paired augmentation, intensities.

    The loss is ``ce_weight * CE + dice_weight * soft Dice + boundary_weight * weighted CE``,
    the last weighted by the U-Net paper's map ``w_c(x) + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))``.
    """

    ce_weight: float = 1.0
    dice_weight: float = 1.0
    boundary_weight: float = 1.0
    adversarial: bool = False  # add loss.gan_weight x the PatchGAN loss on the predicted probabilities
    w0: float = 10.0
    sigma: float = 5.0  # pixels
    class_balance: bool = True  # w_c(x) from each image's class frequencies; 1 otherwise
    augment: bool = True  # flips, 90-degree rotations, affine (2D only) and elastic deformation
    rotate_degrees: float = 15.0  # 2D only
    scale: float = 0.1  # affine zoom in [1 - scale, 1 + scale]; 2D only
    # kornia's alpha: about 1.7 px mean displacement on a 64-px crop with sigma 8. Volumes (generator.dims=3) get
    # the same displacement per axis in voxels of the finest axis, turned into µm, so a coarse z moves fewer voxels
    elastic_alpha: float = 3.0
    elastic_sigma: float = 8.0  # smoothness of the displacement field, pixels (volumes: of the finest axis, in µm)
    intensity: Intensity = Intensity.DTYPE
    intensity_min: float = 0.0  # used by intensity=range
    intensity_max: float = 255.0
    instances: InstanceMode = InstanceMode.AUTO  # border class + seeded watershed, see data/instances.py
    prob_threshold: float | None = None  # foreground probability; None: tuned on validation at the end
    seed_threshold: float | None = None  # interior probability for watershed seeds; None: tuned
    min_size: int | None = None  # objects under this many pixels are dropped; None: tuned
    distance_head: bool = False  # instance mode: also regress each object's normalised distance to its border
    distance_weight: float = 1.0  # weight of that L1 loss
    # generator.deep_supervision: the segmentation loss of each head (the generator's order, the main head last),
    # summed with these weights; None: 1 / generator.num_heads each (the UNet++ paper's average)
    deep_weights: list[float] | None = None

    def validate(self, where: str = "segment") -> None:
        if self.distance_head and self.adversarial:
            raise ConfigError(f"{where}.distance_head cannot be combined with {where}.adversarial (D judges class "
                              "probabilities, not distances)")
        for name in ("ce_weight", "dice_weight", "boundary_weight", "w0", "rotate_degrees", "elastic_alpha",
                     "distance_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be >= 0")
        if self.ce_weight + self.dice_weight + self.boundary_weight <= 0:
            raise ConfigError(f"{where}: ce_weight, dice_weight and boundary_weight are all 0; nothing to learn")
        _positive(self, where, "sigma", "elastic_sigma")
        if not 0.0 <= self.scale < 1.0:
            raise ConfigError(f"{where}.scale={self.scale} must be in [0, 1)")
        if self.intensity_max <= self.intensity_min:
            raise ConfigError(
                f"{where}.intensity_max={self.intensity_max} must be above intensity_min={self.intensity_min}"
            )
        weights = self.deep_weights
        if weights is not None and (not isinstance(weights, list) or not weights or min(weights) < 0
                                    or sum(weights) <= 0):
            raise ConfigError(f"{where}.deep_weights={weights!r} must be a list of weights >= 0, not all 0")
