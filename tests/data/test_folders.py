import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_unet.config import DataConfig, Direction, UNetConfig
from pix2pix_unet.data import DatasetError, PairedAugmentation, build_datasets, discover_pairs, orient
from tests.conftest import write_pairs


def test_ab_folders_pair_by_name(pair_folder):
    train, val = build_datasets(DataConfig(path=str(pair_folder), crop_size=32), UNetConfig(), seed=0)
    assert len(train) == 8 and len(val) == 2
    item = train[0]
    assert item["A"].shape == item["B"].shape == (3, 36, 36)
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    assert torch.allclose(item["A"], -item["B"], atol=1e-6)  # B is the inverted A


def test_aligned_images_split_and_hold_out_val(tmp_path):
    write_pairs(tmp_path / "ab", 10, layout="aligned")
    train, val = build_datasets(DataConfig(path=str(tmp_path / "ab"), crop_size=None, val_fraction=0.2), UNetConfig(), 0)
    assert len(train) == 8 and len(val) == 2
    assert not {p.a for p in train.pairs} & {p.a for p in val.pairs}
    item = val[0]
    assert torch.allclose(item["A"], -item["B"], atol=1e-6)


def test_direction_swaps_sides():
    batch = {"A": torch.zeros(1), "B": torch.ones(1)}
    assert orient(batch, Direction.B_TO_A)[0].item() == 1.0


def test_load_size_resizes(pair_folder):
    train, _ = build_datasets(DataConfig(path=str(pair_folder), load_size=48, crop_size=32), UNetConfig(), 0)
    assert train[0]["B"].shape == (3, 48, 48)


def test_grayscale_input_channels(pair_folder):
    for path in pair_folder.glob("*/A/*.png"):
        Image.open(path).convert("L").save(path)
    train, _ = build_datasets(DataConfig(path=str(pair_folder), crop_size=32), UNetConfig(in_channels=1), 0)
    assert train[0]["A"].shape[0] == 1 and train[0]["B"].shape[0] == 3
    # a colour image cannot feed a gray model: named, not silently averaged
    with pytest.raises(ValueError, match=r"000.png has 3 channel\(s\) but the generator takes 1"):
        build_datasets(DataConfig(path=str(pair_folder), crop_size=32), UNetConfig(in_channels=3, out_channels=1),
                       0)[0][0]


def test_sixteen_bit_and_mixed_size_pairs_are_read(pair_folder):
    big = np.full((40, 48), 40000, np.uint16)
    Image.fromarray(big).save(pair_folder / "train" / "A" / "000.png")
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(pair_folder / "train" / "B" / "000.png")
    train, _ = build_datasets(DataConfig(path=str(pair_folder), crop_size=32), UNetConfig(), 0)
    item = train[0]
    assert item["A"].shape == (3, 40, 48) and item["A"][0, 0, 0].item() == pytest.approx(40000 / 65535 * 2 - 1)
    assert train[1]["A"].shape == (3, 36, 36)


@pytest.mark.parametrize(
    "breakage, named",
    [
        ("missing", "does not exist"),
        ("empty", "holds no images"),
        ("corrupt", "002.png"),
        ("text", "003.png"),
        ("size", "different|differ"),
        ("partner", "no partner"),
    ],
)
def test_bad_folders_fail_with_the_path(tmp_path, breakage, named):
    root = tmp_path / "d"
    if breakage != "missing":
        root.mkdir()
    if breakage not in ("missing", "empty"):
        write_pairs(root, 5)
    if breakage == "corrupt":
        data = (root / "B" / "002.png").read_bytes()
        (root / "B" / "002.png").write_bytes(data[: len(data) // 2])
    elif breakage == "text":
        (root / "A" / "003.png").write_text("not an image")
    elif breakage == "size":
        Image.new("RGB", (40, 36)).save(root / "B" / "001.png")
    elif breakage == "partner":
        (root / "B" / "004.png").unlink()
    with pytest.raises(DatasetError, match=named) as err:
        build_datasets(DataConfig(path=str(root), crop_size=32), UNetConfig(), 0)
    assert str(root) in str(err.value)


def test_crop_larger_than_images_named(pair_folder):
    with pytest.raises(DatasetError, match="crop_size=64"):
        build_datasets(DataConfig(path=str(pair_folder), crop_size=64), UNetConfig(), 0)


def test_discover_prefers_ab_folders(pair_folder):
    pairs = discover_pairs(pair_folder / "train")
    assert all(p.b is not None and p.a.name == p.b.name for p in pairs)


def test_paired_augmentation_same_geometry():
    torch.manual_seed(0)
    aug = PairedAugmentation(crop_size=24, flip=True)
    a = torch.rand(16, 3, 32, 32)
    b = torch.cat([a[:, :1] * 2 - 1, a], dim=1)  # B is a function of A, with another channel count
    out_a, out_b = aug(a, b)
    assert out_a.shape == (16, 3, 24, 24) and out_b.shape == (16, 4, 24, 24)
    assert torch.allclose(out_b[:, 1:], out_a) and torch.allclose(out_b[:, :1], out_a[:, :1] * 2 - 1)
    # the crops really differ between samples (geometry is random, yet shared within a pair)
    assert not all(torch.equal(out_a[0], out_a[i]) for i in range(16))
