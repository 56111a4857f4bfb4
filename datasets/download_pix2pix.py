"""Download one of the pix2pix paper's datasets into the folder layout ``train_gan.py --data`` reads.

    python datasets/download_pix2pix.py facades --out data/
    python train_gan.py --data data/facades --direction BtoA --preset pix2pix \
        data.load_size=286 data.crop_size=256 --batch-size 1

Each archive unpacks to ``NAME/{train,val,test}/`` of aligned images (A|B side by
side). The files come from the pix2pix authors' server at Berkeley; archives are
checked for path traversal before anything is written.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
DATASETS = {
    "facades": "400 building facades, labels <-> photo (use --direction BtoA for labels -> photo)",
    "cityscapes": "2975 street scenes, photo <-> semantic labels",
    "maps": "1096 aerial photos <-> Google Maps tiles",
    "edges2shoes": "50k shoe edge maps -> photos",
    "edges2handbags": "137k handbag edge maps -> photos",
    "night2day": "20k night -> day scenes",
}


def download(url: str, target: Path, chunk: int = 1 << 20) -> Path:
    """Stream ``url`` to ``target`` through a temporary file, so an interrupted download leaves nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(url) as response:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while block := response.read(chunk):
                    tmp.write(block)
                    done += len(block)
                    if total:
                        print(f"\r{url}: {done / total:6.1%} of {total / 1e6:.0f} MB", end="", file=sys.stderr)
            print(file=sys.stderr)
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    Path(tmp.name).replace(target)
    return target


def safe_extract(archive: Path, out: Path) -> None:
    """Extract a .tar.gz, refusing members that would land outside ``out``."""
    out = out.resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            dest = (out / member.name).resolve()
            if out not in dest.parents and dest != out:
                raise ValueError(f"{archive}: member {member.name!r} would be written outside {out}")
            if member.issym() or member.islnk():
                raise ValueError(f"{archive}: member {member.name!r} is a link; refusing to extract")
        tar.extractall(out)


def fetch(name: str, out: Path, base_url: str = BASE_URL, keep_archive: bool = False) -> Path:
    """Download and unpack dataset ``name`` to ``out/name``; returns that folder."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    folder = out / name
    if folder.is_dir() and any(folder.iterdir()):
        print(f"{folder} already exists; delete it to download again")
        return folder
    archive = download(f"{base_url}/{name}.tar.gz", out / f"{name}.tar.gz")
    try:
        safe_extract(archive, out)
    finally:
        if not keep_archive:
            archive.unlink(missing_ok=True)
    if not (folder / "train").is_dir():
        shutil.rmtree(folder, ignore_errors=True)
        raise ValueError(f"{archive} did not contain {name}/train/")
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(DATASETS), help="; ".join(f"{k}: {v}" for k, v in DATASETS.items()))
    p.add_argument("--out", type=Path, default=Path("data"), help="parent folder (default data/)")
    p.add_argument("--base-url", default=BASE_URL, help="mirror to download from")
    p.add_argument("--keep-archive", action="store_true")
    args = p.parse_args(argv)
    folder = fetch(args.name, args.out, args.base_url, args.keep_archive)
    splits = {s.name: sum(1 for _ in s.iterdir()) for s in sorted(folder.iterdir()) if s.is_dir()}
    print(f"{folder}: " + ", ".join(f"{k} {v} images" for k, v in splits.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
