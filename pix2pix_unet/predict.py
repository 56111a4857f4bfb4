"""Run a trained generator on image files: any size, any bit depth, batched, tiled when large.

:func:`predict_files` reads each input with :mod:`pix2pix_unet.io`, groups images
of one size into batches, runs small images whole (the UNet pads and crops) and
large ones by overlap-tile (:mod:`pix2pix_unet.runtime.tiling`). The generator's task,
rebuilt from its export's ``config.json``, decodes each input as training did and
writes each output (:mod:`pix2pix_unet.tasks`):

- ``translate`` / ``restore``: an image in the input's dtype and units (or ``output_dtype``), same name;
- ``segment``: the argmax class ids as an indexed PNG, plus an optional colour overlay.

A file that cannot be read, or whose channels the generator does not take, is
skipped with a warning naming it and counted as failed; the run goes on.
"""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import InferenceConfig
from .codec import Decoded
from .errors import DatasetError
from .io import IMAGE_SUFFIXES, ChannelError, ImageReadError, ImageWriteError, image_shape
from .models import Generator
from .volume_io import ZARR_SUFFIX, is_zarr, open_volume
from .runtime import inference_flags, prepare_generator, run_generator, run_one_volume

if TYPE_CHECKING:
    from .runtime.distributed import Shard
    from .tasks import TaskBase

# --------------------------------------------------------------------------- inputs and devices


@dataclass(frozen=True)
class InputFile:
    """An input image and its path relative to the input root, which its outputs mirror."""

    path: Path
    relative: Path


def _is_image(path: Path) -> bool:
    """An image file, or an OME-Zarr volume (a ``.zarr`` folder, one input)."""
    if path.name.startswith("."):
        return False
    return (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES) or is_zarr(path)


def _inside_zarr(path: Path, root: Path) -> bool:
    return any(part.lower().endswith(ZARR_SUFFIX) for part in path.relative_to(root).parts[:-1])


def _header_shape(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the header: an image's, or an OME-Zarr volume's metadata."""
    if is_zarr(path):
        z, y, x, _ = open_volume(path).shape
        return y, x
    return image_shape(path)


def collect_inputs(spec: str | Path, exclude: Path | None = None) -> list[InputFile]:
    """Every image named by ``spec``: a file, a folder (searched recursively) or a glob pattern.

    Outputs mirror the path below the folder, or below the pattern's fixed
    leading folders (``data/**/*.tif`` mirrors what follows ``data/``). There is
    no cap. Files under ``exclude`` (an output folder inside the input folder)
    are left out, so a second run does not take the first run's outputs as inputs.

    Raises:
        FileNotFoundError: nothing matches ``spec``; names it.
    """
    path = Path(spec)
    if path.is_dir() and not is_zarr(path):
        skip = exclude.resolve() if exclude is not None and exclude.resolve() != path.resolve() else None
        files = sorted(p for p in path.rglob("*") if _is_image(p) and not _inside_zarr(p, path)
                       and not (skip and skip in p.resolve().parents))
        if not files:
            raise FileNotFoundError(f"input folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [InputFile(p, p.relative_to(path)) for p in files]
    if path.is_file() or is_zarr(path):
        return [InputFile(path, Path(path.name))]
    if glob.has_magic(str(spec)):
        prefix = _fixed_prefix(Path(spec).parts)
        root = Path(*prefix) if prefix else Path()
        files = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if _is_image(Path(p)))
        if files:
            return [InputFile(p, p.relative_to(root)) for p in files]
        raise FileNotFoundError(f"no images match the pattern {spec}")
    raise FileNotFoundError(f"input {spec} does not exist")


def _fixed_prefix(parts: tuple[str, ...]) -> list[str]:
    prefix = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        prefix.append(part)
    return prefix


# --------------------------------------------------------------------------- the whole run


@dataclass
class PredictSummary:
    """What a run did: outputs written, inputs skipped because their output exists, inputs that failed,
    and warnings about inputs or outputs that look wrong (each names its file)."""

    written: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def fail(self, path: Path, reason: str) -> None:
        """Count ``path`` as failed and warn now; ``reason`` is kept as a message that names the file."""
        reason = reason if str(path) in reason else f"{path}: {reason}"
        self.failed.append((path, reason))
        tqdm.write(f"warning: {reason} (skipped)", file=sys.stderr)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        tqdm.write(f"warning: {message}", file=sys.stderr)


def _chunks(items: list[InputFile], size: int) -> list[list[InputFile]]:
    return [items[i: i + size] for i in range(0, len(items), size)]


def find_masks(inputs: list[InputFile], mask_dir: Path | None) -> dict[Path, Path]:
    """Each input's hole mask in ``mask_dir``: the same relative path, or else the same file stem, any suffix."""
    if mask_dir is None:
        return {}
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"--mask folder {mask_dir} does not exist")
    by_relative = {p.relative_to(mask_dir).with_suffix(""): p for p in mask_dir.rglob("*") if _is_image(p)}
    by_stem = {p.stem: p for p in by_relative.values()}
    found = {}
    for item in inputs:
        mask = by_relative.get(item.relative.with_suffix("")) or by_stem.get(item.path.stem)
        if mask is not None:
            found[item.path] = mask
    return found


@torch.no_grad()
def predict_files(
    generator: Generator,
    task: "TaskBase",
    inputs: list[InputFile],
    output_dir: Path,
    cfg: InferenceConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    overwrite: bool = False,
    suffix: str | None = None,
    overlay_dir: Path | None = None,
    masks: Path | None = None,
    progress: bool = True,
    shard: "Shard | None" = None,
) -> PredictSummary:
    """Run ``generator`` on every input and write each output under ``output_dir``, mirroring its name.

    The generator's task (:func:`~pix2pix_unet.tasks.task_from_export`) decodes each
    input as training did and writes each output. Existing outputs are kept
    (counted in ``existing``) unless ``overwrite``. Unreadable files, channel
    mismatches, missing hole masks and unwritable outputs are counted in
    ``failed`` with the reason, and the run goes on; inputs far outside the
    training range, and outputs that cannot be right, are warned about by name.

    With ``shard`` (one of several launched processes, :func:`~pix2pix_unet.runtime.distributed.process_shard`)
    every process plans all outputs, so collisions are found as in one process, then runs only its own
    share; the planning's skips and failures are reported by the first process alone.

    Raises:
        FileExistsError: an output would replace one of the inputs (checked before anything runs).
    """
    cfg = cfg or InferenceConfig()
    cfg.validate()
    generator = prepare_generator(generator, cfg, device)
    summary = PredictSummary()
    mask_of = find_masks(inputs, masks)

    # 1. plan: where each output goes; never over an input, never over an old output unless asked
    sources = {item.path.resolve() for item in inputs}
    todo: list[tuple[InputFile, Path]] = []
    claimed: dict[Path, Path] = {}
    for item in inputs:
        path = task.output_path(item.relative, output_dir, suffix)
        if path.resolve() in sources:
            raise FileExistsError(f"refusing to overwrite input {item.path}: choose another --output folder")
        if path in claimed:
            summary.fail(item.path, f"its output {path} would replace the output of {claimed[path]}")
        elif path.exists() and not overwrite:
            summary.existing.append(path)
        else:
            todo.append((item, path))
        claimed.setdefault(path, item.path)
    if shard is not None and shard.count > 1:
        from .runtime.distributed import barrier

        barrier()  # every process planned from the same files before any writes
        todo = shard.take(todo)
        if not shard.main:
            summary = PredictSummary()

    # 2. group by size from the headers, so a batch stacks
    groups: dict[tuple[int, int], list[InputFile]] = {}
    out_paths = {item.path: path for item, path in todo}
    for item, _ in todo:
        try:
            groups.setdefault(_header_shape(item.path), []).append(item)
        except (ImageReadError, DatasetError) as err:
            summary.fail(item.path, str(err))

    # 3. decode (the task's rules), run and write, batch by batch
    # cuDNN autotuning with CUDA; on a CPU malloc keeps freed memory for images, not for volumes
    with inference_flags(device, cfg.keeps_freed_memory(device, task.volumes)):
        bar = tqdm(total=sum(len(g) for g in groups.values()), desc="predict", unit="img", disable=not progress,
                   dynamic_ncols=True)
        for (h, w), items in groups.items():
            batch_size = cfg.batch_size if h * w <= cfg.tile_above_mp * 1e6 else 1
            for chunk in _chunks(items, batch_size):
                decoded: list[tuple[InputFile, Decoded]] = []
                for item in chunk:
                    try:
                        if task.needs_mask and item.path not in mask_of:
                            where = f" in {masks}" if masks else " (pass --mask DIR)"
                            raise DatasetError(f"{item.path} has no hole mask{where}: this generator inpaints and "
                                               "needs a mask of the same name per input (non-zero = hole)")
                        entry = task.decode_input(item.path, mask_of.get(item.path))
                        decoded.append((item, entry))
                        for warning in task.input_warnings(entry):
                            summary.warn(warning)
                    except (DatasetError, ChannelError) as err:
                        summary.fail(item.path, str(err))
                # a header may promise a size its pixels do not have; run those apart
                for same in _same_shape(decoded):
                    for (item, entry), output in zip(same, _run(generator, task, same, cfg, device, progress)):
                        for warning in task.output_warnings(output, entry):
                            summary.warn(warning)
                        try:
                            summary.written += task.encode(output, entry, out_paths[item.path], cfg.output_dtype,
                                                           overlay_dir, item.relative)
                        except (ImageWriteError, OSError) as err:
                            summary.fail(item.path, str(err))
                bar.update(len(chunk))
        bar.close()
    return summary


def _run(generator: Generator, task: "TaskBase", same: list[tuple[InputFile, Decoded]], cfg: InferenceConfig,
         device: torch.device | str, progress: bool) -> Iterator[torch.Tensor | dict[str, np.ndarray]]:
    """The outputs of inputs of one shape, in order: a batch of images; volumes one at a time, each output
    kept whole or, where the task keeps less of it (:meth:`~pix2pix_unet.tasks.TaskBase.volume_reduction`),
    only its maps, so a volume's float output is never held whole."""
    if same[0][1].volume is not None:
        for _, entry in same:
            yield run_one_volume(generator, entry.blocks or entry.tensor, cfg, device, progress,
                                 task.volume_reduction(entry, cfg.output_dtype))
        return
    yield from run_generator(generator, torch.stack([d.tensor for _, d in same]), cfg, device, progress=progress)


def _same_shape(decoded: list[tuple[InputFile, Decoded]]) -> list[list[tuple[InputFile, Decoded]]]:
    groups: dict[tuple[int, ...], list] = {}
    for entry in decoded:
        groups.setdefault(tuple(entry[1].shape), []).append(entry)
    return list(groups.values())


__all__ = ["InputFile", "PredictSummary", "collect_inputs", "find_masks", "predict_files"]
