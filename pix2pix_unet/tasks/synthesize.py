"""Synthetic training data: a trained label -> image generator turns label maps into new pairs.

``pix2pix-unet synthesize --checkpoint RUN --labels DIR --output OUT --num N [--augment-labels]``
writes ``OUT/images/00000.png`` + ``OUT/labels/00000.png`` (class ids, an indexed PNG), the layout
``task=segment`` reads. Label map ``i % L`` of the ``L`` inputs makes pair ``i``,
so ``N`` may exceed ``L``; with ``--augment-labels`` each map is first flipped,
rotated and deformed (nearest neighbour, so ids stay ids), giving new layouts.
"""

from __future__ import annotations

import math
from pathlib import Path

import kornia.augmentation as K
import torch
from torch import nn

from ..codec import Decoded, decode_class_ids, one_hot
from ..data.folders import DatasetError, list_images
from ..io import write_label_map
from ..models import Generator
from ..training.distributed import Shard, barrier
from . import generator_task
from .translate import TranslateTask


def label_augmentation(sigma: float = 8.0, alpha: float = 3.0) -> nn.Module:
    """Flips, 90-degree rotations, a mild affine and an elastic deformation for ``(B, 1, H, W)`` label
    maps, every resampling nearest-neighbour so class ids stay class ids."""
    kernel = 2 * math.ceil(2.5 * sigma) + 1
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(), K.RandomVerticalFlip(), K.RandomRotation90(times=(0, 3), p=1.0, resample="nearest"),
        K.RandomAffine(degrees=15.0, scale=(0.9, 1.1), padding_mode="reflection", resample="nearest", p=0.75),
        K.RandomElasticTransform(kernel_size=(kernel, kernel), sigma=(sigma, sigma), alpha=(alpha, alpha),
                                 align_corners=False, padding_mode="reflection", resample="nearest", p=0.75),
    )


def label_to_image_task(generator: Generator, checkpoint: Path) -> TranslateTask:
    """The export's task if it is label map -> image, or an error saying what the checkpoint is."""
    meta = getattr(generator, "metadata", None) or {}
    if meta.get("task", "translate") != "translate" or meta.get("label_format") != "index":
        raise DatasetError(
            f"{checkpoint} is not a label -> image generator (its export says task={meta.get('task')!r}, "
            f"label_format={meta.get('label_format')!r}); train one with --task translate labels.format=index"
        )
    return generator_task(generator)


@torch.no_grad()
def synthesize(generator: Generator, task: TranslateTask, label_files: list[Path], output: Path, num: int,
               augment_labels: bool = False, seed: int = 0, device: torch.device | str = "cpu",
               shard: Shard = Shard()) -> list[Path]:
    """Write ``num`` (image, label map) pairs made from ``label_files``; returns the image paths.

    Label maps are read and images written by the generator's task, as ``predict`` does. Pair ``i`` depends on
    ``(seed, i)`` alone, so launched processes that each write their ``shard`` of the pairs write what one
    process writes.

    Args:
        generator: a label -> image generator.
        task: its task (index labels); every label map is checked against its ``num_classes``.
        label_files: class-id label maps (8/16-bit grayscale or palette PNGs).
        output: the dataset folder to write; its ``images/`` and ``labels/`` must not hold images yet.
        num: pairs to write; label map ``i % len(label_files)`` makes pair ``i``.
        augment_labels: deform each map randomly first (seeded by ``seed``), so repeats differ.
        device: where the generator runs.
        shard: this process's share of the pairs (all of them in one process).

    Raises:
        DatasetError: naming the file for a colour label map or a class id >= ``num_classes``.
        FileExistsError: when ``output`` already holds a dataset.
    """
    if not label_files:
        raise DatasetError("no label maps to synthesise from")
    images_dir, labels_dir = output / "images", output / "labels"
    for folder in (images_dir, labels_dir):
        if folder.is_dir() and list_images(folder):
            raise FileExistsError(f"{folder} already holds images; choose another --output folder")
    # 1. read and check every label map before writing anything
    num_classes = task.num_classes
    maps = [decode_class_ids(path, num_classes) for path in label_files]
    barrier()  # every process checked the folders before any writes
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    generator = generator.to(device).eval()
    augment = label_augmentation().to(device)
    written = []
    with torch.random.fork_rng():
        for i in shard.take(range(num)):
            labels = maps[i % len(maps)].to(device)  # (h, w)
            # 2. a new layout: the map deformed by nearest-neighbour resampling
            if augment_labels:
                torch.manual_seed(seed * 1_000_003 + i)  # kornia draws from the global RNG; pair i's own seed
                labels = augment(labels[None, None].float())[0, 0].round().long()
            # 3. one-hot -> image                                          (1, c, h, w)
            image = generator(one_hot(labels, num_classes)[None])
            name = f"{i:05d}.png"
            task.encode(image[0].cpu(), Decoded(image[0], label_files[i % len(maps)]), images_dir / name)
            write_label_map(labels_dir / name, labels.cpu().numpy(), num_classes)
            written.append(images_dir / name)
    return written
