"""Bad data: a corpus of broken files, each reported by name and reason; --skip-bad trains on the rest."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pix2pix_unet.cli import train_main
from pix2pix_unet.config import DataConfig, UNetConfig
from pix2pix_unet.data import DatasetError, PairedFolderDataset, build_datasets, discover_pairs
from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.data import screening
from pix2pix_unet.training.faults import error_message
from tests.conftest import TINY, write_pairs


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def rgb(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)


# name in A/ -> (how it is broken, a word the report must give as the reason)
BROKEN = {
    "100.png": ("0-byte file", "empty file"),
    "101.png": ("PNG cut off before its last chunks", "truncated"),
    "102.jpg": ("JPEG whose data after the header is garbage", "corrupt"),
    "103.png": ("a text file named .png", "not an image"),
    "104.png": ("1x1 image", "too small"),
    "105.png": ("image smaller than the crop", "smaller than data.crop_size=32"),
    "106.png": ("pair whose sides differ in size", "pair sizes differ"),
    "108.png": ("A without its B partner", "no partner"),
}


def write_broken_corpus(root: Path) -> Path:
    """8 good pairs (36 px) in train/, 2 in val/, and one broken pair or file per entry of BROKEN in train/."""
    write_pairs(root / "train", 8, seed=0)
    write_pairs(root / "val", 2, seed=1)
    a, b = root / "train" / "A", root / "train" / "B"
    good = png_bytes(rgb((36, 36)))
    for name in BROKEN:
        if name != "108.png":
            (b / Path(name).with_suffix(".png").name).write_bytes(good)  # a good partner, unless the test wants none
    (a / "100.png").write_bytes(b"")
    (a / "101.png").write_bytes(good[:-20])  # IEND and the end of IDAT are gone: only a CRC/chunk check sees it
    jpeg = io.BytesIO()
    Image.fromarray(rgb((36, 36), 3)).save(jpeg, "JPEG")
    data = jpeg.getvalue()
    garbage = np.random.default_rng(4).integers(0, 255, len(data) - 200, dtype=np.uint8).tobytes()
    (a / "102.jpg").write_bytes(data[:200] + garbage)  # header intact: opens fine, fails to decode
    (a / "103.png").write_text("this is not an image\n")
    (a / "104.png").write_bytes(png_bytes(rgb((1, 1))))  # e.g. a failed export next to a good partner
    (a / "105.png").write_bytes(png_bytes(rgb((20, 20))))
    (b / "105.png").write_bytes(png_bytes(rgb((20, 20))))
    (a / "106.png").write_bytes(png_bytes(rgb((36, 36))))
    (b / "106.png").write_bytes(png_bytes(rgb((40, 36))))
    (a / "108.png").write_bytes(good)
    return root


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    return write_broken_corpus(tmp_path / "data")


def test_every_bad_file_is_reported_with_its_reason(broken):
    with pytest.raises(DatasetError) as err:
        build_datasets(DataConfig(path=str(broken), crop_size=32), UNetConfig(), seed=0)
    report = str(err.value).splitlines()
    assert report[0] == f"8 bad file(s) in dataset {broken} (8 of 18 pairs unusable):"
    for name, (what, reason) in BROKEN.items():
        line = next((x for x in report if f"{broken / 'train' / 'A' / name}: " in x), None)
        assert line is not None, f"{what} ({name}) not reported:\n{err.value}"
        assert reason in line, f"{what}: {line}"
    assert report[-1].endswith("--skip-bad (data.skip_bad=true) to train on the other 10 pairs.")


def test_skip_bad_keeps_exactly_the_good_pairs(broken):
    train, val = build_datasets(DataConfig(path=str(broken), crop_size=32, skip_bad=True), UNetConfig(), seed=0)
    assert len(train) == 8 and len(val) == 2
    assert {p.a.name for p in train.pairs} == {f"{i:03d}.png" for i in range(8)}
    assert sorted(bad.path.name for bad in train.skipped) == sorted(BROKEN)
    assert train[7]["A"].shape == (3, 36, 36)


@pytest.mark.slow
def test_the_cli_reports_and_stops_or_skips_and_trains(broken, tmp_path, capsys):
    args = ["--data", str(broken), "--no-wandb", "--max-steps", "2", "sample_every=2", "checkpoint_every=2", *TINY]
    assert train_main([*args, "--output-dir", str(tmp_path / "stopped")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(name in err for name in BROKEN), err
    assert not (tmp_path / "stopped").exists()  # nothing was started

    run = tmp_path / "skipped"
    assert train_main([*args, "--output-dir", str(run), "--skip-bad"]) == 0
    assert "left out 8 bad file(s)" in capsys.readouterr().out
    listed = (run / "bad_files.txt").read_text().splitlines()
    assert len(listed) == 8 and all(any(name in line for line in listed) for name in BROKEN)
    counts = [json.loads(x)["data/bad_files"] for x in (run / "metrics.jsonl").read_text().splitlines()
              if "data/bad_files" in x]
    assert counts == [8]


@pytest.mark.slow
def test_a_file_broken_after_screening_is_named_from_inside_a_worker(tmp_path, monkeypatch, capsys):
    """If a file goes bad after the checks (or slips past them), the worker's error still names it, on one line."""
    root = write_pairs(tmp_path / "data", 6)
    victim = root / "B" / "003.png"
    victim.write_bytes(victim.read_bytes()[:60])  # truncated inside the image data
    monkeypatch.setattr(screening, "inspect_image", lambda path: screening.ImageInfo(36, 36, "RGB"))  # no checks

    dataset = PairedFolderDataset(discover_pairs(root), ImageCodec(3), ImageCodec(3))
    with pytest.raises(DatasetError) as err:
        for _ in DataLoader(dataset, batch_size=2, num_workers=1):
            pass
    assert "Original Traceback" in str(err.value)  # what PyTorch makes of it ...
    assert error_message(err.value).startswith(f"cannot read image {victim}: ")  # ... and what the user sees

    code = train_main(["--data", str(root), "--output-dir", str(tmp_path / "run"), "--no-wandb", "--max-steps", "6",
                       "data.num_workers=1", "sample_every=100", "checkpoint_every=100", *TINY])
    err_text = capsys.readouterr().err
    last = err_text.strip().splitlines()[-1]  # after the progress bar
    assert code == 2 and last.startswith(f"error: cannot read image {victim}: "), err_text
    assert "Traceback" not in err_text


def test_the_screen_decodes_in_parallel_and_accepts_good_files(tmp_path):
    root = write_pairs(tmp_path / "d", 5)
    result = screening.screen_pairs(discover_pairs(root), crop_size=32, threads=3)
    assert not result.bad and len(result.good) == 5 and result.total == 5
    assert torch.is_tensor(PairedFolderDataset(result.good, ImageCodec(3), ImageCodec(3))[0]["A"])
