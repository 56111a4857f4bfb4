"""Paired image folders: pix2pix "aligned" images (A|B side by side) and ``A/`` + ``B/`` folders.

Every file is checked before training starts (:mod:`.screening`: each is decoded,
partners have the same size), so a bad dataset fails with a report naming every
bad file instead of a traceback from deep inside a DataLoader worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

if TYPE_CHECKING:
    from .screening import BadFile

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class DatasetError(ValueError):
    """A dataset folder or file cannot be used; the message names it."""


@dataclass(frozen=True)
class PairFiles:
    """Where one training pair comes from. ``b`` is None for aligned (A|B) images."""

    a: Path
    b: Path | None = None


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def discover_pairs(folder: str | Path) -> list[PairFiles]:
    """Find the pairs in one split folder: ``A/`` + ``B/`` paired by file name, else aligned images.

    Raises:
        DatasetError: a file of ``A/`` or ``B/`` has no partner (see :func:`find_pairs` to get them instead).
    """
    pairs, unpaired = find_pairs(folder)
    if unpaired:
        where = [str(path) for path, _ in unpaired[:5]]
        raise DatasetError(f"{len(unpaired)} file(s) in {folder} have no partner in A/ or B/, e.g. {where}")
    return pairs


def find_pairs(folder: str | Path) -> tuple[list[PairFiles], list[tuple[Path, Path]]]:
    """The pairs in one split folder, plus ``(file, partner pattern)`` for each file of ``A/`` or ``B/`` without one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist")
    a_dir, b_dir = folder / "A", folder / "B"
    if a_dir.is_dir() or b_dir.is_dir():
        if not (a_dir.is_dir() and b_dir.is_dir()):
            raise DatasetError(f"{folder} has only one of A/ and B/; paired folders need both")
        a_files = {p.stem: p for p in list_images(a_dir)}
        b_files = {p.stem: p for p in list_images(b_dir)}
        unpaired = [(a_files[m], b_dir / f"{m}.*") if m in a_files else (b_files[m], a_dir / f"{m}.*")
                    for m in sorted(set(a_files) ^ set(b_files))]
        pairs = [PairFiles(a_files[k], b_files[k]) for k in sorted(set(a_files) & set(b_files))]
    else:
        pairs, unpaired = [PairFiles(p) for p in list_images(folder)], []
    if not pairs and not unpaired:
        raise DatasetError(f"dataset folder {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return pairs, unpaired


def load_image(path: Path, channels: int) -> torch.Tensor:
    """Decode to float ``(C, H, W)`` in [-1, 1]; 1 channel is grayscale, 3 is RGB."""
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise DatasetError(f"cannot load {path} with {channels} channels; folder images support 1, 3 or 4")
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            tensor = TF.pil_to_tensor(img)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DatasetError(f"cannot decode image {path}: {err}") from None
    return tensor.float().div(127.5).sub(1.0)


class PairedFolderDataset(Dataset):
    """Pairs from files, returned as ``{"A": (Ca, H, W), "B": (Cb, H, W)}`` in [-1, 1].

    Args:
        pairs: from :func:`discover_pairs`.
        a_channels / b_channels: channels of the A and B sides as stored on disk.
        load_size: resize both sides to this square size, or keep the stored size.
        skipped: bad files left out of ``pairs`` (``data.skip_bad``), for the run's report.
    """

    def __init__(
        self, pairs: list[PairFiles], a_channels: int, b_channels: int, load_size: int | None = None,
        skipped: Sequence[BadFile] = (),
    ) -> None:
        self.pairs = pairs
        self.skipped = list(skipped)
        self.a_channels, self.b_channels = a_channels, b_channels
        self.load_size = load_size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pair = self.pairs[index]
        if pair.b is None:
            if self.a_channels != self.b_channels:
                raise DatasetError(f"aligned image {pair.a} cannot have {self.a_channels} and {self.b_channels} channels")
            ab = load_image(pair.a, self.a_channels)
            half = ab.shape[-1] // 2
            a, b = ab[..., :half], ab[..., half:]
        else:
            a, b = load_image(pair.a, self.a_channels), load_image(pair.b, self.b_channels)
        if self.load_size:
            size = [self.load_size, self.load_size]
            a = TF.resize(a, size, antialias=True)
            b = TF.resize(b, size, antialias=True)
        return {"A": a, "B": b}
