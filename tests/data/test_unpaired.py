"""Unpaired folders: trainA/ + trainB/ with no pairing by name, seeded draws, a window per side."""

from __future__ import annotations

import numpy as np
import pytest

from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.data.unpaired import UnpairedFolderDataset, discover_unpaired
from pix2pix_unet.errors import DatasetError
from pix2pix_unet.io import write_image


def make(root, side, n, size, dtype=np.uint8, channels=3):
    rng = np.random.default_rng(len(side) + n)
    high = 255 if dtype == np.uint8 else 4000
    for i in range(n):
        write_image(root / f"train{side}" / f"{side.lower()}{i}.{'png' if dtype == np.uint8 else 'tif'}",
                    rng.integers(0, high, (size[0], size[1], channels)).astype(dtype))


def test_draws_are_seeded_cover_a_in_order_and_crop_each_side_on_its_own(tmp_path):
    make(tmp_path, "A", 3, (40, 50))
    make(tmp_path, "B", 5, (36, 70), dtype=np.uint16, channels=1)  # another size, depth and channel count
    files = discover_unpaired(tmp_path)
    data = UnpairedFolderDataset(files, ImageCodec(3), ImageCodec(1, value_range=(0, 4000)), crop=32, seed=7)
    assert len(data) == 5
    items = [data[i] for i in range(10)]
    assert [x["name"] for x in items[:4]] == ["a0.png", "a1.png", "a2.png", "a0.png"]
    assert items[0]["A"].shape == (3, 32, 32) and items[0]["B"].shape == (1, 32, 32)
    assert len({x["name_b"] for x in items}) > 1  # B is drawn, not paired
    again = UnpairedFolderDataset(files, ImageCodec(3), ImageCodec(1), crop=32, seed=7)
    assert [again[i]["name_b"] for i in range(10)] == [x["name_b"] for x in items]  # a resumed run draws the same
    assert items[0]["A"].abs().max() <= 1


def test_missing_or_small_inputs_are_named(tmp_path):
    make(tmp_path, "A", 2, (40, 40))
    with pytest.raises(DatasetError, match="trainB"):
        discover_unpaired(tmp_path)
    make(tmp_path, "B", 1, (20, 60))
    data = UnpairedFolderDataset(discover_unpaired(tmp_path), ImageCodec(3), ImageCodec(3), crop=32, seed=0)
    with pytest.raises(DatasetError, match=r"b0.png is 60x20 px, smaller than data.crop_size=32"):
        data[0]
