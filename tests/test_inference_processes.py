"""``predict`` and ``synthesize`` under ``accelerate launch`` with 2 CPU processes (gloo): each process writes
a disjoint share, and together they write exactly what one process writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_unet.cli import main
from pix2pix_unet.config import UNetConfig, from_dict
from pix2pix_unet.models import UNet
from pix2pix_unet.runtime.distributed import Shard
from tests.training.test_distributed import free_port

REPO = Path(__file__).resolve().parents[1]
TINY_NET = {"depth": 3, "base_channels": 8, "max_channels": 32}


def launch_cli(*args: str, script: Path | None = None) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes 2 -m pix2pix_unet.cli ...`` on a machine without GPUs
    (pix2pix-unet joins the two torchrun processes over gloo, as training does); ``script`` instead of the CLI."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), *([str(script)] if script else ["-m", "pix2pix_unet.cli"]), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shards_are_disjoint_and_cover_everything():
    items = list(range(11))
    shares = [Shard(i, 3).take(items) for i in range(3)]
    assert sorted(sum(shares, [])) == items and shares[1] == [1, 4, 7, 10]
    assert Shard().take(items) == items and Shard().main and not Shard(1, 2).main


@pytest.mark.slow
def test_two_processes_predict_what_one_does(tmp_path):
    torch.manual_seed(0)
    UNet(from_dict(UNetConfig, TINY_NET)).save_pretrained(tmp_path / "g", task="translate", direction="AtoB")
    rng = np.random.default_rng(0)
    sizes = [(40, 40), (40, 40), (33, 57), (40, 40), (64, 48), (33, 57), (24, 24)]
    for i, (h, w) in enumerate(sizes):  # images of several sizes, some sharing a batch, one in a sub-folder
        path = tmp_path / "in" / ("sub" if i == 3 else "") / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    common = ["--checkpoint", str(tmp_path / "g"), "--input", str(tmp_path / "in"), "--no-progress"]
    assert main(["predict", *common, "--output", str(tmp_path / "one")]) == 0
    result = launch_cli("predict", *common, "--output", str(tmp_path / "two"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("7 input(s) on 2 processes: wrote 7 file(s)") == 1  # the main process reports
    one, two = files(tmp_path / "one"), files(tmp_path / "two")
    assert len(one) == 7 and one == two


@pytest.mark.slow
def test_two_processes_synthesize_what_one_does(tmp_path):
    torch.manual_seed(0)
    net = UNet(from_dict(UNetConfig, {**TINY_NET, "in_channels": 3, "final_activation": "tanh"}))
    net.save_pretrained(tmp_path / "g", task="translate", direction="AtoB", label_format="index", num_classes=3,
                        output_dtype="uint8")
    rng = np.random.default_rng(1)
    (tmp_path / "labels").mkdir()
    for i in range(2):
        ids = np.zeros((40, 40), np.uint8)
        ids[rng.integers(0, 20):, rng.integers(0, 20):] = 1 + i
        Image.fromarray(ids).save(tmp_path / "labels" / f"{i}.png")
    common = ["--checkpoint", str(tmp_path / "g"), "--labels", str(tmp_path / "labels"), "--num", "5",
              "--augment-labels", "--seed", "3"]
    assert main(["synthesize", *common, "--output", str(tmp_path / "one")]) == 0
    result = launch_cli("synthesize", *common, "--output", str(tmp_path / "two"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("wrote 5 pairs") == 1
    one, two = files(tmp_path / "one"), files(tmp_path / "two")
    assert len(one) == 10 and one == two
    # the augmented layouts differ from pair to pair (each pair has its own seed)
    assert len({one[f"labels/{i:05d}.png"] for i in range(5)}) == 5


# the CLI, with the generator failing in the second process only (a GPU out of memory, say)
FAIL_IN_ONE = """
import os, sys
import pix2pix_unet.predict
from pix2pix_unet.cli import main

def run_generator(*args, **kwargs):
    raise RuntimeError(f"out of memory in process {os.environ['RANK']}")

if os.environ["RANK"] == "1":
    pix2pix_unet.predict.run_generator = run_generator
sys.exit(main())
"""


def test_an_error_in_one_process_ends_every_process(tmp_path):
    torch.manual_seed(0)
    UNet(from_dict(UNetConfig, TINY_NET)).save_pretrained(tmp_path / "g", task="translate", direction="AtoB")
    for i in range(2):  # one input per process
        Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "fail.py").write_text(FAIL_IN_ONE)
    # the first process finishes its share and learns of the error in the gather (before, it waited there for
    # the process group's timeout: 30 min with gloo)
    result = launch_cli("predict", "--checkpoint", str(tmp_path / "g"), "--input", str(tmp_path / "*.png"),
                        "--output", str(tmp_path / "out"), "--no-progress", script=tmp_path / "fail.py")
    assert result.returncode != 0
    assert result.stderr.count("error: out of memory in process 1") == 1, result.stderr[-3000:]
    assert "wrote" not in result.stdout and "SIGABRT" not in result.stderr
