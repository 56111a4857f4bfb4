"""``pix2pix-unet evaluate``: metrics by task, JSON and reports, bad pairs counted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix_unet.cli import main
from pix2pix_unet.config import DataConfig, UNetConfig, from_dict
from pix2pix_unet.data import build_datasets
from pix2pix_unet.data.split import read_split, split_record, write_split
from pix2pix_unet.io import write_image, write_label_map
from pix2pix_unet.models import UNet
from tests.conftest import write_pairs


def test_evaluate_translation_writes_metrics_and_reports(tmp_path, capsys):
    torch.manual_seed(0)
    UNet(from_dict(UNetConfig, {"depth": 3, "base_channels": 4, "max_channels": 16})).save_pretrained(
        tmp_path / "g", direction="AtoB", step=3)
    data = write_pairs(tmp_path / "data" / "val", 3, size=36)
    (data / "A" / "003.png").write_text("broken")
    write_image(data / "B" / "003.png", np.zeros((36, 36, 3), np.uint8))
    out = tmp_path / "eval"
    code = main(["evaluate", "--checkpoint", str(tmp_path / "g"), "--data", str(tmp_path / "data"),
                 "--output", str(out), "--no-progress", "--num-examples", "2"])
    assert code == 1  # the broken pair
    assert "003.png" in capsys.readouterr().err
    report = json.loads((out / "metrics.json").read_text())
    assert report["metrics"]["task"] == "translate" and report["metrics"]["count"] == 3
    assert report["step"] == 3 and report["data"].endswith("val")
    rows = report["per_image"]
    assert [r["name"] for r in rows] == ["000.png", "001.png", "002.png"]
    assert report["metrics"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows]))
    assert all(math.isfinite(r["psnr"]) and -1 <= r["ssim"] <= 1 for r in rows)
    assert len(report["failed"]) == 1 and "003.png" in report["failed"][0]["file"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 * 3 and "psnr" in page
    assert (out / "report.png").stat().st_size > 0


def test_evaluate_segmentation_from_metadata(tmp_path, capsys, rng):
    torch.manual_seed(0)
    UNet(from_dict(UNetConfig, {"depth": 2, "base_channels": 4, "max_channels": 8, "out_channels": 3,
                                "final_activation": "none"})).save_pretrained(
        tmp_path / "seg", task="segment", num_classes=3, direction="BtoA", intensity="dtype")
    for i in range(2):
        write_image(tmp_path / "d" / "images" / f"{i}.tif", rng.integers(0, 65536, (20, 24, 3), dtype=np.uint16))
        write_label_map(tmp_path / "d" / "labels" / f"{i}.png", rng.integers(0, 3, (20, 24)), 3)
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "seg"), "--data", str(tmp_path / "d"),
                 "--inputs", "images", "--targets", "labels", "--output", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["task"] == "segment" and metrics["count"] == 2
    assert 0 <= metrics["miou"] <= 1 and 0 <= metrics["pixel_acc"] <= 1 and "iou_0" in metrics
    assert "miou" in capsys.readouterr().out

    # a class id the generator does not have is named
    write_label_map(tmp_path / "d" / "labels" / "0.png", np.full((20, 24), 5), 6)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "seg"), "--data", str(tmp_path / "d"),
                 "--inputs", "images", "--targets", "labels", "--output", str(out), "--no-progress"]) == 1
    assert "class id 5" in capsys.readouterr().err


def run_with_split(tmp_path):
    """A translate export whose run's split.json says: 6 of the 8 pairs of data/ trained it; of the 2 held out,
    one tuned it and one is reported on."""
    data = write_pairs(tmp_path / "data", 8, size=36)
    export = tmp_path / "run" / "checkpoints" / "generator"
    torch.manual_seed(0)
    UNet(from_dict(UNetConfig, {"depth": 3, "base_channels": 4, "max_channels": 16})).save_pretrained(
        export, direction="AtoB", step=3)
    cfg = DataConfig(path=str(data), val_fraction=0.25, crop_size=32)
    train, val = build_datasets(cfg, UNetConfig(), seed=0)
    write_split(export / "split.json", split_record(cfg, 0, train, val, [0], [1], "translate", "its thresholds"))
    names = [[Path(e["A"]).name for e in s.example_files()] for s in (train, val)]
    return data, export, *names


def evaluate_run(export, data, out, *extra):
    return main(["evaluate", "--checkpoint", str(export), "--data", str(data), "--output", str(out), "--no-progress",
                 *extra])


def test_evaluate_scores_only_the_files_held_out_from_the_model_by_default(tmp_path, capsys):
    data, export, trained, held_out = run_with_split(tmp_path)
    assert evaluate_run(export, data, tmp_path / "eval") == 0
    said = capsys.readouterr()
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [r["name"] for r in report["per_image"]] == [held_out[1]]  # not the 6 trained on, nor the tuned one
    assert report["metrics"]["count"] == 1 and report["files"] == "held-out"
    assert (report["trained_on"], report["tuned_on"]) == (6, 1)
    assert f"scoring the 1 file of {data} held out from this model (A/{held_out[1]})" in said.out
    assert "left out: 6 files that trained this model and 1 file used to tune its thresholds" in said.out
    assert "warning" not in said.err


def test_evaluate_warns_naming_the_count_when_told_to_score_training_files(tmp_path, capsys):
    data, export, trained, held_out = run_with_split(tmp_path)
    assert evaluate_run(export, data, tmp_path / "eval", "--all-files") == 0
    said = capsys.readouterr()
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["metrics"]["count"] == 8 and report["files"] == "all"
    assert f"warning: 6 of 8 files were used to train this model: A/{trained[0]}, A/{trained[1]}" in said.err
    assert f"1 of 8 were used to tune its thresholds: A/{held_out[0]}" in said.err


def test_evaluate_refuses_a_folder_of_training_files_and_scores_all_without_a_split(tmp_path, capsys):
    data, export, trained, _ = run_with_split(tmp_path)
    record = read_split(export)
    record["train"] += record["val"]
    record["tune"] = record["report"] = record["val"] = []
    write_split(export / "split.json", record)
    assert evaluate_run(export, data, tmp_path / "eval") == 2
    assert "all 8 files of" in capsys.readouterr().err
    (export / "split.json").unlink()  # an export from before split.json: all files, and it says why
    assert evaluate_run(export, data, tmp_path / "eval") == 0
    said = capsys.readouterr().out
    assert f"scoring all 8 files of {data}: the export has no split.json" in said
