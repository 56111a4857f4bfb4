"""Checkpoints in the run folder: atomic, rotated, and never lost to a crash, a kill or a full disk.

``checkpoints/step_00000400/`` holds the full training state (``accelerator.save_state``:
models, optimisers, schedulers, EMA, step, RNG), ``meta.json`` (the step and the
validation metrics of those weights) and ``generator/``, the export of those weights
(the EMA ones with ``ema=true``). ``checkpoints/generator/`` holds the run's generator
export (safetensors + config.json + split.json): the best checkpoint's, or the last
step's (``export``).

A save goes: every process writes its part into ``.tmp_step_XXXXXXXX/``; the main
process adds ``meta.json``, fsyncs every file and the folder, renames it to
``step_XXXXXXXX`` and fsyncs ``checkpoints/``. Only then are old checkpoints
removed (renamed away first, so none is ever half-deleted under its final name).
Whatever fails, at whatever moment, the previous checkpoints stay as they were;
a failed save raises :class:`CheckpointError` and its leftovers are removed.

Rotation keeps the newest ``keep`` checkpoints plus the best one by a validation
metric (:class:`BestRule`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from ..config import ConfigError, MetricMode
from .faults import EXIT_CHECKPOINT_FAILED, TrainingStopped

STATE_PATTERN = re.compile(r"^step_(\d{8})$")
META_NAME = "meta.json"
GENERATOR_DIR = "generator"  # in a checkpoint: the export of its weights, what export=best copies
TMP_PREFIX, DELETE_PREFIX = ".tmp_", ".del_"


class CheckpointError(TrainingStopped):
    """A checkpoint could not be written or loaded; the message names it and the one to use instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_CHECKPOINT_FAILED)


class TrainState:
    """Counters that must survive a resume; registered with Accelerate for checkpointing."""

    def __init__(self) -> None:
        self.step = 0  # optimiser steps taken
        self.batches_seen = 0  # micro-batches drawn from the loader (for the data position)
        self.bad_steps = 0  # steps whose update was skipped for a NaN/inf loss or gradient

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step, "batches_seen": self.batches_seen, "bad_steps": self.bad_steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])
        self.batches_seen = int(state["batches_seen"])
        self.bad_steps = int(state.get("bad_steps", 0))  # absent in checkpoints of older versions


@dataclass(frozen=True)
class BestRule:
    """Which checkpoint is "best": the one whose ``meta.json`` has the lowest or highest ``metric``."""

    metric: str = "val/l1"
    mode: MetricMode = MetricMode.MIN

    def value(self, checkpoint: Path) -> float | None:
        return read_meta(checkpoint).get("metrics", {}).get(self.metric)

    def better(self, a: float, b: float) -> bool:
        return a < b if self.mode is MetricMode.MIN else a > b

    def check(self, metrics: dict[str, float]) -> None:
        """Raise :class:`ConfigError` naming ``best_metric`` if the evaluation does not measure it."""
        if self.metric not in metrics:
            raise ConfigError(f"best_metric={self.metric!r} is not a validation metric of this run; "
                              f"choose one of {sorted(metrics)}")


# --------------------------------------------------------------------------- finding checkpoints


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STATE_PATTERN.match(p.name))]
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def read_meta(checkpoint: Path) -> dict:
    """``meta.json`` of a checkpoint, or ``{}`` (checkpoints of older versions have none)."""
    try:
        return json.loads((checkpoint / META_NAME).read_text())
    except (OSError, ValueError):
        return {}


def best_checkpoint(root: Path, rule: BestRule) -> Path | None:
    """The checkpoint with the best ``rule.metric``; ties go to the newer one."""
    best: tuple[float, Path] | None = None
    for _, path in list_checkpoints(root):
        value = rule.value(path)
        if value is not None and (best is None or not rule.better(best[0], value)):
            best = (value, path)
    return best[1] if best else None


# --------------------------------------------------------------------------- writing


def fsync_tree(directory: Path) -> None:
    """Flush every file under ``directory``, then the folders themselves, to the disk."""
    for folder, _, files in os.walk(directory, topdown=False):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable (a no-op where the platform cannot fsync a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. EINVAL on file systems without directory fsync
        pass
    finally:
        os.close(fd)


def remove_checkpoint(path: Path) -> None:
    """Rename away, then delete: a crash mid-delete never leaves a torn folder under a final name."""
    doomed = path.with_name(DELETE_PREFIX + path.name)
    path.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def rotate(root: Path, keep: int, best: BestRule | None) -> list[Path]:
    """Remove all checkpoints but the newest ``keep`` and the best by ``best``; returns those removed."""
    found = [p for _, p in list_checkpoints(root)]
    kept = set(found[-keep:])
    if best is not None and (winner := best_checkpoint(root, best)) is not None:
        kept.add(winner)
    removed = [p for p in found if p not in kept]
    for path in removed:
        remove_checkpoint(path)
    return removed


def _failed_anywhere(accelerator: Accelerator, error: BaseException | None) -> bool:
    if accelerator.num_processes == 1:
        return error is not None
    flag = torch.tensor([float(error is not None)], device=accelerator.device)
    return accelerator.reduce(flag, "sum").item() > 0


def _publish(tmp: Path, final: Path, step: int, metrics: dict[str, float] | None) -> None:
    (tmp / META_NAME).write_text(json.dumps({"step": step, "metrics": metrics or {}}, indent=2))
    fsync_tree(tmp)
    old = final.with_name(DELETE_PREFIX + final.name)
    if final.exists():  # the same step saved again: swap, never delete first
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    accelerator: Accelerator,
    root: Path,
    step: int,
    keep: int,
    metrics: dict[str, float] | None = None,
    best: BestRule | None = None,
    export: Callable[[Path], object] | None = None,
) -> Path:
    """Save the full training state for ``step`` atomically, then rotate (see the module docstring).

    Args:
        accelerator: every process must call this; each writes its own part.
        root: the ``checkpoints`` folder.
        step: the optimiser step, which names the folder.
        keep: how many of the newest checkpoints to keep.
        metrics: validation metrics of these weights (main process), stored in ``meta.json``.
        best: also keep the best checkpoint by this rule.
        export: writes the generator export of these weights into the folder it is given (main process), which
            becomes the checkpoint's ``generator/``.

    Raises:
        CheckpointError: on every process, when any of them failed to write; nothing
            is left behind and the previous checkpoints are untouched.
    """
    final = root / f"step_{step:08d}"
    tmp = root / f"{TMP_PREFIX}{final.name}"
    main = accelerator.is_main_process
    if main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in [*root.glob(f"{TMP_PREFIX}step_*"), *root.glob(f"{DELETE_PREFIX}step_*")]:
            shutil.rmtree(stale, ignore_errors=True)  # left by a save or delete that was killed
        tmp.mkdir()
    accelerator.wait_for_everyone()
    error: BaseException | None = None
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
    except Exception as err:  # noqa: BLE001 - any failure (ENOSPC, EIO, ...) must leave the old checkpoints usable
        error = err
    if not _failed_anywhere(accelerator, error) and main:
        try:
            if export is not None:
                export(tmp / GENERATOR_DIR)
            _publish(tmp, final, step, metrics)
        except Exception as err:  # noqa: BLE001
            error = err
    if _failed_anywhere(accelerator, error):
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(root)
        cause = f"{type(error).__name__}: {error}" if error is not None else "another process failed to write"
        raise CheckpointError(
            f"could not write checkpoint {final} ({cause}). The previous checkpoints are untouched; the newest "
            f"is {previous or 'none yet'}. Free some space or fix the folder, then continue with --resume."
        )
    if main:
        rotate(root, keep, best)
    accelerator.wait_for_everyone()
    return final


def load_latest(accelerator: Accelerator, root: Path) -> Path:
    """Load the newest checkpoint that loads, warning about any newer one that does not.

    Raises:
        FileNotFoundError: there is no checkpoint under ``root``.
        CheckpointError: none of them loads; the message lists why for each.
    """
    found = list_checkpoints(root)
    if not found:
        raise FileNotFoundError(f"--resume: no checkpoint under {root}")
    failures = []
    for _, path in reversed(found):
        try:
            accelerator.load_state(str(path))
            return path
        except Exception as err:  # noqa: BLE001 - a damaged checkpoint must not hide an older good one
            detail = " ".join(str(err).split())
            reason = f"{type(err).__name__}: {detail[:300]}{'...' if len(detail) > 300 else ''}"
            failures.append(f"{path.name} ({reason})")
            accelerator.print(f"warning: cannot load checkpoint {path} ({reason}); trying the one before it")
    raise CheckpointError(
        f"--resume: no checkpoint under {root} could be loaded: {'; '.join(failures)}. If you changed generator "
        f"or discriminator options, they must match {root.parent / 'config.yaml'}."
    )


def export_generator(generator: nn.Module, directory: Path, files: Mapping[str, str] | None = None,
                     **metadata: object) -> Path:
    """Replace ``directory`` with a fresh ``save_pretrained`` export, never leaving it half-written.

    ``files``: more files to write beside it, name -> text (``split.json``).
    """
    tmp = directory.with_name(f".tmp_{directory.name}")
    old = directory.with_name(f".old_{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    generator.save_pretrained(tmp, **metadata)
    for name, text in (files or {}).items():
        (tmp / name).write_text(text)
    fsync_tree(tmp)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory
