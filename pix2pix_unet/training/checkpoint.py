"""Checkpoints in the run folder, written so that a crash never leaves a torn one.

``checkpoints/step_00000400/`` holds the full training state (``accelerator.save_state``:
models, optimisers, schedulers, EMA, step, RNG). It is written under a temporary
name and renamed into place, so a directory with a final name is always complete.
``checkpoints/generator/`` holds the generator export (safetensors + config.json).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from accelerate import Accelerator
from torch import nn

STATE_PATTERN = re.compile(r"^step_(\d{8})$")


class TrainState:
    """Counters that must survive a resume; registered with Accelerate for checkpointing."""

    def __init__(self) -> None:
        self.step = 0  # optimiser steps taken
        self.batches_seen = 0  # micro-batches drawn from the loader (for the data position)

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "batches_seen": self.batches_seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])
        self.batches_seen = int(state["batches_seen"])


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STATE_PATTERN.match(p.name))]
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def save_checkpoint(accelerator: Accelerator, root: Path, step: int, keep: int) -> Path:
    """Save the full training state for ``step`` atomically, keeping the newest ``keep``."""
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for _, old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def export_generator(generator: nn.Module, directory: Path, **metadata: object) -> Path:
    """Replace ``directory`` with a fresh ``save_pretrained`` export, never leaving it half-written."""
    tmp = directory.with_name(f".tmp_{directory.name}")
    old = directory.with_name(f".old_{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    generator.save_pretrained(tmp, **metadata)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory
