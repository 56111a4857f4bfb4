"""The shared file <-> tensor rules: bit depth, channels, intensity rules, their inverse, class ids, masks."""

from __future__ import annotations

import numpy as np
import pytest

from pix2pix_unet.codec import ImageCodec, decode_class_ids, decode_mask, out_of_range
from pix2pix_unet.config import Intensity, OutputDtype
from pix2pix_unet.data import DatasetError
from pix2pix_unet.io import ChannelError, ImageFile, from_tensor, write_image, write_label_map


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tensor_round_trip_keeps_values_and_dtype(dtype, rng):
    info = np.iinfo(dtype) if dtype != np.float32 else None
    pixels = (rng.integers(0, info.max + 1, (5, 6, 3)) if info else rng.random((5, 6, 3))).astype(dtype)
    tensor = ImageCodec(3).from_pixels(ImageFile(pixels)).tensor
    assert tensor.shape == (3, 5, 6) and tensor.min() >= -1 and tensor.max() <= 1
    back = from_tensor(tensor, dtype)
    assert back.dtype == dtype
    if info:
        np.testing.assert_array_equal(back, pixels)
    else:
        np.testing.assert_allclose(back, pixels, atol=1e-6)


def test_full_range_maps_to_minus_one_and_one():
    pixels = np.array([[[0], [65535]]], np.uint16)
    assert ImageCodec(1).from_pixels(ImageFile(pixels)).tensor.flatten().tolist() == [-1.0, 1.0]


def test_channel_conversions_are_lossless_or_an_error(rng):
    gray = ImageFile(np.zeros((4, 4, 1), np.uint8))
    rgba = ImageFile(np.zeros((4, 4, 4), np.uint8), alpha=True)
    assert ImageCodec(3).from_pixels(gray).tensor.shape == (3, 4, 4)  # gray repeated
    assert ImageCodec(3).from_pixels(rgba).tensor.shape == (3, 4, 4)  # alpha dropped
    assert ImageCodec(4).from_pixels(rgba).tensor.shape == (4, 4, 4)
    with pytest.raises(ChannelError, match=r"scan\.tif has 5 channel\(s\) but the generator takes 3"):
        ImageCodec(3).from_pixels(ImageFile(np.zeros((4, 4, 5), np.uint16)), "scan.tif")
    with pytest.raises(ChannelError, match="rgb.png has 3 channel.*takes 1"):
        ImageCodec(1).from_pixels(ImageFile(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)), "rgb.png")
    # a gray picture saved as RGB is read as the gray it is
    same = np.repeat(rng.integers(0, 256, (4, 4, 1), dtype=np.uint8), 3, axis=-1)
    assert ImageCodec(1).from_pixels(ImageFile(same)).tensor.shape == (1, 4, 4)


def test_encode_inverts_each_intensity_rule_into_the_input_units(rng):
    pixels = rng.integers(1000, 1300, (6, 7, 1)).astype(np.uint16)
    for codec in (ImageCodec(1), ImageCodec(1, Intensity.IMAGE), ImageCodec(1, Intensity.RANGE, (900.0, 1400.0))):
        decoded = codec.from_pixels(ImageFile(pixels))
        back = codec.encode(decoded.tensor, decoded)
        assert back.dtype == np.uint16
        np.testing.assert_array_equal(back, pixels)
    # an explicit dtype uses that dtype's full range
    decoded = ImageCodec(1).from_pixels(ImageFile(pixels))
    assert ImageCodec(1).encode(decoded.tensor, decoded, OutputDtype.UINT8).dtype == np.uint8


def test_class_ids_over_range_and_masks_of_another_size_are_named(tmp_path):
    path = write_label_map(tmp_path / "l.png", np.array([[0, 1], [2, 6]]), 7)
    assert decode_class_ids(path, 7).tolist() == [[0, 1], [2, 6]]
    with pytest.raises(DatasetError, match=r"l.png holds class id 6, but the generator has 5 classes"):
        decode_class_ids(path, 5)
    mask = write_image(tmp_path / "m.png", np.array([[0, 255], [0, 0]], np.uint8))
    assert decode_mask(mask, (2, 2)).tolist() == [[[0.0, 1.0], [0.0, 0.0]]]
    with pytest.raises(DatasetError, match=r"hole mask .*m.png is 2x2 but its image is 3x2"):
        decode_mask(mask, (2, 3))


def test_inputs_far_from_the_training_range_are_named(rng):
    dim = ImageFile(rng.integers(100, 360, (16, 16, 1)).astype(np.uint16))  # 0.4 % of the 16-bit range
    decoded = ImageCodec(1).from_pixels(dim, "dim.tif")
    warning = out_of_range(decoded, [-0.95, 0.97], Intensity.DTYPE)
    assert warning is not None and "dim.tif" in warning and "uint16" in warning
    normal = ImageCodec(1).from_pixels(ImageFile(rng.integers(0, 65536, (16, 16, 1)).astype(np.uint16)))
    assert out_of_range(normal, [-0.95, 0.97], Intensity.DTYPE) is None
