"""Two processes on the CPU (gloo) through ``accelerate launch``: one run, written once, resumable."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY

pytestmark = pytest.mark.slow  # launches training processes with accelerate

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*args: str) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes 2 train_gan.py ...`` on a machine without GPUs.

    (``accelerate launch --cpu --num_processes 2`` starts a single process: Accelerate's
    CPU launcher needs MPI for more. ``--multi_gpu`` starts two through torchrun, and
    pix2pix-unet tells Accelerate to join them over gloo on the CPU.)
    """
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), str(REPO / "train_gan.py"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)


def test_two_processes_train_once_and_resume_the_same(pair_folder, tmp_path):
    run = tmp_path / "run"
    result = launch("--data", str(pair_folder), "--output-dir", str(run), "--no-wandb", "--max-steps", "4",
                    "checkpoint_every=2", "sample_every=2", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Run folder") == 1  # only the main process reports

    # one process group of two: each checkpoint holds both processes' RNG states
    for step in (2, 4):
        names = {p.name for p in (run / "checkpoints" / f"step_{step:08d}").iterdir()}
        assert {"random_states_0.pkl", "random_states_1.pkl", "meta.json", "model.safetensors"} <= names
    # only the main process logs and samples: every step exactly once
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/g_l1" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "val/l1" in r] == [0, 2, 4]
    assert sorted(p.name for p in (run / "samples").iterdir()) == [f"step_{s:08d}.png" for s in (0, 2, 4)]

    # lose the last checkpoint (as in a crash after step 2), resume with two processes: the same step 4
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_00000004")
    result = launch("--output-dir", str(resumed), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(f"resumed from {resumed / 'checkpoints' / 'step_00000002'}") == 1
    for name in ("model.safetensors", "model_1.safetensors"):  # generator, discriminator
        a = load_file(run / "checkpoints" / "step_00000004" / name)
        b = load_file(resumed / "checkpoints" / "step_00000004" / name)
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), name
