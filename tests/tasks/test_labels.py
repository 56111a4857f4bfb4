"""Label-map datasets: layouts, 16-bit and gray images, and bad inputs named in the error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_unet.config import DataConfig, Intensity, LabelConfig
from pix2pix_unet.data import DatasetError
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset
from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.data.labels import build_labelled


@pytest.fixture
def labelled(tmp_path):
    """The built-in data on disk: {train,val}/{A,B,labels,instances}/, 32 px."""
    return write_dataset(tmp_path / "syn", num_train=4, num_val=2, spec=SyntheticSpec(size=32))


def build(root, **labels):
    return build_labelled(DataConfig(path=str(root), crop_size=32), LabelConfig(**labels), ImageCodec(3), seed=0)


def test_reads_the_built_in_layout_with_instances(labelled):
    train, val, num_classes = build(labelled)
    assert (len(train), len(val)) == (4, 2) and train.has_instances
    item = train[0]
    assert item["image"].shape == (3, 32, 32) and item["labels"].dtype == torch.int64
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    on_disk = np.asarray(Image.open(labelled / "train" / "labels" / "00000.png"))
    assert np.array_equal(item["labels"].numpy(), on_disk)
    assert num_classes == max(int(np.asarray(Image.open(p)).max()) for p in labelled.glob("*/labels/*.png")) + 1
    assert build(labelled, num_classes=7)[2] == 7


def test_without_instances_they_are_connected_components(labelled):
    for folder in labelled.glob("*/instances"):
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
    train, _, _ = build(labelled)
    assert not train.has_instances
    item = train[0]
    assert (item["instances"] > 0).equal(item["labels"] > 0)


def test_sixteen_bit_gray_images_normalised_by_depth_image_or_range(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.array([[1000, 3000], [5000, 65535]], np.uint16)).save(path)
    def read_image(path, channels, intensity=Intensity.DTYPE, value_range=(0.0, 255.0)):
        return ImageCodec(channels, intensity, value_range).decode(path).tensor

    by_depth = read_image(path, 1)
    assert by_depth.shape == (1, 2, 2) and by_depth.max() == 1.0
    assert by_depth[0, 0, 0] == pytest.approx(1000 / 65535 * 2 - 1)
    per_image = read_image(path, 1, Intensity.IMAGE)
    assert per_image.min() == -1 and per_image.max() == 1
    ranged = read_image(path, 3, Intensity.RANGE, (1000.0, 5000.0))
    assert ranged.shape == (3, 2, 2) and ranged[0, 0, 1] == 0.0 and ranged[0, 1, 1] == 1.0  # clipped


def test_colour_label_map_is_named(labelled):
    bad = labelled / "train" / "labels" / "00001.png"
    Image.open(labelled / "train" / "A" / "00001.png").save(bad)  # the RGB colour map instead of ids
    with pytest.raises(DatasetError, match=rf"label map {bad} has 3 channel\(s\) of uint8; expected class ids"):
        build(labelled)


def test_class_id_above_num_classes_is_named(labelled):
    bad = labelled / "val" / "labels" / "00000.png"
    ids = np.asarray(Image.open(bad)).copy()
    ids[0, 0] = 9
    Image.fromarray(ids).save(bad)
    with pytest.raises(DatasetError, match=rf"{bad} holds class id 9, but labels.num_classes=5"):
        build(labelled, num_classes=5)


def test_mask_of_another_size_is_named(labelled):
    bad = labelled / "train" / "instances" / "00002.png"
    Image.fromarray(np.zeros((30, 32), np.uint16)).save(bad)
    with pytest.raises(DatasetError, match=rf"instance map {bad} is 32x30 but its image .*00002.png is 32x32"):
        build(labelled)


def test_images_of_different_sizes_are_accepted_and_the_crop_checked(labelled):
    image = labelled / "train" / "B" / "00001.png"
    Image.open(image).resize((40, 36)).save(image)
    for name in ("labels", "instances"):
        ids = labelled / "train" / name / "00001.png"
        Image.open(ids).resize((40, 36), Image.NEAREST).save(ids)
    train, _, _ = build(labelled)
    assert train[1]["image"].shape == (3, 36, 40) and train[0]["image"].shape == (3, 32, 32)
    with pytest.raises(DatasetError, match=r"00000.png is 32x32 px, smaller than data.crop_size=33"):
        build_labelled(DataConfig(path=str(labelled), crop_size=33), LabelConfig(), ImageCodec(3), seed=0)


def test_colour_images_for_a_gray_model_are_named(labelled):
    train, _, _ = build_labelled(DataConfig(path=str(labelled), crop_size=32), LabelConfig(), ImageCodec(1), seed=0)
    with pytest.raises(ValueError, match=r"00000.png has 3 channel\(s\) but the generator takes 1"):
        train[0]


def test_missing_partner_is_named(labelled):
    (labelled / "train" / "labels" / "00003.png").unlink()
    with pytest.raises(DatasetError, match="00003.png"):
        build(labelled)


def test_confidence_maps_are_read_where_given_and_weight_one_elsewhere(labelled):
    folder = labelled / "train" / "confidence"
    folder.mkdir()
    weights = np.zeros((32, 32), np.uint8)
    weights[:, 16:] = 255
    weights[0, 0] = 51
    Image.fromarray(weights).save(folder / "00001.png")  # one of four images has a map
    train, val, _ = build(labelled)
    assert train.has_confidence and not val.has_confidence
    assert torch.equal(train[0]["confidence"], torch.ones(32, 32))
    given = train[1]["confidence"]
    assert given.dtype == torch.float32 and given[0, 0] == pytest.approx(0.2) and given[:, 16:].eq(1).all()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "00002.png")
    with pytest.raises(DatasetError, match=r"confidence map .*00002.png is 16x16 but its image is 32x32"):
        build(labelled)
    (folder / "00002.png").unlink()
    Image.fromarray(weights).save(folder / "extra.png")
    with pytest.raises(DatasetError, match=r"confidence maps without a label map .*extra.png"):
        build(labelled)
    (folder / "extra.png").unlink()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "00003.png")
    with pytest.raises(DatasetError, match=r"confidence map .*00003.png has 3 channels"):
        build(labelled)
