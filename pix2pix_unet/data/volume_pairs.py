"""Label volume -> image volume pairs, for ``task=translate`` with ``generator.dims=3`` (synthetic volumes).

The folders are those of 3D segmentation (:mod:`~pix2pix_unet.data.volumes`), read the other way round::

    root/{train,val}/labels/NAME.tif      class ids, one per voxel: the generator's input (one-hot)
    root/{train,val}/images/NAME.tif      the volumes it learns to draw (or B/), any dtype the codec reads

``data.path=builtin`` gives the built-in nuclei volumes (:mod:`~pix2pix_unet.data.nuclei3d`): the nucleus
mask (0 background, 1 nucleus) -> the 16-bit nuclei volume. Each example keeps its class ids as they are,
``{"labels": (Z, Y, X) int64, "B": (C, Z, Y, X), "name"}``: training crops its random 3D patches first, and
the task turns the ids of a patch into one-hot channels on the device (a whole volume's one-hot would cost
``num_classes`` float voxels per voxel for every patch drawn from it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec import ImageCodec
from ..config import DataConfig, LabelConfig
from ..errors import DatasetError
from ..volume_io import Spacing, read_volume
from .volumes import BuiltinVolumes, LabelledVolumes, build_labelled_volumes


class LabelVolumePairs(Dataset):
    """Labelled volumes as translation pairs: class ids in, the image volume as the target.

    Args:
        base: whole labelled volumes (:class:`~pix2pix_unet.data.volumes.LabelledVolumes` or
            :class:`~pix2pix_unet.data.volumes.BuiltinVolumes`).
        num_classes: the generator's one-hot channels; an id at or above it is an error naming the file.

    Raises:
        DatasetError: (on reading an example) a class id the generator has no channel for, naming the file.
    """

    def __init__(self, base: LabelledVolumes | BuiltinVolumes, num_classes: int) -> None:
        self.base, self.num_classes = base, num_classes

    def __len__(self) -> int:
        return len(self.base)

    def source(self, index: int) -> Path | str:
        """The label volume of example ``index`` (the generator's input), or its index for built-in data."""
        return self.base.files[index].labels if isinstance(self.base, LabelledVolumes) else str(index)

    def example_files(self) -> list[dict[str, Path | int]]:
        return self.base.example_files()

    @property
    def spacing(self) -> Spacing | None:
        return self.base.spacing

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = self.base[index]
        top = int(item["labels"].max())
        if top >= self.num_classes:
            raise DatasetError(f"label volume {self.source(index)} holds class id {top}, but the generator has "
                               f"{self.num_classes} classes (ids 0..{self.num_classes - 1})")
        return {"labels": item["labels"], "B": item["image"], "name": item["name"]}


def image_dtype(base: LabelledVolumes | BuiltinVolumes) -> str:
    """The dtype of the training volumes (the built-in ones are 16-bit), which outputs take by default."""
    if isinstance(base, BuiltinVolumes):
        return str(np.dtype(np.uint16))
    return str(read_volume(base.files[0].image).voxels.dtype)


def build_volume_pairs(data: DataConfig, cfg: LabelConfig, codec: ImageCodec, seed: int,
                       spacing: Spacing | None = None) -> tuple[LabelVolumePairs, LabelVolumePairs, int,
                                                                Spacing | None, str]:
    """Train and validation pairs for ``data.path``, the number of classes, the voxel size they share and the
    dtype of their images.

    Args:
        codec: the image volumes' channels (the generator's outputs) and intensity rule.
        spacing: the voxel size where the files state none (``generator.spacing``).

    Raises:
        DatasetError: built-in volumes for a generator that draws more than one channel, no volumes, a 2D
            image among them, label volumes that do not fit their images, voxel
            sizes that differ, or a class id at or above ``labels.num_classes``; each names the file.
    """
    if data.path == "builtin" and codec.channels != 1:
        raise DatasetError(f"the built-in nuclei volumes are one-channel gray, but the generator draws "
                           f"{codec.channels} channels: set generator.out_channels=1")
    train, val, num_classes, spacing = build_labelled_volumes(data, cfg, codec, seed, spacing)
    return (LabelVolumePairs(train, num_classes), LabelVolumePairs(val, num_classes), num_classes, spacing,
            image_dtype(train))


__all__ = ["LabelVolumePairs", "build_volume_pairs", "image_dtype"]
