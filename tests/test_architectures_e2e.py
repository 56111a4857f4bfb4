"""UNet++ and UNet 3+ on the path a user runs: files on disk -> ``train`` (CLI) -> ``predict`` files ->
``evaluate``, for every task, with the PatchGAN where the task has one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset
from pix2pix_unet.io import read_label_map
from tests.conftest import TINY

ARCHITECTURES = ["unet++", "unet3+"]
SMALL = ["generator.fullscale_channels=8"]  # TINY sets 3 levels of 8 -> 32 channels


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Photos (B/), class maps (labels/) and instance maps, 36 px: 4 training and 2 validation files."""
    return write_dataset(tmp_path_factory.mktemp("data"), num_train=4, num_val=2, spec=SyntheticSpec(size=36))


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("preset", ARCHITECTURES)
def test_segment_with_deep_supervision_from_files_to_predicted_files(preset, data, trained_runs, tmp_path):
    run = trained_runs("--task", "segment", "--preset", preset, "--data", data, *SMALL,
                       "generator.deep_supervision=true", "segment.adversarial=true")
    heads = 3 if preset == "unet++" else 4  # X^{0,1..3}; X_d^3 (bottom) .. X_d^0
    logged = rows(run)
    losses = [r for r in logged if "train/g_seg" in r][-1]
    assert {f"train/g_seg_head{i}" for i in range(heads)} <= set(losses) and "train/d_total" in losses
    assert losses["train/g_seg"] == pytest.approx(sum(losses[f"train/g_seg_head{i}"] for i in range(heads)) / heads,
                                                  rel=1e-5)  # the default weights: the mean
    meta = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["generator"]["architecture"] == preset and meta["generator"]["deep_supervision"] is True

    images = data / "val" / "B"
    assert main(["predict", "--checkpoint", str(run), "--input", str(images), "--output", str(tmp_path / "pred"),
                 "--no-progress", "--device", "cpu"]) == 0
    for image in sorted(images.iterdir()):
        ids = read_label_map(tmp_path / "pred" / image.name)
        assert ids.shape == Image.open(image).size[::-1] and ids.max() < meta["num_classes"]
        assert (tmp_path / "pred" / f"{image.stem}_instances.png").is_file()

    # evaluate reproduces the run's final figures (the validation file its thresholds were not tuned on)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--split", "val", "--output",
                 str(tmp_path / "eval"), "--no-progress", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    final = [r for r in rows(run) if "final/miou" in r][-1]
    assert metrics["count"] == final["final/count"] == 1
    assert metrics["miou"] == pytest.approx(final["final/miou"], abs=1e-4)


@pytest.mark.parametrize("task, preset", [("translate", "unet++"), ("translate", "unet3+"), ("restore", "unet++"),
                                          ("restore", "unet3+")])
def test_translate_and_restore_train_and_predict(task, preset, data, trained_runs, tmp_path):
    extra = ["generator.deep_supervision=true", "generator.deep_output=mean"] if task == "translate" else []
    root = data if task == "translate" else data / "train" / "B"  # restore: a folder of clean images
    run = trained_runs("--task", task, "--preset", preset, "--data", root, *SMALL, "data.direction=BtoA", *extra)
    key = "val/l1" if task == "translate" else "val/psnr"
    assert [r["step"] for r in rows(run) if key in r] == [0, 2]
    if task == "translate":  # with the PatchGAN
        assert "train/d_total" in [r for r in rows(run) if "train/g_total" in r][-1]
    inputs = data / "val" / "B"  # translate BtoA: photos in; restore: clean photos to restore
    assert main(["predict", "--checkpoint", str(run), "--input", str(inputs), "--output", str(tmp_path / "pred"),
                 "--no-progress", "--device", "cpu"]) == 0
    for image in sorted(inputs.iterdir()):
        written = np.asarray(Image.open(tmp_path / "pred" / image.name))
        assert written.shape == np.asarray(Image.open(image)).shape


def test_deep_supervision_that_would_leave_heads_untrained_is_refused(data, tmp_path, capsys):
    assert train_main(["--task", "translate", "--preset", "unet++", "--data", str(data), "--output-dir",
                       str(tmp_path / "r"), "--no-wandb", "generator.deep_supervision=true", *TINY]) == 2
    assert "task=translate trains the last head only" in capsys.readouterr().err


def test_deep_weights_must_match_the_heads(data, tmp_path, capsys):
    assert train_main(["--task", "segment", "--preset", "unet3+", "--data", str(data), "--output-dir",
                       str(tmp_path / "r"), "--no-wandb", "generator.deep_supervision=true",
                       "segment.deep_weights=[1.0,1.0]", *TINY]) == 2
    assert "has 2 weights, but the generator (architecture=unet3+, depth=3) has 4 heads" in capsys.readouterr().err
