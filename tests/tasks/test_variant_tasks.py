"""The transformer bottleneck and the timm encoder in every task, with the PatchGAN: two steps each on the
built-in data; and one run from files to predicted and evaluated files with a timm encoder loaded from a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset
from tests.conftest import TINY

pytestmark = pytest.mark.slow  # every test trains through the CLI

timm = pytest.importorskip("timm")

BUILTIN = ["data.builtin_train=6", "data.builtin_val=2", "data.builtin_size=36"]
# the presets at test width (TINY: depth 3, 8 -> 32 channels): resnet18 stops at its stride-8 stage
VARIANTS = {
    "trans-unet": ["generator.preset=trans-unet", "generator.transformer.depth=1", "generator.transformer.heads=4",
                   "generator.transformer.grid=4"],
    "resnet34-unet": ["generator.preset=resnet34-unet", "generator.encoder.name=resnet18"],
}
# each task with the PatchGAN in its objective
TASKS = {
    "translate": ["--task", "translate"],
    "segment": ["--task", "segment", "segment.adversarial=true", "segment.instances=off"],
    "restore": ["--task", "restore", "restore.gan_weight=0.01", "restore.inpaint.p=0.5"],
}


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("task", TASKS)
def test_every_task_trains_each_variant_with_the_patchgan(tmp_path, task, variant):
    out = tmp_path / "run"
    assert train_main([*TASKS[task], "--output-dir", str(out), "--max-steps", "2", "--no-wandb", "sample_every=2",
                       "checkpoint_every=2", *BUILTIN, *TINY, *VARIANTS[variant]]) == 0
    train = [r for r in rows(out) if "train/d_total" in r]
    assert [r["step"] for r in train] == [1, 2] and all(np.isfinite(r["train/d_total"]) for r in train)
    meta = json.loads((out / "checkpoints" / "generator" / "config.json").read_text())
    assert meta["task"] == task
    arch = {"trans-unet": ("unet", "transformer"), "resnet34-unet": ("timm-unet", "none")}[variant]
    assert (meta["generator"]["architecture"], meta["generator"]["bottleneck"]) == arch
    if task == "restore":  # image + hole mask in, a residual correction out
        assert meta["generator"]["in_channels"] == 4 and meta["generator"]["residual"] is True


def test_from_files_to_predicted_files_with_an_encoder_from_a_file(tmp_path):
    """Segment files with a resnet18 encoder loaded from a weights file, through the real commands: train
    (encoder frozen for a step), predict the held-out images (odd size), evaluate them."""
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}, str(weights))
    data = write_dataset(tmp_path / "data", num_train=6, num_val=2, spec=SyntheticSpec(size=40))
    run = tmp_path / "run"
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps", "3",
                       "--no-wandb", "sample_every=3", "checkpoint_every=3", *TINY, *VARIANTS["resnet34-unet"],
                       f"generator.encoder.weights={weights}", "optim.freeze_encoder_steps=1",
                       "optim.encoder_lr_factor=0.5", "segment.instances=off"]) == 0
    # held-out images at an odd size: predict pads to the encoder's stride and crops back
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in sorted((data / "val" / "B").iterdir()):
        Image.open(path).crop((0, 0, 37, 29)).save(inputs / path.name)
    assert main(["predict", "--checkpoint", str(run), "--input", str(inputs), "--output", str(tmp_path / "pred"),
                 "--no-progress", "--device", "cpu"]) == 0
    written = sorted((tmp_path / "pred").glob("*.png"))
    assert [p.name for p in written] == sorted(p.name for p in inputs.iterdir())
    for path in written:
        labels = np.asarray(Image.open(path))
        assert labels.shape == (29, 37) and labels.max() < 5
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data), "--split", "val", "--inputs", "B",
                 "--targets", "labels", "--output", str(tmp_path / "eval"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["metrics"]["miou"] <= 1.0
