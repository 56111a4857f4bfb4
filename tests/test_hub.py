"""Hugging Face Hub: ``push`` stages an export with its model card up to the upload call; a local Hub cache,
written with huggingface_hub's own cache functions, serves ``hf://ORG/NAME`` and ``from_pretrained("ORG/NAME")``
with ``HF_HUB_OFFLINE=1`` (there is no network here; nothing claims a real upload)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, constants, scan_cache_dir
from huggingface_hub.file_download import _cache_commit_hash_for_specific_revision, _create_symlink, repo_folder_name

import pix2pix_unet
from pix2pix_unet.cli import main, train_main
from pix2pix_unet.hub import HubError, split_reference
from pix2pix_unet.models import Generator
from tests.conftest import TINY, write_pairs

REPO = Path(__file__).resolve().parents[1]


def cache_repo(cache: Path, repo_id: str, folder: Path) -> str:
    """Put ``folder``'s files in a Hub cache as ``snapshot_download`` leaves them: blobs by content hash,
    a snapshot of symlinks, and ``refs/main``; returns the commit hash."""
    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = hashlib.sha1(b"".join(p.read_bytes() for p in sorted(folder.iterdir()))).hexdigest()
    for path in sorted(folder.iterdir()):
        blob = storage / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(path.read_bytes())
        link = storage / "snapshots" / commit / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        _create_symlink(str(blob), str(link))
    _cache_commit_hash_for_specific_revision(str(storage), "main", commit)
    return commit


@pytest.fixture(scope="module")
def pushed(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A tiny translate run, its ``push --dry-run`` staging folder and a Hub cache holding that folder."""
    tmp = tmp_path_factory.mktemp("hub")
    write_pairs(tmp / "data" / "train", 6, seed=0)
    write_pairs(tmp / "data" / "val", 2, seed=1)
    run = tmp / "run"
    assert train_main(["--data", str(tmp / "data"), "--output-dir", str(run), "--max-steps", "2", "--no-wandb",
                       "sample_every=2", "checkpoint_every=2", *TINY]) == 0
    stage = tmp / "stage"
    assert main(["push", "--checkpoint", str(run), "--repo", "acme/tiny-pix2pix", "--dry-run", "--stage",
                 str(stage), "--license", "Apache-2.0"]) == 0
    cache = tmp / "hf-cache"
    cache_repo(cache, "acme/tiny-pix2pix", stage)
    return run, stage, cache


@pytest.mark.slow
def test_push_stages_the_export_and_a_model_card(pushed, capsys):
    run, stage, _ = pushed
    names = sorted(p.name for p in stage.iterdir())
    assert names == ["README.md", "config.json", "config.yaml", "metrics.json", "model.safetensors",
                     "sample_grid.png"]
    assert (stage / "model.safetensors").read_bytes() == (run / "checkpoints/generator/model.safetensors").read_bytes()
    assert (stage / "sample_grid.png").read_bytes() == (run / "samples/step_00000002.png").read_bytes()
    card = ModelCard.load(stage / "README.md")
    assert card.data.library_name == "pix2pix-unet" and card.data.pipeline_tag == "image-to-image"
    assert card.data.license == "apache-2.0" and "translate" in card.data.tags
    # the run's final figures, and the files they come from
    final = json.loads((run / "metrics.json").read_text())
    psnr = final["metrics"]["psnr"]
    assert f"| psnr | {psnr:.4f} |" in card.text
    assert "on 2 held-out files not used for training" in card.text and final["source"] in card.text
    assert json.loads((stage / "metrics.json").read_text())["metrics"]["psnr"] == psnr
    assert "![samples](sample_grid.png)" in card.text and "pix2pix-unet train --config config.yaml" in card.text
    assert "hf://acme/tiny-pix2pix" in card.text and str(run.parent / "data") in card.text


@pytest.mark.slow
def test_push_refuses_a_bad_repo_id_and_a_full_stage_folder(pushed, capsys):
    run, stage, _ = pushed
    assert main(["push", "--checkpoint", str(run), "--repo", "not a repo", "--dry-run"]) == 2
    assert "not a Hugging Face Hub repo id" in capsys.readouterr().err
    assert main(["push", "--checkpoint", str(run), "--repo", "acme/x", "--dry-run", "--stage", str(stage)]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.slow
def test_push_goes_as_far_as_the_upload_call(pushed, tmp_path, monkeypatch, capsys):
    """Without --dry-run, push stages and then calls the Hub API, which huggingface_hub's own offline mode stops."""
    run, _, _ = pushed
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["push", "--checkpoint", str(run), "--repo", "acme/tiny-pix2pix", "--stage", str(tmp_path / "s")]) == 1
    captured = capsys.readouterr()
    assert "staged 6 file(s)" in captured.out and "uploaded" not in captured.out
    assert "upload to acme/tiny-pix2pix failed: OfflineModeIsEnabled" in captured.err


@pytest.mark.slow
def test_from_pretrained_and_hf_checkpoints_load_from_the_cache_offline(pushed, tmp_path, monkeypatch):
    run, _, cache = pushed
    assert [r.repo_id for r in scan_cache_dir(cache).repos] == ["acme/tiny-pix2pix"]  # a valid Hub cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    local = Generator.from_pretrained(run)
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    for loaded in (pix2pix_unet.from_pretrained("acme/tiny-pix2pix"),
                   Generator.from_pretrained("hf://acme/tiny-pix2pix")):
        assert loaded.metadata["task"] == "translate"
        with torch.no_grad():
            assert torch.equal(loaded(x), local(x))
    with pytest.raises(FileNotFoundError, match="acme/missing"):
        Generator.from_pretrained("acme/missing")

    # the real CLI in a fresh process, told to stay offline by the environment
    write_pairs(tmp_path / "imgs", 2, seed=3)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "pix2pix_unet.cli", "predict", "--checkpoint",
                             "hf://acme/tiny-pix2pix", "--input", str(tmp_path / "imgs" / "A"), "--output",
                             str(tmp_path / "out"), "--no-progress"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["000.png", "001.png"]
    assert main(["predict", "--checkpoint", str(run), "--input", str(tmp_path / "imgs" / "A"), "--output",
                 str(tmp_path / "local"), "--no-progress"]) == 0
    for name in ("000.png", "001.png"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_hf_checkpoint_errors_name_the_repo(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["export", "--checkpoint", "hf://acme/nothing", "--format", "safetensors", str(tmp_path / "e")]) == 2
    assert "acme/nothing" in capsys.readouterr().err
    with pytest.raises(HubError, match="not a Hugging Face Hub repo id"):
        split_reference("hf://just-a-name")
    assert split_reference("hf://acme/model@v1") == ("acme/model", "v1")
