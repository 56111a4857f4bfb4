"""``task=restore``: degraded image -> clean image, from a folder of clean images alone.

Training batches are cropped and flipped, then degraded on the device by
:func:`~pix2pix_unet.data.degrade.degrade` with fresh randomness every step.
Validation runs on whole held-out images (split by file), each degraded with a
seed of its own from ``restore.val_seed`` and its file name, so every evaluation
and ``pix2pix-unet evaluate`` see the same inputs. PSNR and SSIM are logged for
the output, for the degraded input and, where noise is among the degradations,
for non-local means on the same inputs (:mod:`~pix2pix_unet.metrics.classical`).

The model learns a correction to its input (``restore.residual``) with a
PSNR-first objective, Charbonnier (or L1) to the clean image; a PatchGAN term
and a VGG perceptual term are opt-in (:class:`RestoreObjective`). A config that
names no generator preset starts from ``nafnet``
(:data:`~pix2pix_unet.config.TASK_PRESETS`), which keeps full-resolution
features. With inpainting on, the hole mask is an extra
generator input channel.

With ``restore.self_supervised=neighbor2neighbor`` the folder holds *noisy* images and no clean ones: each
training crop gives two random neighbour sub-images (:func:`~pix2pix_unet.losses.self_supervised.neighbour_pair`),
the denoised first predicts the noisy second, with Neighbor2Neighbor's regulariser (:class:`NeighbourObjective`).
With ``blind_spot`` a small share of each crop's pixels is hidden, each replaced by the median of its neighbours,
and the output there predicts the noisy value (:class:`BlindSpotObjective`, N2V2).
Validation then needs no clean image either: each held-out noisy image has a grid of pixels hidden from the model
(Noise2Self's J-invariant masking), and the error at those pixels, ``val/self_mse``, chooses the checkpoints.

With ``generator.dims=3`` the same task restores volumes: clean TIFF stacks (or the built-in nuclei volumes
without their noise, :mod:`~pix2pix_unet.data.volumes`) train on random 3D patches, flipped and turned in-plane,
degraded by noise voxel by voxel and by an anisotropic Gaussian PSF set in micrometres
(:func:`~pix2pix_unet.data.degrade.psf_sigmas`); PSNR and SSIM are measured on whole volumes and the classical
baseline is non-local means in 3D. Predict writes an ImageJ hyperstack in the input's dtype and voxel size.
Degradations with no 3D meaning, self-supervision and the perceptual term are refused by name.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .. import io
from ..codec import Decoded, ImageCodec, decode_mask
from ..config import (
    BuiltinKind, ConfigError, DataConfig, LossConfig, MetricMode, OutputDtype, PixelLoss, RestoreConfig,
    SelfSupervised, Task, TrainConfig, from_dict, to_dict,
)
from ..data.folders import DatasetError, list_images, pair_by_stem, split_by_file
from ..data.synthetic import VAL_INDEX_OFFSET, SyntheticPairs, SyntheticSpec
from ..losses import charbonnier_loss, generator_adversarial_loss, l1_loss, perceptual_loss
from ..losses.self_supervised import (
    blind_spot_mask, grid_mask, masked_mse, neighbour_choice, neighbour_loss, neighbour_subsample,
)
from ..losses.objective import discriminator_losses
from .base import ExportError, ImageMeter, Meter, TaskBase, mean_rows, name_seed, require
from ..metrics.classical import BASELINES, classical_for
from ..metrics.residual import input_noise, residual_diagnostics, residual_warnings
from ..metrics.wrapped import WrappedMeter
from ..data.augment import VolumeAugmentation
from ..data.degrade import check_volume_degradations, degrade
from ..data.volumes import CleanVolumes, build_clean_volumes
from ..volume_io import VolumeError, read_volume, write_volume, z_slices
from ..runtime import VoxelReduction


@dataclass
class RestoreObjective:
    """Restoration's losses: a pixel loss to the clean image (on the [0, 1] scale), plus the opt-in
    PatchGAN (``restore.gan_weight``) and VGG perceptual (``restore.perceptual_weight``) terms.

    The two opt-in terms give sharper textures at a lower PSNR; the default is PSNR first.
    """

    cfg: RestoreConfig
    loss: LossConfig
    features: nn.Module | None = None  # VGGFeatures, when perceptual_weight > 0

    deep_supervision = False

    def prepare_target(self, generator: nn.Module, target: torch.Tensor) -> torch.Tensor:
        return target

    def pixel(self, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fake, target = fake.float() / 2, target.float() / 2  # [-1, 1] differences on the [0, 1] scale
        if self.cfg.pixel_loss is PixelLoss.CHARBONNIER:
            return charbonnier_loss(fake, target, self.cfg.charbonnier_eps)
        return l1_loss(fake, target)

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.cfg.gan_weight == 0:
            return {}
        gan = dataclasses.replace(self.loss, gan_weight=self.cfg.gan_weight)
        return discriminator_losses(discriminator, inputs, fake, target, gan)

    def generator_losses(self, discriminator: nn.Module | None, inputs: torch.Tensor, fake: torch.Tensor,
                         target: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = {"g_pixel": self.pixel(fake, target)}
        total = losses["g_pixel"]
        if self.features is not None and self.cfg.perceptual_weight > 0:
            losses["g_perceptual"] = perceptual_loss(self.features, fake, target)
            total = total + self.cfg.perceptual_weight * losses["g_perceptual"]
        if discriminator is not None and self.cfg.gan_weight > 0:
            losses["g_gan"] = generator_adversarial_loss(discriminator(inputs, fake), self.loss.gan)
            total = total + self.cfg.gan_weight * losses["g_gan"]
        return {"g_total": total, **losses}


@dataclass
class NeighbourTarget:
    """A Neighbor2Neighbor training target: the second sub-image, and what the regulariser needs."""

    second: torch.Tensor  # (b, c, h/2, w/2) the noisy second sub-image, in [-1, 1]
    noisy: torch.Tensor  # (b, c, h, w) the whole noisy crops
    choice: torch.Tensor  # (b, h/2, w/2, 2) the neighbour pair of each cell (neighbour_choice)
    whole: tuple[torch.Tensor, torch.Tensor] | None = None  # sub-images of G(noisy); prepare_target sets them


@dataclass
class NeighbourObjective:
    """Neighbor2Neighbor's loss (:func:`~pix2pix_unet.losses.self_supervised.neighbour_loss`) on the [0, 1]
    scale: mean squared error, whose minimiser given a noisy target is the clean image; no adversarial term."""

    gamma: float
    features: None = None  # no perceptual network (RestoreTask.to moves it when there is one)
    deep_supervision = False

    @torch.no_grad()
    def prepare_target(self, generator: nn.Module, target: NeighbourTarget) -> NeighbourTarget:
        whole = generator(target.noisy)
        return dataclasses.replace(target, whole=neighbour_subsample(whole, target.choice))

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: NeighbourTarget) -> dict[str, torch.Tensor]:
        return {}

    def generator_losses(self, discriminator: nn.Module | None, inputs: torch.Tensor, fake: torch.Tensor,
                         target: NeighbourTarget) -> dict[str, torch.Tensor]:
        if target.whole is None:
            raise RuntimeError("NeighbourObjective.generator_losses before prepare_target: the regulariser needs "
                               "the generator's output on the whole noisy image")
        half = lambda x: x.float() / 2  # noqa: E731 - [-1, 1] differences on the [0, 1] scale
        losses = neighbour_loss(half(fake), half(target.second), half(target.whole[0]), half(target.whole[1]),
                                self.gamma)
        return {"g_total": losses["total"], "g_n2n": losses["reconstruction"], "g_n2n_reg": losses["regulariser"]}


def hidden_pixel_error(output: torch.Tensor, target: torch.Tensor, channels: int) -> torch.Tensor:
    """The mean squared error on the [0, 1] scale at the hidden pixels, for a ``target`` that packs the noisy
    images and their mask as ``(B, C + 1, H, W)`` (blind-spot training and masked validation alike)."""
    noisy, mask = target[:, :channels], target[:, channels:]
    return masked_mse(output.float() / 2, noisy.float() / 2, mask.float())


@dataclass
class BlindSpotObjective:
    """N2V2's loss: the squared error, on the [0, 1] scale, between the output at the blind spots and the noisy
    values there (the target packs the noisy crops and the mask as ``(B, C + 1, H, W)``); no adversarial term."""

    channels: int
    features: None = None
    deep_supervision = False

    def prepare_target(self, generator: nn.Module, target: torch.Tensor) -> torch.Tensor:
        return target

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def generator_losses(self, discriminator: nn.Module | None, inputs: torch.Tensor, fake: torch.Tensor,
                         target: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = hidden_pixel_error(fake, target, self.channels)
        return {"g_total": loss, "g_blind_spot": loss}


MASK_SPACING = 4  # Noise2Self's grid: one pixel in 16 of each validation image is hidden from the model


@dataclass
class SelfMeter:
    """Validation without clean images: the mean squared error at the hidden pixels (``self_mse``, on the
    [0, 1] scale) between the output of the masked input and the noisy image, and ``self_psnr`` from it (its
    expectation is the error to the clean image plus the noise variance, so it ranks checkpoints as PSNR does)."""

    channels: int
    key: str = "self_mse"
    higher_is_better: bool = False
    rows: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def update(self, outputs: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor,
               names: list[str]) -> list[dict[str, float]]:
        new = []
        for i in range(len(outputs)):
            mse = float(hidden_pixel_error(outputs[i: i + 1], target[i: i + 1], self.channels))
            new.append({"self_mse": mse, "self_psnr": -10 * math.log10(max(mse, 1e-12))})
        self.rows += new
        return new

    def summary(self) -> dict[str, float]:
        return mean_rows(self.rows, ["self_mse", "self_psnr"]) if self.rows else {}


RESIDUAL_KEYS = ("residual_std", "estimated_sigma", "sigma_ratio", "residual_correlation", "noise_scale_ratio")


@dataclass
class ResidualMeter(WrappedMeter):
    """Another meter's scores plus, per image, what the model removed (:mod:`~pix2pix_unet.metrics.residual`):
    the residual's standard deviation against the input's estimated noise sigma, and its neighbour correlation.
    Images whose noise looks correlated, or whose removed part does, are named in ``warnings``. What the input
    alone says of its noise is kept in ``cache`` by name, so a run measures it once per validation image."""

    inner: Meter
    channels: int
    cache: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def update(self, outputs: torch.Tensor, target: Any, inputs: torch.Tensor,
               names: list[str]) -> list[dict[str, float]]:
        rows = self.inner.update(outputs, target, inputs, names)
        for row, x, y, name in zip(rows, inputs[:, : self.channels], outputs, names):
            unit = x.float().add(1).div(2)
            if name not in self.cache:
                self.cache[name] = input_noise(unit)
            d = residual_diagnostics(unit, y.float().clamp(-1, 1).add(1).div(2), self.cache[name])
            row.update({k: d[k] for k in RESIDUAL_KEYS})
            self.warnings += residual_warnings(name, d)
        return rows

    def summary(self) -> dict[str, float]:
        metrics = self.inner.summary()
        rows = getattr(self.inner, "rows", [])
        for key in RESIDUAL_KEYS:
            values = [r[key] for r in rows if key in r]
            if values:
                metrics[key] = float(np.mean(values))
        return metrics


class CleanImages(Dataset):
    """Clean images as ``{"clean": (C, H, W)}`` in [-1, 1] (+ ``"name"``), from files or from memory.

    With ``degraded`` files (real degraded/clean pairs, for ``evaluate``) each item
    also holds ``"degraded"``, and with ``masks`` its hole mask ``"mask": (1, H, W)``.

    Decoded files are kept in memory up to ``cache_mb``: training draws a random
    crop of a whole image every time, and decoding a large photo costs more than
    the crop's training step on a CPU (21 ms a draw on the benchmark's photos).

    Args:
        source: image files, or a ``(N, C, H, W)`` tensor in [-1, 1].
        codec: how files are decoded.
        load_size: resize files to this square size.
        cache_mb: decoded examples kept in memory (first come), in MiB; 0 decodes every draw.
        index_offset: a tensor ``source``: the built-in index of its first image (what ``split.json`` records).
    """

    def __init__(self, source: list[Path] | torch.Tensor, codec: ImageCodec | None = None,
                 load_size: int | None = None, degraded: list[Path] | None = None,
                 masks: list[Path] | None = None, cache_mb: int = 0, index_offset: int = 0) -> None:
        self.source_, self.codec, self.load_size = source, codec, load_size
        self.degraded, self.masks, self.index_offset = degraded, masks, index_offset
        self.cache: dict[int, dict[str, torch.Tensor | str]] = {}
        self.cache_left = cache_mb * 2**20  # bytes

    def __len__(self) -> int:
        return len(self.source_)

    def source(self, index: int) -> Path | str:
        return self.source_[index] if isinstance(self.source_, list) else str(index)

    def example_files(self) -> list[dict[str, Path | int]]:
        """The files of each example by role (``clean``, and ``degraded``, ``mask`` where given), or the built-in
        index of images held in memory, for ``split.json``."""
        if isinstance(self.source_, torch.Tensor):
            return [{"index": self.index_offset + i} for i in range(len(self))]
        return [{"clean": path, **({"degraded": self.degraded[i]} if self.degraded is not None else {}),
                 **({"mask": self.masks[i]} if self.masks is not None else {})} for i, path in enumerate(self.source_)]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if isinstance(self.source_, torch.Tensor):
            return {"clean": self.source_[index], "name": f"builtin_{index:05d}"}
        if index in self.cache:
            return dict(self.cache[index])  # the tensors are shared: consumers crop and collate, never write
        item = self.load(index)
        size = sum(v.numel() * v.element_size() for v in item.values() if isinstance(v, torch.Tensor))
        if size <= self.cache_left:
            self.cache[index], self.cache_left = item, self.cache_left - size
        return dict(item)

    def load(self, index: int) -> dict[str, torch.Tensor | str]:
        """Decode example ``index`` from its files."""
        path = self.source_[index]
        item: dict[str, torch.Tensor | str] = {"clean": self.codec.decode(path).tensor, "name": path.name}
        if self.degraded is not None:
            item["degraded"] = self.codec.decode(self.degraded[index]).tensor
            if item["degraded"].shape != item["clean"].shape:
                raise DatasetError(f"pair sizes differ: {self.degraded[index]} and {path}")
        if self.masks is not None:
            item["mask"] = decode_mask(self.masks[index], item["clean"].shape[-2:])
        if self.load_size:
            size = [self.load_size, self.load_size]
            item["clean"] = torch.nn.functional.interpolate(item["clean"][None], size, mode="bilinear",
                                                            antialias=True)[0]
        return item


def builtin_photos(num: int, seed: int, size: int, channels: int, index_offset: int = 0) -> torch.Tensor:
    """``(num, channels, size, size)`` built-in photos in [-1, 1]."""
    source = SyntheticPairs(num, seed=seed, spec=SyntheticSpec(size=size), index_offset=index_offset)
    photos = torch.stack([source[i]["photo"] for i in range(num)])
    return (photos.mean(1, keepdim=True) if channels == 1 else photos).mul(2).sub(1)


def clean_files(folder: Path) -> list[Path]:
    """The images of one split: ``images/`` or ``B/`` when there is one, else the folder's own images."""
    for name in ("images", "B"):
        if (folder / name).is_dir():
            folder = folder / name
            break
    files = list_images(folder)
    if not files:
        raise DatasetError(f"{folder} holds no images to restore")
    return files


class CleanVolumeAugmentation(nn.Module):
    """Flips along z, y and x and 90-degree turns in the (y, x) plane of a batch of clean volumes
    (:class:`~pix2pix_unet.data.augment.VolumeAugmentation`, which has no maps to move with them here); the
    degradations come after, so they see every orientation alike.

    Shape:
        ``(B, C, Z, Y, X)`` -> the same.
    """

    def __init__(self, flip: bool) -> None:
        super().__init__()
        self.volumes = VolumeAugmentation(flip=flip, turn=flip, intensity=False)

    def forward(self, clean: torch.Tensor) -> torch.Tensor:
        b, _, z, y, x = clean.shape
        no_labels = torch.zeros(b, z, y, x, dtype=torch.uint8, device=clean.device)
        no_maps = clean.new_zeros(b, 0, z, y, x)
        return self.volumes(clean, no_labels, no_maps)[0]


def check_volume_restore(cfg: TrainConfig) -> None:
    """What a 3D restorer (``generator.dims=3``) cannot do, refused by name: degradations with no 3D meaning
    (:func:`~pix2pix_unet.data.degrade.check_volume_degradations`), self-supervision and the perceptual term.

    Raises:
        ConfigError: naming the setting and how to turn it off.
    """
    rc = cfg.restore
    if rc.self_supervised is not SelfSupervised.NONE:
        raise ConfigError(f"restore.self_supervised={rc.self_supervised.value} draws its neighbour pairs and blind "
                          "spots in 2D images; volumes (generator.dims=3) learn from clean volumes: set "
                          "restore.self_supervised=none")
    if rc.perceptual_weight > 0:
        raise ConfigError(f"restore.perceptual_weight={rc.perceptual_weight}: the VGG features are 2D; volumes "
                          "(generator.dims=3) train without them: set restore.perceptual_weight=0")
    check_volume_degradations(rc)


def build_clean(data: DataConfig, codec: ImageCodec, seed: int) -> tuple[CleanImages, CleanImages]:
    """Train and validation clean images of ``data.path``, split by file (``train/`` + ``val/`` or ``test/``,
    or ``data.val_fraction`` of one folder held out); images may have any size, each checked up front."""
    if codec.channels not in (1, 3):
        raise DatasetError(f"restore reads images with 1 or 3 channels, got generator.out_channels={codec.channels}")
    if data.path == "builtin":
        if data.builtin_kind is not BuiltinKind.PHOTOS:
            raise DatasetError(f"data.builtin_kind={data.builtin_kind.value} is built-in data for task=segment; "
                               f"task=restore trains on data.builtin_kind=photos or on a folder (data.path)")
        return (
            CleanImages(builtin_photos(data.builtin_train, seed, data.builtin_size, codec.channels)),
            CleanImages(builtin_photos(data.builtin_val, seed, data.builtin_size, codec.channels, VAL_INDEX_OFFSET),
                        index_offset=VAL_INDEX_OFFSET),
        )
    train, val = split_by_file(Path(data.path), clean_files, data, seed)
    slices = z_slices(train[0]) if train else 0
    if slices > 1:
        raise DatasetError(f"{train[0]} is a Z stack of {slices} slices: restore volumes with a 3D model, "
                           "generator.dims=3 (docs/volumes.md)")
    for path in train:  # validation runs on whole images of any size
        h, w = io.image_shape(path)
        if data.crop_size and not data.load_size and min(h, w) < data.crop_size:
            raise DatasetError(f"image {path} is {w}x{h} px, smaller than data.crop_size={data.crop_size}")
    return (CleanImages(train, codec, data.load_size, cache_mb=data.cache_mb),
            CleanImages(val, codec, data.load_size, cache_mb=data.cache_mb))


class RestoreTask(TaskBase):
    """Degraded image (+ hole mask) -> clean image; see the module docstring."""

    kind = Task.RESTORE
    best = ("val/psnr", MetricMode.MAX)

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.generator.dims == 3:
            check_volume_restore(cfg)
        self.self_supervised = cfg.restore.self_supervised is not SelfSupervised.NONE
        if self.self_supervised:  # no clean image to score PSNR against: the masked-pixel loss chooses
            self.best = ("val/self_mse", MetricMode.MIN)
        super().__init__(cfg)
        self.channels = cfg.generator.out_channels
        self.mask_channel = cfg.restore.inpaint.p > 0
        self.degradations_known = True  # False for an export that did not record them (schema version 1)
        self.export_path: str | Path = "<export>"
        mode = cfg.restore.self_supervised
        self.objective = (NeighbourObjective(cfg.restore.neighbour_gamma) if mode is SelfSupervised.NEIGHBOR2NEIGHBOR
                          else BlindSpotObjective(self.channels) if mode is SelfSupervised.BLIND_SPOT
                          else RestoreObjective(cfg.restore, cfg.loss))
        self.classical_cache: dict[str, dict[str, float]] = {}  # baseline scores per validation image
        self.noise_cache: dict[str, dict[str, float]] = {}  # what each validation input says of its noise

    @property
    def uses_discriminator(self) -> bool:
        return self.cfg.restore.gan_weight > 0 and not self.self_supervised

    def to(self, device: torch.device | str) -> "RestoreTask":
        if self.objective.features is not None:
            self.objective.features = self.objective.features.to(device)
        return super().to(device)

    @property
    def input_codec(self) -> ImageCodec:
        rc = self.cfg.restore
        return ImageCodec(self.channels, rc.intensity, (rc.intensity_min, rc.intensity_max))

    @property
    def needs_mask(self) -> bool:
        return self.mask_channel

    @property
    def volumes(self) -> bool:
        """Whether Z stacks go in and out: a 3D generator."""
        return self.cfg.generator.dims == 3

    @property
    def spacing(self) -> tuple[float, ...] | None:
        """The voxel size the generator was built for (None: unknown, 1 µm voxels to the PSF)."""
        return tuple(self.cfg.generator.spacing) if self.cfg.generator.spacing else None

    def datasets(self) -> tuple[Dataset, Dataset, TrainConfig]:
        cfg = self.cfg
        spacing = self.spacing
        if self.volumes:  # the files' voxel size builds the network's anisotropic kernels and the PSF
            train, val, spacing = build_clean_volumes(cfg.data, self.input_codec, cfg.seed, clean_files, spacing)
        else:
            train, val = build_clean(cfg.data, self.input_codec, cfg.seed)
        if cfg.restore.self_supervised is SelfSupervised.NEIGHBOR2NEIGHBOR:
            crop, multiple = cfg.data.crop_size, 2 ** cfg.generator.depth
            if not crop or crop % (2 * multiple):
                raise ConfigError(f"data.crop_size={crop}: restore.self_supervised trains on half-size sub-images of "
                                  f"each crop, so the crop must be a multiple of 2 x 2**depth = {2 * multiple}")
        generator = dataclasses.replace(cfg.generator, in_channels=self.channels + int(self.mask_channel),
                                        spacing=list(spacing) if self.volumes and spacing else cfg.generator.spacing)
        # a blind-spot net must never see a pixel's own value: the residual path would add it to the output
        residual = cfg.restore.residual and cfg.restore.self_supervised is not SelfSupervised.BLIND_SPOT
        resolved = dataclasses.replace(cfg, generator=dataclasses.replace(generator, residual=residual))
        if cfg.restore.perceptual_weight > 0:
            from ..models.vgg import VGGFeatures

            self.objective.features = VGGFeatures(cfg.restore.vgg_weights)
        # crops are taken per example (RandomCrops)
        self.augment = (CleanVolumeAugmentation(cfg.data.flip) if self.volumes
                        else K.AugmentationSequential(K.RandomHorizontalFlip()) if cfg.data.flip else nn.Identity())
        self.note_training_inputs([train[i]["clean"] for i in range(min(len(train), 16))])
        return train, val, resolved

    def summary(self) -> str:
        mode = {"neighbor2neighbor": "Neighbor2Neighbor", "blind_spot": "blind spots"}.get(
            self.cfg.restore.self_supervised.value)
        learnt = f" Learnt from noisy images alone ({mode})." if mode else ""
        what = "volume" if self.volumes else "image"
        return f"Degraded {what} -> clean {what} (intensity rule `{self.input_codec.intensity.value}`).{learnt}"

    def degrade(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generator input for a clean batch in [-1, 1]: the degraded images (or volumes, blurred by the PSF at the
        trained voxel size) in [-1, 1] (+ the hole mask)."""
        degraded, mask = degrade(clean.float().add(1).div(2), self.cfg.restore, generator, self.spacing)
        inputs = degraded.mul(2).sub(1)
        return inputs if mask is None else torch.cat([inputs, mask], dim=1)

    def train_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        images = self.augment(batch["clean"])
        if self.cfg.restore.self_supervised is SelfSupervised.BLIND_SPOT:  # noisy images: predict the hidden pixels
            masked, mask = blind_spot_mask(images, self.cfg.restore.blind_spot_fraction)
            return masked, torch.cat([images, mask], dim=1)
        if self.self_supervised:  # the images are noisy: one neighbour sub-image is the input, the other the target
            choice = neighbour_choice(images)
            first, second = neighbour_subsample(images, choice)
            return first, NeighbourTarget(second, images, choice)
        return self.degrade(images), images

    # ----------------------------------------------------------------- the contract

    def describe(self) -> dict[str, Any]:
        rc = self.cfg.restore
        return {**super().describe(), "hole_mask_channel": self.mask_channel, "restore": to_dict(rc),
                "intensity": rc.intensity.value, "intensity_range": [rc.intensity_min, rc.intensity_max]}

    @classmethod
    def config_from_export(cls, meta: dict[str, Any], source: str | Path) -> TrainConfig:
        cfg = super().config_from_export(meta, source)
        hole_mask = bool(require(meta, "hole_mask_channel", source))
        if meta.get("restore"):
            restore = from_dict(RestoreConfig, meta["restore"], "restore")
        else:  # an export that does not record them: the defaults of its kind of input
            restore = RestoreConfig().for_volumes() if cfg.generator.dims == 3 else RestoreConfig()
        if hole_mask != (restore.inpaint.p > 0):  # an export from before the degradations were recorded
            restore = dataclasses.replace(restore, inpaint=dataclasses.replace(restore.inpaint, p=1.0 * hole_mask))
        return dataclasses.replace(cfg, restore=restore)

    def resolve_from_export(self, meta: dict[str, Any], source: str | Path) -> None:
        self.degradations_known = bool(meta.get("restore"))
        self.export_path = source

    # ----------------------------------------------------------------- files

    def decode_input(self, path: Path, mask: Path | None = None) -> Decoded:
        """The degraded image; with inpainting, its holes (``mask`` non-zero) set as in training and the mask
        appended as a channel. A 3D restorer reads a Z stack (the trained voxel size where the file states none);
        a 2D image given to it, or a stack given to a 2D one, is an error naming the file."""
        if self.volumes:
            volume = read_volume(path)
            if volume.spacing is None and self.spacing:  # the trained voxel size, where the file has none
                volume = dataclasses.replace(volume, spacing=self.spacing)
            # decoded window by window: the float input is never held whole
            return self.input_codec.from_volume(volume, blocks=True)
        slices = z_slices(path)
        if slices > 1:
            raise VolumeError(f"{path} is a Z stack of {slices} slices, but this restorer is 2D (generator.dims=2); "
                              "restore it with a 3D model (generator.dims=3)")
        decoded = self.input_codec.decode(path)
        if not self.mask_channel:
            return decoded
        if mask is None:
            raise DatasetError(f"{path} has no hole mask: this generator inpaints, so predict needs --mask DIR "
                               "with a mask of the same name (non-zero = hole)")
        holes = decode_mask(mask, decoded.tensor.shape[-2:])
        decoded.tensor = torch.cat([decoded.tensor * (1 - holes), holes])  # holes are mid-gray (0) as in training
        return decoded

    def encode(self, output: torch.Tensor, decoded: Decoded, path: Path, dtype: OutputDtype = OutputDtype.INPUT,
               overlay_dir: Path | None = None, relative: Path | None = None) -> list[Path]:
        """An image as :meth:`TaskBase.encode` writes it; a volume as an ImageJ hyperstack in the input's dtype,
        units and voxel size."""
        if decoded.volume is None:
            return super().encode(output, decoded, path, dtype, overlay_dir, relative)
        voxels = output["voxels"] if isinstance(output, dict) else self.volume_voxels(output, decoded, dtype)
        return [write_volume(path, voxels, decoded.volume.spacing)]

    def volume_voxels(self, output: torch.Tensor, decoded: Decoded, dtype: OutputDtype) -> np.ndarray:
        """A volume's output ``(C, Z, Y, X)`` (or a block of it) as voxels ``(Z, Y, X, C)`` in the input's dtype
        and units, or ``dtype``'s full range."""
        return self.input_codec.encode(output, decoded, dtype, np.dtype(self.output_dtype or "uint16"))

    def volume_reduction(self, decoded: Decoded, dtype: OutputDtype = OutputDtype.INPUT) -> VoxelReduction | None:
        """Of a volume's output, predict keeps the written voxels (16-bit: half the float output)."""
        if decoded.volume is None:
            return None
        return self.voxels_reduction(lambda block: self.volume_voxels(block, decoded, dtype))

    def eval_dataset(self, folder: Path, inputs: str | None, targets: str | None, masks: Path | None) -> Dataset:
        """Clean images degraded as validation degrades them (``restore.val_seed``), or with ``--inputs``
        real degraded images paired with the clean ``--targets`` by file name (+ ``--mask`` holes); Z stacks
        for a 3D restorer."""
        if inputs is None:
            if not self.degradations_known:
                raise ExportError(f"{self.export_path}: config.json has no 'restore' field (the degradations), which "
                                  "evaluating on clean images needs; pass --inputs DEGRADED --targets CLEAN")
            clean = clean_files(folder / targets) if targets else clean_files(folder)
            return CleanVolumes(clean, self.input_codec, self.spacing) if self.volumes else CleanImages(
                clean, self.input_codec)
        clean = list_images(folder / (targets or "images"))
        if not clean:
            raise DatasetError(f"{folder / (targets or 'images')} holds no clean images")
        degraded = pair_by_stem(clean, folder / inputs, "degraded image")
        if self.volumes:
            return CleanVolumes(clean, self.input_codec, self.spacing, degraded=degraded)
        hole_masks = None
        if self.mask_channel:
            if masks is None:
                raise DatasetError("this generator inpaints: pass --mask DIR with the hole masks of the inputs")
            hole_masks = pair_by_stem(degraded, masks, "hole mask")
        return CleanImages(clean, self.input_codec, degraded=degraded, masks=hole_masks)

    # ----------------------------------------------------------------- evaluation

    def meter(self, dataset: Dataset, report: bool = False) -> Meter:
        """Scores against the clean images (or, learning from noisy files alone, the masked-pixel loss), with the
        residual diagnostics of each image (:class:`ResidualMeter`)."""
        return ResidualMeter(self.scores(dataset), self.channels, self.noise_cache)

    def scores(self, dataset: Dataset) -> Meter:
        if self.self_supervised and getattr(dataset, "degraded", None) is None:  # noisy files, no clean ones
            return SelfMeter(self.channels)
        baseline = classical_for(self.cfg.restore) if not self.self_supervised else None
        classical = None
        if baseline is not None:
            restorer = BASELINES[baseline]
            classical = lambda x: restorer(x.add(1).div(2)).mul(2).sub(1)  # noqa: E731
        return ImageMeter(self.channels, baseline=True, classical=classical, cache=self.classical_cache)

    def val_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each clean image degraded with its own seed, from ``restore.val_seed`` and its name, so every
        evaluation (and ``pix2pix-unet evaluate``) sees the same inputs, however the images are batched."""
        clean = batch["clean"]
        if self.self_supervised and "degraded" not in batch:  # noisy files: hide a grid of pixels from the model
            masked = [grid_mask(c[None], name_seed(self.cfg.restore.val_seed, n), MASK_SPACING)
                      for c, n in zip(clean, batch["name"])]
            inputs = torch.cat([m for m, _ in masked])
            masks = torch.cat([mask for _, mask in masked])
            return inputs, torch.cat([clean, masks.to(clean.dtype)], dim=1)
        if "degraded" in batch:
            inputs = batch["degraded"]
            return (inputs if "mask" not in batch else torch.cat([inputs * (1 - batch["mask"]), batch["mask"]], 1),
                    clean)
        inputs = [self.degrade(c[None], torch.Generator().manual_seed(name_seed(self.cfg.restore.val_seed, n)))
                  for c, n in zip(clean, batch["name"])]
        return torch.cat(inputs), clean

    display_names = ("input", "output", "target", "removed (input - output, x4; gray = 0)")

    def display(self, inputs: torch.Tensor, outputs: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """``[input, output, target, removed]`` pictures; of a volume, its middle z slice."""
        if inputs.ndim == 5:  # (b, c, z, y, x) -> (b, c, y, x)
            middle = inputs.shape[2] // 2
            inputs, outputs, target = inputs[:, :, middle], outputs[:, :, middle], target[:, :, middle]
        removed = (inputs[:, : self.channels] - outputs.clamp(-1, 1)).mul(4).clamp(-1, 1)
        return [inputs[:, : self.channels], outputs.clamp(-1, 1), target[:, : self.channels], removed]
