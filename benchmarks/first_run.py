"""The first run on a user's own data: the planned default against today's defaults and the classical tool.

Each job is run as a new user would run it, from files to files: ``train_gan.py`` on the
dataset's ``train/`` folder (which holds out its own validation files), ``pix2pix-unet predict`` on test files the run never saw, and
the files ``predict`` wrote scored by the same code for every arm. The arms:

- **planned**: the README's command for the task with ``--budget B`` (the planner sets the rest);
- **today**: the README's command with ``plan=false`` (the defaults before the planner, 1000 steps);
- **classical**: what a user would otherwise reach for, on the same files.

The jobs, on the real datasets under ``--data-root`` (see ``benchmarks/first_run_data.md``
for where each comes from and how it was split):

============ ======================= ==================================================== ==========================
job          data                    scored                                               classical
============ ======================= ==================================================== ==========================
thin         thin/ (vessels, RGB)    pixel error and structure IoU, inside the FOV mask    random forest on scikit-image's
                                                                                          multiscale pixel features
nuclei       nuclei/ (16-bit)        object F1 at IoU 0.5, foreground IoU                 smoothed Otsu + distance
                                                                                          watershed
denoise      photos/                 PSNR at sigma 15, 25, 50 (and the input's gain over  non-local means (estimated
                                     sigma 2..55)                                         sigma), BM3D when installed
sr           photos/                 PSNR on the luminance (Y of YCbCr), 2-px borders     bicubic
                                     cropped, x2 (antialiased bicubic down, bicubic up)
paired       paired/ (facades)       L1, PSNR, SSIM of the output photos                  none (the reference pix2pix
                                                                                          is not run here)
============ ======================= ==================================================== ==========================

::

    python benchmarks/first_run.py --data-root /path/to/first_run --budgets 5 15 --out runs/first_run
    python benchmarks/first_run.py --report runs/first_run/results.json     # reprint the tables

Budgets are wall-clock minutes of the whole training command on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from restore_vs_classical import bicubic_x2, bm3d_or_none, noisy, to_tensor, to_uint8  # noqa: E402

from pix2pix_unet.cli import main as cli  # noqa: E402
from pix2pix_unet.cli import train_main  # noqa: E402
from pix2pix_unet.data.folders import list_images  # noqa: E402
from pix2pix_unet.io import read_image, read_label_map, write_image  # noqa: E402
from pix2pix_unet.metrics.classical import nlm  # noqa: E402
from pix2pix_unet.metrics.image import image_scores  # noqa: E402
from pix2pix_unet.metrics.instance import instance_scores, match_counts  # noqa: E402

JOBS = ("thin", "nuclei", "denoise", "sr", "paired")
SIGMAS = (15, 25, 50)  # scored against the classical filters
GAIN_SIGMAS = (2, 5, 10, 15, 25, 35, 50, 55)  # the output must beat its input at every one
ONLY = ["restore.gaussian_noise.p=0", "restore.poisson_noise.p=0", "restore.gaussian_blur.p=0",
        "restore.motion_blur.p=0", "restore.jpeg.p=0", "restore.downsample.p=0"]
JOB_KEYS = {  # what the user says about the job in either arm: the task, the channels, the degradation
    "thin": ["--task", "segment", "generator.in_channels=3"],
    "nuclei": ["--task", "segment", "generator.in_channels=1"],
    "denoise": ["--task", "restore", *ONLY, "restore.gaussian_noise.p=1", "restore.gaussian_noise.low=0.0078",
                "restore.gaussian_noise.high=0.2157"],
    "sr": ["--task", "restore", *ONLY, "restore.downsample.p=1", "restore.downsample.low=2",
           "restore.downsample.high=2"],
    "paired": [],
}
TODAY_KEYS = {"nuclei": ["segment.intensity=image"]}  # today's README command for 16-bit images adds it
FOLDER = {"thin": "thin", "nuclei": "nuclei", "denoise": "photos", "sr": "photos", "paired": "paired"}


# --------------------------------------------------------------------------- running the user's commands


def train(job: str, data: Path, run: Path, arm: str, budget_min: float | None, today_steps: int | None) -> float:
    """Train one arm through the real CLI; wall seconds of the whole command."""
    args = ["--data", str(data), "--output-dir", str(run), "--no-wandb", *JOB_KEYS[job]]
    if arm == "planned":
        args += ["--budget", f"{budget_min:g}m"]
    else:
        args += ["plan=false", *TODAY_KEYS.get(job, [])]
        if today_steps is not None:
            args += ["--max-steps", str(today_steps)]
    start = time.perf_counter()
    if train_main(args) != 0:
        raise SystemExit(f"{job}/{arm}: training failed ({' '.join(args)})")
    return time.perf_counter() - start


def predict(run: Path, inputs: Path, out: Path) -> None:
    if cli(["predict", "--checkpoint", str(run), "--input", str(inputs), "--output", str(out), "--device", "cpu",
            "--no-progress"]):
        raise SystemExit(f"predict {run} on {inputs} failed")


def run_info(run: Path) -> dict:
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return {"max_steps": cfg["max_steps"], "crop": cfg["data"]["crop_size"], "depth": cfg["generator"]["depth"],
            "batch": cfg["batch_size"]}


# --------------------------------------------------------------------------- scoring the written files


def semantic_scores(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None) -> dict[str, float]:
    inside = np.ones(truth.shape, bool) if mask is None else mask > 0
    p, t = pred[inside] > 0, truth[inside] > 0
    return {"pixel_error": float(np.mean(p != t)), "iou": float((p & t).sum() / max(1, (p | t).sum())),
            "dice": float(2 * (p & t).sum() / max(1, p.sum() + t.sum()))}


def mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def score_thin(test: Path, predicted: Path) -> dict[str, float]:
    rows = []
    for image in list_images(test / "images"):
        truth = read_label_map(test / "labels" / f"{image.stem}.png")
        fov = test / "fov" / f"{image.stem}.png"
        pred = read_label_map(predicted / f"{image.stem}.png")
        rows.append(semantic_scores(pred, truth, read_label_map(fov) if fov.exists() else None))
    return mean_rows(rows)


def instance_file(folder: Path, stem: str) -> Path:
    return next(p for p in (folder / f"{stem}.tif", folder / f"{stem}.png", folder / f"{stem}.tiff") if p.exists())


def score_nuclei(test: Path, predicted: Path | None, objects: dict[str, np.ndarray] | None = None) -> dict:
    counts, rows = 0, []
    for image in list_images(test / "images"):
        truth = read_image(instance_file(test / "instances", image.stem)).pixels[..., 0].astype(np.int64)
        pred = (objects[image.stem] if objects is not None else
                read_image(instance_file(predicted, f"{image.stem}_instances")).pixels[..., 0].astype(np.int64))
        counts = counts + match_counts(pred, truth)
        rows.append(semantic_scores(pred > 0, truth > 0, None))
    scores = instance_scores(counts)
    return {"object_f1": scores["object_f1"], "ap_50": scores["ap_50"], **mean_rows(rows)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(image_scores(to_tensor(a) * 2 - 1, to_tensor(b) * 2 - 1)["psnr"][0])


def psnr_y(a: np.ndarray, b: np.ndarray, border: int = 2) -> float:
    """PSNR of the luminance (ITU-R BT.601 Y in [16, 235], as the SR papers report), ``border`` px cropped."""
    def y(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        return 16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255
    ya, yb = y(a)[border:-border, border:-border], y(b)[border:-border, border:-border]
    return float(10 * np.log10(255 ** 2 / np.mean((ya - yb) ** 2)))


# --------------------------------------------------------------------------- the classical tools


def random_forest_thin(train: Path, test: Path, out: Path, seed: int = 0) -> float:
    """ilastik's method: a random forest on scikit-image's multiscale pixel features, trained on a sample of
    the training pixels; writes the test label maps; seconds taken."""
    from skimage.feature import multiscale_basic_features
    from sklearn.ensemble import RandomForestClassifier

    start = time.perf_counter()
    rng = np.random.default_rng(seed)

    def features(path: Path) -> np.ndarray:
        pixels = read_image(path).pixels.astype(np.float32) / 255
        return multiscale_basic_features(pixels, channel_axis=-1, sigma_min=1, sigma_max=16)

    xs, ys = [], []
    for image in list_images(train / "images"):
        f = features(image)
        labels = read_label_map(train / "labels" / f"{image.stem}.png")
        pick = rng.choice(labels.size, size=min(labels.size, 20000), replace=False)
        xs.append(f.reshape(-1, f.shape[-1])[pick])
        ys.append(labels.reshape(-1)[pick])
    forest = RandomForestClassifier(n_estimators=100, max_depth=12, n_jobs=-1, random_state=seed)
    forest.fit(np.concatenate(xs), np.concatenate(ys))
    out.mkdir(parents=True, exist_ok=True)
    from pix2pix_unet.io import write_label_map

    for image in list_images(test / "images"):
        f = features(image)
        pred = forest.predict(f.reshape(-1, f.shape[-1])).reshape(f.shape[:2]).astype(np.uint8)
        write_label_map(out / f"{image.stem}.png", pred, 2)
    return time.perf_counter() - start


def otsu_watershed(path: Path, sigma: float = 2.0, min_distance: int = 5) -> np.ndarray:
    """Smoothed Otsu foreground, split by a watershed on the distance transform from its local maxima."""
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    image = gaussian(read_image(path).pixels[..., 0].astype(np.float64), sigma)
    mask = image > threshold_otsu(image)
    distance = ndimage.distance_transform_edt(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=ndimage.label(mask)[0])
    markers = np.zeros(mask.shape, np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-distance, markers, mask=mask)


# --------------------------------------------------------------------------- the jobs


def job_segment(job: str, root: Path, out: Path, arms: list[str], budgets: list[float], today_steps: int | None,
                ) -> dict:
    data, test = root / FOLDER[job] / "train", root / FOLDER[job] / "test"
    result: dict = {}
    score = score_thin if job == "thin" else score_nuclei
    for arm, budget in [(a, b) for a in arms if a == "planned" for b in budgets] + [(a, None) for a in arms
                                                                                   if a == "today"]:
        name = f"{arm}_{budget:g}m" if budget else arm
        run = out / job / name
        seconds = train(job, data, run, arm, budget, today_steps)
        predict(run, test / "images", out / job / f"{name}_pred")
        result[name] = {"train_s": round(seconds, 1), **run_info(run), **score(test, out / job / f"{name}_pred")}
        print(f"{job} {name}: {result[name]}")
    if "classical" in arms:
        if job == "thin":
            seconds = random_forest_thin(data, test, out / job / "classical_pred")
            result["classical"] = {"method": "random forest on multiscale pixel features", "train_s": round(seconds, 1),
                                   **score_thin(test, out / job / "classical_pred")}
        else:
            start = time.perf_counter()
            objects = {p.stem: otsu_watershed(p) for p in list_images(test / "images")}
            result["classical"] = {"method": "Gaussian + Otsu + distance watershed",
                                   "train_s": round(time.perf_counter() - start, 1),
                                   **score_nuclei(test, None, objects)}
        print(f"{job} classical: {result['classical']}")
    return result


def job_denoise(root: Path, out: Path, arms: list[str], budgets: list[float], today_steps: int | None,
                bm3d_sigmas: list[int]) -> dict:
    data, test = root / "photos" / "train", root / "photos" / "test"
    clean = {p.stem: read_image(p).pixels for p in list_images(test)}
    for sigma in GAIN_SIGMAS:  # the noisy test files, seeded per sigma and photo
        for i, (name, image) in enumerate(clean.items()):
            write_image(out / "denoise" / f"noisy{sigma}" / f"{name}.png", noisy(image, sigma, seed=1000 * sigma + i))
    result: dict = {"input": {}}
    for sigma in GAIN_SIGMAS:
        result["input"][sigma] = float(np.mean([psnr(read_image(out / "denoise" / f"noisy{sigma}" / f"{n}.png").pixels,
                                                     c) for n, c in clean.items()]))
    for arm, budget in [(a, b) for a in arms if a == "planned" for b in budgets] + [(a, None) for a in arms
                                                                                   if a == "today"]:
        name = f"{arm}_{budget:g}m" if budget else arm
        run = out / "denoise" / name
        seconds = train("denoise", data, run, arm, budget, today_steps)
        per_sigma = {}
        for sigma in GAIN_SIGMAS:
            pred = out / "denoise" / f"{name}_{sigma}"
            predict(run, out / "denoise" / f"noisy{sigma}", pred)
            per_sigma[sigma] = [psnr(read_image(pred / f"{n}.png").pixels, c) for n, c in clean.items()]
        result[name] = {"train_s": round(seconds, 1), **run_info(run), "psnr": per_sigma}
        print(f"denoise {name}: " + ", ".join(f"s{s}={np.mean(v):.2f}" for s, v in per_sigma.items()))
    if "classical" in arms:
        for method in ("nlm", "bm3d") if bm3d_sigmas else ("nlm",):
            per_sigma = {}
            for sigma in SIGMAS if method == "nlm" else [s for s in SIGMAS if s in bm3d_sigmas]:
                rows = []
                for n, c in clean.items():
                    degraded = read_image(out / "denoise" / f"noisy{sigma}" / f"{n}.png").pixels
                    if method == "nlm":  # the noise level estimated from the image, as a user would run it
                        restored = to_uint8(nlm(to_tensor(degraded), None))
                    else:
                        restored = bm3d_or_none(degraded, sigma)
                    if restored is None:
                        break
                    rows.append(psnr(restored, c))
                if rows:
                    per_sigma[sigma] = rows
            if per_sigma:
                result[method] = {"psnr": per_sigma}
                print(f"denoise {method}: " + ", ".join(f"s{s}={np.mean(v):.2f}" for s, v in per_sigma.items()))
    return result


def job_sr(root: Path, out: Path, arms: list[str], budgets: list[float], today_steps: int | None) -> dict:
    data, test = root / "photos" / "train", root / "photos" / "test"
    clean = {p.stem: read_image(p).pixels for p in list_images(test)}
    for name, image in clean.items():
        write_image(out / "sr" / "bicubic" / f"{name}.png", bicubic_x2(image))
    result: dict = {"convention": "x2: antialiased bicubic down, bicubic up (the input); PSNR of BT.601 Y, "
                                  "2-px borders cropped"}
    if "classical" in arms:
        result["classical"] = {"method": "bicubic", "psnr_y": [
            psnr_y(read_image(out / "sr" / "bicubic" / f"{n}.png").pixels, c) for n, c in clean.items()]}
    for arm, budget in [(a, b) for a in arms if a == "planned" for b in budgets] + [(a, None) for a in arms
                                                                                   if a == "today"]:
        name = f"{arm}_{budget:g}m" if budget else arm
        run = out / "sr" / name
        seconds = train("sr", data, run, arm, budget, today_steps)
        predict(run, out / "sr" / "bicubic", out / "sr" / f"{name}_pred")
        result[name] = {"train_s": round(seconds, 1), **run_info(run), "psnr_y": [
            psnr_y(read_image(out / "sr" / f"{name}_pred" / f"{n}.png").pixels, c) for n, c in clean.items()]}
        print(f"sr {name}: Y-PSNR {np.mean(result[name]['psnr_y']):.2f}")
    return result


def job_paired(root: Path, out: Path, arms: list[str], budgets: list[float], today_steps: int | None) -> dict:
    data, val = root / "paired" / "train", root / "paired" / "val"  # val/ is the test set: never trained on
    result: dict = {}
    for arm, budget in [(a, b) for a in arms if a == "planned" for b in budgets] + [(a, None) for a in arms
                                                                                   if a == "today"]:
        name = f"{arm}_{budget:g}m" if budget else arm
        run = out / "paired" / name
        seconds = train("paired", data, run, arm, budget, today_steps)
        predict(run, val / "A", out / "paired" / f"{name}_pred")
        rows = []
        for a in list_images(val / "A"):
            target = read_image(next((val / "B").glob(f"{a.stem}.*"))).pixels
            pred = read_image(next((out / "paired" / f"{name}_pred").glob(f"{a.stem}.*"))).pixels
            s = image_scores(to_tensor(pred) * 2 - 1, to_tensor(target) * 2 - 1)
            rows.append({k: float(v[0]) for k, v in s.items()})
        result[name] = {"train_s": round(seconds, 1), **run_info(run), **mean_rows(rows)}
        print(f"paired {name}: {result[name]}")
    return result


# --------------------------------------------------------------------------- report


def merge(runs: list[dict]) -> dict:
    """Several results.json (say one per arm, run side by side) as one: each job's arms together."""
    merged: dict = {"jobs": {}}
    for run in runs:
        for job, arms in run.get("jobs", {}).items():
            merged["jobs"].setdefault(job, {}).update(arms)
    return merged


def report(results: dict) -> str:
    lines = []
    for job, res in results.get("jobs", {}).items():
        if not any(isinstance(v, dict) for v in res.values()):
            continue  # nothing measured (paired has no classical arm)
        lines.append(f"\n### {job}\n")
        if job in ("thin", "nuclei", "paired"):
            keys = [k for k in next(v for v in res.values() if isinstance(v, dict)) if k not in ("method",)]
            lines.append("| arm | " + " | ".join(keys) + " |")
            lines.append("|---|" + "---|" * len(keys))
            for arm, row in res.items():
                lines.append(f"| {arm} | " + " | ".join(f"{row.get(k, ''):.4g}" if isinstance(row.get(k), float)
                                                       else str(row.get(k, "")) for k in keys) + " |")
        elif job == "denoise":
            sigmas = list(res["input"])
            lines.append("| arm | " + " | ".join(f"sigma {s}" for s in sigmas) + " | min gain over input | train s |")
            lines.append("|---|" + "---|" * (len(sigmas) + 2))
            lines.append("| input | " + " | ".join(f"{res['input'][s]:.2f}" for s in sigmas) + " | | |")
            for arm, row in res.items():
                if arm == "input":
                    continue
                ps = row["psnr"]
                cells = [f"{np.mean(ps[s]):.2f}" if s in ps else "" for s in sigmas]
                gain = (min(np.mean(ps[s]) - res["input"][s] for s in ps) if set(ps) == set(sigmas) else None)
                lines.append(f"| {arm} | " + " | ".join(cells) + f" | {'' if gain is None else f'{gain:+.2f}'} | "
                             f"{row.get('train_s', '')} |")
        elif job == "sr":
            lines.append(f"{res['convention']}\n")
            lines.append("| arm | Y-PSNR (mean) | min over photos | train s |")
            lines.append("|---|---|---|---|")
            for arm, row in res.items():
                if isinstance(row, dict):
                    lines.append(f"| {arm} | {np.mean(row['psnr_y']):.2f} | {np.min(row['psnr_y']):.2f} | "
                                 f"{row.get('train_s', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, help="the folder holding thin/, nuclei/, photos/, paired/")
    p.add_argument("--out", type=Path, default=Path("runs/first_run"))
    p.add_argument("--budgets", type=float, nargs="+", default=[5.0], help="minutes of the planned arm")
    p.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    p.add_argument("--arms", nargs="+", default=["planned", "today", "classical"],
                   choices=["planned", "today", "classical"])
    p.add_argument("--today-steps", type=int, help="cap today's 1000 default steps (smoke tests only)")
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--bm3d-sigmas", type=int, nargs="+", default=list(SIGMAS),
                   help="the sigmas BM3D runs at (about 10 s a 500-px colour photo on 2 cores)")
    p.add_argument("--threads", type=int, help="torch threads for every arm (default: torch's, all cores); "
                   "--threads 1 runs each arm on one core, so two benchmarks can run side by side")
    p.add_argument("--report", type=Path, nargs="+", help="reprint the tables of results.json files (merged: "
                   "the arms of one job from several runs side by side) and stop")
    args = p.parse_args(argv)
    if args.report is not None:
        print(report(merge([json.loads(path.read_text()) for path in args.report])))
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.data_root is None:
        p.error("--data-root is required (or --report)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {"jobs": {}}
    results.update(threads=torch.get_num_threads(), budgets=args.budgets, data_root=str(args.data_root))
    for job in args.jobs:
        if job in ("thin", "nuclei"):
            res = job_segment(job, args.data_root, args.out, args.arms, args.budgets, args.today_steps)
        elif job == "denoise":
            res = job_denoise(args.data_root, args.out, args.arms, args.budgets, args.today_steps,
                              [] if args.no_bm3d else args.bm3d_sigmas)
        elif job == "sr":
            res = job_sr(args.data_root, args.out, args.arms, args.budgets, args.today_steps)
        else:
            res = job_paired(args.data_root, args.out, args.arms, args.budgets, args.today_steps)
        results["jobs"].setdefault(job, {}).update(res)
        path.write_text(json.dumps(results, indent=2))  # after every job: an interrupted run keeps what it did
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
