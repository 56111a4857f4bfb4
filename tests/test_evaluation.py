"""``pix2pix-unet evaluate``: metrics by task, JSON and reports, bad pairs counted."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pix2pix_unet.cli import main
from pix2pix_unet.config import UNetConfig, from_dict
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
