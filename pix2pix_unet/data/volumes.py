"""Labelled volumes for 3D segmentation, and clean volumes for 3D restoration: TIFF stacks from folders, or the
built-in nuclei volumes.

The folder layout is the 2D one (:func:`~pix2pix_unet.data.labels.discover_labelled`), with Z stacks for files::

    root/{train,val}/images/NAME.tif      the volumes (ZYX or ZCYX, any dtype the codec reads)
    root/{train,val}/labels/NAME.tif      class ids, one per voxel
    root/{train,val}/instances/NAME.tif   instance ids (optional: touching objects as instances)

Each example is a whole volume, ``{"image": (C, Z, Y, X), "labels": (Z, Y, X), "instances": (Z, Y, X), "name"}``
(its voxel size: the dataset's ``spacing``);
training takes random 3D patches of it (:class:`~pix2pix_unet.tasks.base.RandomCrops` with a depth). The
intensity rule is applied to each whole volume (:meth:`~pix2pix_unet.codec.ImageCodec.decode_volume`), and the
voxel size comes from the files (ImageJ or OME metadata), else from ``generator.spacing``; the volumes of one
dataset must agree on it, since the network's anisotropic kernels are built for one spacing.

Restoration reads clean volumes alone (:class:`CleanVolumes`, ``{"clean": (C, Z, Y, X), "name"}``; with real
degraded files also ``"degraded"``), which it degrades itself; the built-in ones are the nuclei volumes made
without their camera noise (:data:`CLEAN_NUCLEI`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec import ImageCodec
from ..config import DataConfig, LabelConfig
from ..errors import DatasetError
from ..volume_io import Spacing, Volume, read_volume
from .folders import split_by_file
from .labels import LabelledFiles, discover_labelled
from .nuclei3d import Nuclei3DSpec, make_nuclei_volume
from .synthetic import VAL_INDEX_OFFSET

SPACING_TOLERANCE = 0.05  # relative difference between two files' voxel sizes that still counts as the same


def same_spacing(a: Spacing, b: Spacing) -> bool:
    return all(abs(x - y) <= SPACING_TOLERANCE * max(x, y) for x, y in zip(a, b))


def spacing_warning(path: Path | str, spacing: Spacing | None, trained: Spacing | None) -> str | None:
    """A warning naming ``path`` when its voxel size differs from the one a 3D network was trained for (its
    anisotropic kernels were built for that one), or None."""
    if trained and spacing and not same_spacing(tuple(trained), spacing):
        return (f"{path}: voxel size {spacing} differs from the trained {tuple(trained)}; resample the volume to "
                "it, or the objects will be misjudged")
    return None


class LabelledVolumes(Dataset):
    """Whole labelled volumes from files, each read once and kept (training revisits them for every patch).

    Args:
        files: image, label map and (optional) instance map of each example.
        codec: the channels and intensity rule of the images.
        spacing: the voxel size where a file states none.

    Raises:
        DatasetError: a label or instance volume whose shape differs from its image's, or files whose voxel
            sizes differ (each named).
    """

    def __init__(self, files: list[LabelledFiles], codec: ImageCodec, spacing: Spacing | None = None) -> None:
        if not files:
            raise DatasetError("no labelled volumes")
        self.files, self.codec, self.default_spacing = files, codec, spacing
        self.has_instances = all(f.instances is not None for f in files)
        self.cache: dict[int, dict[str, torch.Tensor | str]] = {}
        self.spacings: dict[int, Spacing | None] = {}  # each file's voxel size, once read

    def __len__(self) -> int:
        return len(self.files)

    def source(self, index: int) -> Path:
        return self.files[index].image

    def example_files(self) -> list[dict[str, Path]]:
        return [{"image": f.image, "labels": f.labels} for f in self.files]

    @property
    def spacing(self) -> Spacing | None:
        """The voxel size of the volumes (the first file's; :meth:`check` makes them agree)."""
        self[0]
        return self.spacings[0]

    def check(self) -> "LabelledVolumes":
        """Read every volume once: shapes agree with their maps, and every file has the first one's spacing."""
        first = self.spacing
        for i in range(1, len(self)):
            self[i]
            spacing = self.spacings[i]
            if (first is None) != (spacing is None) or (first and not same_spacing(first, spacing)):
                raise DatasetError(f"{self.files[i].image} has voxel size {spacing}, but {self.files[0].image} has "
                                   f"{first}: one network is built for one spacing; resample the volumes to one")
        return self

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if index in self.cache:
            return self.cache[index]
        files = self.files[index]
        decoded = self.codec.decode_volume(files.image, self.default_spacing)
        shape = tuple(decoded.tensor.shape[1:])
        maps = {}
        for key, path in (("labels", files.labels), ("instances", files.instances)):
            if path is None:
                continue
            volume = read_volume(path, self.default_spacing)
            if volume.voxels.shape[-1] != 1 or volume.voxels.shape[:3] != shape:
                raise DatasetError(f"{path} has shape {volume.voxels.shape[:3]} x {volume.voxels.shape[-1]} "
                                   f"channel(s), but its image {files.image} is {shape} x 1: a {key} volume "
                                   "holds one id per voxel of its image")
            maps[key] = torch.from_numpy(volume.voxels[..., 0].astype(np.int64))
        if "instances" not in maps:
            maps["instances"] = torch.zeros(shape, dtype=torch.int64)
        self.spacings[index] = decoded.volume.spacing if decoded.volume is not None else None
        item = {"image": decoded.tensor, **maps, "name": files.image.name}
        self.cache[index] = item
        return item


class BuiltinVolumes(Dataset):
    """The built-in nuclei volumes (:mod:`~pix2pix_unet.data.nuclei3d`), generated once, decoded by ``codec``
    as the same volumes written to 16-bit TIFF files would be."""

    has_instances = True

    def __init__(self, num: int, seed: int, codec: ImageCodec, index_offset: int = 0,
                 spec: Nuclei3DSpec = Nuclei3DSpec()) -> None:
        self.num, self.seed, self.codec, self.offset, self.spec = num, seed, codec, index_offset, spec
        self.cache: dict[int, dict[str, torch.Tensor | str]] = {}

    def __len__(self) -> int:
        return self.num

    def example_files(self) -> list[dict[str, int]]:
        return [{"index": self.offset + i} for i in range(self.num)]

    @property
    def spacing(self) -> Spacing:
        return tuple(self.spec.spacing)  # type: ignore[return-value]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if index not in self.cache:
            image, instances = make_nuclei_volume(self.offset + index, self.seed, self.spec)
            name = f"volume_{self.offset + index:04d}"
            volume = Volume(image[..., None], self.spacing, "ZYX", Path(name))
            x = self.codec.from_volume(volume).tensor  # (c, z, y, x)
            ids = torch.from_numpy(instances.astype(np.int64))
            self.cache[index] = {"image": x, "labels": (ids > 0).long(), "instances": ids, "name": name}
        return self.cache[index]


def build_labelled_volumes(data: DataConfig, cfg: LabelConfig, codec: ImageCodec, seed: int,
                           spacing: Spacing | None = None) -> tuple[Dataset, Dataset, int, Spacing | None]:
    """Train and validation volumes for ``data.path`` (``builtin``: the nuclei volumes), the number of classes,
    and the voxel size they share (``spacing`` where the files state none).

    Raises:
        DatasetError: no volumes, a 2D image among them, maps that do not fit their images, voxel sizes that
            differ, or a class id at or above ``labels.num_classes``; each names the file.
    """
    if data.path == "builtin":
        if cfg.num_classes not in (None, 2):
            raise DatasetError(f"labels.num_classes={cfg.num_classes}: the built-in nuclei volumes have 2 classes "
                               "(background, nucleus)")
        train = BuiltinVolumes(data.builtin_train, seed, codec)
        return train, BuiltinVolumes(data.builtin_val, seed, codec, VAL_INDEX_OFFSET), 2, train.spacing
    train_files, val_files = split_by_file(Path(data.path), lambda split: discover_labelled(split, cfg), data, seed)
    train = LabelledVolumes(train_files, codec, spacing).check()
    val = LabelledVolumes(val_files, codec, spacing).check()
    if train.spacing and val.spacing and not same_spacing(train.spacing, val.spacing):
        raise DatasetError(f"the training volumes have voxel size {train.spacing} but the validation volumes "
                           f"{val.spacing} ({val.files[0].image})")
    top = max(int(v["labels"].max()) for v in (*map(train.__getitem__, range(len(train))),
                                               *map(val.__getitem__, range(len(val)))))
    num_classes = cfg.num_classes or max(2, top + 1)
    if top >= num_classes:
        raise DatasetError(f"a label volume holds class id {top}, but labels.num_classes={num_classes}")
    return train, val, num_classes, train.spacing


# --------------------------------------------------------------------------- clean volumes (task=restore)

# the built-in nuclei volumes as clean volumes: a thousand times the photons and no read noise (shot noise of
# about half a count at the background's 200), so what a restorer removes is the degradation it was given
CLEAN_NUCLEI = Nuclei3DSpec(gain=1e-3, read_noise=0.0)


class CleanVolumes(Dataset):
    """Whole clean volumes from TIFF stacks, ``{"clean": (C, Z, Y, X), "name"}`` in [-1, 1], each read once and
    kept (training revisits them for every patch); with ``degraded`` files (real degraded/clean pairs, for
    ``evaluate``) each item also holds ``"degraded"`` of the same shape.

    Args:
        files: the clean volumes.
        codec: the channels and intensity rule, applied to each whole volume.
        spacing: the voxel size where a file states none.
        degraded: the degraded volume of each clean one, in the same order.

    Raises:
        DatasetError: no files, a 2D image among them, a degraded volume of another shape, or voxel sizes that
            differ (:meth:`check`); each names the file.
    """

    def __init__(self, files: list[Path], codec: ImageCodec, spacing: Spacing | None = None,
                 degraded: list[Path] | None = None) -> None:
        if not files:
            raise DatasetError("no clean volumes")
        self.files, self.codec, self.default_spacing, self.degraded = files, codec, spacing, degraded
        self.cache: dict[int, dict[str, torch.Tensor | str]] = {}
        self.spacings: dict[int, Spacing | None] = {}

    def __len__(self) -> int:
        return len(self.files)

    def source(self, index: int) -> Path:
        return self.files[index]

    def example_files(self) -> list[dict[str, Path]]:
        return [{"clean": path, **({"degraded": self.degraded[i]} if self.degraded is not None else {})}
                for i, path in enumerate(self.files)]

    @property
    def spacing(self) -> Spacing | None:
        """The voxel size of the volumes (the first file's; :meth:`check` makes them agree)."""
        self[0]
        return self.spacings[0]

    def check(self) -> "CleanVolumes":
        """Read every volume once: each is a volume, and every file has the first one's voxel size."""
        first = self.spacing
        for i in range(1, len(self)):
            self[i]
            spacing = self.spacings[i]
            if (first is None) != (spacing is None) or (first and not same_spacing(first, spacing)):
                raise DatasetError(f"{self.files[i]} has voxel size {spacing}, but {self.files[0]} has {first}: one "
                                   "network is built for one spacing; resample the volumes to one")
        return self

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if index in self.cache:
            return self.cache[index]
        path = self.files[index]
        decoded = self.codec.decode_volume(path, self.default_spacing)
        item: dict[str, torch.Tensor | str] = {"clean": decoded.tensor, "name": path.name}
        if self.degraded is not None:
            item["degraded"] = self.codec.decode_volume(self.degraded[index], self.default_spacing).tensor
            if item["degraded"].shape != decoded.tensor.shape:
                raise DatasetError(f"pair shapes differ: {self.degraded[index]} is {tuple(item['degraded'].shape)} "
                                   f"and {path} is {tuple(decoded.tensor.shape)} (C, Z, Y, X)")
        self.spacings[index] = decoded.volume.spacing if decoded.volume is not None else None
        self.cache[index] = item
        return item


class BuiltinCleanVolumes(BuiltinVolumes):
    """The built-in nuclei volumes without camera noise (:data:`CLEAN_NUCLEI`), as ``{"clean", "name"}``."""

    def __init__(self, num: int, seed: int, codec: ImageCodec, index_offset: int = 0,
                 spec: Nuclei3DSpec = CLEAN_NUCLEI) -> None:
        super().__init__(num, seed, codec, index_offset, spec)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = super().__getitem__(index)
        return {"clean": item["image"], "name": item["name"]}


def build_clean_volumes(data: DataConfig, codec: ImageCodec, seed: int, files: Callable[[Path], list[Path]],
                        spacing: Spacing | None = None) -> tuple[Dataset, Dataset, Spacing | None]:
    """Train and validation clean volumes of ``data.path`` (``builtin``: the nuclei volumes without noise), split
    by file as 2D images are, and the voxel size they share (``spacing`` where the files state none).

    Args:
        files: the volume files of one split folder (restore's ``images/``, ``B/`` or the folder itself).

    Raises:
        DatasetError: no volumes, a 2D image among them, or voxel sizes that differ; each names the file.
    """
    if data.path == "builtin":
        train = BuiltinCleanVolumes(data.builtin_train, seed, codec)
        return train, BuiltinCleanVolumes(data.builtin_val, seed, codec, VAL_INDEX_OFFSET), train.spacing
    train_files, val_files = split_by_file(Path(data.path), files, data, seed)
    train = CleanVolumes(train_files, codec, spacing).check()
    val = CleanVolumes(val_files, codec, spacing).check()
    if train.spacing and val.spacing and not same_spacing(train.spacing, val.spacing):
        raise DatasetError(f"the training volumes have voxel size {train.spacing} but the validation volumes "
                           f"{val.spacing} ({val.files[0]})")
    return train, val, train.spacing


__all__ = ["CLEAN_NUCLEI", "BuiltinCleanVolumes", "BuiltinVolumes", "CleanVolumes", "LabelledVolumes",
           "build_clean_volumes", "build_labelled_volumes", "same_spacing", "spacing_warning"]
