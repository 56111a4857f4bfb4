"""``task=segment``: image -> per-class logits.

Data: images with class-id label maps and, optionally, instance maps (see
:mod:`~pix2pix_unet.data.labels`); the built-in data is photo -> labels. Each
training example carries the U-Net weight map of its instances. Training batches
get strong paired augmentation on the device (crop, flips, 90-degree rotations,
affine, elastic), label maps resampled by nearest neighbour. The loss is the
hybrid of :func:`~pix2pix_unet.losses.segment.segmentation_losses`, plus,
with ``segment.adversarial=true``, the PatchGAN term on the softmax
probabilities (D sees the image and either the one-hot labels or the probabilities).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import math
from pathlib import Path
from typing import Any, NamedTuple

import kornia.augmentation as K
from einops import rearrange
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..codec import Decoded, ImageCodec, one_hot
from ..config import (
    ConfigError, FinalActivation, InferenceConfig, InstanceMode, Intensity, LabelConfig, MetricMode, OutputDtype,
    SegmentConfig, Task, TrainConfig, to_dict,
)
from ..runtime import VoxelReduction, run_generator
from ..io import ImageFile, ImageWriteError, display_rgb8, from_tensor, overlay, palette, write_image, write_label_map
from ..volume_io import VolumeError, open_volume, read_volume, write_volume, z_slices
from ..models import Generator
from ..losses import generator_adversarial_loss
from ..losses.objective import discriminator_losses
from .base import ExportError, Meter, TaskBase, require, size_batches
from ..metrics.instance import TAUS, instance_scores, match_counts
from ..data.instances import (
    InstanceThresholds, border_distance, border_targets, class_map, instance_maps, instances_from_maps,
    instances_from_probs, outlines, tune_thresholds,
)
from ..data.labels import (
    LabelledDataset, LabelledFolder, build_labelled, colorize_labels, discover_labelled, instances_from_labels,
)
from ..losses.segment import deep_supervision_losses, segmentation_losses
from ..metrics.segment import confusion_matrix, segmentation_scores
from ..data.augment import VolumeAugmentation
from ..data.volumes import LabelledVolumes, build_labelled_volumes
from ..data.weight_map import unet_weight_map


class SegmentTarget(NamedTuple):
    """What a segmentation batch is compared with: class ids ``(B, H, W)``, weights ``(B, H, W)``,
    with ``segment.distance_head`` each object's normalised distance to its border ``(B, H, W)``, and
    where any example has a ``confidence/`` map, the per-pixel loss weights ``(B, H, W)`` in [0, 1]."""

    labels: torch.Tensor
    weight: torch.Tensor
    distance: torch.Tensor | None = None
    confidence: torch.Tensor | None = None


class LabelMaps(NamedTuple):
    """What validation compares a segmentation with: class ids and instance ids, each ``(B, H, W)``."""

    labels: torch.Tensor
    instances: torch.Tensor


class WeightedLabelled(Dataset):
    """A labelled dataset whose examples also carry their U-Net weight map, ``"weight": (H, W)``.

    The maps of a file are computed once and kept (about 10 bytes a pixel): the weight map's distance
    transforms over a whole 512-px image cost more than a training step on a crop of it.

    With ``border_class`` (instance mode) the label map gets its objects' borders as
    that class, and the weight map treats border pixels as the gaps between objects,
    so the line that parts two touching objects weighs up to ``w0`` more.
    """

    def __init__(self, base: LabelledDataset, cfg: SegmentConfig, border_class: int | None = None,
                 distance: bool = False, spacing: tuple[float, ...] | None = None) -> None:
        self.base, self.cfg, self.border_class, self.distance = base, cfg, border_class, distance
        self.spacing = spacing  # volumes: the voxel size, so distances are measured in space, not in voxels
        self.has_instances = base.has_instances
        self.maps: dict[int, dict[str, torch.Tensor]] = {}  # per file, in each loader process

    def __len__(self) -> int:
        return len(self.base)

    def example_files(self) -> list[dict[str, Path | int]]:
        return self.base.example_files()

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.base[index]
        if index not in self.maps:  # a file's maps never change: made once, then each crop of it reuses them
            self.maps[index] = self.targets(item["labels"].numpy(), item["instances"].numpy())
        return {**item, **self.maps[index]}

    def targets(self, labels: np.ndarray, instances: np.ndarray) -> dict[str, torch.Tensor]:
        """The label map (with the border class in instance mode), its U-Net weight map and (with
        ``distance``) the distance map of one file."""
        extra = {"distance": torch.from_numpy(border_distance(instances, self.spacing))} if self.distance else {}
        if self.border_class is not None:
            labels = border_targets(labels, instances, self.border_class)
            instances = np.where(labels == self.border_class, 0, instances)
        weight = unet_weight_map(instances, labels, w0=self.cfg.w0, sigma=self.cfg.sigma,
                                 class_balance=self.cfg.class_balance, sampling=self.spacing)
        return {"labels": torch.from_numpy(labels), "weight": torch.from_numpy(weight), **extra}


class SegmentAugmentation(nn.Module):
    """Random crop, then (with ``cfg.augment``) flips, 90-degree rotations, affine and elastic
    deformation, with the same geometry for an image, its label map and its weight map.

    Label maps go through kornia's ``mask`` key, i.e. nearest-neighbour resampling, so
    they keep their class ids; the image and the float maps (the weight map, and the
    distance map of ``segment.distance_head``) are resampled bilinearly.

    Args:
        crop_size: square random crop, or None.
        flip: random horizontal and vertical flips.
        cfg: the augmentation strengths.

    Shape:
        ``(B, C, H, W), (B, H, W) int, (B, M, H, W)`` -> ``(B, C, h, w), (B, h, w) int64, (B, M, h, w)``.
    """

    def __init__(self, crop_size: int | None, flip: bool, cfg: SegmentConfig) -> None:
        super().__init__()
        ops: list[nn.Module] = [K.RandomCrop((crop_size, crop_size))] if crop_size else []
        if flip:
            ops += [K.RandomHorizontalFlip(), K.RandomVerticalFlip()]
        if cfg.augment:
            kernel = 2 * math.ceil(2.5 * cfg.elastic_sigma) + 1
            ops += [
                K.RandomRotation90(times=(0, 3), p=1.0),
                K.RandomAffine(degrees=cfg.rotate_degrees, scale=(1 - cfg.scale, 1 + cfg.scale),
                               padding_mode="reflection", p=0.75),
                K.RandomElasticTransform(kernel_size=(kernel, kernel), sigma=(cfg.elastic_sigma,) * 2,
                                         alpha=(cfg.elastic_alpha,) * 2, align_corners=False,
                                         padding_mode="reflection", p=0.5),
            ]
        self.crop_size = crop_size
        self.pipeline = K.AugmentationSequential(*ops, data_keys=["input", "mask", "input"]) if ops else None

    def forward(self, image: torch.Tensor, labels: torch.Tensor,
                maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.pipeline is None:
            return image, labels, maps
        if self.crop_size is not None and min(image.shape[-2:]) < self.crop_size:
            raise ValueError(f"crop_size={self.crop_size} is larger than the images ({image.shape[-2]}x{image.shape[-1]})")
        # 1. label maps as (b, 1, h, w) floats, the layout kornia's mask key expects
        image, labels, maps = self.pipeline(image, labels[:, None].float(), maps)
        # 2. back to class ids                                          (b, h, w)
        return image, labels[:, 0].round().long(), maps


class SegmentMeter:
    """Pixel accuracy, per-class and mean IoU and Dice from one confusion matrix over the whole set,
    and with instance maps the matching scores of :mod:`~pix2pix_unet.metrics.instance`
    (object precision, recall, F1, AP at IoU 0.5 and 0.75, mean AP over 0.5..0.9, PQ, matched IoU),
    their counts summed over the set. Predicted objects come from the task (:meth:`SegmentTask.objects`)."""

    higher_is_better = True

    def __init__(self, task: "SegmentTask", has_instances: bool) -> None:
        self.task, self.has_instances = task, has_instances
        self.key = "object_f1" if has_instances else "miou"  # what reports rank the worst examples by
        k = task.num_classes
        self.confusion = torch.zeros(k, k, dtype=torch.long)
        self.counts = np.zeros((len(TAUS), 4))  # per IoU threshold: tp, fp, fn, matched IoU sum

    def update(self, outputs: torch.Tensor, target: LabelMaps, inputs: torch.Tensor,
               names: list[str]) -> list[dict[str, float]]:
        rows = []
        for logits, labels, instances in zip(outputs.float().cpu(), target.labels, target.instances):
            pred = self.task.classes(logits)  # (h, w)
            confusion = confusion_matrix(pred, labels, self.task.num_classes)
            self.confusion += confusion
            scores = segmentation_scores(confusion)
            row = {"miou": scores["miou"], "pixel_acc": scores["pixel_acc"]}
            if self.has_instances:
                counts = match_counts(self.task.objects(logits), instances.numpy())
                self.counts += counts
                row["object_f1"] = instance_scores(counts)["object_f1"]
            rows.append(row)
        return rows

    def summary(self) -> dict[str, float]:
        metrics = segmentation_scores(self.confusion)
        if self.has_instances:
            metrics.update(instance_scores(self.counts))
        return metrics


class SegmentTask(TaskBase):
    """Image -> per-class logits; see the module docstring."""

    kind = Task.SEGMENT
    best = ("val/miou", MetricMode.MAX)

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.num_classes: int | None = cfg.labels.num_classes
        self.instance_mode = cfg.segment.instances is InstanceMode.ON  # AUTO is settled by the data
        self.confidence_maps = False  # per-pixel loss weights: settled by the data (a confidence/ folder)
        seg = cfg.segment
        context, k = cfg.data.context_slices, 2 * cfg.data.context_slices + 1
        if context and cfg.generator.dims == 3:
            raise ConfigError(f"data.context_slices={context} gives a 2D generator neighbouring slices as channels "
                              "(2.5D); a 3D generator (generator.dims=3) sees the volume itself: set one of them")
        if context and cfg.generator.in_channels % k:
            raise ConfigError(f"data.context_slices={context}: the generator sees {k} slices as channels, so "
                              f"generator.in_channels={cfg.generator.in_channels} must be a multiple of {k} "
                              f"({k} for gray volumes)")
        default = InstanceThresholds()
        self.thresholds = InstanceThresholds(
            seg.prob_threshold if seg.prob_threshold is not None else default.prob,
            seg.seed_threshold if seg.seed_threshold is not None else default.seed,
            seg.min_size if seg.min_size is not None else default.min_size)

    @property
    def border_class(self) -> int | None:
        """The border class id in instance mode (one past the label classes), else None."""
        return self.num_classes if self.instance_mode else None

    @property
    def out_classes(self) -> int:
        """The class channels of the output: the classes, plus the border class in instance mode."""
        return self.num_classes + int(self.instance_mode)

    @property
    def distance_head(self) -> bool:
        """Whether the output has one more channel, the predicted distance to the object border."""
        return self.instance_mode and self.cfg.segment.distance_head

    def classes(self, output: torch.Tensor) -> torch.Tensor:
        """Class ids ``(H, W)`` from one output ``(C, H, W)``; in instance mode borders take their object's class."""
        logits = output[: self.out_classes]
        return class_map(logits, self.border_class) if self.instance_mode else logits.argmax(0)

    def post_inputs(self, output: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """What instance post-processing reads from one output: class probabilities and the distance map."""
        output = output.float()
        distance = output[-1].sigmoid().numpy() if self.distance_head else None
        return output[: self.out_classes].softmax(0).numpy(), distance

    def objects(self, output: torch.Tensor) -> np.ndarray:
        """Instance ids ``(H, W)`` from one output: the seeded watershed of instance mode with the task's
        thresholds, else the connected components of each predicted class."""
        if self.instance_mode:
            probs, distance = self.post_inputs(output)
            return instances_from_probs(probs, self.border_class, self.thresholds, distance)
        return instances_from_labels(self.classes(output).numpy())

    @property
    def uses_discriminator(self) -> bool:
        return self.cfg.segment.adversarial

    @property
    def input_codec(self) -> ImageCodec:
        """The images' channels (2.5D: the generator's, divided among the slices it sees) and intensity rule."""
        seg = self.cfg.segment
        return ImageCodec(self.cfg.generator.in_channels // self.slices_seen, seg.intensity,
                          (seg.intensity_min, seg.intensity_max))

    @property
    def volumes(self) -> bool:
        """Whether Z stacks go in and out (:mod:`~pix2pix_unet.data.volumes`): a 3D generator, or 2.5D."""
        return self.cfg.generator.dims == 3 or self.cfg.data.context_slices > 0

    @property
    def slices_seen(self) -> int:
        """The slices a 2.5D generator sees at once (the slice and ``data.context_slices`` each side); 1 else."""
        return 2 * self.cfg.data.context_slices + 1

    def patches(self) -> tuple[int, int | None]:
        """2.5D trains on ``slices_seen``-deep patches of the volumes, whose middle slice is the target."""
        if self.cfg.data.context_slices and self.cfg.generator.dims == 2:
            return 3, self.slices_seen
        return super().patches()

    def datasets(self) -> tuple[Dataset, Dataset, TrainConfig]:
        cfg, seg = self.cfg, self.cfg.segment
        spacing = tuple(cfg.generator.spacing) if cfg.generator.spacing else None
        if self.volumes:  # the files' voxel size builds the network's anisotropic kernels and pooling
            train, val, num_classes, spacing = build_labelled_volumes(cfg.data, cfg.labels, self.input_codec,
                                                                      cfg.seed, spacing)
        else:
            train, val, num_classes = build_labelled(cfg.data, cfg.labels, self.input_codec, cfg.seed)
        self.num_classes = num_classes
        self.confidence_maps = bool(getattr(train, "has_confidence", False))  # the loss takes per-pixel weights
        self.instance_mode = seg.instances is InstanceMode.ON or (
            seg.instances is InstanceMode.AUTO and train.has_instances)
        resolved = dataclasses.replace(
            cfg,
            labels=dataclasses.replace(cfg.labels, num_classes=num_classes),
            generator=dataclasses.replace(cfg.generator, out_channels=self.out_classes + int(self.distance_head),
                                          final_activation=FinalActivation.NONE,
                                          spacing=list(spacing) if cfg.generator.dims == 3 and spacing
                                          else cfg.generator.spacing),
        )
        # crops are taken per example (RandomCrops)
        self.augment = (VolumeAugmentation(cfg.data.flip, seg.augment, seg.augment, spacing,
                                           seg.elastic_alpha if seg.augment else 0.0, seg.elastic_sigma)
                        if cfg.generator.dims == 3 else SegmentAugmentation(None, cfg.data.flip, seg))
        self.note_training_inputs([train[i]["image"] for i in range(min(len(train), 16))])
        return (WeightedLabelled(train, seg, self.border_class, self.distance_head,
                                 spacing if self.volumes else None), val, resolved)

    def train_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, SegmentTarget]:
        if self.slices_seen > 1 and self.cfg.generator.dims == 2:  # 2.5D: the slices as channels, the middle's maps
            middle = self.cfg.data.context_slices
            batch = {**batch, "image": rearrange(batch["image"], "b c k y x -> b (k c) y x"),
                     **{key: batch[key][:, middle] for key in ("labels", "weight", "distance", "confidence")
                        if key in batch}}
        confidence = batch["confidence"] if self.confidence_maps else None
        maps = torch.stack([batch["weight"], *([batch["distance"]] if self.distance_head else []),
                            *([confidence] if confidence is not None else [])], 1)
        image, labels, maps = self.augment(batch["image"], batch["labels"], maps)  # one geometry for all
        return image, SegmentTarget(labels, maps[:, 0], maps[:, 1] if self.distance_head else None,
                                    maps[:, -1].clamp(0, 1) if confidence is not None else None)

    # ----------------------------------------------------------------- objective

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: SegmentTarget) -> dict[str, torch.Tensor]:
        """D compares (image, one-hot labels) with (image, predicted probabilities); nothing when
        ``segment.adversarial`` is off."""
        if not self.cfg.segment.adversarial:
            return {}
        real = one_hot(target.labels, self.out_classes, self.cfg.generator.dims).to(fake.dtype)
        return discriminator_losses(discriminator, inputs, fake.softmax(1), real, self.cfg.loss)  # no distance head

    @property
    def deep_supervision(self) -> bool:
        """Whether training gets every output head of the generator (``generator.deep_supervision``)."""
        return self.cfg.generator.deep_supervision

    def generator_losses(self, discriminator: nn.Module | None, inputs: torch.Tensor, fake: torch.Tensor,
                         target: SegmentTarget, heads: list[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The hybrid segmentation loss of ``fake`` or, with deep supervision, the weighted sum of each
        head's (``segment.deep_weights``); then the distance and adversarial terms on ``fake``."""
        k, seg = self.out_classes, self.cfg.segment
        if heads is None:
            losses = segmentation_losses(fake[:, :k], target.labels, target.weight, seg, target.confidence)
        else:
            losses = deep_supervision_losses([h[:, :k] for h in heads], target.labels, target.weight, seg,
                                             target.confidence)
        total = losses["g_seg"]
        if self.distance_head:  # L1 of the predicted distance to the object border
            losses["g_distance"] = (fake[:, -1].float().sigmoid() - target.distance).abs().mean()
            total = total + self.cfg.segment.distance_weight * losses["g_distance"]
        if self.cfg.segment.adversarial:
            losses["g_gan"] = generator_adversarial_loss(discriminator(inputs, fake.softmax(1)), self.cfg.loss.gan)
            total = total + self.cfg.loss.gan_weight * losses["g_gan"]
        return {"g_total": total, **losses}

    # ----------------------------------------------------------------- the contract

    def describe(self) -> dict[str, Any]:
        seg = self.cfg.segment
        return {**super().describe(), "num_classes": self.num_classes, "intensity": seg.intensity.value,
                "context_slices": self.cfg.data.context_slices,
                "intensity_range": [seg.intensity_min, seg.intensity_max], "instance_mode": self.instance_mode,
                "instance_thresholds": self.thresholds.to_dict(), "distance_head": self.distance_head}

    @classmethod
    def config_from_export(cls, meta: dict[str, Any], source: str | Path) -> TrainConfig:
        cfg = super().config_from_export(meta, source)
        rule = require(meta, "intensity", source)
        try:
            intensity = Intensity(rule)
        except ValueError:
            raise ExportError(f"{source}: config.json has intensity {rule!r}; known: "
                              f"{[i.value for i in Intensity]}") from None
        # the range is part of the rule only for intensity=range
        low, high = require(meta, "intensity_range", source) if intensity is Intensity.RANGE else (0.0, 255.0)
        # exports from before instance mode (schema version 1) are plain segmenters
        instances = InstanceMode.ON if meta.get("instance_mode") else InstanceMode.OFF
        th = meta.get("instance_thresholds") or InstanceThresholds().to_dict()
        try:
            segment = SegmentConfig(intensity=intensity, intensity_min=float(low), intensity_max=float(high),
                                    instances=instances, distance_head=bool(meta.get("distance_head")),
                                    prob_threshold=float(th["prob"]),
                                    seed_threshold=float(th["seed"]), min_size=int(th["min_size"]))
        except (KeyError, TypeError, ValueError):
            raise ExportError(f"{source}: config.json has instance_thresholds {th!r}; expected prob, seed and "
                              "min_size") from None
        return dataclasses.replace(cfg, labels=LabelConfig(num_classes=require(meta, "num_classes", source)),
                                   segment=segment, data=dataclasses.replace(
                                       cfg.data, context_slices=int(meta.get("context_slices") or 0)))

    # ----------------------------------------------------------------- what callers ask

    pipeline_tag = "image-segmentation"

    def summary(self) -> str:
        return (f"Image -> {self.num_classes} class label map (intensity rule `{self.input_codec.intensity.value}`"
                + ("; instance maps by watershed" if self.instance_mode else "") + ").")

    @property
    def display_name(self) -> str:
        return self.kind.value + (" (instance mode)" if self.instance_mode else "")

    @property
    def writes_overlays(self) -> bool:
        return True

    def bioimageio_outputs(self) -> list[str] | None:
        # instance mode adds the border class (one past the label classes) that its watershed reads
        return [f"class_{i}" for i in range(self.num_classes)] + (["border"] if self.instance_mode else [])

    def bioimageio_refusal(self) -> str | None:
        if self.distance_head:
            return ("a segmenter with a distance head (segment.distance_head=true) mixes class logits and a "
                    "distance map in one output; export it as onnx or safetensors")
        return super().bioimageio_refusal()

    def override_thresholds(self, prob: float | None = None, seed: float | None = None,
                            min_size: int | None = None) -> None:
        """Replace the recorded post-processing thresholds (``predict --prob-threshold`` ...).

        Raises:
            ValueError: the segmenter was not trained in instance mode, so it has no thresholds.
        """
        if not self.instance_mode:
            raise ValueError("a segmenter trained without instance mode has no instance thresholds")
        self.thresholds = InstanceThresholds(self.thresholds.prob if prob is None else prob,
                                             self.thresholds.seed if seed is None else seed,
                                             self.thresholds.min_size if min_size is None else min_size)

    def tunes(self, dataset: Dataset) -> str | None:
        """Instance mode with instance maps: the thresholds the config leaves unset."""
        seg = self.cfg.segment
        if not self.instance_mode or not getattr(dataset, "has_instances", False):
            return None
        if None not in (seg.prob_threshold, seg.seed_threshold, seg.min_size):
            return None  # all three set in the config: nothing left to choose
        return "the instance thresholds"

    @torch.no_grad()
    def tune(self, generator: nn.Module, dataset: Dataset, device: torch.device | str) -> dict[str, float] | None:
        """Instance mode: pick the post-processing thresholds with the best object F1 on ``dataset``
        (the validation files set aside for tuning) and keep them; thresholds set in the config stay as they are."""
        if not self.tunes(dataset):
            return None
        was_training = generator.training
        generator.eval()
        infer = InferenceConfig(batch_size=self.cfg.batch_size)
        probs, distances, truths = [], [], []
        for _, batch in size_batches(dataset, infer.batch_size):
            for output in run_generator(generator, batch["image"], infer, device):
                p, d = self.post_inputs(output)
                probs.append(p)
                distances.append(d)
            truths += list(batch["instances"].numpy())
        generator.train(was_training)
        seg = self.cfg.segment
        fixed = {"prob": seg.prob_threshold, "seed": seg.seed_threshold, "min_size": seg.min_size}
        self.thresholds, f1 = tune_thresholds(probs, truths, self.border_class, fixed,
                                              distances if self.distance_head else None)
        return {**{f"{k}_threshold" if k != "min_size" else k: v for k, v in self.thresholds.to_dict().items()},
                "object_f1": f1}

    # ----------------------------------------------------------------- files

    def decode_input(self, path: Path, mask: Path | None = None) -> Decoded:
        """An image, or for a 3D segmenter a Z stack (the trained voxel size where the file states none; a 2D
        image is an error naming the file)."""
        if not self.volumes:
            slices = z_slices(path)
            if slices > 1:
                raise VolumeError(f"{path} is a Z stack of {slices} slices, but this segmenter is 2D "
                                  "(generator.dims=2); segment it with a 3D model (generator.dims=3)")
            return super().decode_input(path, mask)
        # a 3D net reads an OME-Zarr block by block; 2.5D reads slices of a volume held in memory
        volume = open_volume(path) if self.cfg.generator.dims == 3 else read_volume(path)
        if volume.spacing is None and self.cfg.generator.spacing:  # the trained voxel size, where the file has none
            volume = dataclasses.replace(volume, spacing=tuple(self.cfg.generator.spacing))
        # a 3D net's input decoded window by window: the float volume is never held whole
        return self.input_codec.from_volume(volume, blocks=self.cfg.generator.dims == 3)

    def output_path(self, relative: Path, output_dir: Path, suffix: str | None = None) -> Path:
        return output_dir / relative.with_suffix(".tif" if self.volumes else ".png")

    def encode(self, output: torch.Tensor, decoded: Decoded, path: Path, dtype: OutputDtype = OutputDtype.INPUT,
               overlay_dir: Path | None = None, relative: Path | None = None) -> list[Path]:
        """The class ids as a palette PNG; in instance mode also the instance ids as a 16-bit PNG
        ``NAME_instances.png`` (0 = background, 1..N; a 32-bit TIFF beyond 65535 objects). With
        ``overlay_dir``, the classes (or the instance outlines) drawn over the input."""
        if decoded.volume is not None:
            return self.encode_volume(output, decoded, path)
        labels = self.classes(output).numpy()
        written = [write_label_map(path, labels, self.num_classes)]
        objects = self.objects(output) if self.instance_mode else None
        if objects is not None:
            big = objects.max() > np.iinfo(np.uint16).max
            where = path.with_name(f"{path.stem}_instances{'.tif' if big else '.png'}")
            written.append(write_image(where, objects.astype(np.uint32 if big else np.uint16)))
        if overlay_dir is not None:
            picture = display_rgb8(decoded.image)
            if objects is None:
                picture = overlay(picture, labels, self.num_classes)
            else:  # each object's outline in a colour of its own
                edge = outlines(objects)
                picture[edge] = palette(int(objects.max()) + 1)[objects[edge]]
            written.append(write_image(overlay_dir / (relative or Path(path.name)).with_suffix(".png"), picture))
        return written

    @property
    def class_dtype(self) -> np.dtype:
        """The dtype of written class ids: 8-bit, 16-bit past 256 classes."""
        return np.dtype(np.uint8 if self.num_classes <= 256 else np.uint16)

    def volume_reduction(self, decoded: Decoded, dtype: OutputDtype = OutputDtype.INPUT) -> VoxelReduction | None:
        """Of a volume's logits, predict keeps the class ids and, in instance mode, the watershed's foreground and
        interior maps (:func:`~pix2pix_unet.data.instances.instance_maps`): 6 bytes a voxel instead of 4 per
        output channel, and no whole-volume softmax."""
        if decoded.volume is None:
            return None
        dtypes = {"classes": self.class_dtype}
        if self.instance_mode:
            dtypes |= {"foreground": np.dtype(bool), "interior": np.dtype(np.float32)}
        return VoxelReduction(dtypes, self.voxel_maps)

    def voxel_maps(self, output: torch.Tensor) -> dict[str, np.ndarray]:
        """:meth:`volume_reduction`'s maps ``(Z, Y, X)`` of one output ``(C', Z, Y, X)`` (or a block of it)."""
        maps = {"classes": self.classes(output).numpy().astype(self.class_dtype)}
        if self.instance_mode:
            probs, distance = self.post_inputs(output)
            maps["foreground"], maps["interior"] = instance_maps(probs, self.border_class, self.thresholds.prob,
                                                                 distance)
        return maps

    def encode_volume(self, output: torch.Tensor | dict[str, np.ndarray], decoded: Decoded,
                      path: Path) -> list[Path]:
        """A volume's class ids as an 8-bit ImageJ hyperstack at ``path`` (16-bit past 255 classes), and in
        instance mode its instance ids as ``NAME_instances.tif`` (16-bit; 32-bit floats cannot hold ids, so
        more than 65535 objects is an error naming the file); both carry the input's voxel size. ``output``
        is the logits or their :meth:`voxel_maps` (what predict keeps of a large volume)."""
        spacing = decoded.volume.spacing if decoded.volume is not None else None
        maps = self.voxel_maps(output) if isinstance(output, torch.Tensor) else output
        written = [write_volume(path, maps["classes"], spacing)]
        if self.instance_mode:
            objects = instances_from_maps(maps["foreground"], maps["interior"], self.thresholds, dtype=None)
            if objects.dtype != np.uint16:
                raise ImageWriteError(f"{path}: {objects.max()} objects do not fit the 16-bit instance volume")
            where = path.with_name(f"{path.stem}_instances.tif")
            written.append(write_volume(where, objects, spacing))
        return written

    def output_warnings(self, output: torch.Tensor | dict[str, np.ndarray], decoded: Decoded) -> list[str]:
        # counted, not sorted: torch.unique of a volume's class ids took 2 GB at 512 x 512 x 200
        ids = output["classes"] if isinstance(output, dict) else self.classes(output).numpy()
        classes = np.bincount(ids.ravel()).nonzero()[0].tolist()
        if len(classes) == 1:
            return [f"{decoded.path}: every pixel was predicted as class {classes[0]}; check that the image is "
                    f"like the training images (intensity={self.cfg.segment.intensity.value})"]
        return []

    def eval_dataset(self, folder: Path, inputs: str | None, targets: str | None, masks: Path | None) -> Dataset:
        """``images/`` (or ``B/``, or ``--inputs``) + ``labels/`` (or ``--targets``) [+ ``instances/``]; Z stacks
        for a 3D segmenter."""
        cfg = dataclasses.replace(self.cfg.labels, image_folder=inputs, label_folder=targets or "labels")
        if self.volumes:
            spacing = self.cfg.generator.spacing
            return LabelledVolumes(discover_labelled(folder, cfg), self.input_codec,
                                   tuple(spacing) if spacing else None)
        return LabelledFolder(discover_labelled(folder, cfg), self.input_codec, num_classes=self.num_classes)

    # ----------------------------------------------------------------- evaluation

    def meter(self, dataset: Dataset, report: bool = False) -> Meter:
        return SegmentMeter(self, bool(getattr(dataset, "has_instances", False)))

    def val_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, LabelMaps]:
        return batch["image"], LabelMaps(batch["labels"], batch["instances"])

    def display(self, inputs: torch.Tensor, outputs: torch.Tensor, target: LabelMaps) -> list[torch.Tensor]:
        """``[image, predicted classes, true classes]``; of a volume, its middle slice."""
        k = self.num_classes
        pred = torch.stack([self.classes(o) for o in outputs.float()])
        labels = target.labels
        if inputs.ndim == 5:  # (b, c, z, y, x): the middle z slice of each
            middle = inputs.shape[2] // 2
            inputs, pred, labels = inputs[:, :, middle], pred[:, middle], labels[:, middle]
        return [inputs, colorize_labels(pred, k), colorize_labels(labels, k)]


@dataclass
class Segmenter:
    """A trained segmenter used as a judge: its generator and its task (codec, classes).

    Scores label -> image generators (:mod:`~pix2pix_unet.metrics.segmenter`) and filters or weighs
    synthesised pairs (:mod:`~pix2pix_unet.synthesis`).
    """

    generator: torch.nn.Module
    task: SegmentTask
    source: Path

    @classmethod
    def load(cls, path: str | Path) -> "Segmenter":
        """The segment export at ``path`` (an export or run folder); an error says what else it is."""
        generator = Generator.from_pretrained(path)
        meta = dict(generator.metadata or {})
        if meta.get("task") != Task.SEGMENT.value:
            raise ConfigError(f"{path} is a {meta.get('task') or 'translate'} generator, not a segmenter (train "
                              "one with --task segment on real pairs)")
        meta.setdefault("generator", to_dict(generator.config))
        task = SegmentTask.from_export(meta, getattr(generator, "export_dir", path))
        return cls(generator.eval(), task, Path(path))

    @property
    def num_classes(self) -> int:
        return int(self.task.num_classes)

    def to(self, device: torch.device | str) -> "Segmenter":
        self.generator = self.generator.to(device)
        return self

    @torch.no_grad()
    def logits(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(B, C, H, W)`` images in [-1, 1] (8-bit units) -> the segmenter's outputs ``(B, K', H, W)`` (CPU)."""
        # 1. as 8-bit pixels decoded by the segmenter's codec                    (b, c_seg, h, w)
        codec = self.task.input_codec
        batch = torch.stack([codec.from_pixels(ImageFile(from_tensor(image.float().cpu(), np.dtype(np.uint8))))
                             .tensor for image in images])
        # 2. its outputs: class logits (+ a border class in instance mode, + a distance map)
        return run_generator(self.generator, batch, InferenceConfig(batch_size=len(batch)), device)

    def classes(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(B, C, H, W)`` images in [-1, 1] (8-bit units) -> ``(B, H, W)`` predicted class ids (CPU)."""
        return torch.stack([self.task.classes(logit) for logit in self.logits(images, device)])

    def agreement(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The segmenter's classes ``(B, H, W)`` on ``images``, and per pixel its confidence in ``labels (B, H, W)``:
        1 where its class is the label, else its softmax probability of the label's class (FreeMask-style
        down-weighting of the pixels it disagrees with)."""
        outputs = self.logits(images, device)
        predicted = torch.stack([self.task.classes(output) for output in outputs])  # (b, h, w)
        probs = outputs[:, : self.task.out_classes].float().softmax(1)  # (b, k', h, w)
        ids = labels.cpu().long()
        of_label = probs.gather(1, ids[:, None])[:, 0]  # (b, h, w)
        return predicted, torch.where(predicted == ids, torch.ones_like(of_label), of_label)
