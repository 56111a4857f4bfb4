"""A dataset's fingerprint: what the planner's rules read (nnU-Net's idea, for every task here).

It reads the training files once: image sizes, channels, dtype and intensity
percentiles per channel; for label maps the class frequencies, the object sizes,
how many objects touch another, and how thin the structures are; for restoration
an estimate of the noise already in the "clean" images. Everything is plain
numbers, so the fingerprint is saved as JSON beside the plan (``plan.json``).

Folders of TIFF stacks (:func:`~pix2pix_unet.volume_io.is_volume`) get a volume
fingerprint as well (:class:`VolumeStats`): the shapes, each file's voxel size
and whether they agree, and the anisotropy; their label volumes give object
sizes in voxels and µm³, object extents per axis, and the touching share in 3D.
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
from ..data.volumes import same_spacing
from ..io import DTYPE_MAX, read_image, read_label_map
from ..volume_io import is_volume, read_volume

MAX_FILES = 64  # files read for the statistics; sizes and the count cover every file
PERCENTILES = (0.5, 50.0, 99.5)
SAMPLE_VALUES = 65536  # values per file (per volume) the intensity percentiles are taken from
WIDTH_SLICES = 8  # z slices per label volume whose in-plane structure width is measured
NOISE_SLICES = 16  # z slices (around the middle) of a volume whose noise is estimated


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
            instance maps where there are some); for volumes, of object volumes in voxels.
        object_diameter: the diameter of a disk of the median area, px; for volumes, of a ball of the median
            volume in µm³, in voxels of the finest axis (what ``segment.sigma`` is measured in).
        touching: the share of objects that touch another object (4-neighbourhood; 6 in 3D).
        structure_width: the median width of the foreground structures, px (twice the distance to the
            background along their skeleton); a membrane is 2-5 px wide, a nucleus tens. For volumes, the
            in-plane width on up to ``WIDTH_SLICES`` slices of each file.
        instance_maps: whether instance maps came with the labels.
        object_um3: volumes: the 10th, 50th and 90th percentile of object volumes, µm³ (None without a
            voxel size).
        object_extent: volumes: the median extent of the objects' bounding boxes along z, y and x, voxels.
    """

    class_frequency: list[float]
    object_area: list[float]
    object_diameter: float
    touching: float
    structure_width: float
    instance_maps: bool
    object_um3: list[float] | None = None
    object_extent: list[float] | None = None


@dataclass
class VolumeStats:
    """What a folder of Z stacks adds to :class:`ImageStats` (whose heights and widths are the stacks' y and x).

    Attributes:
        depths: the z extent of each file, slices.
        spacings: each file's voxel size ``(z, y, x)`` in µm, None where the file states none.
        spacing: the voxel size every file shares (the first file's), None when a file states none or they
            differ.
        same_spacing: whether every file states the first one's voxel size (within
            :data:`~pix2pix_unet.data.volumes.SPACING_TOLERANCE`).
        anisotropy: z spacing over the in-plane spacing (the mean of y and x); 1.0 without a voxel size.
    """

    depths: list[int]
    spacings: list[list[float] | None]
    spacing: list[float] | None
    same_spacing: bool
    anisotropy: float

    @property
    def min_depth(self) -> int:
        return min(self.depths)


@dataclass
class Fingerprint:
    """Everything the planner knows about a dataset."""

    task: str
    data: str
    images: ImageStats
    labels: LabelStats | None = None
    volumes: VolumeStats | None = None  # the training files are Z stacks
    noise_sigma: float | None = None  # restore: the noise of the clean images, as a fraction of the range
    val_count: int | None = None  # files of the val/ (or test/) folder; None: validation is held out of train
    files_read: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _split_root(root: Path) -> Path:
    """Where the training files are: ``root/train`` when the folder is split, else ``root``."""
    return root / "train" if (root / "train").is_dir() else root


def _image_stats(paths: list[Path], read: int, volumes: bool = False) -> tuple[ImageStats, VolumeStats | None]:
    """The image statistics of ``paths`` (their first ``read`` files' values), and with ``volumes`` the
    stacks' depths and voxel sizes."""
    heights, widths, depths, spacings, channels, dtypes, samples = [], [], [], [], set(), set(), []
    for i, path in enumerate(paths):
        if volumes:
            volume = read_volume(path)
            pixels = volume.voxels  # (z, y, x, c)
            depths.append(pixels.shape[0])
            spacings.append(list(volume.spacing) if volume.spacing is not None else None)
        else:
            pixels = read_image(path).pixels  # (h, w, c)
        h, w, c = pixels.shape[-3:]
        heights.append(h)
        widths.append(w)
        channels.add(c)
        dtypes.add(str(pixels.dtype))
        if i < read:
            samples.append(pixels.reshape(-1, c)[:: max(1, pixels.size // c // SAMPLE_VALUES)])
    if len(channels) > 1 or len(dtypes) > 1:
        raise DatasetError(f"{paths[0].parent}: the images mix channel counts {sorted(channels)} or dtypes "
                           f"{sorted(dtypes)}; the planner reads one kind at a time")
    pixels = np.concatenate(samples).astype(np.float64)
    percentiles = [[float(v) for v in np.percentile(pixels[:, c], PERCENTILES)] for c in range(pixels.shape[1])]
    spans = [float(np.max(np.diff(np.percentile(s.astype(np.float64), PERCENTILES[::2], axis=0), axis=0)))
             for s in samples]  # each file's 0.5-99.5 percentile span, its widest channel
    spread = max(spans) / min(spans) if min(spans) > 0 else float("inf")
    images = ImageStats(len(paths), heights, widths, channels.pop(), dtypes.pop(), percentiles, spread)
    return images, (_volume_stats(depths, spacings) if volumes else None)


def _volume_stats(depths: list[int], spacings: list[list[float] | None]) -> VolumeStats:
    first = spacings[0]
    agree = all((s is None) == (first is None) and (first is None or same_spacing(tuple(first), tuple(s)))
                for s in spacings)
    spacing = first if agree else None
    anisotropy = spacing[0] / ((spacing[1] + spacing[2]) / 2) if spacing else 1.0
    return VolumeStats(depths, spacings, spacing, agree, float(anisotropy))


def touching_share(instances: np.ndarray) -> float:
    """The share of objects in an instance map ``(H, W)`` or ``(Z, Y, X)`` that touch another object (sharing a
    face: the 4-neighbourhood in 2D, the 6-neighbourhood in 3D)."""
    ids = np.unique(instances)
    ids = ids[ids != 0]
    if len(ids) == 0:
        return 0.0
    touching: set[int] = set()
    for axis in range(instances.ndim):
        a = instances[(slice(None),) * axis + (slice(1, None),)]  # views: each voxel and its neighbour
        b = instances[(slice(None),) * axis + (slice(None, -1),)]
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
        instances = read_label_map(f.instances) if f.instances is not None else _instances_of(labels)
        ids, sizes = np.unique(instances[instances > 0], return_counts=True)
        areas += sizes.tolist()
        touching.append(touching_share(instances))
        widths.append(structure_width(labels > 0))
    total = sum(counts.values())
    frequency = [counts.get(k, 0) / total for k in range(max(counts) + 1)]
    area = [float(v) for v in np.percentile(areas, (10, 50, 90))] if areas else [0.0, 0.0, 0.0]
    return LabelStats(frequency, area, float(2 * np.sqrt(area[1] / np.pi)), float(np.mean(touching)),
                      float(np.median(widths)), any(f.instances is not None for f in files))


def _instances_of(labels: np.ndarray) -> np.ndarray:
    """Connected components of each class (face-connected): touching objects of one class are one object."""
    instances = np.zeros(labels.shape, np.int64)
    for k in np.unique(labels[labels > 0]):
        components, n = ndimage.label(labels == k)
        instances[components > 0] = components[components > 0] + instances.max()
    return instances


def _volume_label_stats(files: list, num_read: int, spacing: list[float] | None) -> LabelStats:
    """:class:`LabelStats` of label (and instance) volumes: object volumes in voxels and µm³, bounding-box
    extents per axis, the touching share in 3D, and the in-plane structure width on a few slices."""
    counts = np.zeros(0, np.int64)
    voxels: list[int] = []
    extents: list[tuple[int, int, int]] = []
    touching: list[float] = []
    widths: list[float] = []
    for f in files[:num_read]:
        labels = read_volume(f.labels).voxels[..., 0].astype(np.int64)  # (z, y, x)
        found = np.bincount(labels.ravel())
        counts = np.pad(counts, (0, max(0, len(found) - len(counts))))
        counts[: len(found)] += found
        instances = (read_volume(f.instances).voxels[..., 0].astype(np.int64) if f.instances is not None
                     else _instances_of(labels))
        sizes = np.bincount(instances.ravel())
        for box in ndimage.find_objects(instances):
            if box is not None:
                extents.append(tuple(b.stop - b.start for b in box))
        voxels += sizes[1:][sizes[1:] > 0].tolist()
        touching.append(touching_share(instances))
        filled = np.flatnonzero((labels > 0).any(axis=(1, 2)))
        for z in filled[np.linspace(0, len(filled) - 1, min(WIDTH_SLICES, len(filled))).astype(int)]:
            widths.append(structure_width(labels[z] > 0))
    frequency = (counts / max(1, counts.sum())).tolist()
    size = [float(v) for v in np.percentile(voxels, (10, 50, 90))] if voxels else [0.0, 0.0, 0.0]
    um3 = [v * float(np.prod(spacing)) for v in size] if spacing else None
    finest = min(spacing) if spacing else 1.0
    median_um3 = um3[1] if um3 else size[1]
    diameter = (6 * median_um3 / np.pi) ** (1 / 3) / finest  # a ball of the median volume, finest-axis voxels
    extent = [float(v) for v in np.median(extents, axis=0)] if extents else [0.0, 0.0, 0.0]
    return LabelStats(frequency, size, float(diameter), float(np.mean(touching)),
                      float(np.median(widths)) if widths else 0.0, any(f.instances is not None for f in files),
                      um3, extent)


def _noise_sigma(paths: list[Path], volumes: bool = False) -> float:
    """The median over files of scikit-image's wavelet estimate of the noise σ, as a fraction of the range
    (of a volume: on its middle ``NOISE_SLICES`` slices, as one n-D image)."""
    sigmas = []
    for path in paths:
        if volumes:
            stack = read_volume(path).voxels
            middle = max(0, (len(stack) - NOISE_SLICES) // 2)
            raw = stack[middle: middle + NOISE_SLICES]
        else:
            raw = read_image(path).pixels
        top = DTYPE_MAX.get(raw.dtype, 1.0)
        pixels = raw.astype(np.float64) / top
        sigmas.append(float(estimate_sigma(pixels, channel_axis=-1, average_sigmas=True)))
    return float(np.median(sigmas))


def fingerprint(data: str | Path, task: Task | str, labels: LabelConfig | None = None,
                max_files: int = MAX_FILES) -> Fingerprint:
    """The fingerprint of the training files of ``data`` for ``task``.

    Args:
        data: a dataset folder as ``--data`` takes it (with or without ``train/`` + ``val/``).
        labels: where the label folders are (segment, and translate from label maps).
        max_files: files whose pixels are read; sizes are read from every file.

    The first input decides: a TIFF stack (:func:`~pix2pix_unet.volume_io.is_volume`) makes every file
    read as a volume, with its voxel size (:attr:`Fingerprint.volumes`).

    Raises:
        DatasetError: the folder does not exist, holds no images, or mixes channel counts; names it.
        VolumeError: a folder of stacks holding a 2D image (named).
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
    stacks = is_volume(inputs[0])
    images, volumes = _image_stats(inputs, read, stacks)
    print_ = Fingerprint(task.value, str(root), images, volumes=volumes, files_read=read)
    if labelled is not None and volumes is not None:
        print_.labels = _volume_label_stats(labelled, read, volumes.spacing)
    elif labelled is not None:
        print_.labels = _label_stats(labelled, read)
    if volumes is not None and not volumes.same_spacing:
        print_.notes.append(f"the files' voxel sizes differ ({_spacing_summary(volumes.spacings)}): one network "
                            "is built for one spacing; training refuses them until they are resampled to one")
    if task is Task.RESTORE:
        print_.noise_sigma = _noise_sigma(inputs[:read], stacks)
    if val_dir is not None:
        print_.val_count = len(_inputs(val_dir, task, labels)[1])
    return print_


def _spacing_summary(spacings: list[list[float] | None]) -> str:
    found = sorted({str(tuple(s)) if s else "none stated" for s in spacings})
    return ", ".join(found[:4]) + (" ..." if len(found) > 4 else "")


def _inputs(split: Path, task: Task, labels: LabelConfig | None) -> tuple[list | None, list[Path]]:
    """The labelled examples of one split folder (None for unlabelled tasks) and their input images."""
    if task is Task.SEGMENT or (task is Task.TRANSLATE and (split / (labels or LabelConfig()).label_folder).is_dir()):
        labelled = discover_labelled(split, labels or LabelConfig())
        return labelled, [f.image for f in labelled]
    if task is Task.TRANSLATE:
        return None, [pair.a for pair in discover_pairs(split)]
    return None, list_images(split)


__all__ = ["Fingerprint", "ImageStats", "LabelStats", "VolumeStats", "fingerprint", "structure_width", "touching_share"]
