"""A dataset's fingerprint: what the planner's rules read (nnU-Net's idea, for every task here).

It reads the training files once: image sizes, channels, dtype and intensity
percentiles per channel; for label maps the class frequencies, the object sizes,
how many objects touch another, and how thin the structures are; for restoration
an estimate of the noise already in the "clean" images. Everything is plain
numbers, so the fingerprint is saved as JSON beside the plan (``plan.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize
from skimage.restoration import estimate_sigma

from ..config import LabelConfig, Task
from ..data.folders import DatasetError, discover_pairs, list_images
from ..data.labels import discover_labelled
from ..io import DTYPE_MAX, read_image, read_label_map

MAX_FILES = 64  # files read for the statistics; sizes and the count cover every file
PERCENTILES = (0.5, 50.0, 99.5)


@dataclass
class ImageStats:
    """Sizes, channels, dtype and intensities of the input images.

    ``percentiles[c]`` are the 0.5th, 50th and 99.5th percentiles of channel ``c`` over the files read,
    in the file's units; ``range_used`` is the 99.5th percentile over the dtype's maximum.
    ``contrast_spread`` is how much the files' own contrast (their 0.5-99.5 percentile span) varies:
    the largest over the smallest (1.0: every file alike; 2.0: one file twice as bright as another).
    """

    count: int
    heights: list[int]
    widths: list[int]
    channels: int
    dtype: str
    percentiles: list[list[float]]
    contrast_spread: float = 1.0

    @property
    def min_side(self) -> int:
        return min(min(self.heights), min(self.widths))

    @property
    def median_side(self) -> float:
        return float(np.median([min(h, w) for h, w in zip(self.heights, self.widths)]))

    @property
    def range_used(self) -> float:
        top = DTYPE_MAX.get(np.dtype(self.dtype))
        return max(p[-1] for p in self.percentiles) / top if top else 1.0


@dataclass
class LabelStats:
    """What the label maps say about the objects.

    Attributes:
        class_frequency: the share of pixels of each class id (0 = background).
        object_area: the 10th, 50th and 90th percentile of object areas, px (connected components, or the
            instance maps where there are some).
        object_diameter: the diameter of a disk of the median area, px.
        touching: the share of objects that touch another object (4-neighbourhood).
        structure_width: the median width of the foreground structures, px (twice the distance to the
            background along their skeleton); a membrane is 2-5 px wide, a nucleus tens.
        instance_maps: whether instance maps came with the labels.
    """

    class_frequency: list[float]
    object_area: list[float]
    object_diameter: float
    touching: float
    structure_width: float
    instance_maps: bool


@dataclass
class Fingerprint:
    """Everything the planner knows about a dataset."""

    task: str
    data: str
    images: ImageStats
    labels: LabelStats | None = None
    noise_sigma: float | None = None  # restore: the noise of the clean images, as a fraction of the range
    val_count: int | None = None  # files of the val/ (or test/) folder; None: validation is held out of train
    files_read: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _split_root(root: Path) -> Path:
    """Where the training files are: ``root/train`` when the folder is split, else ``root``."""
    return root / "train" if (root / "train").is_dir() else root


def _image_stats(paths: list[Path], read: int) -> ImageStats:
    heights, widths, channels, dtypes, samples = [], [], set(), set(), []
    for i, path in enumerate(paths):
        image = read_image(path)
        h, w, c = image.pixels.shape
        heights.append(h)
        widths.append(w)
        channels.add(c)
        dtypes.add(str(image.pixels.dtype))
        if i < read:
            samples.append(image.pixels.reshape(-1, c)[:: max(1, h * w // 65536)])
    if len(channels) > 1 or len(dtypes) > 1:
        raise DatasetError(f"{paths[0].parent}: the images mix channel counts {sorted(channels)} or dtypes "
                           f"{sorted(dtypes)}; the planner reads one kind at a time")
    pixels = np.concatenate(samples).astype(np.float64)
    percentiles = [[float(v) for v in np.percentile(pixels[:, c], PERCENTILES)] for c in range(pixels.shape[1])]
    spans = [float(np.max(np.diff(np.percentile(s.astype(np.float64), PERCENTILES[::2], axis=0), axis=0)))
             for s in samples]  # each file's 0.5-99.5 percentile span, its widest channel
    spread = max(spans) / min(spans) if min(spans) > 0 else float("inf")
    return ImageStats(len(paths), heights, widths, channels.pop(), dtypes.pop(), percentiles, spread)


def touching_share(instances: np.ndarray) -> float:
    """The share of objects in an instance map ``(H, W)`` that touch another object (4-neighbourhood)."""
    ids = np.unique(instances)
    ids = ids[ids != 0]
    if len(ids) == 0:
        return 0.0
    touching: set[int] = set()
    for a, b in ((instances[1:], instances[:-1]), (instances[:, 1:], instances[:, :-1])):
        contact = (a != b) & (a != 0) & (b != 0)
        touching.update(np.unique(a[contact]).tolist())
        touching.update(np.unique(b[contact]).tolist())
    return len(touching) / len(ids)


def structure_width(foreground: np.ndarray) -> float:
    """Median width of the foreground ``(H, W)`` bool structures, px: twice the distance transform along
    their skeleton, minus one (a 1-px line is 1 px wide); 0 for an empty mask."""
    if not foreground.any():
        return 0.0
    distance = ndimage.distance_transform_edt(foreground)
    skeleton = skeletonize(foreground)
    return float(max(1.0, 2 * np.median(distance[skeleton]) - 1))


def _label_stats(files: list, num_read: int) -> LabelStats:
    counts: dict[int, int] = {}
    areas: list[int] = []
    touching: list[float] = []
    widths: list[float] = []
    for f in files[:num_read]:
        labels = read_label_map(f.labels)
        for k, n in zip(*np.unique(labels, return_counts=True)):
            counts[int(k)] = counts.get(int(k), 0) + int(n)
        if f.instances is not None:
            instances = read_label_map(f.instances)
        else:  # connected components of each class: touching objects of one class are one object here
            instances = np.zeros(labels.shape, np.int64)
            for k in np.unique(labels[labels > 0]):
                components, n = ndimage.label(labels == k)
                instances[components > 0] = components[components > 0] + instances.max()
        ids, sizes = np.unique(instances[instances > 0], return_counts=True)
        areas += sizes.tolist()
        touching.append(touching_share(instances))
        widths.append(structure_width(labels > 0))
    total = sum(counts.values())
    frequency = [counts.get(k, 0) / total for k in range(max(counts) + 1)]
    area = [float(v) for v in np.percentile(areas, (10, 50, 90))] if areas else [0.0, 0.0, 0.0]
    return LabelStats(frequency, area, float(2 * np.sqrt(area[1] / np.pi)), float(np.mean(touching)),
                      float(np.median(widths)), any(f.instances is not None for f in files))


def _noise_sigma(paths: list[Path]) -> float:
    """The median over files of scikit-image's wavelet estimate of the noise σ, as a fraction of the range."""
    sigmas = []
    for path in paths:
        image = read_image(path)
        top = DTYPE_MAX.get(image.pixels.dtype, 1.0)
        pixels = image.pixels.astype(np.float64) / top
        sigmas.append(float(estimate_sigma(pixels, channel_axis=-1, average_sigmas=True)))
    return float(np.median(sigmas))


def fingerprint(data: str | Path, task: Task | str, labels: LabelConfig | None = None,
                max_files: int = MAX_FILES) -> Fingerprint:
    """The fingerprint of the training files of ``data`` for ``task``.

    Args:
        data: a dataset folder as ``--data`` takes it (with or without ``train/`` + ``val/``).
        labels: where the label folders are (segment, and translate from label maps).
        max_files: files whose pixels are read; sizes are read from every file.

    Raises:
        DatasetError: the folder does not exist, holds no images, or mixes channel counts; names it.
    """
    task = Task(task)
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(f"--data {root} is not a folder (the planner reads a dataset on disk)")
    split = _split_root(root)
    labelled, inputs = _inputs(split, task, labels)
    if not inputs:
        raise DatasetError(f"{split} holds no images")
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None) if split != root else None
    read = min(len(inputs), max_files)
    print_ = Fingerprint(task.value, str(root), _image_stats(inputs, read), files_read=read)
    if labelled is not None:
        print_.labels = _label_stats(labelled, read)
    if task is Task.RESTORE:
        print_.noise_sigma = _noise_sigma(inputs[:read])
    if val_dir is not None:
        print_.val_count = len(_inputs(val_dir, task, labels)[1])
    return print_


def _inputs(split: Path, task: Task, labels: LabelConfig | None) -> tuple[list | None, list[Path]]:
    """The labelled examples of one split folder (None for unlabelled tasks) and their input images."""
    if task is Task.SEGMENT or (task is Task.TRANSLATE and (split / (labels or LabelConfig()).label_folder).is_dir()):
        labelled = discover_labelled(split, labels or LabelConfig())
        return labelled, [f.image for f in labelled]
    if task is Task.TRANSLATE:
        return None, [pair.a for pair in discover_pairs(split)]
    return None, list_images(split)


__all__ = ["Fingerprint", "ImageStats", "LabelStats", "fingerprint", "structure_width", "touching_share"]
