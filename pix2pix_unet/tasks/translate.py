"""``task=translate``: image or label map -> image, with the pix2pix losses.

With ``labels.format=rgb`` (the default) this is the core's A -> B translation of
colour images (``A/`` + ``B/`` or aligned ``A|B`` files, 8 or 16 bits). With
``labels.format=index`` the inputs are class-id label maps (``labels/``: palette
PNGs or 8/16-bit gray ids), fed to the generator one-hot as in pix2pixHD, and the
targets are the images (``images/`` or ``B/``); the built-in data gives class
map -> photo. ``predict`` reads the same label maps; an id at or above
``num_classes`` is an error naming the file and the id.

The objective is pix2pix's (GAN + L1) plus, opt-in, feature matching
(``loss.fm_weight``) and a VGG16 perceptual term (``loss.vgg_weight``, weights from
the local file ``loss.vgg_weights``); SPADE's recipe is ``loss.gan=hinge``, both at 10,
and ``discriminator.spectral_norm=true``. With index labels and ``labels.segmenter``
(a segment export trained on real pairs) validation also logs ``val/seg_miou``:
that segmenter's mIoU on the generated images against their label maps
(:mod:`~pix2pix_unet.metrics.segmenter`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..codec import Decoded, ImageCodec, decode_class_ids, one_hot
from ..config import ConfigError, Direction, LabelConfig, LabelFormat, Task, TrainConfig
from ..data import PairedAugmentation, PairedFolderDataset, build_datasets, orient, side_channels
from ..data.folders import DatasetError, PairFiles, find_pairs, list_images, pair_by_stem
from ..io import read_image
from ..metrics.fid import FidMeter
from ..metrics.segmenter import SegmenterScoreMeter
from .base import ImageMeter, Meter, TaskBase, require
from ..data.labels import LabelledDataset, LabelledFiles, LabelledFolder, build_labelled, colorize_labels


class OneHotPairs(Dataset):
    """A labelled dataset as translation pairs ``{"A": (K, H, W) one-hot, "B": (C, H, W) image, "name"}``."""

    def __init__(self, base: LabelledDataset, num_classes: int) -> None:
        self.base, self.num_classes = base, num_classes

    def __len__(self) -> int:
        return len(self.base)

    def source(self, index: int) -> Path | str:
        return self.base.files[index].labels if isinstance(self.base, LabelledFolder) else str(index)

    def example_files(self) -> list[dict[str, Path | int]]:
        return self.base.example_files()

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = self.base[index]
        if int(item["labels"].max()) >= self.num_classes:
            raise DatasetError(f"label map {self.source(index)} holds class id {int(item['labels'].max())}, but the "
                               f"generator has {self.num_classes} classes (ids 0..{self.num_classes - 1})")
        return {"A": one_hot(item["labels"], self.num_classes), "B": item["image"], "name": item["name"]}


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"evaluation folder {folder} does not exist")
    files = list_images(folder)
    if not files:
        raise DatasetError(f"{folder} holds no images")
    return files


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
        self.num_classes: int | None = cfg.labels.num_classes if self.indexed else None
        if cfg.labels.segmenter and not self.indexed:
            raise ConfigError("labels.segmenter scores label -> image generators: it needs labels.format=index")
        self.segmenter = None  # Segmenter, loaded by build_datasets when labels.segmenter is set
        self.device: torch.device | str = "cpu"  # where the segmenter runs (set by `to`)

    # ----------------------------------------------------------------- what callers ask

    def summary(self) -> str:
        if self.indexed:
            return f"Label map ({self.num_classes} classes) -> image."
        return f"Image -> image ({self.cfg.data.direction.value})."

    @property
    def display_name(self) -> str:
        return "label map -> image" if self.indexed else self.kind.value

    @property
    def label_input(self) -> bool:
        return self.indexed

    def bioimageio_refusal(self) -> str | None:
        if self.indexed:
            return ("a label-map -> image generator (labels.format=index) takes one-hot label maps, which a "
                    "bioimage.io package cannot decode; export it as onnx or safetensors")
        return super().bioimageio_refusal()

    # ----------------------------------------------------------------- training data

    def to(self, device: torch.device | str) -> "TranslateTask":
        if self.objective.features is not None:
            self.objective.features = self.objective.features.to(device)
        if self.segmenter is not None:
            self.segmenter = self.segmenter.to(device)
        self.device = device
        return super().to(device)

    def datasets(self) -> tuple[Dataset, Dataset, TrainConfig]:
        cfg = self.cfg
        self.augment = PairedAugmentation(None, cfg.data.flip)  # crops are taken per example (RandomCrops)
        if cfg.loss.vgg_weight > 0:
            from ..models.vgg import VGGFeatures

            self.objective.features = VGGFeatures(cfg.loss.vgg_weights, key="loss.vgg_weights")
        if not self.indexed:
            train, val = build_datasets(cfg.data, cfg.generator, cfg.seed)
            side = "A" if cfg.data.direction is Direction.A_TO_B else "B"
            self.note_training_inputs([train[i][side] for i in range(min(len(train), 16))])
            return train, val, cfg
        codec = ImageCodec(cfg.generator.out_channels)
        train, val, self.num_classes = build_labelled(cfg.data, cfg.labels, codec, cfg.seed)
        if isinstance(train, LabelledFolder):
            self.output_dtype = str(read_image(train.files[0].image).dtype)
        resolved = dataclasses.replace(
            cfg,
            labels=dataclasses.replace(cfg.labels, num_classes=self.num_classes),
            generator=dataclasses.replace(cfg.generator, in_channels=self.num_classes),
        )
        if cfg.labels.segmenter:
            from .segment import Segmenter

            self.segmenter = Segmenter.load(cfg.labels.segmenter)
            if self.segmenter.num_classes != self.num_classes:
                raise ConfigError(f"labels.segmenter={cfg.labels.segmenter} segments {self.segmenter.num_classes} "
                                  f"classes, but the label maps have {self.num_classes}")
        return OneHotPairs(train, self.num_classes), OneHotPairs(val, self.num_classes), resolved

    def train_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.augment(*orient(batch, self.cfg.data.direction))

    # ----------------------------------------------------------------- the contract

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "num_classes": self.num_classes, "label_format": self.cfg.labels.format.value,
                "a_channels": side_channels(self.cfg.data, self.cfg.generator)[0],
                "b_channels": side_channels(self.cfg.data, self.cfg.generator)[1]}

    @classmethod
    def config_from_export(cls, meta: dict[str, Any], source: str | Path) -> TrainConfig:
        cfg = super().config_from_export(meta, source)
        label_format = LabelFormat(meta.get("label_format", LabelFormat.RGB.value))
        num_classes = require(meta, "num_classes", source) if label_format is LabelFormat.INDEX else None
        return dataclasses.replace(cfg, labels=LabelConfig(format=label_format, num_classes=num_classes))

    # ----------------------------------------------------------------- files

    def decode_input(self, path: Path, mask: Path | None = None) -> Decoded:
        """An image, or with index labels a label map (one-hot; an id >= ``num_classes`` names the file)."""
        if not self.indexed:
            return self.input_codec.decode(path)
        ids = decode_class_ids(path, self.num_classes)
        return Decoded(one_hot(ids, self.num_classes), Path(path), None)

    def input_warnings(self, decoded: Decoded) -> list[str]:
        return [] if self.indexed else super().input_warnings(decoded)

    def eval_dataset(self, folder: Path, inputs: str | None, targets: str | None, masks: Path | None) -> Dataset:
        """``A/`` + ``B/`` (or ``--inputs``/``--targets``) or aligned images; with index labels ``labels/`` +
        ``images/``."""
        if self.indexed:
            labels_dir, images_dir = folder / (inputs or "labels"), folder / (targets or "images")
            if not images_dir.is_dir() and targets is None:
                images_dir = folder / "B"
            labels = _images_in(labels_dir)
            files = [LabelledFiles(image, label) for label, image in
                     zip(labels, pair_by_stem(labels, images_dir, "target image"))]
            codec = ImageCodec(self.cfg.generator.out_channels)
            return OneHotPairs(LabelledFolder(files, codec), self.num_classes)
        a_name, b_name = ("A", "B")
        if inputs or targets:  # name the generator's side and the target's side
            a_name, b_name = (inputs or "A", targets or "B") if self.cfg.data.direction is Direction.A_TO_B else \
                (targets or "A", inputs or "B")
        a_dir, b_dir = folder / a_name, folder / b_name
        if a_dir.is_dir() or b_dir.is_dir():
            a_files = _images_in(a_dir)
            pairs = [PairFiles(a, b) for a, b in zip(a_files, pair_by_stem(a_files, b_dir, f"partner in {b_name}/"))]
        else:
            pairs, _ = find_pairs(folder)
        a_ch, b_ch = side_channels(self.cfg.data, self.cfg.generator)
        return PairedFolderDataset(pairs, ImageCodec(a_ch), ImageCodec(b_ch))

    # ----------------------------------------------------------------- evaluation

    def meter(self, dataset: Dataset, report: bool = False) -> Meter:
        """L1, PSNR and SSIM; with ``labels.segmenter`` its score; and FID/KID against the targets when ``fid.when``
        asks for them (``report``: by default only ``evaluate`` and the run's final figures do)."""
        meter: Meter = ImageMeter(self.cfg.generator.out_channels)
        if self.segmenter is not None:
            meter = SegmenterScoreMeter(meter, self.segmenter, self.device)
        features = self.inception(self.device, report)
        return meter if features is None else FidMeter(meter, features)

    def val_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return orient(batch, self.cfg.data.direction)

    def display(self, inputs: torch.Tensor, outputs: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """Images as they are; one-hot inputs as coloured label maps."""
        shown = colorize_labels(inputs.argmax(1), self.num_classes) if self.indexed else inputs
        return [shown, outputs.clamp(-1, 1), target]
