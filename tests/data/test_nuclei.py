"""The built-in fluorescence-like nuclei (pix2pix_unet.data.nuclei): tiles, the built-in option, the files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from pix2pix_unet.cli import train_main
from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.config import BuiltinKind, DataConfig, Intensity, LabelConfig, UNetConfig
from pix2pix_unet.data import build_datasets
from pix2pix_unet.data.folders import DatasetError
from pix2pix_unet.data.nuclei import NucleiSpec, make_nuclei, write_nuclei
from pix2pix_unet.data.synthetic import VAL_INDEX_OFFSET
from pix2pix_unet.io import ImageFile, read_image, read_label_map
from pix2pix_unet.data.labels import build_labelled
from pix2pix_unet.tasks.restore import build_clean
from tests.conftest import TINY

REPO_ROOT = Path(__file__).resolve().parents[2]
TILES = [make_nuclei(index, seed=0) for index in range(20)]


def touching_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of instance ids that share a pixel edge (4-neighbours of different non-zero ids)."""
    pairs = set()
    for a, b in ((instances[:, 1:], instances[:, :-1]), (instances[1:], instances[:-1])):
        edge = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(p, q), max(p, q)) for p, q in zip(a[edge].tolist(), b[edge].tolist())}
    return pairs


def make_synthetic_main():
    spec = importlib.util.spec_from_file_location("make_synthetic", REPO_ROOT / "datasets" / "make_synthetic.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_tiles_are_deterministic_in_index_and_seed():
    image, instances = make_nuclei(3, seed=7)
    again = make_nuclei(3, seed=7)
    assert np.array_equal(image, again[0]) and np.array_equal(instances, again[1])
    assert not np.array_equal(image, make_nuclei(4, seed=7)[0])
    assert not np.array_equal(image, make_nuclei(3, seed=8)[0])
    with pytest.raises(IndexError, match="-1"):
        make_nuclei(-1)


def test_one_channel_16_bit_in_a_small_part_of_the_range():
    for image, instances in TILES:
        assert image.dtype == instances.dtype == np.uint16 and image.shape == instances.shape == (72, 72)
        assert image.max() < 0.1 * 65535  # well under a tenth of the 16-bit range
        background, nuclei = np.median(image[instances == 0]), np.median(image[instances > 0])
        assert 50 < background < 400 and nuclei > 2 * background
    assert make_nuclei(0, spec=NucleiSpec(size=40))[0].shape == (40, 40)


def test_dim_and_bright_nuclei():
    means = [image[instances == k].mean() - np.median(image[instances == 0])
             for image, instances in TILES for k in range(1, int(instances.max()) + 1)]
    assert max(means) > 3 * min(means)


def test_nuclei_touch():
    touching = [bool(touching_pairs(instances)) for _, instances in TILES]
    assert sum(touching) >= 0.8 * len(TILES)


def test_every_instance_is_one_piece_of_at_least_min_area():
    spec = NucleiSpec()
    for _, instances in TILES:
        ids = np.unique(instances[instances > 0])
        assert ids.tolist() == list(range(1, len(ids) + 1)) and len(ids) >= 1  # consecutive
        for k in ids:
            _, pieces = ndimage.label(instances == k)  # 4-connected
            assert pieces == 1, k
            assert (instances == k).sum() >= spec.min_area


@pytest.mark.parametrize("field, value", [("size", 8), ("count", (5, 2)), ("radius", (0.5, 3.0)),
                                          ("gain", 0.0), ("illumination", 1.0), ("min_area", 0)])
def test_bad_spec_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"NucleiSpec.{field}"):
        NucleiSpec(**{field: value})


def nuclei_data(**fields) -> DataConfig:
    return DataConfig(builtin_kind=BuiltinKind.NUCLEI, builtin_train=3, builtin_val=2, builtin_size=36,
                      crop_size=32, **fields)


def test_built_in_option_decodes_through_the_codec():
    codec = ImageCodec(1, Intensity.IMAGE)
    train, val, num_classes = build_labelled(nuclei_data(), LabelConfig(), codec, seed=0)
    assert (len(train), len(val), num_classes) == (3, 2, 2) and train.has_instances
    item = val[1]
    image, instances = make_nuclei(VAL_INDEX_OFFSET + 1, 0, NucleiSpec(size=36))  # val follows the offset
    assert item["image"].shape == (1, 36, 36) and item["image"].min() == -1 and item["image"].max() == 1
    assert torch.equal(item["instances"], torch.from_numpy(instances.astype(np.int64)))
    assert torch.equal(item["labels"], (item["instances"] > 0).long())
    assert torch.equal(item["image"], codec.from_pixels(ImageFile(image[..., None])).tensor)


def test_built_in_option_needs_one_channel_and_two_classes():
    with pytest.raises(DatasetError, match="generator.in_channels=1"):
        build_labelled(nuclei_data(), LabelConfig(), ImageCodec(3), seed=0)
    with pytest.raises(DatasetError, match="labels.num_classes=5"):
        build_labelled(nuclei_data(), LabelConfig(num_classes=5), ImageCodec(1), seed=0)


def test_other_tasks_refuse_the_built_in_nuclei():
    with pytest.raises(DatasetError, match="builtin_kind=nuclei.*task=restore"):
        build_clean(nuclei_data(), ImageCodec(1), seed=0)
    with pytest.raises(DatasetError, match="builtin_kind=nuclei"):
        build_datasets(nuclei_data(), UNetConfig(), seed=0)


@pytest.mark.slow
def test_the_built_in_option_trains(tmp_path):
    out = tmp_path / "run"
    assert train_main(["--task", "segment", "--output-dir", str(out), "--max-steps", "2", "--no-wandb",
                       "sample_every=2", "checkpoint_every=2", *TINY, "data.builtin_kind=nuclei",
                       "generator.in_channels=1", "segment.intensity=image", "data.builtin_train=4",
                       "data.builtin_val=2", "data.builtin_size=36"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val/miou" in r] == [0, 2]
    meta = json.loads((out / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["generator"]["in_channels"] == 1


def test_make_synthetic_writes_what_segment_reads(tmp_path, capsys):
    root = tmp_path / "nuclei"
    assert make_synthetic_main()(["--kind", "nuclei", "--out", str(root), "--num-train", "3", "--num-val", "2",
                                  "--size", "36"]) == 0
    assert "3 train + 2 val nuclei tiles (36x36, 2 classes" in capsys.readouterr().out
    for split, count in (("train", 3), ("val", 2)):
        for folder, suffix in (("images", ".tif"), ("labels", ".png"), ("instances", ".png")):
            assert sorted(p.name for p in (root / split / folder).iterdir()) == [
                f"{i:05d}{suffix}" for i in range(count)]
    image = read_image(root / "val" / "images" / "00001.tif").pixels
    assert image.dtype == np.uint16 and image.shape == (36, 36, 1)
    instances = read_image(root / "val" / "instances" / "00001.png").pixels[..., 0]
    assert instances.dtype == np.uint16
    assert np.array_equal(read_label_map(root / "val" / "labels" / "00001.png"), instances > 0)

    # --task segment --data OUT reads the same examples the built-in option makes
    codec = ImageCodec(1, Intensity.IMAGE)
    files = build_labelled(DataConfig(path=str(root), crop_size=32), LabelConfig(), codec, seed=0)
    builtin = build_labelled(nuclei_data(), LabelConfig(), codec, seed=0)
    assert files[2] == builtin[2] == 2 and files[0].has_instances
    for from_files, in_memory in zip(files[:2], builtin[:2]):
        for i in range(len(from_files)):
            a, b = from_files[i], in_memory[i]
            assert all(torch.equal(a[key], b[key]) for key in ("image", "labels", "instances"))


def test_write_nuclei_refuses_bad_counts(tmp_path):
    with pytest.raises(ValueError, match="num_train=-1"):
        write_nuclei(tmp_path, -1, 1)
    assert make_synthetic_main()(["--kind", "nuclei", "--out", str(tmp_path / "x"), "--num-classes", "3"]) == 2
