"""Each task trains a few steps end to end on tiny built-in data (in-process ``train_main``) and
writes its metrics, samples and an export that says what it is; synthesize writes pairs from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset
from pix2pix_unet.models import UNet

BUILTIN = ["data.builtin_train=6", "data.builtin_val=3", "data.builtin_size=36"]


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def export_meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "checkpoints" / "generator" / "config.json").read_text())


def test_segment_trains_and_logs_its_metrics(trained_runs):
    out = trained_runs("--task", "segment", *BUILTIN, "segment.adversarial=true")
    val = [r for r in rows(out) if "val/miou" in r]
    assert [r["step"] for r in val] == [0, 2]
    for key in ["val/pixel_acc", "val/miou", "val/dice", "val/iou_0", "val/object_f1"]:
        assert 0.0 <= val[-1][key] <= 1.0, key
    train = [r for r in rows(out) if "train/g_ce" in r]
    assert {"train/g_dice", "train/g_boundary", "train/g_gan", "train/d_total"} <= set(train[-1])
    for key in ["val/object_precision", "val/object_recall", "val/ap_50", "val/ap_75", "val/map", "val/pq"]:
        assert 0.0 <= val[-1][key] <= 1.0, key
    meta = export_meta(out)
    assert meta["task"] == "segment" and meta["num_classes"] == 5
    # the built-in data has instance maps, so instance mode is on: 5 classes + the border class
    assert meta["instance_mode"] is True and set(meta["instance_thresholds"]) == {"prob", "seed", "min_size"}
    assert meta["generator"]["out_channels"] == 6 and meta["generator"]["final_activation"] == "none"
    tuned = [r for r in rows(out) if "tune/prob_threshold" in r]
    assert len(tuned) == 1 and tuned[0]["step"] == 2
    assert tuned[0]["tune/prob_threshold"] == meta["instance_thresholds"]["prob"]
    assert Image.open(out / "samples" / "step_00000002.png").size == (3 * 36 + 4 * 2, 3 * 36 + 4 * 2)


def test_segment_without_instance_mode_keeps_its_classes(trained_runs):
    out = trained_runs("--task", "segment", *BUILTIN, "segment.instances=off")
    meta = export_meta(out)
    assert meta["instance_mode"] is False and meta["generator"]["out_channels"] == 5
    assert not [r for r in rows(out) if "tune/prob_threshold" in r]
    assert "val/object_f1" in [r for r in rows(out) if "val/miou" in r][-1]  # connected components


def test_segment_reads_gray_16_bit_folders(trained_runs, tmp_path):
    root = write_dataset(tmp_path / "data", num_train=4, num_val=2, spec=SyntheticSpec(size=32))
    for path in root.glob("*/B/*.png"):  # the photos as 16-bit gray images
        gray = np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 200
        Image.fromarray(gray).save(path)
    out = trained_runs("--task", "segment", f"data.path={root}", "generator.in_channels=1", "segment.intensity=image")
    val = [r for r in rows(out) if "val/miou" in r]
    assert [r["step"] for r in val] == [0, 2] and "val/object_f1" in val[-1]  # instances/ were read
    assert export_meta(out)["generator"]["in_channels"] == 1


def test_restore_logs_output_and_input_quality(trained_runs):
    out = trained_runs("--task", "restore", *BUILTIN, "restore.inpaint.p=0.5")
    val = [r for r in rows(out) if "val/psnr" in r]
    assert [r["step"] for r in val] == [0, 2]
    for key in ["val/psnr", "val/psnr_input", "val/ssim", "val/ssim_input", "val/psnr_gain"]:
        assert np.isfinite(val[-1][key]), key
    assert val[0]["val/psnr_input"] == val[-1]["val/psnr_input"]  # the fixed validation seed
    meta = export_meta(out)
    assert meta["task"] == "restore" and meta["hole_mask_channel"] is True
    assert meta["generator"]["in_channels"] == 4 and meta["generator"]["out_channels"] == 3


def test_translate_index_labels_then_synthesize(trained_runs, tmp_path):
    out = trained_runs("--task", "translate", *BUILTIN, "labels.format=index")
    meta = export_meta(out)
    assert meta["task"] == "translate" and meta["num_classes"] == 5 and meta["generator"]["in_channels"] == 5
    assert [r["step"] for r in rows(out) if "val/l1" in r] == [0, 2]

    labels = write_dataset(tmp_path / "maps", num_train=3, num_val=0, spec=SyntheticSpec(size=32)) / "train" / "labels"
    inputs = sorted(labels.iterdir())
    # plain: pair i comes from map i % 3, unchanged
    assert main(["synthesize", "--checkpoint", str(out), "--labels", str(labels), "--output", str(tmp_path / "s"),
                 "--num", "5", "--device", "cpu"]) == 0
    written = sorted((tmp_path / "s" / "labels").iterdir())
    assert [p.name for p in sorted((tmp_path / "s" / "images").iterdir())] == [p.name for p in written]
    assert len(written) == 5
    for i, path in enumerate(written):
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(inputs[i % 3])))
        image = Image.open(tmp_path / "s" / "images" / path.name)
        assert image.mode == "RGB" and image.size == (32, 32)
    # augmented: new layouts, the same classes
    assert main(["synthesize", "--checkpoint", str(out), "--labels", str(labels), "--output", str(tmp_path / "a"),
                 "--num", "6", "--augment-labels"]) == 0
    maps = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "a" / "labels").iterdir())]
    assert len(maps) == 6
    for i, ids in enumerate(maps):
        source = np.asarray(Image.open(inputs[i % 3]))
        assert set(np.unique(ids)) <= set(np.unique(source)) and ids.shape == source.shape
    assert not np.array_equal(maps[0], maps[3])  # the same map, deformed two ways
    # refuses to mix into an existing dataset
    assert main(["synthesize", "--checkpoint", str(out), "--labels", str(labels), "--output", str(tmp_path / "a")]) == 2


def test_synthesize_needs_a_label_to_image_generator(tmp_path, capsys):
    from pix2pix_unet.config import UNetConfig

    UNet(UNetConfig(depth=2, base_channels=4)).save_pretrained(tmp_path / "g", task="restore", num_classes=None)
    assert main(["synthesize", "--checkpoint", str(tmp_path / "g"), "--labels", str(tmp_path),
                 "--output", str(tmp_path / "o")]) == 2
    assert "task='restore'" in capsys.readouterr().err


def test_index_labels_need_atob(tmp_path, capsys):
    assert train_main(["--task", "translate", "--direction", "BtoA", "--no-wandb", "--output-dir", str(tmp_path / "r"),
                       "labels.format=index"]) == 2
    assert "data.direction=AtoB" in capsys.readouterr().err
