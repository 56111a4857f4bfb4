"""Label-map datasets: images paired with class-id maps (and optionally instance-id maps).

Read by ``task=segment`` (image -> labels) and ``task=translate`` with
``labels.format=index`` (labels -> image). A split folder holds::

    images/0001.png     (or B/, as datasets/make_synthetic.py writes)  8- or 16-bit, gray or RGB, PNG or TIFF
    labels/0001.png     class ids: 8-bit or 16-bit grayscale, or a palette PNG
    instances/0001.png  optional instance ids (0 = background), 8- or 16-bit

paired by file name. Every file is checked before training: a label map must be a
single-channel image of the same size as its image, with ids below ``num_classes``;
the error names the file and the bad value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from scipy import ndimage
from torch.utils.data import Dataset

from .. import io
from ..config import DataConfig, Intensity, LabelConfig
from ..data.folders import DatasetError, list_images
from ..data.synthetic import NUM_CLASSES, NUM_CLASSES_MAX, VAL_INDEX_OFFSET, SyntheticPairs, SyntheticSpec
from ..io import read_label_map

# --------------------------------------------------------------------------- reading files


def read_image(path: Path, channels: int, intensity: Intensity = Intensity.DTYPE,
               value_range: tuple[float, float] = (0.0, 255.0)) -> torch.Tensor:
    """Decode an 8- or 16-bit (or float) gray or colour image to float ``(channels, H, W)`` in [-1, 1].

    Args:
        path: the image file (PNG, TIFF, JPEG ..., read by :func:`pix2pix_unet.io.read_image`).
        channels: 1 (colour images are averaged to gray) or 3 (gray images are repeated).
        intensity: ``dtype`` divides by the bit depth's maximum, ``image`` stretches each
            image's own min..max, ``range`` maps ``value_range`` to [-1, 1] and clips.
        value_range: (low, high) for ``intensity=range``, in the file's units.
    """
    if channels not in (1, 3):
        raise DatasetError(f"cannot load {path} with {channels} channels; label-map tasks read 1 or 3")
    image = io.read_image(path)
    pixels = image.pixels[..., :-1] if image.alpha else image.pixels
    x = rearrange(torch.from_numpy(pixels.astype(np.float32)), "h w c -> c h w")
    if x.shape[0] != channels:
        x = x.mean(0, keepdim=True) if channels == 1 else x[:1].expand(channels, -1, -1)
    if intensity is Intensity.DTYPE:
        x = x / io.DTYPE_MAX[image.dtype]
    elif intensity is Intensity.IMAGE:
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    else:
        x = ((x - value_range[0]) / (value_range[1] - value_range[0])).clamp(0, 1)
    return x.mul(2).sub(1).contiguous()


def uniform_size(paths: list[Path], *, need_uniform: bool) -> tuple[int, int]:
    """``(height, width)`` of the first image, read from the headers; all the same if ``need_uniform``.

    Raises:
        DatasetError: naming an unreadable file, or images of different sizes.
    """
    sizes: dict[tuple[int, int], Path] = {}
    for path in paths:
        sizes.setdefault(io.image_shape(path), path)
    if need_uniform and len(sizes) > 1:
        examples = ", ".join(f"{p} ({w}x{h})" for (h, w), p in list(sizes.items())[:3])
        raise DatasetError(f"images have different sizes ({examples}); set data.load_size to resize them")
    return next(iter(sizes))


# --------------------------------------------------------------------------- label helpers


def colorize_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, H, W)`` class ids -> ``(B, 3, H, W)`` colours of :func:`pix2pix_unet.io.palette` in [-1, 1]."""
    colours = torch.from_numpy(io.palette(num_classes)).to(labels.device).float() / 127.5 - 1  # (k, 3)
    return rearrange(colours[labels.long()], "b h w c -> b c h w")


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(..., H, W)`` class ids -> ``(..., num_classes, H, W)`` float one-hot (0 or 1)."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).movedim(-1, -3).float()


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
    """One labelled example on disk; ``instances`` is None without an ``instances/`` folder."""

    image: Path
    labels: Path
    instances: Path | None = None


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
    unpaired = sorted(set(images) ^ set(labels))
    if unpaired:
        examples = [str(images.get(k) or labels.get(k)) for k in unpaired[:5]]
        raise DatasetError(f"{len(unpaired)} file(s) in {split} have no partner in "
                           f"{images_dir.name}/ or {labels_dir.name}/, e.g. {examples}")
    if instances is not None and set(instances) != set(labels):
        missing = sorted(set(labels) ^ set(instances))
        raise DatasetError(f"{instances_dir} and {labels_dir} hold different files, e.g. {missing[:5]}")
    if not labels:
        raise DatasetError(f"{labels_dir} holds no label maps")
    return [LabelledFiles(images[k], labels[k], instances[k] if instances else None) for k in sorted(labels)]


def check_labelled(files: list[LabelledFiles], num_classes: int | None, *, need_uniform: bool) -> int:
    """Read every label and instance map and check it against its image; returns ``num_classes``.

    Args:
        files: the examples.
        num_classes: the configured number of classes, or None to take ``1 + the largest id``.
        need_uniform: all images must share one size (there is no ``load_size`` to resize them to).

    Raises:
        DatasetError: naming the file for an unreadable image, a colour label map, a
            label or instance map whose size differs from its image, a class id at or
            above ``num_classes``, or images of different sizes.
    """
    largest = 0
    for item in files:
        h, w = io.image_shape(item.image)
        for path, what in ((item.labels, "label map"), (item.instances, "instance map")):
            if path is None:
                continue
            ids = read_label_map(path)
            if ids.shape != (h, w):
                raise DatasetError(
                    f"{what} {path} is {ids.shape[1]}x{ids.shape[0]} but its image {item.image} is {w}x{h}"
                )
            if what == "label map":
                top = int(ids.max())
                if num_classes is not None and top >= num_classes:
                    raise DatasetError(
                        f"label map {path} holds class id {top}, but labels.num_classes={num_classes} "
                        f"(ids must be 0..{num_classes - 1})"
                    )
                largest = max(largest, top)
    uniform_size([item.image for item in files], need_uniform=need_uniform)
    return num_classes if num_classes is not None else max(2, largest + 1)


def split_labelled(data: DataConfig, cfg: LabelConfig, seed: int) -> tuple[list[LabelledFiles], list[LabelledFiles]]:
    """Train and validation examples of ``data.path``: its ``train/`` and ``val/`` (or ``test/``)
    folders, or one folder of which ``data.val_fraction`` is held out deterministically."""
    root = Path(data.path)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (use data.path=builtin for the built-in data)")
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir():
        train, val = discover_labelled(root / "train", cfg), discover_labelled(val_dir, cfg) if val_dir else []
    else:
        train, val = discover_labelled(root, cfg), []
    if not val:
        if len(train) < 2:
            raise DatasetError(f"{root} holds {len(train)} example; need at least 2 to hold one out for validation")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
        n_val = max(1, math.floor(len(train) * data.val_fraction))
        train, val = [train[i] for i in sorted(order[n_val:])], [train[i] for i in sorted(order[:n_val])]
    return train, val


# --------------------------------------------------------------------------- datasets


class LabelledFolder(Dataset):
    """Labelled examples read from files (checked beforehand by :func:`check_labelled`), as
    ``{"image": (C, H, W) in [-1, 1], "labels": (H, W) int64, "instances": (H, W) int64}``.

    Instances come from the instance maps, or are connected components of each class;
    ``has_instances`` says whether they were given (object-level metrics need them).

    Args:
        files: the examples.
        channels: image channels to load (1 or 3).
        load_size: resize every example to this square size (label maps by nearest neighbour).
        intensity / value_range: see :func:`read_image`.
    """

    def __init__(self, files: list[LabelledFiles], channels: int, load_size: int | None = None,
                 intensity: Intensity = Intensity.DTYPE, value_range: tuple[float, float] = (0.0, 255.0)) -> None:
        self.files, self.channels, self.load_size = files, channels, load_size
        self.intensity, self.value_range = intensity, value_range
        self.has_instances = all(f.instances is not None for f in files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.files[index]
        image = read_image(item.image, self.channels, self.intensity, self.value_range)
        labels = read_label_map(item.labels)
        instances = read_label_map(item.instances) if item.instances else instances_from_labels(labels)
        labels_t, instances_t = torch.from_numpy(labels), torch.from_numpy(instances)
        if self.load_size:
            size = [self.load_size, self.load_size]
            image = torch.nn.functional.interpolate(image[None], size, mode="bilinear", antialias=True)[0]
            ids = torch.stack([labels_t, instances_t])[None].float()
            labels_t, instances_t = torch.nn.functional.interpolate(ids, size, mode="nearest")[0].long()
        return {"image": image, "labels": labels_t, "instances": instances_t}


class LabelledTensors(Dataset):
    """Labelled examples held in memory (the built-in data), as :class:`LabelledFolder` gives them."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, instances: torch.Tensor) -> None:
        self.images, self.labels, self.instances = images, labels, instances
        self.has_instances = True

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "labels": self.labels[index], "instances": self.instances[index]}


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
    )


def build_labelled(data: DataConfig, cfg: LabelConfig, channels: int, seed: int, *,
                   intensity: Intensity = Intensity.DTYPE, value_range: tuple[float, float] = (0.0, 255.0),
                   ) -> tuple[LabelledDataset, LabelledDataset, int]:
    """Train and validation label-map datasets for ``data.path``, checked up front, and ``num_classes``.

    The built-in data has ``labels.num_classes`` classes (5 by default, at most 8).
    """
    if channels not in (1, 3):
        raise DatasetError(f"label-map tasks read images with 1 or 3 channels, got {channels}")
    if data.path == "builtin":
        num_classes = cfg.num_classes or NUM_CLASSES
        if num_classes > NUM_CLASSES_MAX:
            raise DatasetError(f"labels.num_classes={num_classes}: the built-in data has at most {NUM_CLASSES_MAX}")
        return (
            builtin_labelled(data.builtin_train, seed, data.builtin_size, num_classes, channels),
            builtin_labelled(data.builtin_val, seed, data.builtin_size, num_classes, channels, VAL_INDEX_OFFSET),
            num_classes,
        )
    train, val = split_labelled(data, cfg, seed)
    num_classes = check_labelled(train + val, cfg.num_classes, need_uniform=data.load_size is None)
    h, w = io.image_shape(train[0].image)
    size = data.load_size or min(h, w)
    if data.crop_size and data.crop_size > size:
        raise DatasetError(f"data.crop_size={data.crop_size} is larger than the images in {data.path} ({h}x{w})")
    return (
        LabelledFolder(train, channels, data.load_size, intensity, value_range),
        LabelledFolder(val, channels, data.load_size, intensity, value_range),
        num_classes,
    )
