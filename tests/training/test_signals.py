"""SIGTERM / SIGINT: the run finishes its step, saves a checkpoint and exits with 128 + the signal."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from pix2pix_unet.cli import train_main
from pix2pix_unet.training import loop as loop_module
from pix2pix_unet.training.checkpoint import read_meta
from pix2pix_unet.training.faults import StopSignals, ignore_sigint
from tests.conftest import TINY


@pytest.mark.slow
def test_sigterm_in_process_saves_a_checkpoint_and_restores_the_handlers(pair_folder, tmp_path, monkeypatch, capsys):
    real_step, calls = loop_module.train_step, {"n": 0}

    def step_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of step 3
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop_module, "train_step", step_then_signal)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    run = tmp_path / "run"
    code = train_main(["--data", str(pair_folder), "--output-dir", str(run), "--no-wandb", "--max-steps", "50",
                       "checkpoint_every=20", "sample_every=100", *TINY])
    assert code == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert f"stopped by SIGTERM after step 3; the checkpoint {run / 'checkpoints' / 'step_00000003'}" in err, err
    assert read_meta(run / "checkpoints" / "step_00000003")["step"] == 3
    assert (run / "checkpoints" / "generator" / "model.safetensors").is_file()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_second_ctrl_c_interrupts_at_once():
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == signal.SIGINT  # the first only asks for a stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


class Pids(Dataset):
    def __len__(self) -> int:
        return 1000

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor(os.getpid())


@pytest.mark.slow
def test_loader_workers_survive_a_ctrl_c_meant_for_the_main_process():
    """Ctrl-C reaches every process of the terminal's group; the workers must not die before the checkpoint."""
    loader = DataLoader(Pids(), batch_size=4, num_workers=1, worker_init_fn=ignore_sigint)
    batches = iter(loader)
    worker = int(next(batches)[0])
    assert worker != os.getpid()
    os.kill(worker, signal.SIGINT)
    assert all(int(next(batches)[0]) == worker for _ in range(20))  # still alive and serving
    del batches
