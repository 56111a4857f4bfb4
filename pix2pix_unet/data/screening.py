"""Screening paired image files before training: every file decoded, every bad one reported with why.

A file is bad when it is empty, is not an image, is cut off or corrupt (PNG
chunks are CRC-checked and every image is fully decoded, which catches garbage
inside a JPEG that its header hides), holds more than 8 bits per channel, is
degenerate (under :data:`MIN_SIDE` px), or has no partner. A pair is bad when
its sides differ in size or when it is smaller than the random crop. Pairs may
differ in size from one another (training crops each). Files are
decoded in a thread pool (Pillow decodes outside the GIL).

By default a dataset with any bad file fails with a report of all of them;
``data.skip_bad`` trains on the other pairs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError
from .folders import PairFiles

MIN_SIDE = 8  # smaller images hold nothing to learn; usually a placeholder or a failed export


@dataclass(frozen=True)
class BadFile:
    """A file that cannot be used, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    mode: str


@dataclass
class Screening:
    """The outcome of :func:`screen_pairs`.

    Attributes:
        good: the usable pairs, in their original order.
        bad: every bad file with its reason (a bad pair is reported once, under one of its files).
        total: pairs checked, counting each file without a partner as one.
    """

    good: list[PairFiles]
    bad: list[BadFile]
    total: int


# The first bytes of the formats we read: a file that starts like one is a damaged image, not another kind of file.
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
              b"BM": "BMP"}


def _signature(path: Path) -> str | None:
    """The format whose signature ``path`` starts with, if any."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    return next((kind for magic, kind in SIGNATURES.items() if head.startswith(magic)), None)


def inspect_image(path: Path) -> ImageInfo | str:
    """Open, integrity-check and fully decode one file; its size and mode, or the reason it is unusable."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError as err:
        return f"cannot read it ({err.strerror})"
    kind = path.suffix.lstrip(".").upper()
    try:
        with Image.open(path) as img:
            kind, mode, (width, height) = img.format or kind, img.mode, img.size
            img.verify()  # PNG: every chunk's CRC, so a cut-off file fails here
        with Image.open(path) as img:
            img.load()  # the full decode: garbage inside a JPEG only shows here
    except UnidentifiedImageError:
        signed = _signature(path)
        if signed:  # e.g. a JPEG cut or overwritten inside its header: Pillow < 13 cannot even identify it
            return f"corrupt {signed} data (it starts like a {signed} file, but its header cannot be decoded)"
        return f"not an image (Pillow recognises no image format in it, whatever its .{path.suffix.lstrip('.')} name)"
    except Exception as err:  # noqa: BLE001 - any decoder failure makes the file unusable; say which
        return f"corrupt or truncated {kind} data ({type(err).__name__}: {err})"
    if min(width, height) < MIN_SIDE:
        return f"{width}x{height} px, too small to learn from (under {MIN_SIDE} px on a side)"
    return ImageInfo(width, height, mode)


def screen_pairs(
    pairs: Sequence[PairFiles],
    unpaired: Sequence[tuple[Path, Path]] = (),
    *,
    crop_size: int | None = None,
    threads: int | None = None,
) -> Screening:
    """Check every file of ``pairs`` and sort the pairs into good and bad.

    Args:
        pairs: the pairs to check.
        unpaired: ``(file, partner pattern)`` from :func:`~.folders.find_pairs`, reported as bad.
        crop_size: pairs smaller than this are bad (pass None when images are resized on load).
        threads: decoding threads (default: the CPU count, at most 16).

    Raises:
        DatasetError: ``crop_size`` is larger than every image that is otherwise fine.
    """
    files = list(dict.fromkeys(p for pair in pairs for p in (pair.a, pair.b) if p is not None))
    with ThreadPoolExecutor(threads or min(16, os.cpu_count() or 1)) as pool:
        info = dict(zip(files, pool.map(inspect_image, files)))
    bad = [BadFile(path, f"no partner: there is no {partner}") for path, partner in unpaired]
    sized: list[tuple[PairFiles, tuple[int, int]]] = []
    under_crop: list[tuple[PairFiles, tuple[int, int]]] = []
    for pair in pairs:
        problems = [BadFile(p, info[p]) for p in (pair.a, pair.b) if p is not None and isinstance(info[p], str)]
        if problems:
            bad += problems
            continue
        a = info[pair.a]
        width, height = a.width, a.height
        if pair.b is None:
            if width % 2:
                bad.append(BadFile(pair.a, f"aligned A|B image {width} px wide: side by side needs an even width"))
                continue
            width //= 2
        elif (info[pair.b].width, info[pair.b].height) != (width, height):
            b = info[pair.b]
            bad.append(BadFile(pair.a, f"pair sizes differ: {width}x{height} px, but its partner {pair.b} is "
                                       f"{b.width}x{b.height}"))
            continue
        if crop_size and min(width, height) < crop_size:
            bad.append(BadFile(pair.a, f"{width}x{height} px, smaller than data.crop_size={crop_size}"))
            under_crop.append((pair, (height, width)))
            continue
        sized.append((pair, (height, width)))
    if under_crop and not sized:  # the crop fits no image at all: the config is wrong, not the files
        (pair, (h, w)), *_ = under_crop
        raise DatasetError(f"data.crop_size={crop_size} is larger than every usable image (e.g. {pair.a} is {w}x{h}): "
                           f"lower data.crop_size, or set data.load_size to resize the images")
    return Screening([pair for pair, _ in sized], bad, len(pairs) + len(unpaired))


def format_report(root: Path, screening: Screening) -> str:
    """Every bad file of ``root`` with its reason, and what to do."""
    total = screening.total
    lines = [f"{len(screening.bad)} bad file(s) in dataset {root} ({total - len(screening.good)} of {total} pairs "
             f"unusable):"]
    lines += [f"  {bad}" for bad in screening.bad]
    if screening.good:
        lines.append(f"Fix or remove them, or pass --skip-bad (data.skip_bad=true) to train on the other "
                     f"{len(screening.good)} pairs.")
    return "\n".join(lines)
