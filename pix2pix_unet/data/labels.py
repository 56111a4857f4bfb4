"""Label-map datasets: images paired with class-id maps (and optionally instance-id maps).

Read by ``task=segment`` (image -> labels) and ``task=translate`` with
``labels.format=index`` (labels -> image). A split folder holds::

    images/0001.png     (or B/, as datasets/make_synthetic.py writes)  8- or 16-bit, gray or RGB, PNG or TIFF
    labels/0001.png     class ids: 8-bit or 16-bit grayscale, or a palette PNG
    instances/0001.png  optional instance ids (0 = background), 8- or 16-bit
    confidence/0001.png optional per-pixel loss weights for task=segment: gray, 255 (or 65535) = 1,
                        0 = ignored; an image without one has weight 1 everywhere

paired by file name. Every file is checked before training: a label map must be a
single-channel image of the same size as its image, with ids below ``num_classes``;
the error names the file and the bad value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from scipy import ndimage
from torch.utils.data import Dataset

from .. import io
from ..config import BuiltinKind, DataConfig, LabelConfig
from .folders import DatasetError, list_images, split_by_file
from .nuclei import NucleiSpec, make_nuclei
from ..volume_io import z_slices
from .synthetic import NUM_CLASSES, NUM_CLASSES_MAX, VAL_INDEX_OFFSET, SyntheticPairs, SyntheticSpec
from ..codec import ImageCodec, decode_class_ids, decode_confidence

# --------------------------------------------------------------------------- label helpers


def colorize_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, H, W)`` class ids -> ``(B, 3, H, W)`` colours of :func:`pix2pix_unet.io.palette` in [-1, 1]."""
    colours = torch.from_numpy(io.palette(num_classes)).to(labels.device).float() / 127.5 - 1  # (k, 3)
    return rearrange(colours[labels.long()], "b h w c -> b c h w")


def instances_from_labels(labels: np.ndarray) -> np.ndarray:
    """Instance ids for a class map without instance masks: 8-connected components of each class > 0."""
    instances = np.zeros(labels.shape, np.int64)
    offset = 0
    for cls in np.unique(labels):
        if cls == 0:
            continue
        components, count = ndimage.label(labels == cls, structure=np.ones((3, 3), int))
        instances[components > 0] = components[components > 0] + offset
        offset += count
    return instances


# --------------------------------------------------------------------------- finding and checking files


@dataclass(frozen=True)
class LabelledFiles:
    """One labelled example on disk; ``instances`` is None without an ``instances/`` folder, ``confidence``
    None without a ``confidence/`` file for it."""

    image: Path
    labels: Path
    instances: Path | None = None
    confidence: Path | None = None


def image_folder(split: Path, cfg: LabelConfig) -> Path:
    """The folder of images in ``split``: ``cfg.image_folder``, else ``images/``, else ``B/``."""
    if cfg.image_folder is not None:
        return split / cfg.image_folder
    return split / "images" if (split / "images").is_dir() or not (split / "B").is_dir() else split / "B"


def discover_labelled(split: Path, cfg: LabelConfig) -> list[LabelledFiles]:
    """Pair the images, label maps and (optional) instance maps of one split folder by file name."""
    images_dir, labels_dir, instances_dir = image_folder(split, cfg), split / cfg.label_folder, split / cfg.instance_folder
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise DatasetError(
                f"{folder} does not exist; a label-map dataset needs {images_dir.name}/ and {labels_dir.name}/ "
                f"in {split} (set labels.image_folder / labels.label_folder for other names)"
            )
    images = {p.stem: p for p in list_images(images_dir)}
    labels = {p.stem: p for p in list_images(labels_dir)}
    instances = {p.stem: p for p in list_images(instances_dir)} if instances_dir.is_dir() else None
    confidence_dir = split / cfg.confidence_folder
    confidence = {p.stem: p for p in list_images(confidence_dir)} if confidence_dir.is_dir() else {}
    unpaired = sorted(set(images) ^ set(labels))
    if unpaired:
        examples = [str(images.get(k) or labels.get(k)) for k in unpaired[:5]]
        raise DatasetError(f"{len(unpaired)} file(s) in {split} have no partner in "
                           f"{images_dir.name}/ or {labels_dir.name}/, e.g. {examples}")
    if instances is not None and set(instances) != set(labels):
        missing = sorted(set(labels) ^ set(instances))
        raise DatasetError(f"{instances_dir} and {labels_dir} hold different files, e.g. {missing[:5]}")
    if set(confidence) - set(labels):
        orphans = sorted(set(confidence) - set(labels))
        raise DatasetError(f"{confidence_dir} holds confidence maps without a label map in {labels_dir}, "
                           f"e.g. {[str(confidence[k]) for k in orphans[:5]]}")
    if not labels:
        raise DatasetError(f"{labels_dir} holds no label maps")
    return [LabelledFiles(images[k], labels[k], instances[k] if instances else None, confidence.get(k))
            for k in sorted(labels)]


def check_labelled(files: list[LabelledFiles], num_classes: int | None, crop_size: int | None) -> int:
    """Read every label and instance map and check it against its image; returns ``num_classes``.

    Images may differ in size from one example to the next.

    Args:
        files: the examples.
        num_classes: the configured number of classes, or None to take ``1 + the largest id``.
        crop_size: the training crop, which every image must hold (None: no crop).

    Raises:
        DatasetError: naming the file for an unreadable image, a colour label map, a
            label or instance map whose size differs from its image, a class id at or
            above ``num_classes``, or an image smaller than the crop.
    """
    largest = 0
    for item in files:
        h, w = io.image_shape(item.image)
        if crop_size and min(h, w) < crop_size:
            raise DatasetError(f"image {item.image} is {w}x{h} px, smaller than data.crop_size={crop_size}")
        for path, what in ((item.labels, "label map"), (item.instances, "instance map")):
            if path is None:
                continue
            ids = decode_class_ids(path, None, what)
            if tuple(ids.shape) != (h, w):
                raise DatasetError(
                    f"{what} {path} is {ids.shape[1]}x{ids.shape[0]} but its image {item.image} is {w}x{h}"
                )
            if what == "label map":
                top = int(ids.max())
                if num_classes is not None and top >= num_classes:
                    raise DatasetError(f"label map {path} holds class id {top}, but labels.num_classes={num_classes} "
                                       f"(ids must be 0..{num_classes - 1})")
                largest = max(largest, top)
        if item.confidence is not None:
            decode_confidence(item.confidence, (h, w))
    return num_classes if num_classes is not None else max(2, largest + 1)


# --------------------------------------------------------------------------- datasets


class LabelledFolder(Dataset):
    """Labelled examples read from files (checked beforehand by :func:`check_labelled`), as
    ``{"image": (C, H, W) in [-1, 1], "labels": (H, W) int64, "instances": (H, W) int64,
    "confidence": (H, W) float32 in [0, 1], "name": str}``.

    Images are decoded by ``codec`` (channels, bit depth, intensity rule), the one
    rule ``predict`` and ``evaluate`` use too. Instances come from the instance
    maps, or are connected components of each class; ``has_instances`` says
    whether they were given (object-level metrics need them).

    Args:
        files: the examples.
        codec: how images become tensors.
        load_size: resize every example to this square size (label maps by nearest neighbour).
        num_classes: check each label map's ids against it (files not checked up front, as in ``evaluate``).
    """

    def __init__(self, files: list[LabelledFiles], codec: ImageCodec, load_size: int | None = None,
                 num_classes: int | None = None) -> None:
        self.files, self.codec, self.load_size, self.num_classes = files, codec, load_size, num_classes
        self.has_instances = all(f.instances is not None for f in files)
        self.has_confidence = any(f.confidence is not None for f in files)

    def __len__(self) -> int:
        return len(self.files)

    def source(self, index: int) -> Path:
        return self.files[index].image

    def example_files(self) -> list[dict[str, Path]]:
        """The files of each example by role (``image``, ``labels``, and ``instances``, ``confidence`` where it
        has them), for ``split.json``."""
        return [{role: path for role, path in (("image", f.image), ("labels", f.labels), ("instances", f.instances),
                                               ("confidence", f.confidence)) if path is not None} for f in self.files]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = self.files[index]
        image = self.codec.decode(item.image).tensor
        labels_t = decode_class_ids(item.labels, self.num_classes)
        instances_t = (decode_class_ids(item.instances, None, "instance map") if item.instances
                       else torch.from_numpy(instances_from_labels(labels_t.numpy())))
        if tuple(labels_t.shape) != tuple(image.shape[-2:]):
            raise DatasetError(f"label map {item.labels} is {labels_t.shape[1]}x{labels_t.shape[0]} but its image "
                               f"{item.image} is {image.shape[-1]}x{image.shape[-2]}")
        confidence = (decode_confidence(item.confidence, tuple(labels_t.shape)) if item.confidence
                      else torch.ones(labels_t.shape))
        if self.load_size:
            size = [self.load_size, self.load_size]
            image = torch.nn.functional.interpolate(image[None], size, mode="bilinear", antialias=True)[0]
            ids = torch.stack([labels_t, instances_t])[None].float()
            labels_t, instances_t = torch.nn.functional.interpolate(ids, size, mode="nearest")[0].long()
            confidence = torch.nn.functional.interpolate(confidence[None, None], size, mode="bilinear")[0, 0]
        return {"image": image, "labels": labels_t, "instances": instances_t, "confidence": confidence,
                "name": item.image.name}


class LabelledTensors(Dataset):
    """Labelled examples held in memory (the built-in data), as :class:`LabelledFolder` gives them;
    ``index_offset``: the built-in index of the first (what ``split.json`` records)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, instances: torch.Tensor,
                 index_offset: int = 0) -> None:
        self.images, self.labels, self.instances = images, labels, instances
        self.has_instances, self.has_confidence = True, False
        self.index_offset = index_offset

    def __len__(self) -> int:
        return len(self.images)

    def example_files(self) -> list[dict[str, int]]:
        """Each example's built-in index (it has no files), for ``split.json``."""
        return [{"index": self.index_offset + i} for i in range(len(self))]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        return {"image": self.images[index], "labels": self.labels[index], "instances": self.instances[index],
                "confidence": torch.ones(self.labels.shape[-2:]), "name": f"builtin_{index:05d}"}


LabelledDataset = LabelledFolder | LabelledTensors


def builtin_labelled(num: int, seed: int, size: int, num_classes: int, channels: int = 3,
                     index_offset: int = 0) -> LabelledTensors:
    """The procedural dataset as (photo, class map, instance map) triples, generated once into memory;
    ``channels=1`` turns the photos gray."""
    spec = SyntheticSpec(size=size, num_classes=num_classes)
    source = SyntheticPairs(num, seed=seed, spec=spec, index_offset=index_offset)
    samples = [source[i] for i in range(num)]
    photos = torch.stack([s["photo"] for s in samples])  # (n, 3, h, w)
    if channels == 1:
        photos = photos.mean(1, keepdim=True)
    return LabelledTensors(
        photos.mul(2).sub(1),
        torch.stack([s["labels"] for s in samples]),
        torch.stack([s["instances"] for s in samples]),
        index_offset,
    )


def builtin_nuclei(num: int, seed: int, size: int, codec: ImageCodec, index_offset: int = 0) -> LabelledTensors:
    """The built-in nuclei tiles (:func:`~pix2pix_unet.data.nuclei.make_nuclei`) as (image, class map,
    instance map) triples in memory; 2 classes, background and nucleus.

    The 16-bit tiles are decoded by ``codec`` as if read from files, so its intensity
    rule applies exactly as it does to a folder written by ``make_synthetic.py --kind nuclei``.

    Raises:
        DatasetError: ``codec`` does not take one channel.
    """
    if codec.channels != 1:
        raise DatasetError(f"the built-in nuclei data (data.builtin_kind=nuclei) is one-channel gray, but the "
                           f"generator takes {codec.channels} channels: set generator.in_channels=1")
    spec = NucleiSpec(size=size)
    images, instances = [], []
    for index in range(index_offset, index_offset + num):
        pixels, ids = make_nuclei(index, seed, spec)
        images.append(codec.from_pixels(io.ImageFile(pixels[..., None]), f"builtin nuclei tile {index}").tensor)
        instances.append(torch.from_numpy(ids.astype(np.int64)))
    instances_t = torch.stack(instances)  # (n, h, w)
    return LabelledTensors(torch.stack(images), (instances_t > 0).long(), instances_t, index_offset)


def build_labelled(data: DataConfig, cfg: LabelConfig, codec: ImageCodec, seed: int
                   ) -> tuple[LabelledDataset, LabelledDataset, int]:
    """Train and validation label-map datasets for ``data.path``, checked up front, and ``num_classes``.

    The split is by file (``train/`` + ``val/``, or ``data.val_fraction`` of the
    files held out); images may have any size. The built-in photos have
    ``labels.num_classes`` classes (5 by default, at most 8); the built-in nuclei
    (``data.builtin_kind=nuclei``) have 2.
    """
    if codec.channels not in (1, 3):
        raise DatasetError(f"label-map tasks read images with 1 or 3 channels, got {codec.channels}")
    if data.path == "builtin" and data.builtin_kind is BuiltinKind.NUCLEI:
        if cfg.num_classes not in (None, 2):
            raise DatasetError(f"labels.num_classes={cfg.num_classes}: the built-in nuclei data has 2 classes "
                               f"(background, nucleus)")
        return (
            builtin_nuclei(data.builtin_train, seed, data.builtin_size, codec),
            builtin_nuclei(data.builtin_val, seed, data.builtin_size, codec, VAL_INDEX_OFFSET),
            2,
        )
    if data.path == "builtin":
        num_classes = cfg.num_classes or NUM_CLASSES
        if num_classes > NUM_CLASSES_MAX:
            raise DatasetError(f"labels.num_classes={num_classes}: the built-in data has at most {NUM_CLASSES_MAX}")
        return (
            builtin_labelled(data.builtin_train, seed, data.builtin_size, num_classes, codec.channels),
            builtin_labelled(data.builtin_val, seed, data.builtin_size, num_classes, codec.channels,
                             VAL_INDEX_OFFSET),
            num_classes,
        )
    train, val = split_by_file(Path(data.path), lambda split: discover_labelled(split, cfg), data, seed)
    slices = z_slices(train[0].image) if train else 0
    if slices > 1:
        raise DatasetError(f"{train[0].image} is a Z stack of {slices} slices: train a 3D model on volumes with "
                           "generator.dims=3 (docs/volumes.md)")
    num_classes = check_labelled(train + val, cfg.num_classes, None if data.load_size else data.crop_size)
    return LabelledFolder(train, codec, data.load_size), LabelledFolder(val, codec, data.load_size), num_classes
