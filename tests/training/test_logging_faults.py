"""Logging faults never stop training: W&B missing, a bad API key, its process dying, an unwritable metrics file."""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings

import psutil
import pytest

from pix2pix_unet.cli import train_main
from pix2pix_unet.training import tracking
from pix2pix_unet.training.tracking import RunLogger
from tests.conftest import TINY


def rows(run) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_wandb_not_installed_logs_locally(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    with pytest.warns(UserWarning, match="W&B logging is off"):
        logger = RunLogger(tmp_path, {}, use_wandb=True, project="p")
    logger.log({"x": 1.0}, 1)
    logger.finish()
    assert rows(tmp_path) == [{"step": 1, "x": 1.0}]


def test_an_unwritable_metrics_file_warns_once_and_goes_on(tmp_path):
    logger = RunLogger(tmp_path, {}, use_wandb=False, project="p")
    (tmp_path / "metrics.jsonl").mkdir()  # open(..., "a") now fails, as on a full or read-only disk
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            logger.log({"x": 1.0}, step)
    assert len(caught) == 1 and "metrics.jsonl" in str(caught[0].message)


def kill_wandb_service() -> list[int]:
    """Kill the W&B processes this test process started (its own children, by pid)."""
    victims = [p for p in psutil.Process().children(recursive=True) if p.name().startswith("wandb")]
    for proc in victims:
        os.kill(proc.pid, signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    return [p.pid for p in victims]


@pytest.mark.slow
def test_bad_api_key_and_a_dead_wandb_process_do_not_stop_training(pair_folder, tmp_path, monkeypatch):
    """A malformed API key: W&B falls back to offline. Its service killed mid-run: restarted offline once."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "not-a-key")  # online mode, refused at once
    assert tracking.wandb_mode() == "online"
    real_log, killed = RunLogger.log, []

    def log_and_kill_at_step_3(self, values, step):
        if step == 3 and not killed:
            killed.extend(kill_wandb_service())
        real_log(self, values, step)

    monkeypatch.setattr(RunLogger, "log", log_and_kill_at_step_3)
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = train_main(["--data", str(pair_folder), "--output-dir", str(run), "--max-steps", "6",
                           "sample_every=3", "checkpoint_every=6", "wandb=true", *TINY])
    messages = [str(w.message) for w in caught if "W&B" in str(w.message)]
    assert code == 0
    assert killed, "no W&B process was running"
    assert any("could not start online" in m and "offline" in m for m in messages), messages
    assert any("failed during the run" in m and "restarting it offline" in m for m in messages), messages
    # every number still reached metrics.jsonl, and W&B kept an offline record from before and after the kill
    assert [r["step"] for r in rows(run) if "train/g_l1" in r] == [1, 2, 3, 4, 5, 6]
    assert len(list((run / "wandb").glob("offline-run-*"))) >= 1
