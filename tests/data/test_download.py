"""The pix2pix dataset downloader, against a local archive served over a file:// URL (no network)."""

import importlib.util
import tarfile
from pathlib import Path

import pytest

from pix2pix_unet.config import DataConfig, UNetConfig
from pix2pix_unet.data import build_datasets
from tests.conftest import write_pairs

SCRIPT = Path(__file__).resolve().parents[2] / "datasets" / "download_pix2pix.py"
spec = importlib.util.spec_from_file_location("download_pix2pix", SCRIPT)
download_pix2pix = importlib.util.module_from_spec(spec)
spec.loader.exec_module(download_pix2pix)


def make_archive(tmp_path: Path, name: str) -> Path:
    src = tmp_path / "src"
    write_pairs(src / name / "train", 4, layout="aligned")
    write_pairs(src / name / "val", 2, layout="aligned")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / f"{name}.tar.gz", "w:gz") as tar:
        tar.add(src / name, arcname=name)
    return mirror


def test_fetch_unpacks_a_trainable_folder(tmp_path):
    mirror = make_archive(tmp_path, "facades")
    folder = download_pix2pix.fetch("facades", tmp_path / "data", base_url=mirror.as_uri())
    assert folder == tmp_path / "data" / "facades"
    assert not (tmp_path / "data" / "facades.tar.gz").exists()
    train, val = build_datasets(DataConfig(path=str(folder), crop_size=32), UNetConfig(), 0)
    assert (len(train), len(val)) == (4, 2)


def test_unknown_name_and_traversal_rejected(tmp_path):
    with pytest.raises(ValueError, match="'nope'"):
        download_pix2pix.fetch("nope", tmp_path)
    evil = tmp_path / "evil.tar.gz"
    (tmp_path / "x.txt").write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(tmp_path / "x.txt", arcname="../escaped.txt")
    with pytest.raises(ValueError, match="outside"):
        download_pix2pix.safe_extract(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
