"""Synthetic training data: a trained label -> image generator turns label maps into new pairs.

``pix2pix-unet synthesize --checkpoint RUN --labels DIR --output OUT --num N [--augment-labels | --layouts]``
writes ``OUT/images/00000.png`` + ``OUT/labels/00000.png`` (class ids, an indexed PNG), the layout
``task=segment`` reads. ``DIR`` holds label maps only (images are not needed). Label map
``i % L`` of the ``L`` inputs makes pair ``i``, so ``N`` may exceed ``L``; with
``--augment-labels`` each map is first flipped, rotated and deformed (nearest neighbour,
so ids stay ids); with ``--layouts`` every map is a new scene drawn from a
:class:`~pix2pix_unet.synthesis.layouts.LayoutModel` fitted to the inputs (and their
``instances/`` maps where the folder has them), written with its instance map to
``OUT/instances/``. ``--segmenter SEG`` prints that segmenter's mIoU on the written
pairs (the FCN score, :mod:`~pix2pix_unet.metrics.segmenter`); with
``--min-seg-miou T`` it drops pairs it scores below ``T``, and with ``--confidence`` it
writes ``OUT/confidence/``: per pixel, 255 where it reads the label map's class and its
probability of that class where it does not, which ``task=segment`` takes as loss weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from ..codec import Decoded, decode_class_ids, one_hot
from ..data.folders import DatasetError, list_images
from ..io import write_image, write_label_map
from ..models import Generator
from ..runtime.distributed import Shard, barrier
from ..tasks import generator_task
from .layouts import LayoutModel
from ..tasks.segment import Segmenter
from ..metrics.segmenter import segmenter_score
from ..tasks.translate import TranslateTask


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
    """The export's task if it is 2D label map -> image, or an error saying what the checkpoint is (a 3D one
    makes volumes through ``predict``)."""
    meta = getattr(generator, "metadata", None) or {}
    if meta.get("task", "translate") != "translate" or meta.get("label_format") != "index":
        raise DatasetError(
            f"{checkpoint} is not a label -> image generator (its export says task={meta.get('task')!r}, "
            f"label_format={meta.get('label_format')!r}); train one with --task translate labels.format=index"
        )
    if getattr(generator.config, "dims", 2) == 3:
        raise DatasetError(
            f"{checkpoint} is a 3D label volume -> image volume generator (generator.dims=3), and synthesize draws "
            "2D label maps and pairs; make volumes with `pix2pix-unet predict --checkpoint RUN --input "
            "LABEL_VOLUMES --output OUT` (docs/volumes.md)"
        )
    return generator_task(generator)


def read_instance_maps(label_files: list[Path]) -> list[np.ndarray | None]:
    """The instance map of each label map (``../instances/<name>`` beside its ``labels/`` folder), None where
    there is none."""
    maps = []
    for path in label_files:
        partner = path.parent.parent / "instances" / path.name
        maps.append(decode_class_ids(partner, None, "instance map").numpy() if partner.is_file() else None)
    return maps


FILTER_DRAWS = 4  # draws per pair before the segmenter filter gives up on it


@dataclass
class SynthesisReport:
    """What :func:`synthesize` did: the images written, and the pairs the segmenter filter dropped."""

    written: list[Path]
    dropped: int = 0
    drawn: int = 0


@torch.no_grad()
def synthesize(generator: Generator, task: TranslateTask, label_files: list[Path], output: Path, num: int,
               augment_labels: bool = False, seed: int = 0, device: torch.device | str = "cpu",
               shard: Shard = Shard(), layouts: LayoutModel | None = None, segmenter: Segmenter | None = None,
               min_seg_miou: float = 0.0, confidence: bool = False) -> SynthesisReport:
    """Write ``num`` (image, label map) pairs made from ``label_files``.

    Label maps are read and images written by the generator's task, as ``predict`` does. Pair ``i`` depends on
    ``(seed, i)`` alone, so launched processes that each write their ``shard`` of the pairs write what one
    process writes.

    Args:
        generator: a label -> image generator.
        task: its task (index labels); every label map is checked against its ``num_classes``.
        label_files: class-id label maps (8/16-bit grayscale or palette PNGs); no images are needed.
        output: the dataset folder to write; its ``images/`` and ``labels/`` must not hold images yet.
        num: pairs to write; label map ``i % len(label_files)`` makes pair ``i``.
        augment_labels: deform each map randomly first (seeded by ``(seed, i)``), so repeats differ.
        device: where the generator runs.
        shard: this process's share of the pairs (all of them in one process).
        layouts: draw every label map from this layout model instead (seeded by ``(seed, i)``); their
            instance maps are written to ``output/instances/``.
        segmenter: with ``min_seg_miou > 0``, a draw whose image this segmenter segments with an mIoU below
            ``min_seg_miou`` against its label map is dropped and pair ``i`` drawn again (FreeMask-style
            filtering, per image), up to :data:`FILTER_DRAWS` times; a pair that never passes is not written.
        confidence: write ``output/confidence/`` from ``segmenter`` (per pixel: 1 where it reads the label's
            class, else its probability of that class; 8-bit, 255 = 1), the segment task's loss weights.

    Raises:
        DatasetError: naming the file for a colour label map or a class id >= ``num_classes``.
        FileExistsError: when ``output`` already holds a dataset.
    """
    if not label_files:
        raise DatasetError("no label maps to synthesise from")
    if confidence and segmenter is None:
        raise ValueError("confidence maps need a segmenter (synthesize --confidence --segmenter RUN)")
    images_dir, labels_dir, instances_dir = output / "images", output / "labels", output / "instances"
    confidence_dir = output / "confidence"
    for folder in (images_dir, labels_dir):
        if folder.is_dir() and list_images(folder):
            raise FileExistsError(f"{folder} already holds images; choose another --output folder")
    # 1. read and check every label map before writing anything
    num_classes = task.num_classes
    maps = [decode_class_ids(path, num_classes) for path in label_files]
    barrier()  # every process checked the folders before any writes
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    if layouts is not None:
        instances_dir.mkdir(parents=True, exist_ok=True)
    if confidence:
        confidence_dir.mkdir(parents=True, exist_ok=True)
    generator = generator.to(device).eval()
    augment = label_augmentation().to(device)
    filtering = segmenter is not None and min_seg_miou > 0
    report = SynthesisReport([])
    with torch.random.fork_rng():
        for i in shard.take(range(num)):
            for draw in range(FILTER_DRAWS if filtering else 1):
                source = (i + draw * num) % len(maps)  # a redraw takes another map where there are several
                # 2. the label map: a new layout, or a real one deformed by nearest-neighbour resampling
                instances = None
                if layouts is not None:
                    drawn, instances = layouts.sample(np.random.default_rng([seed, i, draw]))
                    labels = torch.from_numpy(drawn).to(device)
                else:
                    labels = maps[source].to(device)  # (h, w)
                    if augment_labels:
                        # kornia draws from the global RNG: the draw's own seed
                        torch.manual_seed(seed * 1_000_003 + i + draw * num)
                        labels = augment(labels[None, None].float())[0, 0].round().long()
                report.drawn += 1
                # 3. one-hot -> image                                          (1, c, h, w)
                image = generator(one_hot(labels, num_classes)[None])
                # 4. FreeMask-style: drop an image the real-trained segmenter does not read as its label map,
                #    and weigh down the pixels it disagrees with
                if filtering and segmenter_score(segmenter, image, labels[None], device)["miou"] < min_seg_miou:
                    report.dropped += 1
                    continue
                weights = segmenter.agreement(image, labels[None], device)[1][0] if confidence else None
                name = f"{i:05d}.png"
                task.encode(image[0].cpu(), Decoded(image[0], label_files[source]), images_dir / name)
                write_label_map(labels_dir / name, labels.cpu().numpy(), num_classes)
                if instances is not None:
                    write_image(instances_dir / name, instances.astype(np.uint16)[..., None])
                if weights is not None:
                    write_image(confidence_dir / name, weights.mul(255).round().byte().numpy()[..., None])
                report.written.append(images_dir / name)
                break
    return report
