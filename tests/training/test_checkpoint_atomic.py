"""Checkpoints: a save that fails half-way leaves the previous one intact and resumable; rotation keeps the best."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pix2pix_unet.cli import train_main
from pix2pix_unet.config import MetricMode
from pix2pix_unet.training.checkpoint import BestRule, best_checkpoint, fsync_tree, list_checkpoints, rotate
from pix2pix_unet.training.faults import EXIT_CHECKPOINT_FAILED
from tests.conftest import TINY


def run_args(data: Path, out: Path) -> list[str]:
    return ["--data", str(data), "--output-dir", str(out), "--no-wandb", "--max-steps", "4",
            "checkpoint_every=2", "sample_every=100", *TINY]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a), load_file(b)
    return wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """One uninterrupted 4-step run (checkpoints at 2 and 4) and its data."""
    from tests.conftest import write_pairs

    root = tmp_path_factory.mktemp("ref")
    write_pairs(root / "data" / "train", 8, seed=0)
    write_pairs(root / "data" / "val", 2, seed=1)
    assert train_main(run_args(root / "data", root / "run")) == 0
    return root / "data", root / "run"


@pytest.mark.slow
def test_a_full_disk_mid_save_keeps_the_previous_checkpoint(reference, tmp_path, monkeypatch, capsys):
    data, ref = reference
    real_save = torch.save

    def disk_fills_up(obj, f, *args, **kwargs):
        # The step-4 save has written both nets' weights; the optimiser file is cut off by a full disk.
        if ".tmp_step_00000004" in str(f) and Path(str(f)).name == "optimizer.bin":
            Path(f).write_bytes(b"\x80\x02partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    run = tmp_path / "run"
    assert train_main(run_args(data, run)) == EXIT_CHECKPOINT_FAILED
    err = capsys.readouterr().err
    assert "could not write checkpoint" in err and "No space left on device" in err, err
    assert "step_00000002" in err and "--resume" in err, err  # names the checkpoint to continue from
    monkeypatch.undo()

    # nothing torn, nothing temporary: only the previous checkpoint and the export
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["generator", "step_00000002"]
    # ... and it is intact: resuming from it ends exactly where the uninterrupted run ended
    assert train_main(["--output-dir", str(run), "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    for name in ("model.safetensors", "model_1.safetensors"):  # generator and discriminator
        assert same_weights(ref / "checkpoints" / "step_00000004" / name, run / "checkpoints" / "step_00000004" / name)


@pytest.mark.slow
def test_resume_skips_a_damaged_newest_checkpoint(reference, tmp_path, capsys):
    import shutil

    _, ref = reference
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    weights = run / "checkpoints" / "step_00000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # bit rot, or a disk that lied about a flush

    assert train_main(["--output-dir", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "cannot load checkpoint" in out and "step_00000004" in out, out
    assert "resumed from" in out and "step_00000002" in out, out
    # retrained steps 3-4 from step 2 and replaced the damaged checkpoint with an identical good one
    assert same_weights(ref / "checkpoints" / "step_00000004" / "model.safetensors", weights)
    meta = json.loads((run / "checkpoints" / "step_00000004" / "meta.json").read_text())
    assert meta["step"] == 4 and "val/l1" in meta["metrics"]


def make_checkpoints(root: Path, values: dict[int, float]) -> None:
    for step, value in values.items():
        folder = root / f"step_{step:08d}"
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps({"step": step, "metrics": {"val/l1": value, "val/psnr": -value}}))


def test_rotation_keeps_the_newest_and_the_best(tmp_path):
    make_checkpoints(tmp_path, {100: 0.5, 200: 0.2, 300: 0.4, 400: 0.3, 500: 0.6})
    (tmp_path / "step_00000050").mkdir()  # an older version's checkpoint without meta.json: never "best"
    rotate(tmp_path, keep=2, best=BestRule("val/l1", MetricMode.MIN))
    assert [s for s, _ in list_checkpoints(tmp_path)] == [200, 400, 500]
    assert best_checkpoint(tmp_path, BestRule("val/psnr", MetricMode.MAX)).name == "step_00000200"
    rotate(tmp_path, keep=1, best=None)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [500]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # deletions leave nothing behind


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc to name the synced files")
def test_fsync_tree_flushes_every_file_and_folder(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    for name in ("a.bin", "sub/b.bin"):
        (tmp_path / name).write_bytes(b"x")
    synced: list[str] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    fsync_tree(tmp_path)
    assert set(synced) == {str(tmp_path / "a.bin"), str(tmp_path / "sub" / "b.bin"), str(tmp_path / "sub"),
                           str(tmp_path)}
    assert synced.index(str(tmp_path / "sub" / "b.bin")) < synced.index(str(tmp_path / "sub"))  # files first
