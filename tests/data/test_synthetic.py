"""Tests for the procedural paired dataset (pix2pix_unet.data.synthetic)."""

from __future__ import annotations

import importlib.util
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pix2pix_unet.data.synthetic import (
    NUM_CLASSES, NUM_CLASSES_MAX, VAL_INDEX_OFFSET, SyntheticPairs, SyntheticSpec, colorize, make_sample, render_photo, write_dataset,
)
from pix2pix_unet.io import PALETTE

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS = ("labels", "instances", "label_rgb", "photo")


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b) == set(KEYS)
    for k in KEYS:
        assert torch.equal(a[k], b[k]), k


def _touching_pairs(instances: torch.Tensor, labels: torch.Tensor, diagonal: bool) -> set:
    """Pairs ((id_a, id_b), same_class) of distinct instances that are adjacent."""
    inst = instances.numpy()
    lab = labels.numpy()
    offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if diagonal else [])
    pairs = set()
    h, w = inst.shape
    for dy, dx in offsets:
        a = inst[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        b = inst[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
        la = lab[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        lb = lab[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
        m = (a > 0) & (b > 0) & (a != b)
        for ia, ib, ca, cb in zip(a[m], b[m], la[m], lb[m]):
            pairs.add(((min(ia, ib), max(ia, ib)), bool(ca == cb)))
    return pairs


def _component_sizes(instances: np.ndarray) -> list[int]:
    """Sizes of 8-connected same-instance components (plain BFS reference)."""
    h, w = instances.shape
    seen = np.zeros_like(instances, dtype=bool)
    sizes = []
    for y0 in range(h):
        for x0 in range(w):
            if instances[y0, x0] == 0 or seen[y0, x0]:
                continue
            ident, n = instances[y0, x0], 0
            queue = deque([(y0, x0)])
            seen[y0, x0] = True
            while queue:
                y, x = queue.popleft()
                n += 1
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        yy, xx = y + dy, x + dx
                        if (
                            0 <= yy < h
                            and 0 <= xx < w
                            and not seen[yy, xx]
                            and instances[yy, xx] == ident
                        ):
                            seen[yy, xx] = True
                            queue.append((yy, xx))
            sizes.append(n)
    return sizes


# --------------------------------------------------------------------------- #


def test_deterministic_in_index_and_seed() -> None:
    _assert_same(make_sample(3, seed=1), make_sample(3, seed=1))
    a = make_sample(3, seed=1)
    assert not torch.equal(a["labels"], make_sample(3, seed=2)["labels"])
    assert not torch.equal(a["photo"], make_sample(3, seed=2)["photo"])
    assert not torch.equal(a["labels"], make_sample(4, seed=1)["labels"])


def test_order_independent() -> None:
    # Lazily generated samples must not depend on what was generated before
    # (DataLoader workers see items in arbitrary order).
    first = make_sample(7)
    for i in range(3):
        make_sample(i)
    _assert_same(first, make_sample(7))


@pytest.mark.parametrize("num_classes", [2, NUM_CLASSES, NUM_CLASSES_MAX])
def test_shapes_dtypes_ranges(num_classes: int) -> None:
    spec = SyntheticSpec(size=48, num_classes=num_classes)
    for i in range(8):
        s = make_sample(i, spec=spec)
        assert set(s) == set(KEYS)
        assert s["labels"].shape == (48, 48) and s["labels"].dtype == torch.int64
        assert s["instances"].shape == (48, 48) and s["instances"].dtype == torch.int64
        for k in ("label_rgb", "photo"):
            assert s[k].shape == (3, 48, 48) and s[k].dtype == torch.float32
            assert float(s[k].min()) >= 0.0 and float(s[k].max()) <= 1.0
        labels, inst = s["labels"], s["instances"]
        assert int(labels.min()) >= 0 and int(labels.max()) < num_classes
        # Background in one map is background in the other.
        assert torch.equal(labels == 0, inst == 0)
        # Instance ids are consecutive and each instance has a single class.
        ids = torch.unique(inst)
        assert torch.equal(ids, torch.arange(len(ids)))
        for ident in ids[1:]:
            assert len(torch.unique(labels[inst == ident])) == 1
        assert torch.equal(s["label_rgb"], PALETTE[labels].permute(2, 0, 1))


def test_several_classes_present() -> None:
    seen: set[int] = set()
    for i in range(20):
        labels = make_sample(i)["labels"]
        present = set(torch.unique(labels).tolist())
        assert len(present) >= 2, f"sample {i} has only classes {present}"
        seen |= present
    assert seen == set(range(NUM_CLASSES))


def test_touching_objects_and_same_class_gaps() -> None:
    n_touching = 0
    for i in range(20):
        s = make_sample(i)
        pairs4 = _touching_pairs(s["instances"], s["labels"], diagonal=False)
        n_touching += bool(pairs4)
        # Same-class instances are always separated by a background gap (even
        # diagonally), otherwise the class map would hide their boundary.
        pairs8 = _touching_pairs(s["instances"], s["labels"], diagonal=True)
        assert not any(same for _, same in pairs8), f"sample {i}"
    assert n_touching >= 5, n_touching


def test_no_tiny_fragments() -> None:
    for i in range(5):
        sizes = _component_sizes(make_sample(i)["instances"].numpy())
        assert sizes and min(sizes) >= 8


def test_photo_is_function_of_labels_up_to_noise() -> None:
    spec = SyntheticSpec(noise_std=0.03)
    for i in range(5):
        s = make_sample(i, spec=spec)
        clean = render_photo(s["labels"])
        assert torch.equal(clean, render_photo(s["labels"].numpy()))
        residual = s["photo"] - clean
        # Only the additive noise (slightly reduced by clipping) remains.
        assert abs(float(residual.mean())) < 0.01
        assert 0.02 < float(residual.std()) < 0.035
    # Without noise the photo is exactly the clean render.
    quiet = make_sample(0, spec=SyntheticSpec(noise_std=0.0))
    assert torch.equal(quiet["photo"], render_photo(quiet["labels"]))


def test_a_map_of_one_label_renders_without_outlines() -> None:
    """All background, so no other label anywhere: no dark rim, only its colour under the global lighting."""
    photo = render_photo(torch.zeros(32, 40, dtype=torch.long))
    ratio = photo / torch.tensor([0.90, 0.86, 0.77])[:, None, None]
    assert torch.isfinite(photo).all() and float((ratio - 1).abs().max()) < 0.09


def test_class_colours_consistent_and_separated() -> None:
    means: dict[int, list[torch.Tensor]] = {c: [] for c in range(NUM_CLASSES)}
    for i in range(30):
        s = make_sample(i)
        for c in range(NUM_CLASSES):
            mask = s["labels"] == c
            if int(mask.sum()) >= 20:
                means[c].append(s["photo"][:, mask].mean(1))
    assert all(len(v) >= 5 for v in means.values())
    centre = torch.stack([torch.stack(v).mean(0) for v in means.values()])
    spread = torch.stack([torch.stack(v).std(0).norm() for v in means.values()])
    dist = torch.cdist(centre, centre) + 10 * torch.eye(NUM_CLASSES)
    assert float(dist.min()) > 0.3
    assert float(spread.max()) < 0.5 * float(dist.min())


def test_other_sizes() -> None:
    s = make_sample(0, spec=SyntheticSpec(size=256))
    assert s["photo"].shape == (3, 256, 256)
    assert len(torch.unique(s["labels"])) >= 2
    # The layout is defined in normalised coordinates: most pixels agree with
    # the 64 px version after nearest-neighbour downsampling.
    small = make_sample(0, spec=SyntheticSpec(size=64))["labels"]
    agree = (s["labels"][2::4, 2::4] == small).float().mean()
    assert float(agree) > 0.9


def test_colorize() -> None:
    labels = torch.tensor([[0, 1], [2, 7]])
    rgb = colorize(labels)
    assert rgb.shape == (3, 2, 2) and rgb.dtype == torch.float32
    assert torch.equal(rgb[:, 1, 1], PALETTE[7])
    batch = colorize(torch.stack([labels, labels.flip(0)]))
    assert batch.shape == (2, 3, 2, 2)
    assert torch.equal(batch[0], rgb)
    assert len(PALETTE) >= 8 and len(torch.unique(PALETTE, dim=0)) == len(PALETTE)
    with pytest.raises(ValueError, match="8"):
        colorize(torch.tensor([[0, NUM_CLASSES_MAX]]))


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"num_classes": 1}, "1"),
        ({"num_classes": 9}, "9"),
        ({"size": 8}, "8"),
        ({"min_objects": -1}, "-1"),
        ({"min_objects": 5, "max_objects": 3}, "3"),
        ({"noise_std": -0.5}, "-0.5"),
    ],
)
def test_bad_spec_raises(kwargs: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=f"got {bad}"):
        SyntheticSpec(**kwargs)


def test_dataset() -> None:
    spec = SyntheticSpec(size=32)
    ds = SyntheticPairs(6, seed=5, spec=spec)
    assert len(ds) == 6
    _assert_same(ds[2], make_sample(2, 5, spec))
    _assert_same(ds[-1], ds[5])
    with pytest.raises(IndexError):
        ds[6]
    val = SyntheticPairs(2, seed=5, spec=spec, index_offset=VAL_INDEX_OFFSET)
    _assert_same(val[1], make_sample(VAL_INDEX_OFFSET + 1, 5, spec))
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["photo"].shape == (4, 3, 32, 32)
    assert batch["labels"].shape == (4, 32, 32)


def test_write_dataset_roundtrip(tmp_path: Path) -> None:
    spec = SyntheticSpec(size=40, max_objects=6)
    root = write_dataset(tmp_path / "synth", num_train=3, num_val=2, seed=1, spec=spec)
    assert root == tmp_path / "synth"
    for split, count, offset in (("train", 3, 0), ("val", 2, VAL_INDEX_OFFSET)):
        for sub in ("A", "B", "labels", "instances"):
            files = sorted((root / split / sub).glob("*.png"))
            assert [f.name for f in files] == [f"{i:05d}.png" for i in range(count)]
        for i in range(count):
            s = make_sample(offset + i, 1, spec)
            name = f"{i:05d}.png"
            a = Image.open(root / split / "A" / name)
            b = Image.open(root / split / "B" / name)
            lab = Image.open(root / split / "labels" / name)
            inst = Image.open(root / split / "instances" / name)
            assert (a.mode, b.mode, lab.mode, inst.mode) == ("RGB", "RGB", "L", "I;16")
            assert a.size == b.size == lab.size == inst.size == (40, 40)
            expected_a = (s["label_rgb"] * 255).round().to(torch.uint8).permute(1, 2, 0)
            assert np.array_equal(np.asarray(a), expected_a.numpy())
            photo = torch.from_numpy(np.array(b)).permute(2, 0, 1).float() / 255
            assert float((photo - s["photo"]).abs().max()) <= 0.5 / 255 + 1e-6
            assert np.array_equal(np.asarray(lab), s["labels"].numpy())
            assert np.array_equal(np.asarray(inst).astype(np.int64), s["instances"].numpy())
    # Train and val are different samples.
    tr = np.asarray(Image.open(root / "train" / "labels" / "00000.png"))
    va = np.asarray(Image.open(root / "val" / "labels" / "00000.png"))
    assert not np.array_equal(tr, va)


def test_instance_png_roundtrips_large_ids(tmp_path: Path) -> None:
    # Ids above 255 must survive the 16-bit PNG.
    ids = (np.arange(32 * 32).reshape(32, 32) * 61 % 65536).astype(np.uint16)
    Image.fromarray(ids).save(tmp_path / "i.png")
    back = Image.open(tmp_path / "i.png")
    assert back.mode == "I;16"
    assert np.array_equal(np.asarray(back), ids)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO_ROOT / "datasets" / "make_synthetic.py"
    spec = importlib.util.spec_from_file_location("make_synthetic", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "cli"
    rc = module.main(
        ["--out", str(out), "--num-train", "2", "--num-val", "1", "--size", "32", "--num-classes", "3"]
    )
    assert rc == 0
    assert "2 train + 1 val" in capsys.readouterr().out
    assert len(list((out / "train" / "B").glob("*.png"))) == 2
    assert len(list((out / "val" / "instances").glob("*.png"))) == 1
    labels = np.asarray(Image.open(out / "train" / "labels" / "00000.png"))
    assert labels.max() < 3
    assert module.main(["--out", str(out), "--num-classes", "9"]) == 2
    assert "9" in capsys.readouterr().err
