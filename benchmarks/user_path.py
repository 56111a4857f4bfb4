"""The user's path on real-like microscopy, from files to files: train, predict, evaluate, score what was written.

Writes dim 16-bit gray fluorescence-like tiles of mixed sizes (touching nuclei,
Poisson-like noise, values using well under 1 % of the 16-bit range), trains
``--task segment generator.in_channels=1 segment.intensity=image`` through the
real CLI. The tiles have instance maps, so instance mode is on and its thresholds are
tuned on half the validation tiles; every figure below comes from the other half, the
``report`` files of the run's ``split.json``, which nothing was tuned on:

1. the run's final figures, ``metrics.json``;
2. ``pix2pix-unet evaluate --split val``, which leaves out the files the model
   trained or was tuned on by itself;
3. ``pix2pix-unet predict`` on the validation images, the label maps it *wrote*
   scored against the ground truth (foreground IoU, pixel accuracy);
4. the classical baseline a user would otherwise use on the same files:
   Gaussian smoothing + Otsu threshold (scikit-image).

All four must tell the same story; the script prints them side by side::

    python benchmarks/user_path.py --steps 400 --out runs/user_path
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pix2pix_unet.cli import main as cli  # noqa: E402
from pix2pix_unet.cli import train_main  # noqa: E402
from pix2pix_unet.io import read_image, read_label_map, write_image, write_label_map  # noqa: E402


def nuclei_tile(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A dim 16-bit tile of touching, elliptical nuclei and its instance map."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    instances = np.zeros((h, w), np.uint16)
    signal = np.zeros((h, w), np.float32)
    n = int(rng.integers(8, 16) * h * w / (128 * 128))
    for i in range(1, n + 1):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(6, 12), rng.uniform(6, 12)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
        inside = u**2 + v**2 <= 1
        instances[inside & (instances == 0)] = i  # earlier nuclei stay on top: touching, not merged
        signal[inside] = np.maximum(signal[inside], rng.uniform(0.6, 1.0) * (1.2 - 0.4 * (u**2 + v**2)[inside]))
    background = 180.0 + 20 * np.sin(xx / w * 3) * np.cos(yy / h * 2)  # uneven illumination
    expected = background + 160.0 * signal  # about 0.1 % .. 0.6 % of the 16-bit range
    image = rng.poisson(expected).astype(np.float32) + rng.normal(0, 4, (h, w))
    return np.clip(image, 0, 65535).astype(np.uint16), instances


def write_split(root: Path, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    names = []
    for i in range(count):
        h, w = int(rng.integers(96, 161)), int(rng.integers(96, 161))
        image, instances = nuclei_tile(rng, h, w)
        name = f"tile_{seed}_{i:03d}"
        write_image(root / "images" / f"{name}.tif", image)
        write_label_map(root / "labels" / f"{name}.png", (instances > 0).astype(np.int64), 2)
        write_image(root / "instances" / f"{name}.png", instances)
        names.append(name)
    return names


def foreground_scores(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """(true positives, false positives, false negatives, correct pixels) of foreground = class > 0."""
    p, t = pred > 0, truth > 0
    return int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum()), int((p == t).sum())


def summarise(counts: list[tuple[int, int, int, int]], pixels: int) -> dict[str, float]:
    tp, fp, fn, ok = (sum(c[i] for c in counts) for i in range(4))
    return {"foreground_iou": tp / max(1, tp + fp + fn), "pixel_acc": ok / pixels}


def otsu_baseline(path: Path) -> np.ndarray:
    from skimage.filters import gaussian, threshold_otsu

    image = read_image(path).pixels[..., 0].astype(np.float32)
    smooth = gaussian(image, sigma=1.5, preserve_range=True)
    return (smooth > threshold_otsu(smooth)).astype(np.int64)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/user_path"))
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--train", type=int, default=24)
    p.add_argument("--val", type=int, default=8)
    args = p.parse_args()
    data, run = args.out / "data", args.out / "run"
    if data.exists() or run.exists():
        print(f"error: {args.out} already holds a run; choose another --out", file=sys.stderr)
        return 2
    write_split(data / "train", args.train, seed=1)
    names = write_split(data / "val", args.val, seed=2)
    raw = read_image(data / "val" / "images" / f"{names[0]}.tif").pixels
    print(f"data: {args.train} train + {args.val} val tiles of 96-160 px, 16-bit gray; e.g. {names[0]} holds "
          f"{raw.min()}..{raw.max()} ({100 * (int(raw.max()) - int(raw.min())) / 65535:.2f} % of the range)")

    t0 = time.perf_counter()
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps",
                       str(args.steps), "--no-wandb", "generator.in_channels=1", "segment.intensity=image",
                       f"sample_every={args.steps}", f"checkpoint_every={args.steps}", "log_every=50"]) == 0
    train_s = time.perf_counter() - t0
    final = json.loads((run / "metrics.json").read_text())  # the export's weights on the report files
    val = final["metrics"]
    report = [Path(e["image"]).stem for e in json.loads((run / "split.json").read_text())["report"]]
    assert sorted(report) == sorted(Path(r["name"]).stem for r in final["per_image"])

    assert cli(["evaluate", "--checkpoint", str(run), "--data", str(data), "--split", "val", "--inputs", "images",
                "--targets", "labels", "--output", str(args.out / "eval"), "--no-progress"]) == 0
    evaluated = json.loads((args.out / "eval" / "metrics.json").read_text())
    assert sorted(Path(r["name"]).stem for r in evaluated["per_image"]) == sorted(report)  # the same files
    evaluated = evaluated["metrics"]

    assert cli(["predict", "--checkpoint", str(run), "--input", str(data / "val" / "images"), "--output",
                str(args.out / "pred"), "--no-progress"]) == 0
    written, baseline, pixels = [], [], 0
    for name in report:
        truth = read_label_map(data / "val" / "labels" / f"{name}.png")
        written.append(foreground_scores(read_label_map(args.out / "pred" / f"{name}.png"), truth))
        baseline.append(foreground_scores(otsu_baseline(data / "val" / "images" / f"{name}.tif"), truth))
        pixels += truth.size
    pred_scores, otsu_scores = summarise(written, pixels), summarise(baseline, pixels)

    print(f"\ntrained {args.steps} steps in {train_s:.0f} s; scored {final['source']} ({', '.join(report)})")
    print(f"{'':38s} {'foreground IoU':>15s} {'pixel acc':>10s} {'mIoU':>8s}")
    label = "the run's final figures (metrics.json)"
    print(f"{label:38s} {val['iou_1']:15.4f} {val['pixel_acc']:10.4f} {val['miou']:8.4f}")
    print(f"{'pix2pix-unet evaluate --split val':38s} {evaluated['iou_1']:15.4f} {evaluated['pixel_acc']:10.4f} "
          f"{evaluated['miou']:8.4f}")
    print(f"{'predict, files written, scored':38s} {pred_scores['foreground_iou']:15.4f} "
          f"{pred_scores['pixel_acc']:10.4f}")
    print(f"{'Gaussian + Otsu (scikit-image)':38s} {otsu_scores['foreground_iou']:15.4f} "
          f"{otsu_scores['pixel_acc']:10.4f}")
    result = {"steps": args.steps, "train_s": train_s, "files": report, "source": final["source"], "final": val,
              "evaluate": evaluated, "predict_files": pred_scores, "otsu": otsu_scores}
    (args.out / "user_path.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
