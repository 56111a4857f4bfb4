"""Score a trained generator on a folder of pairs and write ``metrics.json`` plus a report of examples.

The task in the export's ``config.json`` reads the files and scores them with
the same function training validation uses (``task.evaluate``), so the numbers
agree: L1, PSNR and SSIM for ``translate`` and ``restore`` (``restore`` also scores
the degraded input, so the gain shows), and pixel accuracy, per-class and mean
IoU, Dice and (with instance maps) object F1 for ``segment``. ``report.html`` shows the metrics and the worst examples as
input | output | target rows; ``report.png`` is the same rows as one picture.

Which files: an export carries its run's ``split.json`` (:mod:`~pix2pix_unet.data.split`), so
:func:`select_files` leaves out, by default, the files of the folder that trained the model or were used to tune
it (segment's instance thresholds), and says so; asked to score them too, it warns, naming how many.
"""

from __future__ import annotations

import base64
import html
import io as stdio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .config import InferenceConfig
from .data.split import BUILTIN, ExampleSubset, roles_of
from .errors import DatasetError
from .runtime import inference_flags, prepare_generator
from .io import ImageFile, display_rgb8, from_tensor
from .models import Generator
from .tasks import TaskBase

def split_folder(data: Path, split: str | None) -> Path:
    """``data/split`` if given, else the first of ``test/`` and ``val/`` that exists, else ``data``."""
    if split:
        return data / split
    return next((data / s for s in ("test", "val") if (data / s).is_dir()), data)


# --------------------------------------------------------------------------- which files


@dataclass
class FileSelection:
    """The examples to score, why those (``message``), a ``warning`` when some trained or tuned the model, and
    what ``metrics.json`` records about them (``info``)."""

    dataset: Dataset
    message: str
    warning: str | None
    info: dict[str, Any]


def _names(dataset: Dataset, indices: list[int], folder: Path, limit: int = 8) -> str:
    files = dataset.example_files()
    names = []
    for i in indices[:limit]:
        first = next(iter(files[i].values()))
        try:
            names.append(Path(first).resolve().relative_to(folder.resolve()).as_posix())
        except ValueError:
            names.append(str(first))
    return ", ".join(names) + (f", ... ({len(indices) - limit} more)" if len(indices) > limit else "")


def select_files(dataset: Dataset, record: dict[str, Any] | None, folder: Path, all_files: bool = False
                 ) -> FileSelection:
    """The examples of ``dataset`` (read from ``folder``) to score, given the ``split.json`` of the model's run.

    By default the files the run trained on or tuned on (``split.json``: ``train``, ``tune``) are left out;
    ``all_files`` keeps them, with a warning naming how many. Files the record does not know (another folder,
    the built-in data, no record) are all scored.

    Raises:
        DatasetError: every example trained or tuned the model, and ``all_files`` is off.
    """
    count = len(dataset)
    if record is None:
        return FileSelection(dataset, f"scoring all {_files(count)} of {folder}: the export has no split.json, so "
                             "which files trained it is not known", None, {"files": "all", "split": None})
    if record.get("data") == BUILTIN:
        return FileSelection(dataset, f"scoring all {_files(count)} of {folder}: the model trained on the built-in "
                             "data (split.json)", None, {"files": "all", "split": BUILTIN})
    roles = roles_of(record, dataset.example_files())
    trained = [i for i, r in enumerate(roles) if r == "train"]
    tuned = [i for i, r in enumerate(roles) if r == "tune"]
    held_out = [i for i, r in enumerate(roles) if r not in ("train", "tune")]
    info = {"split": record.get("data"), "trained_on": len(trained), "tuned_on": len(tuned)}
    what = record.get("tuned") or "its settings"
    if not trained and not tuned:
        return FileSelection(dataset, f"scoring all {_files(count)} of {folder}: none trained or tuned this model "
                             "(split.json)", None, {**info, "files": "all", "scored": count})
    used = " and ".join([f"{_files(len(trained))} that trained this model"] * bool(trained)
                        + [f"{_files(len(tuned))} used to tune {what}"] * bool(tuned))
    if all_files:
        parts = ([f"{len(trained)} of {count} files were used to train this model: {_names(dataset, trained, folder)}"]
                 if trained else [])
        parts += ([f"{len(tuned)} of {count} were used to tune {what}: {_names(dataset, tuned, folder)}"]
                  if tuned else [])
        warning = "warning: " + "; ".join(parts) + ". The figures on them are optimistic."
        return FileSelection(dataset, f"scoring all {_files(count)} of {folder} (--all-files), {used} among them "
                             "(split.json)", warning, {**info, "files": "all", "scored": count})
    if not held_out:
        raise DatasetError(f"all {_files(count)} of {folder} were used to train or tune this model ({used}; its "
                           "split.json): score held-out files, or pass --all-files to score these anyway")
    message = (f"scoring the {_files(len(held_out))} of {folder} held out from this model "
               f"({_names(dataset, held_out, folder)}); left out: {used} (split.json; --all-files scores them too)")
    return FileSelection(ExampleSubset(dataset, held_out), message, None,
                         {**info, "files": "held-out", "scored": len(held_out)})


def _files(count: int) -> str:
    return f"{count} file{'s' if count != 1 else ''}"


# --------------------------------------------------------------------------- the run


@dataclass
class Example:
    """One scored example, kept for the report: pictures as (H, W, 3) uint8."""

    name: str
    score: float
    pictures: list[np.ndarray]


def _picture(tensor: torch.Tensor) -> np.ndarray:
    return display_rgb8(ImageFile(from_tensor(tensor, np.uint8)))


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    json_path: Path
    html_path: Path
    png_path: Path | None
    failed: list[tuple[str, str]]


@torch.no_grad()
def evaluate_dataset(
    generator: Generator,
    task: TaskBase,
    dataset: Dataset,
    out_dir: Path,
    cfg: InferenceConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    num_examples: int = 8,
    info: dict[str, Any] | None = None,
) -> EvalResult:
    """Score ``generator`` on ``dataset`` with its task's own validation metrics, and write
    ``metrics.json``, ``report.html`` and ``report.png``.

    ``dataset`` comes from ``task.eval_dataset`` (files read as validation reads
    them); the scores come from ``task.evaluate``, the very function training
    validation calls. Examples that cannot be read are skipped with a warning and
    listed under ``failed`` in the JSON. The report shows the ``num_examples`` worst.
    """
    cfg = cfg or InferenceConfig()
    generator = prepare_generator(generator, cfg, device)
    meter = task.meter(dataset)
    examples: list[Example] = []
    failed: list[tuple[str, str]] = []

    def keep_worst(name: str, row: dict[str, float], pictures: list[torch.Tensor]) -> None:
        examples.append(Example(name, row[meter.key], [_picture(p) for p in pictures]))
        examples.sort(key=lambda e: e.score, reverse=not meter.higher_is_better)
        del examples[num_examples:]

    # cuDNN autotuning with CUDA; on a CPU malloc keeps freed memory for images, not for volumes
    with inference_flags(device, cfg.keeps_freed_memory(device, task.volumes)):
        result = task.evaluate(generator, dataset, device, cfg, on_example=keep_worst, failed=failed, report=True)
    for source, reason in failed:
        tqdm.write(f"warning: {reason} (skipped)", file=sys.stderr)
    warnings = result.warnings  # outputs that cannot be right, named by the task's meter
    for warning in warnings:
        tqdm.write(f"warning: {warning}", file=sys.stderr)
    metrics = {"task": task.kind.value, "count": len(result.rows), **result.metrics}
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**(info or {}), "metrics": metrics, "per_image": result.rows,
               "failed": [{"file": p, "reason": r} for p, r in failed], "warnings": warnings}
    json_path = out_dir / "metrics.json"
    json_path.write_text(json.dumps(payload, indent=2))
    png_path = write_png_report(out_dir / "report.png", examples) if examples else None
    html_path = write_html_report(out_dir / "report.html", metrics, examples, meter.key, info or {}, failed,
                                  task.display_names)
    return EvalResult(metrics, json_path, html_path, png_path, failed)


# --------------------------------------------------------------------------- reports


def _row_height(examples: list[Example], low: int = 128, high: int = 192) -> int:
    """Small images are enlarged (nearest neighbour) to ``low`` px, large ones shrunk to ``high``."""
    return min(high, max(low, max(p.shape[0] for e in examples for p in e.pictures)))


def _resized(picture: np.ndarray, height: int) -> Image.Image:
    img = Image.fromarray(picture)
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.NEAREST if height >= img.height else Image.LANCZOS)


def write_png_report(path: Path, examples: list[Example], gap: int = 4) -> Path:
    """One row per example, its pictures (``input | output | target``, and what the task adds) at a common
    height."""
    height = _row_height(examples)
    rows = [[_resized(p, height) for p in e.pictures] for e in examples]
    width = max(sum(i.width for i in row) + gap * (len(row) + 1) for row in rows)
    canvas = Image.new("RGB", (width, len(rows) * (height + gap) + gap), "white")
    for r, row in enumerate(rows):
        x = gap
        for img in row:
            canvas.paste(img, (x, gap + r * (height + gap)))
            x += img.width + gap
    canvas.save(path)
    return path


def _data_uri(picture: np.ndarray, height: int) -> str:
    buffer = stdio.BytesIO()
    _resized(picture, height).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_html_report(path: Path, metrics: dict[str, Any], examples: list[Example], key: str,
                      info: dict[str, Any], failed: list[tuple[Path, str]],
                      columns: tuple[str, ...] = ("input", "output", "target")) -> Path:
    """A single self-contained HTML page: the metrics, then the worst examples (images embedded)."""
    esc = html.escape

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}"
        if isinstance(value, list):
            return ", ".join("–" if v is None else f"{v:.3f}" for v in value)
        return esc(str(value))

    meta_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in info.items())
    metric_rows = "".join(f"<tr><th>{esc(k)}</th><td>{fmt(v)}</td></tr>" for k, v in metrics.items())
    height = _row_height(examples) if examples else 0
    example_rows = "".join(
        f"<tr><td>{esc(e.name)}<br>{esc(key)} = {e.score:.4f}</td>"
        + "".join(f'<td><img src="{_data_uri(p, height)}"></td>' for p in e.pictures) + "</tr>"
        for e in examples
    )
    failed_rows = "".join(f"<li>{esc(str(p))}: {esc(r)}</li>" for p, r in failed)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>pix2pix-unet evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}} img{{image-rendering:pixelated}}</style>
</head><body>
<h1>Evaluation</h1>
<table>{meta_rows}</table>
<h2>Metrics</h2>
<table>{metric_rows}</table>
<h2>Worst {len(examples)} examples by {esc(key)}</h2>
<table><tr><th>file</th>{"".join(f"<th>{esc(c)}</th>" for c in columns)}</tr>{example_rows}</table>
{f"<h2>Skipped files ({len(failed)})</h2><ul>{failed_rows}</ul>" if failed else ""}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["EvalResult", "FileSelection", "evaluate_dataset", "select_files", "split_folder", "write_html_report",
           "write_png_report"]
