"""Labelled volumes: decoded whole by the codec, maps checked against their images, one voxel size per dataset;
and the 3D weight map measured in space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.config import DataConfig, Intensity, LabelConfig
from pix2pix_unet.data.labels import LabelledFiles
from pix2pix_unet.data.volumes import BuiltinVolumes, LabelledVolumes, build_labelled_volumes
from pix2pix_unet.data.weight_map import border_weights
from pix2pix_unet.errors import DatasetError
from pix2pix_unet.losses.segment import soft_dice_loss
from pix2pix_unet.volume_io import write_volume


def write_example(root, name, shape=(4, 10, 12), spacing=(2.0, 0.5, 0.5), label_shape=None):
    image = np.zeros(shape, np.uint16)
    image[1:3, 2:6, 3:8] = 1000
    image[0, 0, 0] = 4000  # the volume's maximum, in another slice than the object
    labels = (image == 1000).astype(np.uint8)
    write_volume(root / "images" / f"{name}.tif", image, spacing)
    write_volume(root / "labels" / f"{name}.tif", labels if label_shape is None else np.zeros(label_shape, np.uint8),
                 spacing)
    return LabelledFiles(root / "images" / f"{name}.tif", root / "labels" / f"{name}.tif")


def test_a_volume_is_normalised_as_a_whole_with_its_maps_and_spacing(tmp_path):
    files = [write_example(tmp_path, "a")]
    data = LabelledVolumes(files, ImageCodec(1, Intensity.IMAGE)).check()
    item = data[0]
    assert item["image"].shape == (1, 4, 10, 12) and item["labels"].shape == (4, 10, 12)
    # the image rule takes the whole volume's range: the object at 1000 of 4000 is -0.5, in every slice
    assert torch.allclose(item["image"][0, 1, 3, 4], torch.tensor(-0.5))
    assert data.spacing == (2.0, 0.5, 0.5) and int(item["labels"].sum()) == 2 * 4 * 5


def test_maps_that_do_not_fit_and_spacings_that_differ_are_named(tmp_path):
    bad = [write_example(tmp_path / "x", "a", label_shape=(4, 10, 11))]
    with pytest.raises(DatasetError, match=r"labels/a.tif has shape \(4, 10, 11\).*its image .*a.tif is \(4, 10, 12\)"):
        LabelledVolumes(bad, ImageCodec(1)).check()
    mixed = [write_example(tmp_path / "y", "a"), write_example(tmp_path / "y", "b", spacing=(1.0, 0.5, 0.5))]
    with pytest.raises(DatasetError, match=r"b.tif has voxel size \(1.0, 0.5, 0.5\), but .*a.tif has \(2.0, 0.5, 0.5\)"):
        LabelledVolumes(mixed, ImageCodec(1)).check()


def test_the_builtin_volumes_carry_instances_and_their_voxel_size():
    train, val, classes, spacing = build_labelled_volumes(DataConfig(builtin_train=2, builtin_val=1), LabelConfig(),
                                                          ImageCodec(1), seed=0)
    assert isinstance(train, BuiltinVolumes) and classes == 2 and spacing == (2.0, 0.5, 0.5)
    item = val[0]
    assert item["image"].shape[0] == 1 and item["instances"].max() > 1 and item["image"].min() >= -1
    assert not torch.equal(val[0]["image"], train[0]["image"])  # other volumes


def test_the_border_weight_is_measured_in_space_on_anisotropic_voxels():
    objects = np.zeros((5, 1, 9), np.int64)
    objects[:, 0, :3], objects[:, 0, 6:] = 1, 2  # two slabs 3 voxels apart along x
    cubes = border_weights(objects, w0=10, sigma=5)
    coarse_x = border_weights(objects, w0=10, sigma=5, sampling=(1.0, 1.0, 2.0))  # x voxels twice as long
    gap = (slice(None), 0, 4)
    # d1 + d2 = 4 voxels of 1, or 8 of the finest axis's units with x twice as long: a smaller border weight
    assert np.allclose(cubes[gap], 10 * np.exp(-16 / 50)) and np.allclose(coarse_x[gap], 10 * np.exp(-64 / 50))


def test_soft_dice_sums_over_every_spatial_axis_of_a_volume():
    labels = torch.randint(0, 3, (2, 4, 5, 6))
    perfect = torch.nn.functional.one_hot(labels, 3).movedim(-1, 1).float() * 50
    assert soft_dice_loss(perfect, labels) < 1e-3
    assert soft_dice_loss(torch.zeros(2, 3, 4, 5, 6), labels) > 0.3
