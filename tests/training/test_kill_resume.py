"""Kill and resume: a real training process is stopped by SIGTERM, then SIGKILLed, and loses nothing.

The run is interrupted twice at random steps and resumed each time; it must end at
the same step with the same generator (raw and EMA) as a run that was never
interrupted (CPU, same seed, one DataLoader worker).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pix2pix_unet.cli import train_main
from tests.conftest import TINY

pytestmark = pytest.mark.slow  # kills and resumes training processes

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS, EVERY = 24, 4


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}
    with log.open("w") as out:  # a file, not a pipe: nothing can block on an unread pipe
        return subprocess.Popen([sys.executable, str(REPO / "train_gan.py"), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if '"train/g_l1"' in line]


def wait_for_step(proc: subprocess.Popen, run: Path, step: int, log: Path, skip: int = 0) -> None:
    """Until this session (its rows after the first ``skip``) has logged ``step``."""
    deadline = time.monotonic() + 240
    while not any(s >= step for s in logged_steps(run)[skip:]):
        assert proc.poll() is None, f"training exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"step {step} never came:\n{log.read_text()[-3000:]}"
        time.sleep(0.01)


def test_sigterm_then_sigkill_then_resume_ends_as_if_never_interrupted(pair_folder, tmp_path):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    common = ["--data", str(pair_folder), "--no-wandb", "--max-steps", str(MAX_STEPS), f"checkpoint_every={EVERY}",
              "sample_every=1000", "ema=true", "data.num_workers=1", *TINY]
    why = f"(random seed {seed})"

    # 1. SIGTERM at a random step: the process finishes that step, checkpoints it and exits with 128 + 15
    run, log = tmp_path / "run", tmp_path / "session1.log"
    proc = start([*common, "--output-dir", str(run)], log)
    wait_for_step(proc, run, rng.randint(2, 7), log)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=240) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    stopped = max(logged_steps(run))
    assert f"stopped by SIGTERM after step {stopped}" in log.read_text(), why
    assert (run / "checkpoints" / f"step_{stopped:08d}").is_dir(), why  # off the checkpoint_every grid

    # 2. resume, then SIGKILL (the whole process group, worker included) at a random step after a checkpoint
    first_save = (stopped // EVERY + 1) * EVERY
    kill_at = rng.randint(first_save + 1, MAX_STEPS - 6)
    log = tmp_path / "session2.log"
    seen = len(logged_steps(run))
    proc = start(["--output-dir", str(run), "--resume"], log)
    wait_for_step(proc, run, kill_at, log, skip=seen)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    killed_after = max(logged_steps(run)[seen:])
    assert f"resumed from {run / 'checkpoints' / f'step_{stopped:08d}'}" in log.read_text(), why
    assert killed_after < MAX_STEPS, f"the kill came too late to test anything {why}"

    # 3. resume again (in process) to the end; compare with a run never interrupted
    assert train_main(["--output-dir", str(run), "--resume"]) == 0
    ref = tmp_path / "ref"
    assert train_main([*common, "--output-dir", str(ref)]) == 0

    final = f"step_{MAX_STEPS:08d}"
    state = json.loads((run / "checkpoints" / final / "meta.json").read_text())
    assert state["step"] == MAX_STEPS
    opt = torch.load(run / "checkpoints" / final / "optimizer.bin", weights_only=False)  # the generator's Adam
    assert {int(s["step"]) for s in opt["state"].values()} == {MAX_STEPS}, why
    for a, b in [(ref / "checkpoints" / final / "model.safetensors", run / "checkpoints" / final / "model.safetensors"),
                 (ref / "checkpoints" / "generator" / "model.safetensors",  # the EMA export
                  run / "checkpoints" / "generator" / "model.safetensors")]:
        wa, wb = load_file(a), load_file(b)
        assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa), f"{a.name} differs {why}"
