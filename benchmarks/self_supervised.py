"""Denoising with no clean image, against the classical filters, on real photos noised with fixed seeds.

Every method sees only the noisy 8-bit PNG, never sigma (but BM3D, given the true sigma as the reference):

- **input**: doing nothing;
- **blur**: a Gaussian blur of 1 px;
- **nlm**: non-local means with sigma estimated from the image (scikit-image);
- **bm3d**: CBM3D with the true sigma, when the ``bm3d`` package is installed;
- **zeroshot**: ``pix2pix-unet denoise --zero-shot`` (ZS-N2N fitted to each image on its own), run through the CLI
  on the folder of noisy files; its written files are scored;
- **n2n** (``--n2n-budget 15m``): ``train_gan.py --task restore restore.self_supervised=neighbor2neighbor`` on
  the other photos of ``DATA/photos/train`` noised the same way (the folder a user would have: noisy files only),
  within that budget, then ``pix2pix-unet predict`` on the noisy test files;
- **supervised** (``--supervised RUN``): ``pix2pix-unet predict`` with a restore model trained on clean images.

Noise: Gaussian sigma in ``--sigmas`` (/255), Poisson-Gaussian (``--poisson``: 30 photons at full scale + sigma 5),
and as a negative control spatially correlated noise (``--correlated``: white noise blurred by 1 px, rescaled to
sigma 25), where zero-shot methods must fail and warn.

16-bit microscopy (``--microscopy PHOTONS``): BBBC039's fluorescence nuclei (``DATA/nuclei``, 16-bit TIFFs), read
as the clean signal and noised Poisson-Gaussian in the camera's units: ``PHOTONS`` photons at the image's 99.9th
percentile plus a read noise of 2 photons, written as 16-bit TIFFs. The test images are scored, the training
images are the n2n arm's noisy folder. PSNR and SSIM are on the clean image's min..max scale; NLM and BM3D see
the noisy image scaled by its own min..max, with sigma estimated (no method is told the noise).

The photos: ``--tune`` runs on the tuning set (scikit-image's astronaut, chelsea, coffee, rocket: the zero-shot
settings were chosen on these); without it on McMaster18 (the figures). Both come from ``DATA/photos`` as
``benchmarks/first_run_data.md`` describes::

    python benchmarks/self_supervised.py --data-root DATA --out runs/selfsup --sigmas 5 10 15 25 50 --correlated
    python benchmarks/self_supervised.py --data-root DATA --out runs/selfsup_tune --tune --sigmas 25

It prints PSNR/SSIM per method and sigma (the mean, and the worst image's margin over NLM) and the CPU seconds
per image, and writes ``results.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity
from skimage.restoration import denoise_nl_means, estimate_sigma

sys.path.insert(0, str(Path(__file__).parent))
from restore_vs_classical import bm3d_or_none, to_tensor, to_uint8  # noqa: E402

from pix2pix_unet.cli import main as cli  # noqa: E402
from pix2pix_unet.cli import train_main  # noqa: E402
from pix2pix_unet.io import read_image, write_image  # noqa: E402
from pix2pix_unet.metrics.classical import nlm  # noqa: E402
from pix2pix_unet.metrics.image import image_scores  # noqa: E402

TUNE = ("skimage_astronaut", "skimage_chelsea", "skimage_coffee", "skimage_rocket")


def photos(root: Path, tune: bool, limit: int | None) -> dict[str, np.ndarray]:
    files = ([root / "photos" / "train" / f"{n}.png" for n in TUNE] if tune
             else sorted((root / "photos" / "test").glob("*.png")))
    files = files[:limit] if limit else files
    return {f.stem: read_image(f).pixels[..., :3] for f in files}


def degrade(clean: np.ndarray, kind: str, sigma: int, seed: int) -> np.ndarray:
    """8-bit noisy photo: ``gauss`` (sigma/255), ``poisson`` (30 photons at full scale, + Gaussian 5/255) or
    ``correlated`` (white noise blurred by 1 px and rescaled to sigma/255)."""
    rng = np.random.default_rng(seed)
    x = clean / 255.0
    if kind == "gauss":
        y = x + rng.normal(0, sigma / 255, x.shape)
    elif kind == "poisson":
        y = rng.poisson(x * 30) / 30 + rng.normal(0, 5 / 255, x.shape)
    else:
        n = gaussian_filter(rng.normal(0, 1, x.shape), (1, 1, 0))
        y = x + n * (sigma / 255) / n.std()
    return (np.clip(y, 0, 1) * 255).round().astype(np.uint8)


def score(out: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    if clean.dtype == np.uint16:
        return score16(out, clean)
    s = image_scores(to_tensor(out) * 2 - 1, to_tensor(clean) * 2 - 1)
    return float(s["psnr"][0]), float(s["ssim"][0])


def microscopy(root: Path, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """BBBC039's 16-bit nuclei images of ``split`` (test: scored; train: the n2n arm's noisy folder)."""
    files = sorted((root / "nuclei" / split / "images").glob("*.tif"))
    files = files[:limit] if limit else files
    return {f.stem: read_image(f).pixels for f in files}


def degrade16(clean: np.ndarray, photons: int, seed: int) -> np.ndarray:
    """Poisson-Gaussian noise in the camera's units: ``photons`` at the 99.9th percentile, read noise 2 photons."""
    rng = np.random.default_rng(seed)
    gain = photons / float(np.percentile(clean, 99.9))  # photons per grey value
    y = rng.poisson(clean * gain) / gain + rng.normal(0, 2 / gain, clean.shape)
    return np.clip(y, 0, 65535).round().astype(np.uint16)


def score16(out: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """PSNR/SSIM with both images on the clean image's min..max scale."""
    lo, hi = float(clean.min()), float(clean.max())
    a, b = (out.astype(np.float64) - lo) / (hi - lo), (clean.astype(np.float64) - lo) / (hi - lo)
    psnr = float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))
    return psnr, float(structural_similarity(a[..., 0], b[..., 0], data_range=1.0))


def filter16(noisy: np.ndarray, method: str) -> np.ndarray:
    """``nlm`` or ``bm3d`` (sigma estimated) of a 16-bit image, scaled by its own min..max and back."""
    lo, hi = float(noisy.min()), float(noisy.max())
    x = (noisy[..., 0].astype(np.float64) - lo) / (hi - lo)
    sigma = max(float(estimate_sigma(x)), 1e-4)
    if method == "nlm":
        y = denoise_nl_means(x, patch_size=5, patch_distance=6, h=0.8 * sigma, sigma=sigma, fast_mode=True)
    else:
        import bm3d
        y = bm3d.bm3d(x, sigma_psd=sigma)
    return np.clip(y * (hi - lo) + lo, 0, 65535).round().astype(np.uint16)[..., None]


def written(folder: Path, stem: str) -> np.ndarray:
    """The pixels a CLI command wrote for ``stem`` (PNG for PNG inputs, TIFF for TIFF inputs)."""
    (path,) = [f for f in folder.iterdir() if f.stem == stem and f.suffix != ".json"]
    return read_image(path).pixels


def train_n2n(args: argparse.Namespace, folder: Path, kind: str, sigma: int, scored: set[str]) -> tuple[Path, float]:
    """Neighbor2Neighbor trained through the CLI on the training photos other than the scored ones, noised as the
    case is (seeds of their own), within ``args.n2n_budget``; returns the run and its wall seconds."""
    if kind == "microscopy":
        for i, (name, image) in enumerate(microscopy(args.data_root, "train").items()):
            write_image(folder / "n2n_data" / f"{name}.tif", degrade16(image, sigma, seed=1000 + i))
    else:
        train = {f.stem: read_image(f).pixels[..., :3]
                 for f in sorted((args.data_root / "photos" / "train").glob("*.png"))
                 if f.stem not in scored and (not args.tune or f.stem not in TUNE)}
        for i, (name, image) in enumerate(train.items()):
            write_image(folder / "n2n_data" / f"{name}.png", degrade(image, kind, sigma, seed=1000 + i))
    run = folder / "n2n_run"
    start = time.perf_counter()
    code = train_main(["--task", "restore", "--data", str(folder / "n2n_data"), "--output-dir", str(run),
                       "--no-wandb", "--budget", args.n2n_budget, f"restore.self_supervised={args.n2n_mode}",
                       *shlex.split(args.n2n_keys)])
    if code != 0:
        raise SystemExit(f"the n2n arm's training failed ({code})")
    return run, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/selfsup"))
    p.add_argument("--sigmas", type=int, nargs="*", default=None, help="Gaussian sigmas /255 (default 25, or none "
                   "with --microscopy)")
    p.add_argument("--poisson", action="store_true")
    p.add_argument("--correlated", action="store_true")
    p.add_argument("--microscopy", type=int, nargs="*", default=[], metavar="PHOTONS",
                   help="16-bit BBBC039 nuclei with Poisson-Gaussian noise of this many photons at the 99.9th "
                   "percentile (the photos' cases are then run only when --sigmas etc. are given too)")
    p.add_argument("--tune", action="store_true", help="the tuning photos instead of McMaster18")
    p.add_argument("--limit", type=int, help="the first N photos only")
    p.add_argument("--methods", nargs="*", default=["input", "blur", "nlm", "bm3d", "zeroshot"])
    p.add_argument("--supervised", type=Path, help="a restore run (trained on clean images) to predict with too")
    p.add_argument("--n2n-budget", help="train Neighbor2Neighbor on the noisy training photos within this budget")
    p.add_argument("--n2n-run", type=Path, help="a self-supervised run already trained by this benchmark (its "
                   "n2n_run folder) to predict with, in place of training one")
    p.add_argument("--predict-flags", default="", metavar="FLAGS",
                   help="extra flags for the n2n and supervised arms' predict, quoted: --predict-flags='--tta'")
    p.add_argument("--n2n-keys", default="", help="extra train overrides for the n2n arm, quoted")
    p.add_argument("--n2n-mode", default="neighbor2neighbor", choices=["neighbor2neighbor", "blind_spot"],
                   help="restore.self_supervised of the n2n arm")
    p.add_argument("--zs", default="", metavar="FLAGS", help="extra flags for denoise, quoted: --zs='--crop 0'")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sigmas = args.sigmas if args.sigmas is not None else ([] if args.microscopy else [25])
    photo_cases = [("gauss", s) for s in sigmas] + ([("poisson", 0)] if args.poisson else []) \
        + ([("correlated", 25)] if args.correlated else [])
    cases = photo_cases + [("microscopy", n) for n in args.microscopy]
    results: dict = {"cases": {}}
    if photo_cases:
        results["photos"] = sorted(photos(args.data_root, args.tune, args.limit))
    for kind, sigma in cases:
        if kind == "microscopy":
            name, suffix = f"microscopy{sigma}", ".tif"
            clean = microscopy(args.data_root, "test", args.limit)
            noisy = {k: degrade16(v, sigma, seed=i) for i, (k, v) in enumerate(sorted(clean.items()))}
            results["microscopy"] = sorted(clean)
        else:
            name, suffix = (kind if kind != "gauss" else f"sigma{sigma}"), ".png"
            clean = photos(args.data_root, args.tune, args.limit)
            noisy = {k: degrade(v, kind, sigma, seed=i) for i, (k, v) in enumerate(sorted(clean.items()))}
        folder = args.out / name
        for k, v in noisy.items():
            write_image(folder / "noisy" / f"{k}{suffix}", v)
        rows: dict[str, dict] = {}
        n2n = ["n2n"] if args.n2n_budget or args.n2n_run else []
        for method in args.methods + (["supervised"] if args.supervised else []) + n2n:
            per, seconds, extra = {}, {}, {}
            if method == "zeroshot":
                cli(["denoise", "--zero-shot", str(folder / "noisy"), "--output", str(folder / "zeroshot"),
                     "--overwrite", *shlex.split(args.zs)])
                report = {Path(r["input"]).stem: r for r in
                          json.loads((folder / "zeroshot" / "denoise.json").read_text())}
                for k in noisy:
                    per[k] = score(written(folder / "zeroshot", k), clean[k])
                    seconds[k] = report[k]["seconds"]
                extra = {"warned_correlated": sum(int(r["correlated"]) for r in report.values()),
                         "sigma_ratio": float(np.mean([r["sigma_ratio"] for r in report.values()])),
                         "residual_correlation": float(np.mean([r["residual_correlation"] for r in report.values()]))}
            elif method in ("supervised", "n2n"):
                run = args.supervised
                if method == "n2n" and args.n2n_run:
                    run = args.n2n_run
                elif method == "n2n":
                    run, train_s = train_n2n(args, folder, kind, sigma, set(clean))
                    extra = {"train_s": train_s}
                start = time.perf_counter()
                cli(["predict", "--checkpoint", str(run), "--input", str(folder / "noisy"), "--output",
                     str(folder / method), "--device", "cpu", "--overwrite", "--no-progress",
                     *shlex.split(args.predict_flags)])
                for k in noisy:
                    per[k] = score(written(folder / method, k), clean[k])
                    seconds[k] = (time.perf_counter() - start) / len(noisy)
            else:
                for k, v in noisy.items():
                    start = time.perf_counter()
                    if method == "input":
                        out = v
                    elif kind == "microscopy" and method == "blur":
                        out = gaussian_filter(v.astype(np.float64), (1, 1, 0)).round().astype(np.uint16)
                    elif kind == "microscopy":
                        if method == "bm3d" and importlib.util.find_spec("bm3d") is None:
                            break
                        out = filter16(v, method)
                    elif method == "blur":
                        out = (gaussian_filter(v / 255.0, (1, 1, 0)).clip(0, 1) * 255).round().astype(np.uint8)
                    elif method == "nlm":
                        out = to_uint8(nlm(to_tensor(v)))
                    else:
                        out = bm3d_or_none(v, sigma if kind != "poisson" else 13)
                        if out is None:
                            break
                    seconds[k] = time.perf_counter() - start
                    per[k] = score(out, clean[k])
            if not per:
                continue
            rows[method] = {"psnr": float(np.mean([v[0] for v in per.values()])),
                            "ssim": float(np.mean([v[1] for v in per.values()])),
                            "seconds": float(np.mean(list(seconds.values()))), "per_image": per, **extra}
        if "nlm" in rows:
            for row in rows.values():
                row["min_over_nlm"] = min(row["per_image"][k][0] - rows["nlm"]["per_image"][k][0] for k in noisy)
        results["cases"][name] = rows
        print(f"\n{name} ({len(noisy)} photos)")
        print("| method | PSNR | SSIM | worst margin over NLM (dB) | s / image |\n|---|---|---|---|---|")
        for method, row in rows.items():
            print(f"| {method} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row.get('min_over_nlm', float('nan')):+.2f} "
                  f"| {row['seconds']:.1f} |" + (f" warned correlated on {row['warned_correlated']}"
                                                 if "warned_correlated" in row else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
