"""``task=translate``: image or label map -> image, with the pix2pix losses.

With ``labels.format=rgb`` (the default) this is the core's A -> B translation of
colour images. With ``labels.format=index`` the inputs are class-id label maps
(``labels/``), fed to the generator one-hot as in pix2pixHD, and the targets are
the images (``images/`` or ``B/``); the built-in data gives class map -> photo.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import ConfigError, Direction, LabelFormat, Task, TrainConfig
from ..data import PairedAugmentation, build_datasets, orient
from ..training.loop import Evaluation, evaluate
from ..training.step import Pix2PixObjective
from .base import TaskBase
from .labels import LabelledDataset, build_labelled, colorize_labels, one_hot


class OneHotPairs(Dataset):
    """A labelled dataset as translation pairs ``{"A": (K, H, W) one-hot, "B": (C, H, W) image}``."""

    def __init__(self, base: LabelledDataset, num_classes: int) -> None:
        self.base, self.num_classes = base, num_classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.base[index]
        return {"A": one_hot(item["labels"], self.num_classes), "B": item["image"]}


class TranslateTask(TaskBase):
    """Image -> image (or label map -> image) with GAN + L1; see the module docstring."""

    kind = Task.TRANSLATE

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.indexed = cfg.labels.format is LabelFormat.INDEX
        if self.indexed and cfg.data.direction is not Direction.A_TO_B:
            raise ConfigError(
                "labels.format=index translates label maps to images, so it needs data.direction=AtoB; "
                "for images -> label maps use --task segment"
            )
        self.num_classes: int | None = None
        self.objective = Pix2PixObjective(cfg.loss)

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        cfg = self.cfg
        self.augment = PairedAugmentation(cfg.data.crop_size, cfg.data.flip)
        if not self.indexed:
            return build_datasets(cfg.data, cfg.generator, cfg.seed)
        train, val, self.num_classes = build_labelled(cfg.data, cfg.labels, cfg.generator.out_channels, cfg.seed)
        self.cfg = dataclasses.replace(
            cfg,
            labels=dataclasses.replace(cfg.labels, num_classes=self.num_classes),
            generator=dataclasses.replace(cfg.generator, in_channels=self.num_classes),
        )
        return OneHotPairs(train, self.num_classes), OneHotPairs(val, self.num_classes)

    def train_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.augment(*orient(batch, self.cfg.data.direction))

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.objective.discriminator_losses(discriminator, inputs, fake, target)

    def generator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                         target: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.objective.generator_losses(discriminator, inputs, fake, target)

    def evaluate(self, generator: nn.Module, dataset: Dataset, device: torch.device) -> Evaluation:
        """Validation L1 and PSNR (the core's :func:`~pix2pix_unet.training.loop.evaluate`); one-hot
        inputs are shown in the sample grid as coloured label maps."""
        result = evaluate(generator, dataset, self.cfg, device)
        if self.indexed:
            result.inputs = colorize_labels(result.inputs.argmax(1), self.num_classes)
        return result

    def export_metadata(self) -> dict[str, Any]:
        return {"task": self.kind.value, "num_classes": self.num_classes, "label_format": self.cfg.labels.format.value}
