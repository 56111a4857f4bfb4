"""Datasets: the built-in procedural pairs and paired image folders."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..config import BuiltinKind, DataConfig, Direction, UNetConfig
from .augment import PairedAugmentation
from .folders import DatasetError, PairedFolderDataset, discover_pairs, find_pairs, hold_out
from .screening import BadFile, format_report, screen_pairs
from .synthetic import VAL_INDEX_OFFSET, SyntheticPairs, SyntheticSpec

BUILTIN = "builtin"


class TensorPairs(Dataset):
    """Pairs already in memory, as ``{"A": ..., "B": ...}`` in [-1, 1]; ``index_offset``: the built-in index
    of the first (what ``split.json`` records)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, index_offset: int = 0) -> None:
        self.a, self.b, self.index_offset = a, b, index_offset

    def __len__(self) -> int:
        return len(self.a)

    def example_files(self) -> list[dict[str, int]]:
        """Each example's built-in index (it has no files), for ``split.json``."""
        return [{"index": self.index_offset + i} for i in range(len(self))]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        return {"A": self.a[index], "B": self.b[index], "name": f"builtin_{index:05d}"}


def builtin_pairs(num: int, seed: int, size: int, index_offset: int = 0) -> TensorPairs:
    """The procedural dataset (A = colourised label map, B = photo), generated once into memory."""
    source = SyntheticPairs(num, seed=seed, spec=SyntheticSpec(size=size), index_offset=index_offset)
    samples = [source[i] for i in range(num)]
    a = torch.stack([s["label_rgb"] for s in samples]).mul(2).sub(1)
    b = torch.stack([s["photo"] for s in samples]).mul(2).sub(1)
    return TensorPairs(a, b, index_offset)


def side_channels(data: DataConfig, generator: UNetConfig) -> tuple[int, int]:
    """Channels of the A and B sides on disk, given which side feeds the generator."""
    if data.direction is Direction.A_TO_B:
        return generator.in_channels, generator.out_channels
    return generator.out_channels, generator.in_channels


def build_datasets(data: DataConfig, generator: UNetConfig, seed: int) -> tuple[Dataset, Dataset]:
    """Train and validation datasets for ``data.path``, validated before any training starts.

    A folder with ``train/`` (and optionally ``val/`` or ``test/``) uses those
    splits; any other folder is one split from which ``val_fraction`` of the
    pairs (at least one) is held out deterministically.

    Pairs may differ in size (training takes random crops of each). Every file is screened first (:func:`~.screening.screen_pairs`). Any bad file
    raises a :class:`DatasetError` listing all of them, unless ``data.skip_bad``,
    which leaves them out (the train dataset's ``skipped`` lists them).
    """
    if data.path == BUILTIN:
        if data.builtin_kind is not BuiltinKind.PHOTOS:
            raise DatasetError(f"data.builtin_kind={data.builtin_kind.value} is built-in data for task=segment; "
                               f"image pairs train on data.builtin_kind=photos or on a folder (data.path)")
        # Validation indices start at VAL_INDEX_OFFSET, as in datasets/make_synthetic.py: no overlap.
        return (
            builtin_pairs(data.builtin_train, seed, data.builtin_size),
            builtin_pairs(data.builtin_val, seed, data.builtin_size, index_offset=VAL_INDEX_OFFSET),
        )
    from ..codec import ImageCodec  # here: the codec reads through io, which this package's files use

    root = Path(data.path)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (use data.path=builtin for the built-in data)")
    a_ch, b_ch = side_channels(data, generator)
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir():
        train_pairs, unpaired = find_pairs(root / "train")
        val_pairs, val_unpaired = find_pairs(val_dir) if val_dir else ([], [])
        unpaired += val_unpaired
    else:
        (train_pairs, unpaired), val_pairs = find_pairs(root), []
    screening = screen_pairs(train_pairs + val_pairs, unpaired, crop_size=None if data.load_size else data.crop_size)
    if screening.bad and not (data.skip_bad and screening.good):
        raise DatasetError(format_report(root, screening))
    good = set(screening.good)
    train_pairs, val_pairs = [p for p in train_pairs if p in good], [p for p in val_pairs if p in good]
    if not val_pairs:
        train_pairs, val_pairs = hold_out(train_pairs, data.val_fraction, seed, root)
    a_codec, b_codec = ImageCodec(a_ch), ImageCodec(b_ch)
    return (
        PairedFolderDataset(train_pairs, a_codec, b_codec, data.load_size, skipped=screening.bad),
        PairedFolderDataset(val_pairs, a_codec, b_codec, data.load_size),
    )


def orient(batch: dict[str, torch.Tensor], direction: Direction) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator input, target) from an A/B batch."""
    if direction is Direction.A_TO_B:
        return batch["A"], batch["B"]
    return batch["B"], batch["A"]


__all__ = [
    "BUILTIN", "BadFile", "DatasetError", "PairedAugmentation", "PairedFolderDataset", "TensorPairs", "build_datasets",
    "builtin_pairs", "discover_pairs", "find_pairs", "orient", "screen_pairs", "side_channels",
]
