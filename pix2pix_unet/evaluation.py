"""Score a trained generator on a folder of pairs and write ``metrics.json`` plus a report of examples.

The task in the export's ``config.json`` picks the metrics: PSNR and SSIM
(kornia.metrics, on images mapped to [0, 1]) for ``translate`` and ``restore``
(``restore`` also scores the degraded input, so the gain shows), and pixel
accuracy, per-class IoU and Dice (from one confusion matrix over the whole set)
for ``segment``. ``report.html`` shows the metrics and the worst examples as
input | output | target rows; ``report.png`` is the same rows as one picture.
"""

from __future__ import annotations

import base64
import html
import io as stdio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import kornia.metrics
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .config import InferenceConfig
from .data.folders import DatasetError
from .io import (
    ChannelError, ImageFile, ImageReadError, display_rgb8, from_tensor, palette, read_image, read_label_map,
    to_tensor,
)
from .inference import generator_task, prepare_generator, run_generator
from .models import UNet

# --------------------------------------------------------------------------- metrics (pure functions)


def image_scores(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR (dB) and SSIM (11-px Gaussian window) of ``(B, C, H, W)`` images in [-1, 1].

    Returns:
        ``{"psnr": (B,), "ssim": (B,)}``.
    """
    a, b = output.float().clamp(-1, 1).add(1).div(2), target.float().clamp(-1, 1).add(1).div(2)
    psnr = torch.stack([kornia.metrics.psnr(x, y, max_val=1.0) for x, y in zip(a, b)])
    ssim = kornia.metrics.ssim(a, b, window_size=11, max_val=1.0).flatten(1).mean(1)
    return {"psnr": psnr, "ssim": ssim}


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, K)`` counts, rows the target class and columns the predicted one, of ``(H, W)`` class ids."""
    return kornia.metrics.confusion_matrix(pred.flatten()[None], target.flatten()[None], num_classes)[0].long()


def segmentation_scores(matrix: torch.Tensor) -> dict[str, Any]:
    """Pixel accuracy, per-class IoU and Dice, and their means, from a confusion matrix.

    Classes absent from both the targets and the predictions have no IoU (``None``)
    and are left out of the means.
    """
    m = matrix.double()
    tp = m.diag()
    fp, fn = m.sum(0) - tp, m.sum(1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), torch.nan)
    dice = torch.where(present, 2 * tp / (2 * tp + fp + fn).clamp_min(1), torch.nan)

    def listed(values: torch.Tensor) -> list[float | None]:
        return [None if v != v else float(v) for v in values.tolist()]

    return {
        "pixel_accuracy": float(tp.sum() / m.sum().clamp_min(1)),
        "mean_iou": float(iou[present].mean()) if present.any() else None,
        "mean_dice": float(dice[present].mean()) if present.any() else None,
        "iou": listed(iou),
        "dice": listed(dice),
    }


# --------------------------------------------------------------------------- pairs on disk


@dataclass(frozen=True)
class EvalPair:
    """One input file and its target; ``target`` is None for aligned (input|target side by side) images."""

    input: Path
    target: Path | None
    name: str


def find_pairs(root: Path, inputs: str | None, targets: str | None, direction: str = "AtoB") -> list[EvalPair]:
    """Pairs in ``root``: ``inputs/`` and ``targets/`` sub-folders matched by file stem, else aligned images.

    ``inputs`` and ``targets`` default to ``A`` and ``B`` (swapped for ``BtoA``).

    Raises:
        DatasetError: a folder is missing or empty, or files lack partners; names them.
    """
    from .io import IMAGE_SUFFIXES

    in_name, tgt_name = ("A", "B") if direction == "AtoB" else ("B", "A")
    in_dir, tgt_dir = root / (inputs or in_name), root / (targets or tgt_name)

    def images(folder: Path) -> dict[str, Path]:
        return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}

    if in_dir.is_dir() or tgt_dir.is_dir():
        for folder in (in_dir, tgt_dir):
            if not folder.is_dir():
                raise DatasetError(f"evaluation needs both {in_dir} and {tgt_dir}; {folder} does not exist")
        a, b = images(in_dir), images(tgt_dir)
        missing = sorted(set(a) ^ set(b))
        if missing:
            raise DatasetError(f"{len(missing)} file(s) have no partner in {in_dir} or {tgt_dir}, e.g. {missing[:5]}")
        pairs = [EvalPair(a[k], b[k], a[k].name) for k in sorted(a)]
    elif root.is_dir():
        if inputs or targets:
            raise DatasetError(f"{root} has no {in_dir.name}/ or {tgt_dir.name}/ folder")
        pairs = [EvalPair(p, None, p.name) for p in images(root).values()]
    else:
        raise DatasetError(f"evaluation data folder {root} does not exist")
    if not pairs:
        raise DatasetError(f"no image pairs in {root}")
    return pairs


def split_folder(data: Path, split: str | None) -> Path:
    """``data/split`` if given, else the first of ``test/`` and ``val/`` that exists, else ``data``."""
    if split:
        return data / split
    return next((data / s for s in ("test", "val") if (data / s).is_dir()), data)


# --------------------------------------------------------------------------- per task


@dataclass
class Example:
    """One scored example, kept for the report: pictures as (H, W, 3) uint8."""

    name: str
    score: float
    pictures: list[np.ndarray]


def _picture(tensor: torch.Tensor) -> np.ndarray:
    return display_rgb8(ImageFile(from_tensor(tensor, np.uint8)))


class TaskEvaluator(Protocol):
    """Scores one example at a time, then summarises the set."""

    key: str  # the per-image metric examples are ranked by
    higher_is_better: bool

    def target(self, path: Path, pixels: ImageFile | None) -> Any: ...

    def score(self, output: torch.Tensor, inputs: torch.Tensor, target: Any) -> dict[str, float]: ...

    def pictures(self, inputs: torch.Tensor, output: torch.Tensor, target: Any) -> list[np.ndarray]: ...

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]: ...


@dataclass
class ImageEvaluator:
    """PSNR/SSIM of the output against the target (and of the input too, for ``restore``)."""

    out_channels: int
    baseline: bool = False
    key: str = "psnr"
    higher_is_better: bool = True

    def target(self, path: Path, pixels: ImageFile | None) -> torch.Tensor:
        return to_tensor(pixels or read_image(path), self.out_channels, path)

    def score(self, output: torch.Tensor, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        row = {k: float(v[0]) for k, v in image_scores(output[None], target[None]).items()}
        if self.baseline and inputs.shape == target.shape:
            row |= {f"input_{k}": float(v[0]) for k, v in image_scores(inputs[None], target[None]).items()}
        return row

    def pictures(self, inputs: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> list[np.ndarray]:
        return [_picture(inputs), _picture(output), _picture(target)]

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        keys = [k for k in rows[0] if k != "name"] if rows else []
        return {f"mean_{k}": float(np.mean([r[k] for r in rows if k in r])) for k in keys}


@dataclass
class SegmentationEvaluator:
    """IoU and Dice of the argmax class ids against a label map, accumulated over the set."""

    num_classes: int
    key: str = "iou"
    higher_is_better: bool = True
    matrix: torch.Tensor | None = field(default=None, repr=False)

    def target(self, path: Path, pixels: ImageFile | None) -> torch.Tensor:
        if pixels is None:
            labels = torch.from_numpy(read_label_map(path))
        elif pixels.shape[2] == 1 and pixels.dtype.kind == "u":
            labels = torch.from_numpy(pixels.pixels[..., 0].astype(np.int64))
        else:
            raise DatasetError(f"{path}: the target half has {pixels.shape[2]} channel(s); expected class ids")
        if int(labels.max()) >= self.num_classes:
            raise DatasetError(f"label map {path} holds class id {int(labels.max())}; the generator has "
                               f"{self.num_classes} classes (0..{self.num_classes - 1})")
        return labels

    def score(self, output: torch.Tensor, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        matrix = confusion(output.argmax(0), target, self.num_classes)
        self.matrix = matrix if self.matrix is None else self.matrix + matrix
        scores = segmentation_scores(matrix)
        return {"iou": scores["mean_iou"] or 0.0, "dice": scores["mean_dice"] or 0.0,
                "pixel_accuracy": scores["pixel_accuracy"]}

    def pictures(self, inputs: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> list[np.ndarray]:
        colours = palette(self.num_classes)
        return [_picture(inputs), colours[output.argmax(0).numpy()], colours[target.numpy()]]

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if self.matrix is None:
            return {}
        return segmentation_scores(self.matrix)


EVALUATORS: dict[str, Callable[[UNet, int], TaskEvaluator]] = {
    "translate": lambda g, k: ImageEvaluator(g.config.out_channels),
    "restore": lambda g, k: ImageEvaluator(g.config.out_channels, baseline=True),
    "segment": lambda g, k: SegmentationEvaluator(k),
}


# --------------------------------------------------------------------------- the run


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    json_path: Path
    html_path: Path
    png_path: Path | None
    failed: list[tuple[Path, str]]


def _load_pair(pair: EvalPair, generator: UNet, evaluator: TaskEvaluator) -> tuple[ImageFile, torch.Tensor, Any]:
    image = read_image(pair.input)
    if pair.target is None:  # aligned: input | target side by side
        half = image.shape[1] // 2
        left, right = ImageFile(image.pixels[:, :half], image.alpha), ImageFile(image.pixels[:, half:], image.alpha)
        return left, to_tensor(left, generator.config.in_channels, pair.input), evaluator.target(pair.input, right)
    target = evaluator.target(pair.target, None)
    inputs = to_tensor(image, generator.config.in_channels, pair.input)
    if tuple(target.shape[-2:]) != tuple(inputs.shape[-2:]):
        raise DatasetError(f"pair sizes differ: {pair.input} is {inputs.shape[-1]}x{inputs.shape[-2]} but "
                           f"{pair.target} is {target.shape[-1]}x{target.shape[-2]}")
    return image, inputs, target


@torch.no_grad()
def evaluate_pairs(
    generator: UNet,
    pairs: list[EvalPair],
    out_dir: Path,
    cfg: InferenceConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    num_examples: int = 8,
    progress: bool = True,
    info: dict[str, Any] | None = None,
) -> EvalResult:
    """Run ``generator`` on every pair, score it, and write ``metrics.json``, ``report.html`` and ``report.png``.

    Pairs that cannot be read are skipped with a warning and listed under
    ``failed`` in the JSON. The report shows the ``num_examples`` worst examples.
    """
    cfg = cfg or InferenceConfig()
    task, num_classes = generator_task(generator)
    if task not in EVALUATORS:
        raise ValueError(f"the generator's config.json names task {task!r}; known tasks: {sorted(EVALUATORS)}")
    evaluator = EVALUATORS[task](generator, num_classes)
    generator = prepare_generator(generator, cfg, device)
    rows: list[dict[str, Any]] = []
    examples: list[Example] = []
    failed: list[tuple[Path, str]] = []
    for pair in tqdm(pairs, desc="evaluate", unit="img", disable=not progress, dynamic_ncols=True):
        try:
            _, inputs, target = _load_pair(pair, generator, evaluator)
        except (ImageReadError, ChannelError, DatasetError) as err:
            failed.append((pair.input, str(err)))
            tqdm.write(f"warning: {err} (skipped)", file=sys.stderr)
            continue
        output = run_generator(generator, inputs[None], cfg, device)[0]
        row = {"name": pair.name, **evaluator.score(output, inputs, target)}
        rows.append(row)
        examples.append(Example(pair.name, row[evaluator.key], evaluator.pictures(inputs, output, target)))
        # keep only the worst few pictures in memory
        examples.sort(key=lambda e: e.score, reverse=not evaluator.higher_is_better)
        del examples[num_examples:]

    metrics = {"task": task, "count": len(rows), **evaluator.summary(rows)}
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**(info or {}), "metrics": metrics, "per_image": rows,
               "failed": [{"file": str(p), "reason": r} for p, r in failed]}
    json_path = out_dir / "metrics.json"
    json_path.write_text(json.dumps(payload, indent=2))
    png_path = write_png_report(out_dir / "report.png", examples) if examples else None
    html_path = write_html_report(out_dir / "report.html", metrics, examples, evaluator.key, info or {}, failed)
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
    """One row per example, ``input | output | target``, each scaled to a common height."""
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
                      info: dict[str, Any], failed: list[tuple[Path, str]]) -> Path:
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
<table><tr><th>file</th><th>input</th><th>output</th><th>target</th></tr>{example_rows}</table>
{f"<h2>Skipped files ({len(failed)})</h2><ul>{failed_rows}</ul>" if failed else ""}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


__all__ = [
    "EVALUATORS", "EvalPair", "EvalResult", "confusion", "evaluate_pairs", "find_pairs", "image_scores",
    "segmentation_scores", "split_folder", "write_html_report", "write_png_report",
]
