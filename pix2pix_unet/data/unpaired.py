"""Unpaired image folders: ``trainA/`` and ``trainB/`` (``testA/``, ``testB/``), no pairing by name.

The layout of the reference CycleGAN/pix2pix codebase. Each draw takes the A image in order and a B image
chosen at random, both seeded by the draw number, so a resumed run draws the same pairs; each side gets its own
random window, since the two images need not share a size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

from ..errors import DatasetError
from .folders import list_images

if TYPE_CHECKING:
    from ..codec import ImageCodec


@dataclass(frozen=True)
class UnpairedFiles:
    """The two domains' files of one split."""

    a: list[Path]
    b: list[Path]


def discover_unpaired(root: str | Path, split: str = "train") -> UnpairedFiles:
    """``root/<split>A`` and ``root/<split>B``; a missing or empty folder is an error naming it."""
    root = Path(root)
    found = []
    for side in ("A", "B"):
        folder = root / f"{split}{side}"
        if not folder.is_dir():
            raise DatasetError(f"unpaired data needs {folder} (the layout is {split}A/ and {split}B/, no pairing "
                               "by name)")
        files = list_images(folder)
        if not files:
            raise DatasetError(f"{folder} holds no images")
        found.append(files)
    return UnpairedFiles(*found)


def random_window(x: torch.Tensor, size: int | None, rng: torch.Generator, source: Path) -> torch.Tensor:
    """A random ``size`` x ``size`` window of ``x (C, H, W)`` (``x`` itself for ``size=None``)."""
    if size is None:
        return x
    h, w = x.shape[-2:]
    if min(h, w) < size:
        raise DatasetError(f"{source} is {w}x{h} px, smaller than data.crop_size={size}")
    top = int(torch.randint(h - size + 1, (1,), generator=rng))
    left = int(torch.randint(w - size + 1, (1,), generator=rng))
    return x[..., top: top + size, left: left + size]


class UnpairedFolderDataset(Dataset):
    """``{"A": (Ca, s, s), "B": (Cb, s, s), "name": A's file name, "name_b": B's}`` in [-1, 1].

    Draw ``index`` takes A image ``index % len(A)`` and a B image drawn at random; the B choice and both windows
    are seeded by ``(seed, index)``. The length is that of the larger domain (an epoch sees each of its images
    once).
    """

    def __init__(self, files: UnpairedFiles, a_codec: ImageCodec, b_codec: ImageCodec, crop: int | None,
                 seed: int) -> None:
        self.files, self.a_codec, self.b_codec, self.crop, self.seed = files, a_codec, b_codec, crop, seed

    def __len__(self) -> int:
        return max(len(self.files.a), len(self.files.b))

    def example_files(self) -> list[dict[str, Path]]:
        return [{"A": a} for a in self.files.a] + [{"B": b} for b in self.files.b]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        a_path = self.files.a[index % len(self.files.a)]
        b_path = self.files.b[int(torch.randint(len(self.files.b), (1,), generator=rng))]
        a = random_window(self.a_codec.decode(a_path).tensor, self.crop, rng, a_path)
        b = random_window(self.b_codec.decode(b_path).tensor, self.crop, rng, b_path)
        return {"A": a, "B": b, "name": a_path.name, "name_b": b_path.name}


__all__ = ["UnpairedFiles", "UnpairedFolderDataset", "discover_unpaired", "random_window"]
