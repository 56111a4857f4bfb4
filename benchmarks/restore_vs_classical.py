"""Learned restoration against the classical filters, on photos the model never saw, from files to files.

scikit-image's bundled colour photos (offline) are split by file:

- train: astronaut, immunohistochemistry, hubble_deep_field, retina (4 photos, 512 to 1411 px a side);
- validation (training's own, by file): rocket;
- test, never seen in training: chelsea, coffee, and camera (gray, as 3 equal channels).

(The gray photos are left out of colour training: with 8 gray photos beside 4
colour ones, a first run learned that colour is noise and desaturated the test
photos.) With ``--channels 1`` every photo is converted to gray and the gray
photos join the training set: astronaut, immunohistochemistry, hubble_deep_field,
retina, coins, brick, grass, gravel, moon, page, text, clock (12 photos of 8
sizes), with the same validation and test photos.

For each job the script trains through the real CLI (``train_gan.py --task
restore``), writes the degraded test photos as 8-bit PNGs (seeded), runs
``pix2pix-unet predict`` on them and scores the files it *wrote*, beside the
classical restorers run on the same files:

- denoising: one blind model (sigma drawn in [5, 55] / 255 per sample), scored at
  sigma = 15, 25, 50 against non-local means and BM3D (CBM3D), both given the
  true sigma;
- x2 super-resolution: bicubic down x2 then bicubic back up (the restore task's
  ``downsample``), against that bicubic input.

PSNR (dB) and SSIM per test photo, with the scorer validation uses
(:func:`pix2pix_unet.metrics.image.image_scores`)::

    python benchmarks/restore_vs_classical.py --out runs/restore_bench \\
        --denoise-steps 5000 --sr-steps 2800

BM3D needs ``pip install bm3d``; without it that column is left out.
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

from pix2pix_unet.cli import main as cli  # noqa: E402
from pix2pix_unet.cli import train_main  # noqa: E402
from pix2pix_unet.io import read_image, write_image  # noqa: E402
from pix2pix_unet.metrics.classical import nlm  # noqa: E402
from pix2pix_unet.data.degrade import downsample  # noqa: E402
from pix2pix_unet.metrics.image import image_scores  # noqa: E402

TRAIN = ["astronaut", "immunohistochemistry", "hubble_deep_field", "retina"]
GRAY_TRAIN = TRAIN + ["coins", "brick", "grass", "gravel", "moon", "page", "text", "clock"]
VAL = ["rocket"]
TEST = ["chelsea", "coffee", "camera"]
SIGMAS = (15, 25, 50)


def photo(name: str, size: int | None = None, channels: int = 3) -> np.ndarray:
    """A scikit-image photo as (H, W, channels) uint8; ``size`` crops its centre to at most that many pixels
    a side. Gray photos become 3 equal channels, colour ones gray by luma (scikit-image's rgb2gray)."""
    import skimage.color
    import skimage.data

    image = getattr(skimage.data, name)()
    if channels == 1:
        gray = image if image.ndim == 2 else (skimage.color.rgb2gray(image[..., :3]) * 255).round().astype(np.uint8)
        image = gray[..., None]
    else:
        image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]
    if size:
        h, w = image.shape[:2]
        top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
        image = image[top: top + size, left: left + size]
    return np.ascontiguousarray(image)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 -> (1, C, H, W) in [0, 1]."""
    image = image[..., None] if image.ndim == 2 else image
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def scores(restored: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """PSNR, SSIM of two uint8 images, with validation's scorer."""
    s = image_scores(to_tensor(restored) * 2 - 1, to_tensor(clean) * 2 - 1)
    return float(s["psnr"][0]), float(s["ssim"][0])


def write_photos(root: Path, size: int | None, channels: int) -> None:
    for split, names in (("train", TRAIN if channels == 3 else GRAY_TRAIN), ("val", VAL), ("test", TEST)):
        for name in names:
            write_image(root / split / f"{name}.png", photo(name, size, channels))


def noisy(clean: np.ndarray, sigma: int, seed: int) -> np.ndarray:
    """Gaussian noise of ``sigma`` / 255, clipped and rounded to 8 bits, as a user's noisy photo would be."""
    rng = np.random.default_rng(seed)
    return (np.clip(clean / 255 + rng.normal(0, sigma / 255, clean.shape), 0, 1) * 255).round().astype(np.uint8)


def bicubic_x2(clean: np.ndarray) -> np.ndarray:
    """Down x2 (antialiased bicubic) and back up (bicubic): the task's ``downsample`` at factor 2."""
    return to_uint8(downsample(to_tensor(clean), torch.tensor([2.0])))


def bm3d_or_none(image: np.ndarray, sigma: int) -> np.ndarray | None:
    try:
        import bm3d
    except ImportError:
        return None
    if image.shape[-1] == 3:
        out = bm3d.bm3d_rgb(image / 255, sigma_psd=sigma / 255)
    else:
        out = bm3d.bm3d(image[..., 0] / 255, sigma_psd=sigma / 255)[..., None]
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8).reshape(image.shape)


def train(data: Path, run: Path, steps: int, preset: str | None, overrides: list[str], batch_size: int) -> float:
    args = ["--task", "restore", "--data", str(data), "--output-dir", str(run), "--max-steps", str(steps),
            "--batch-size", str(batch_size), "--no-wandb", "sample_every=100000", f"checkpoint_every={steps}",
            "log_every=50", "data.crop_size=64", *overrides]
    if preset:
        args += ["--preset", preset]
    start = time.perf_counter()
    if train_main(args) != 0:
        raise SystemExit(f"training {run} failed")
    return time.perf_counter() - start


def predict(run: Path, inputs: Path, out: Path) -> None:
    if cli(["predict", "--checkpoint", str(run), "--input", str(inputs), "--output", str(out), "--device", "cpu"]):
        raise SystemExit(f"predict {run} on {inputs} failed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/restore_bench"))
    p.add_argument("--denoise-steps", type=int, default=5000)
    p.add_argument("--sr-steps", type=int, default=2800)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--preset", default=None, help="generator preset (default: restore's own, nafnet)")
    p.add_argument("--jobs", default="denoise,sr", help="denoise, sr or both")
    p.add_argument("--sigmas", default=",".join(map(str, SIGMAS)))
    p.add_argument("--size", type=int, default=None, help="centre-crop every photo to this size (quick runs)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3, help="colour (3) or gray (1) photos")
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("overrides", nargs="*", help="extra config overrides for both trainings")
    args = p.parse_args(argv)
    jobs = args.jobs.split(",")
    sigmas = [int(s) for s in args.sigmas.split(",")]
    root = args.out / "photos"
    write_photos(root, args.size, args.channels)
    clean = {name: read_image(root / "test" / f"{name}.png").pixels for name in TEST}
    result: dict = {"test": TEST, "train": TRAIN if args.channels == 3 else GRAY_TRAIN, "val": VAL,
                    "channels": args.channels, "threads": torch.get_num_threads()}
    only = [f"generator.in_channels={args.channels}", f"generator.out_channels={args.channels}","restore.gaussian_noise.p=0", "restore.poisson_noise.p=0", "restore.gaussian_blur.p=0",
            "restore.motion_blur.p=0", "restore.jpeg.p=0", "restore.downsample.p=0"]

    if "denoise" in jobs:
        run = args.out / "denoise"
        seconds = train(root, run, args.denoise_steps, args.preset, only + [
            "restore.gaussian_noise.p=1", "restore.gaussian_noise.low=0.0196", "restore.gaussian_noise.high=0.2157",
            *args.overrides], args.batch_size)
        result["denoise"] = {"steps": args.denoise_steps, "train_s": round(seconds, 1), "sigmas": {}}
        print(f"\ndenoise: trained {args.denoise_steps} steps in {seconds / 60:.1f} min "
              f"({torch.get_num_threads()} threads)")
        for sigma in sigmas:
            inputs, outputs = args.out / f"noisy{sigma}", args.out / f"denoised{sigma}"
            for i, (name, image) in enumerate(clean.items()):
                write_image(inputs / f"{name}.png", noisy(image, sigma, seed=1000 * sigma + i))
            predict(run, inputs, outputs)
            rows = {}
            for name, image in clean.items():
                degraded = read_image(inputs / f"{name}.png").pixels
                row = {"noisy": scores(degraded, image)}
                row["nlm"] = scores(to_uint8(nlm(to_tensor(degraded), sigma / 255)), image)
                bm3d = None if args.no_bm3d else bm3d_or_none(degraded, sigma)
                if bm3d is not None:
                    row["bm3d"] = scores(bm3d, image)
                row["ours"] = scores(read_image(outputs / f"{name}.png").pixels, image)
                rows[name] = row
            result["denoise"]["sigmas"][sigma] = rows
            print_table(f"sigma = {sigma}", rows)

    if "sr" in jobs:
        run = args.out / "sr"
        seconds = train(root, run, args.sr_steps, args.preset, only + [
            "restore.downsample.p=1", "restore.downsample.low=2", "restore.downsample.high=2", *args.overrides],
            args.batch_size)
        result["sr"] = {"steps": args.sr_steps, "train_s": round(seconds, 1)}
        print(f"\nx2 super-resolution: trained {args.sr_steps} steps in {seconds / 60:.1f} min")
        inputs, outputs = args.out / "bicubic_x2", args.out / "sr_x2"
        for name, image in clean.items():
            write_image(inputs / f"{name}.png", bicubic_x2(image))
        predict(run, inputs, outputs)
        rows = {name: {"bicubic": scores(read_image(inputs / f"{name}.png").pixels, image),
                       "ours": scores(read_image(outputs / f"{name}.png").pixels, image)} for name, image in clean.items()}
        result["sr"]["rows"] = rows
        print_table("x2 super-resolution", rows)

    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def print_table(title: str, rows: dict[str, dict[str, tuple[float, float]]]) -> None:
    """One markdown row per photo: PSNR / SSIM of each method, and ours minus NLM (where run) and minus the best
    classical method, in dB."""
    methods = list(next(iter(rows.values())))
    gaps = (["nlm"] if "nlm" in methods else []) + ["best classical"]
    print(f"\n{title}: PSNR dB / SSIM")
    print(f"| photo | {' | '.join(methods)} | {' | '.join(f'ours - {g}' for g in gaps)} |")
    print(f"|---|{'---|' * (len(methods) + len(gaps))}")
    for name, row in rows.items():
        classical = max(v[0] for k, v in row.items() if k not in ("ours", "noisy"))
        cells = " | ".join(f"{row[m][0]:.2f} / {row[m][1]:.3f}" for m in methods)
        diffs = [row["ours"][0] - (row["nlm"][0] if g == "nlm" else classical) for g in gaps]
        print(f"| {name} | {cells} | {' | '.join(f'{d:+.2f}' for d in diffs)} |")


if __name__ == "__main__":
    raise SystemExit(main())
