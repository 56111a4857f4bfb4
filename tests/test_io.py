"""Image I/O: every format and bit depth round-trips, channels convert only losslessly, bad files name themselves."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from pix2pix_unet.io import (
    ImageFile, ImageReadError, ImageWriteError, display_rgb8, from_tensor, image_shape, overlay,
    palette, read_image, read_label_map, write_image, write_label_map,
)

PIXELS = np.random.default_rng(0)  # drawn from at import only, for the parameters below


@pytest.mark.parametrize(
    "name, pixels",
    [
        ("gray8.png", PIXELS.integers(0, 256, (17, 23, 1), dtype=np.uint8)),
        ("rgb8.png", PIXELS.integers(0, 256, (17, 23, 3), dtype=np.uint8)),
        ("rgba8.png", PIXELS.integers(0, 256, (17, 23, 4), dtype=np.uint8)),
        ("gray16.png", PIXELS.integers(0, 65536, (17, 23, 1), dtype=np.uint16)),
        ("rgb16.png", PIXELS.integers(0, 65536, (17, 23, 3), dtype=np.uint16)),
        ("gray16.tif", PIXELS.integers(0, 65536, (17, 23, 1), dtype=np.uint16)),
        ("rgb16.tif", PIXELS.integers(0, 65536, (17, 23, 3), dtype=np.uint16)),
        ("stack5.tif", PIXELS.random((17, 23, 5), dtype=np.float32)),
        ("stack2_16.tif", PIXELS.integers(0, 65536, (17, 23, 2), dtype=np.uint16)),
        ("rgb8.bmp", PIXELS.integers(0, 256, (17, 23, 3), dtype=np.uint8)),
    ],
)
def test_lossless_formats_round_trip_exactly(tmp_path, name, pixels):
    path = write_image(tmp_path / name, pixels)
    image = read_image(path)
    assert image.dtype == pixels.dtype and image.shape == pixels.shape
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image_shape(path) == pixels.shape[:2]
    assert image.alpha == (name == "rgba8.png")
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed into place


def test_jpeg_round_trip_is_close(tmp_path):
    smooth = np.broadcast_to(np.linspace(0, 255, 32, dtype=np.float32)[None, :, None], (16, 32, 3))
    pixels = np.ascontiguousarray(smooth.round().astype(np.uint8))
    image = read_image(write_image(tmp_path / "a.jpg", pixels))
    assert image.dtype == np.uint8 and image.shape == (16, 32, 3)
    assert np.abs(image.pixels.astype(int) - pixels).mean() < 3


def test_tiff_stack_axes_become_channels(tmp_path, rng):
    stack = rng.integers(0, 65536, (4, 10, 12), dtype=np.uint16)  # C, Y, X as microscopy tools write it
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack", metadata={"axes": "CYX"})
    image = read_image(tmp_path / "s.tif")
    assert image.shape == (10, 12, 4)
    np.testing.assert_array_equal(image.pixels[..., 2], stack[2])


def test_bad_files_raise_naming_the_file(tmp_path, rng):
    good = write_image(tmp_path / "good.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    data = good.read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.tif").write_bytes(b"")
    for name in ("truncated.png", "text.png", "empty.tif", "missing.jpg"):
        with pytest.raises(ImageReadError, match=name):
            read_image(tmp_path / name)


def test_formats_refuse_what_they_cannot_hold(tmp_path):
    with pytest.raises(ImageWriteError, match=r"a\.png.*\.tif"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageWriteError, match=r"a\.jpg"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 3), np.uint16))
    assert not list(tmp_path.iterdir())


def test_label_maps_are_indexed_pngs(tmp_path, rng):
    labels = rng.integers(0, 7, (9, 11))
    path = write_label_map(tmp_path / "l.png", labels, num_classes=7)
    with Image.open(path) as img:
        assert img.mode == "P"
        assert img.getpalette()[:21] == palette(7).flatten().tolist()
    np.testing.assert_array_equal(read_label_map(path), labels)
    # beyond 256 classes: 16-bit gray
    many = rng.integers(0, 300, (9, 11))
    np.testing.assert_array_equal(read_label_map(write_label_map(tmp_path / "m.png", many, 300)), many)
    with pytest.raises(ImageReadError, match=r"rgb\.png has 3 channel"):
        read_label_map(write_image(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint8)))


def test_overlay_colours_foreground_only():
    rgb = np.full((2, 2, 3), 100, np.uint8)
    labels = np.array([[0, 1], [2, 0]])
    out = overlay(rgb, labels, num_classes=3, alpha=0.5)
    assert (out[0, 0] == 100).all() and (out[1, 1] == 100).all()
    expected = np.rint(0.5 * 100 + 0.5 * palette(3)[1].astype(np.float32))
    np.testing.assert_array_equal(out[0, 1], expected)


def test_display_stretches_16_bit_data(rng):
    dim = ImageFile(rng.integers(1000, 2000, (8, 8, 1), dtype=np.uint16))  # 12-bit-ish data in a 16-bit file
    shown = display_rgb8(dim)
    assert shown.shape == (8, 8, 3) and shown.dtype == np.uint8 and shown.max() >= 250 and shown.min() <= 5


def test_from_tensor_clips():
    assert from_tensor(torch.tensor([[[-3.0, 3.0]]]), np.uint8).flatten().tolist() == [0, 255]
