"""``task=segment``: image -> per-class logits.

Data: images with class-id label maps and, optionally, instance maps (see
:mod:`~pix2pix_unet.tasks.labels`); the built-in data is photo -> labels. Each
training example carries the U-Net weight map of its instances. Training batches
get strong paired augmentation on the device (crop, flips, 90-degree rotations,
affine, elastic), label maps resampled by nearest neighbour. The loss is the
hybrid of :func:`~pix2pix_unet.tasks.segment_losses.segmentation_losses`, plus,
with ``segment.adversarial=true``, the PatchGAN term on the softmax
probabilities (D sees the image and either the one-hot labels or the probabilities).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import kornia.augmentation as K
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import FinalActivation, MetricMode, SegmentConfig, Task
from ..losses import generator_adversarial_loss
from ..training.loop import Evaluation
from ..training.step import discriminator_losses
from .base import TaskBase
from .labels import LabelledDataset, build_labelled, colorize_labels, instances_from_labels, one_hot
from .segment_losses import segmentation_losses
from .segment_metrics import confusion_matrix, f1_score, object_matches, segmentation_scores
from .weight_map import unet_weight_map


class SegmentTarget(NamedTuple):
    """What a segmentation batch is compared with: class ids ``(B, H, W)`` and weights ``(B, H, W)``."""

    labels: torch.Tensor
    weight: torch.Tensor


class WeightedLabelled(Dataset):
    """A labelled dataset whose examples also carry their U-Net weight map, ``"weight": (H, W)``."""

    def __init__(self, base: LabelledDataset, cfg: SegmentConfig) -> None:
        self.base, self.cfg = base, cfg
        self.has_instances = base.has_instances

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.base[index]
        weight = unet_weight_map(item["instances"].numpy(), item["labels"].numpy(), w0=self.cfg.w0,
                                 sigma=self.cfg.sigma, class_balance=self.cfg.class_balance)
        return {**item, "weight": torch.from_numpy(weight)}


class SegmentAugmentation(nn.Module):
    """Random crop, then (with ``cfg.augment``) flips, 90-degree rotations, affine and elastic
    deformation, with the same geometry for an image, its label map and its weight map.

    Label maps go through kornia's ``mask`` key, i.e. nearest-neighbour resampling, so
    they keep their class ids; the image and the weight map are resampled bilinearly.

    Args:
        crop_size: square random crop, or None.
        flip: random horizontal and vertical flips.
        cfg: the augmentation strengths.

    Shape:
        ``(B, C, H, W), (B, H, W) int, (B, H, W)`` -> ``(B, C, h, w), (B, h, w) int64, (B, h, w)``.
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
                weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.pipeline is None:
            return image, labels, weight
        if self.crop_size is not None and min(image.shape[-2:]) < self.crop_size:
            raise ValueError(f"crop_size={self.crop_size} is larger than the images ({image.shape[-2]}x{image.shape[-1]})")
        # 1. maps as (b, 1, h, w) floats, the layout kornia's mask key expects
        image, labels, weight = self.pipeline(image, labels[:, None].float(), weight[:, None])
        # 2. back to class ids                                          (b, h, w)
        return image, labels[:, 0].round().long(), weight[:, 0]


class SegmentTask(TaskBase):
    """Image -> per-class logits; see the module docstring."""

    kind = Task.SEGMENT
    best = ("val/miou", MetricMode.MAX)

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        cfg, seg = self.cfg, self.cfg.segment
        train, val, num_classes = build_labelled(
            cfg.data, cfg.labels, cfg.generator.in_channels, cfg.seed,
            intensity=seg.intensity, value_range=(seg.intensity_min, seg.intensity_max),
        )
        self.num_classes = num_classes
        self.cfg = dataclasses.replace(
            cfg,
            labels=dataclasses.replace(cfg.labels, num_classes=num_classes),
            generator=dataclasses.replace(cfg.generator, out_channels=num_classes,
                                          final_activation=FinalActivation.NONE),
        )
        self.augment = SegmentAugmentation(cfg.data.crop_size, cfg.data.flip, seg)
        return WeightedLabelled(train, seg), val

    def train_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, SegmentTarget]:
        image, labels, weight = self.augment(batch["image"], batch["labels"], batch["weight"])
        return image, SegmentTarget(labels, weight)

    # ----------------------------------------------------------------- objective

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: SegmentTarget) -> dict[str, torch.Tensor]:
        """D compares (image, one-hot labels) with (image, predicted probabilities); nothing when
        ``segment.adversarial`` is off."""
        if not self.cfg.segment.adversarial:
            return {}
        real = one_hot(target.labels, self.num_classes).to(fake.dtype)
        return discriminator_losses(discriminator, inputs, fake.softmax(1), real, self.cfg.loss)

    def generator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                         target: SegmentTarget) -> dict[str, torch.Tensor]:
        losses = segmentation_losses(fake, target.labels, target.weight, self.cfg.segment)
        total = losses["g_seg"]
        if self.cfg.segment.adversarial:
            losses["g_gan"] = generator_adversarial_loss(discriminator(inputs, fake.softmax(1)), self.cfg.loss.gan)
            total = total + self.cfg.loss.gan_weight * losses["g_gan"]
        return {"g_total": total, **losses}

    # ----------------------------------------------------------------- evaluation

    @torch.no_grad()
    def evaluate(self, generator: nn.Module, dataset: Dataset, device: torch.device) -> Evaluation:
        """Pixel accuracy, per-class and mean IoU, Dice and, with instance maps, object F1 at IoU 0.5.

        IoU and Dice come from one confusion matrix over the whole validation set.
        """
        was_training = generator.training
        generator.eval()
        k = self.num_classes
        loader = DataLoader(dataset, batch_size=self.cfg.batch_size, shuffle=False, num_workers=0)
        confusion = torch.zeros(k, k, dtype=torch.long)
        counts = [0, 0, 0]  # object tp, fp, fn
        shown: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for batch in loader:
            image, labels = batch["image"].to(device), batch["labels"].to(device)
            pred = generator(image).argmax(1)  # (b, h, w)
            confusion += confusion_matrix(pred, labels, k).cpu()
            if dataset.has_instances:
                for p, instances in zip(pred.cpu().numpy(), batch["instances"].numpy()):
                    for i, n in enumerate(object_matches(instances_from_labels(p), instances)):
                        counts[i] += n
            if sum(len(s[0]) for s in shown) < self.cfg.num_samples:
                shown.append((image, colorize_labels(pred, k), colorize_labels(labels, k)))
        generator.train(was_training)
        metrics = {f"val/{name}": value for name, value in segmentation_scores(confusion).items()}
        if dataset.has_instances:
            metrics["val/object_f1"] = f1_score(*counts)
        parts = [torch.cat([s[i] for s in shown])[: self.cfg.num_samples] for i in range(3)]
        return Evaluation(metrics, *parts)

    def export_metadata(self) -> dict[str, Any]:
        seg = self.cfg.segment
        return {"task": self.kind.value, "num_classes": self.num_classes, "intensity": seg.intensity.value,
                "intensity_range": [seg.intensity_min, seg.intensity_max]}
