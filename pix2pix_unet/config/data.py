"""Where the data comes from: image pairs (:class:`DataConfig`) and label maps (:class:`LabelConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import ConfigError
from .enums import BuiltinKind, Direction, LabelFormat


@dataclass
class DataConfig:
    """Where pairs come from and how they are prepared.

    ``path`` is ``builtin`` (the procedural dataset) or a folder holding either
    aligned ``AB`` images or ``A/`` and ``B/`` sub-folders, optionally split into
    ``train/`` and ``val/``.
    """

    path: str = "builtin"
    direction: Direction = Direction.A_TO_B
    load_size: int | None = None  # resize every image to this square size on load
    crop_size: int | None = 64  # random crop (train) on the device; None keeps the loaded size
    crop_depth: int | None = None  # volumes (generator.dims=3): the z extent of training patches; None: every slice
    # 2.5D: a 2D generator reads volumes and sees each slice with this many neighbours on each side as channels
    # (generator.in_channels = image channels x (2 x context_slices + 1)); 0: no context
    context_slices: int = 0
    flip: bool = True
    val_fraction: float = 0.1  # used when the folder has no val/ split
    num_workers: int | None = None  # loader processes decoding files; None: with CUDA up to 8 per GPU, else 0
    builtin_train: int = 400
    builtin_val: int = 32
    builtin_size: int = 72
    builtin_kind: BuiltinKind = BuiltinKind.PHOTOS
    skip_bad: bool = False  # train on the good pairs when some files are bad, instead of stopping
    cache_mb: int = 1024  # restore: decoded images kept in memory, per loader process (0: decode every draw)

    def validate(self, where: str = "data") -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"{where}.val_fraction={self.val_fraction} must be in (0, 1)")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"{where}.num_workers={self.num_workers} must be >= 0")
        for name in ("load_size", "crop_size", "crop_depth"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{where}.{name}={value} must be a positive size")
        if self.context_slices < 0:
            raise ConfigError(f"{where}.context_slices={self.context_slices} must be >= 0")
        if self.load_size and self.crop_size and self.crop_size > self.load_size:
            raise ConfigError(f"{where}.crop_size={self.crop_size} is larger than load_size={self.load_size}")


@dataclass
class LabelConfig:
    """Label-map datasets, read by ``task=segment`` and by ``task=translate`` with ``format=index``.

    Each split folder (or the dataset folder itself) holds ``images/`` (or ``B/``),
    ``labels/`` with class ids and, optionally, ``instances/`` with instance ids and
    ``confidence/`` with per-pixel loss weights (``synthesize --confidence`` writes
    them), paired by file name. The built-in data provides the first three.
    """

    format: LabelFormat = LabelFormat.RGB  # translate only; segment always reads class ids
    num_classes: int | None = None  # None: 1 + the largest id in the label maps (5 for the built-in data)
    image_folder: str | None = None  # None: images/, or B/ where there is no images/
    label_folder: str = "labels"
    instance_folder: str = "instances"  # optional; without it instances are connected components
    confidence_folder: str = "confidence"  # optional per-pixel loss weights (segment; 255 = 1); missing files: 1
    segmenter: str | None = None  # translate, index labels: a segment export; val/seg_miou = its mIoU on the outputs

    def validate(self, where: str = "labels") -> None:
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"{where}.num_classes={self.num_classes} must be at least 2 (background + one class)")
        if self.num_classes is not None and self.num_classes > 65536:
            raise ConfigError(f"{where}.num_classes={self.num_classes} does not fit a 16-bit label map")
