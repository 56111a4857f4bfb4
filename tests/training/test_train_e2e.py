"""End to end: the real ``train_gan.py`` and ``pix2pix-unet predict`` on tiny data, plus resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from pix2pix_unet.cli import main, train_main
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_train_gan_cli_writes_the_whole_run_folder(pair_folder, tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        str(REPO / "train_gan.py"), "--data", str(pair_folder), "--output-dir", str(run), "--max-steps", "4",
        "sample_every=2", "checkpoint_every=2", "keep_checkpoints=1", *TINY, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Run folder" in result.stdout

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["max_steps"] == 4 and cfg["data"]["path"] == str(pair_folder) and cfg["version"]

    # full training state: only the newest is kept
    states = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert states == ["step_00000004"]
    state = run / "checkpoints" / "step_00000004"
    for name in ["model.safetensors", "model_1.safetensors", "optimizer.bin", "optimizer_1.bin",
                 "random_states_0.pkl", "custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl",
                 "custom_checkpoint_2.pkl"]:
        assert (state / name).is_file(), name
    assert not list((run / "checkpoints").glob(".tmp*"))

    # generator export, loadable with no other arguments
    export = json.loads((run / "checkpoints" / "generator" / "config.json").read_text())
    assert export["step"] == 4 and export["generator"]["depth"] == 3
    assert set(load_file(run / "checkpoints" / "generator" / "model.safetensors"))

    # samples: input | output | target, one row per validation example (2 here)
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["step_00000000.png", "step_00000002.png", "step_00000004.png"]
    w, h = Image.open(run / "samples" / "step_00000004.png").size
    assert w == 3 * 36 + 4 * 2 and h == 2 * 36 + 3 * 2

    # losses and validation metrics, every step
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/g_l1" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "val/l1" in r] == [0, 2, 4]

    # the offline W&B run
    assert list((run / "wandb").glob("offline-run-*")), list((run / "wandb").iterdir())

    # predict: every image of a folder, same names, same (odd) sizes, inputs untouched
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    Image.new("RGB", (45, 29), "red").save(inputs / "odd.png")
    Image.open(pair_folder / "val" / "A" / "000.png").save(inputs / "square.jpg")
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    result = run_cli("-m", "pix2pix_unet.cli", "predict", "--checkpoint", str(run), "--input", str(inputs),
                     "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(tmp_path / "out" / "odd.png").size == (45, 29)
    assert Image.open(tmp_path / "out" / "square.jpg").size == (36, 36)
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before


def test_predict_refuses_to_overwrite_inputs(pair_folder, tmp_path):
    from pix2pix_unet.config import UNetConfig
    from pix2pix_unet.models import UNet

    UNet(UNetConfig(depth=2, base_channels=4)).save_pretrained(tmp_path / "g")
    folder = pair_folder / "val" / "A"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(["predict", "--checkpoint", str(tmp_path / "g"), "--input", str(folder), "--output", str(folder)]) == 2
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_bad_data_fails_before_training(tmp_path, capsys):
    assert train_main(["--data", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "r"), "--no-wandb"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _adam_steps(state_dir: Path) -> list[int]:
    opt = torch.load(state_dir / "optimizer.bin", weights_only=False)
    return sorted({int(s["step"]) for s in opt["state"].values()})


@pytest.mark.slow
def test_resume_continues_as_if_never_stopped(pair_folder, tmp_path):
    common = ["--data", str(pair_folder), "--no-wandb", "sample_every=3", "checkpoint_every=3",
              "optim.decay_start=0.5", *TINY]
    # uninterrupted: 6 steps
    assert train_main([*common, "--output-dir", str(tmp_path / "a"), "--max-steps", "6"]) == 0
    # interrupted after step 3 (the last checkpoint), then resumed to 6
    b = tmp_path / "b"
    assert train_main([*common, "--output-dir", str(b), "--max-steps", "6", "--stop-at", "3"]) == 0
    assert [p.name for p in (b / "checkpoints").iterdir() if p.name.startswith("step_")] == ["step_00000003"]
    assert _adam_steps(b / "checkpoints" / "step_00000003") == [3]
    assert train_main(["--output-dir", str(b), "--resume"]) == 0

    assert _adam_steps(b / "checkpoints" / "step_00000006") == [6]
    rows_a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    train_a = [r for r in rows_a if "train/g_l1" in r]
    train_b = [r for r in rows_b if "train/g_l1" in r]
    assert [r["step"] for r in train_b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(train_a, train_b):  # same losses and learning rate at every step
        assert ra["train/lr_g"] == pytest.approx(rb["train/lr_g"])
        assert ra["train/g_total"] == pytest.approx(rb["train/g_total"], rel=1e-4)
    wa = load_file(tmp_path / "a" / "checkpoints" / "generator" / "model.safetensors")
    wb = load_file(b / "checkpoints" / "generator" / "model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_resume_without_checkpoint_is_an_error(tmp_path, capsys):
    assert train_main(["--output-dir", str(tmp_path / "none"), "--resume"]) == 2
    assert "config.yaml" in capsys.readouterr().err


@pytest.mark.slow
def test_generator_learns_on_builtin_data(tmp_path):
    """After a short CPU run, L1 to held-out targets is clearly below its step-0 value."""
    run = tmp_path / "learn"
    assert train_main([
        "--output-dir", str(run), "--max-steps", "60", "--no-wandb", "--batch-size", "4",
        "data.builtin_train=64", "data.builtin_val=8", "data.builtin_size=36", "data.crop_size=32",
        "generator.depth=4", "generator.base_channels=16", "generator.max_channels=64",
        "discriminator.base_channels=16", "sample_every=60", "checkpoint_every=60", "log_every=20",
        "optim.lr_g=1e-3", "optim.lr_d=1e-3",  # a tiny net on few steps: ratio 0.36-0.41 over seeds 0-2
    ]) == 0
    val = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "val/l1" in x]
    assert val[0]["step"] == 0 and val[-1]["step"] == 60
    assert val[-1]["val/l1"] < 0.6 * val[0]["val/l1"], val
