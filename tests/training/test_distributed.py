"""Two processes on the CPU (gloo) through ``accelerate launch``: one run, written once, resumable."""

from __future__ import annotations

import json
import os
import random
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
    """A port nothing is bound to, for the launcher's rendezvous, below the kernel's ephemeral range when it can:
    the kernel hands ephemeral ports to outgoing connections (gloo opens several per run, and other test runs
    share the machine), so one found free there may be taken before the launcher binds it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    draw = random.Random()  # not the global one the tests seed: concurrent runs must not draw the same ports
    for port in [draw.randrange(20000, low) for _ in range(50)] if low > 21000 else []:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*args: str, script: Path = REPO / "train_gan.py", env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess:
    """``accelerate launch --multi_gpu --num_processes 2 train_gan.py ...`` on a machine without GPUs.

    (``accelerate launch --cpu --num_processes 2`` starts a single process: Accelerate's
    CPU launcher needs MPI for more. ``--multi_gpu`` starts two through torchrun, and
    pix2pix-unet tells Accelerate to join them over gloo on the CPU.)
    """
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO), **(env or {})}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), str(script), *args]
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


# train_gan.py with a validation that takes VALIDATION_SLEEP_S longer (only the main process validates)
SLOW_VALIDATION = """
import os, sys, time
from pix2pix_unet.cli import train_main
from pix2pix_unet.tasks.base import TaskBase

evaluate = TaskBase.evaluate

def slow_evaluate(self, *args, **kwargs):
    time.sleep(float(os.environ["VALIDATION_SLEEP_S"]))
    return evaluate(self, *args, **kwargs)

TaskBase.evaluate = slow_evaluate
sys.exit(train_main())
"""


@pytest.mark.slow
def test_the_other_process_outwaits_a_validation_longer_than_a_short_collective_timeout(pair_folder, tmp_path):
    script = tmp_path / "slow_validation.py"
    script.write_text(SLOW_VALIDATION)
    args = ["--data", str(pair_folder), "--no-wandb", "--max-steps", "2", "checkpoint_every=2", "sample_every=2",
            *TINY]
    slow = {"VALIDATION_SLEEP_S": "8"}  # the step-0 and step-2 validations: 8 s each
    # the risk: while the main process validates, the other waits in its next collective (the first step's
    # gradient all-reduce); past the process group's timeout it fails, and the launcher ends the run
    died = launch(*args, "--output-dir", str(tmp_path / "short"), "process_group_timeout_s=3", script=script,
                  env=slow)
    assert died.returncode != 0 and "Timed out waiting 3000ms" in died.stderr, died.stderr[-3000:]
    assert not (tmp_path / "short" / "checkpoints" / "step_00000002").exists()
    # the default timeout (2 h) outlasts it: the run finishes, its checkpoint and export written
    result = launch(*args, "--output-dir", str(tmp_path / "run"), script=script, env=slow)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Run folder") == 1
    assert (tmp_path / "run" / "checkpoints" / "step_00000002").is_dir()
    assert (tmp_path / "run" / "checkpoints" / "generator" / "model.safetensors").is_file()
