"""Paired image folders: pix2pix "aligned" images (A|B side by side) and ``A/`` + ``B/`` folders.

Every file is checked before training starts (:mod:`.screening`: each is decoded,
partners have the same size), so a bad dataset fails with a report naming every
bad file instead of a traceback from deep inside a DataLoader worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from ..errors import DatasetError

if TYPE_CHECKING:
    from ..codec import ImageCodec
    from ..config import DataConfig
    from .screening import BadFile

T = TypeVar("T")

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class PairFiles:
    """Where one training pair comes from. ``b`` is None for aligned (A|B) images."""

    a: Path
    b: Path | None = None


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def split_by_file(root: Path, discover: Callable[[Path], list[T]], data: "DataConfig", seed: int,
                  ) -> tuple[list[T], list[T]]:
    """Train and validation examples of ``root``, split by file, never by crops of one image.

    ``root/train`` and ``root/val`` (or ``root/test``) when they exist; otherwise
    ``data.val_fraction`` of ``root``'s examples (at least one) is held out,
    the same ones for a given ``seed``.

    Args:
        discover: lists the examples of one split folder (raises naming what is missing).
    """
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (use data.path=builtin for the built-in data)")
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir():
        train, val = discover(root / "train"), discover(val_dir) if val_dir else []
    else:
        train, val = discover(root), []
    return (train, val) if val else hold_out(train, data.val_fraction, seed, root)


def hold_out(examples: list[T], fraction: float, seed: int, root: Path) -> tuple[list[T], list[T]]:
    """``(train, val)``: ``fraction`` of the examples (at least one) held out, the same ones for a ``seed``."""
    if len(examples) < 2:
        raise DatasetError(f"{root} holds {len(examples)} example; need at least 2 to hold one out for validation")
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, math.floor(len(examples) * fraction))
    return [examples[i] for i in sorted(order[n_val:])], [examples[i] for i in sorted(order[:n_val])]


def pair_by_stem(images: list[Path], folder: Path, what: str) -> list[Path]:
    """For each image, the file of ``folder`` with the same stem; a missing one is an error naming the image."""
    if not folder.is_dir():
        raise DatasetError(f"{what} folder {folder} does not exist")
    found = {p.stem: p for p in list_images(folder)}
    missing = [p for p in images if p.stem not in found]
    if missing:
        raise DatasetError(f"{len(missing)} image(s) have no {what} in {folder}, e.g. {missing[0]} "
                           f"(expected {folder / missing[0].stem}.*)")
    return [found[p.stem] for p in images]


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


class PairedFolderDataset(Dataset):
    """Pairs from files, returned as ``{"A": (Ca, H, W), "B": (Cb, H, W), "name": str}`` in [-1, 1].

    Each side is decoded by its :class:`~pix2pix_unet.codec.ImageCodec` (8/16-bit,
    gray or colour); pairs may differ in size from one to the next.

    Args:
        pairs: from :func:`discover_pairs`.
        a_codec: how the A side is decoded.
        b_codec: how the B side is decoded.
        load_size: resize both sides to this square size, or keep the stored size.
        skipped: bad files left out of ``pairs`` (``data.skip_bad``), for the run's report.
    """

    def __init__(
        self, pairs: list[PairFiles], a_codec: ImageCodec, b_codec: ImageCodec, load_size: int | None = None,
        skipped: Sequence[BadFile] = (),
    ) -> None:
        self.pairs = pairs
        self.skipped = list(skipped)
        self.a_codec, self.b_codec = a_codec, b_codec
        self.load_size = load_size

    def __len__(self) -> int:
        return len(self.pairs)

    def source(self, index: int) -> Path:
        return self.pairs[index].a

    def example_files(self) -> list[dict[str, Path]]:
        """The files of each example by role, ``{"A": ..., "B": ...}`` or ``{"AB": ...}`` (aligned), for
        ``split.json``."""
        return [{"AB": p.a} if p.b is None else {"A": p.a, "B": p.b} for p in self.pairs]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        pair = self.pairs[index]
        if pair.b is None:
            a, b = self.a_codec.decode_halves(pair.a, self.b_codec)
        else:
            a, b = self.a_codec.decode(pair.a).tensor, self.b_codec.decode(pair.b).tensor
            if a.shape[-2:] != b.shape[-2:]:
                raise DatasetError(f"pair sizes differ: {pair.a} is {a.shape[-1]}x{a.shape[-2]} but {pair.b} is "
                                   f"{b.shape[-1]}x{b.shape[-2]}")
        if self.load_size:
            size = [self.load_size, self.load_size]
            a = TF.resize(a, size, antialias=True)
            b = TF.resize(b, size, antialias=True)
        return {"A": a, "B": b, "name": pair.a.name}
