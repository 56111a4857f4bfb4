"""3D denoising of anisotropic volumes: a 3D UNet (``task=restore generator.dims=3``) against a 3D Gaussian filter
and 3D non-local means, each scored by PSNR and SSIM on held-out volumes, the UNet's from the files
``pix2pix-unet predict`` wrote.

The data is the built-in nuclei volumes without their camera noise (:data:`~pix2pix_unet.data.volumes.CLEAN_NUCLEI`,
16-bit, 2 x 0.5 x 0.5 um voxels, a PSF longer along z), on a background of 2000-3000 counts so that the added noise
is seldom clipped at zero, written as ImageJ hyperstacks:

- ``vols/{train,val}/images``: the clean volumes the UNet trains and validates on (it degrades them itself);
- ``val_noisy/``: the validation volumes degraded once, on which the Gaussian filter's sigma is chosen;
- ``test/clean`` + ``test/noisy``: other volumes (index 5000 on), clean and degraded once, scored.

Every volume is read with the intensity rule ``range`` over [0, 25000] counts (nuclei reach about 0.9 of it) and
degraded on that scale by additive Gaussian noise of a standard deviation drawn in [0.01, 0.05] per volume
(:func:`~pix2pix_unet.data.degrade.degrade`, seeded per volume); training draws from the same range.

Arms:

- ``input``: the noisy volume itself;
- ``gaussian``: :func:`~pix2pix_unet.metrics.classical.gaussian` with the (z, y, x) sigma of a grid that scores
  best on ``val_noisy`` (isotropic in micrometres, or in voxels);
- ``nlm``: :func:`~pix2pix_unet.metrics.classical.nlm` in 3D (3x3x3 patches within 7x7x7, the noise sigma
  estimated per volume), what validation logs as ``psnr_classical``;
- ``unet``: ``train_gan.py --task restore generator.dims=3`` within ``--budget``, then ``pix2pix-unet predict`` on
  ``test/noisy``; the written files are scored.

    OMP_NUM_THREADS=1 python benchmarks/volume_restore.py --out runs/volume_restore --budget 8m

:func:`run_arms` is the entry point for another script (``benchmarks/volumes.py``) to call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pix2pix_unet.config import RestoreConfig
from pix2pix_unet.data.degrade import degrade
from pix2pix_unet.data.nuclei3d import make_nuclei_volume
from pix2pix_unet.data.volumes import CLEAN_NUCLEI
from pix2pix_unet.metrics.classical import gaussian, nlm
from pix2pix_unet.metrics.image import image_scores
from pix2pix_unet.volume_io import read_volume, write_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/volumes.py, beside this script
from volumes import run  # noqa: E402 (a command, timed, its output to a log)

TEST_OFFSET = 5000
SPEC = dataclasses.replace(CLEAN_NUCLEI, background=(2000.0, 3000.0))
PEAK = 25000.0  # counts read as 1 (intensity=range over [0, PEAK])
NOISE = (0.01, 0.05)  # the Gaussian noise's standard deviation on that scale, drawn per volume
ARMS = ("input", "gaussian", "nlm", "unet")
# lateral sigmas in voxels; z gets the same in micrometres (``um``) or in voxels (``vox``)
GAUSSIAN_GRID = [(mode, s) for mode in ("um", "vox") for s in (0.5, 0.75, 1.0, 1.5, 2.0)]
MODEL = ["generator.dims=3", "generator.out_channels=1", "generator.depth=3", "generator.base_channels=16",
         "generator.max_channels=64", "generator.conv_unit=double", "generator.down=maxpool", "generator.up=bilinear",
         "generator.norm=none", "data.crop_size=48", "data.crop_depth=16", "batch_size=2", "plan=false", "--no-wandb"]
RESTORE = ["restore.intensity=range", "restore.intensity_min=0", f"restore.intensity_max={PEAK:g}",
           "restore.gaussian_noise.p=1", f"restore.gaussian_noise.low={NOISE[0]}",
           f"restore.gaussian_noise.high={NOISE[1]}", "restore.poisson_noise.p=0", "restore.gaussian_blur.p=0",
           "restore.jpeg.p=0", "restore.motion_blur.p=0", "restore.downsample.p=0"]


def noise_config() -> RestoreConfig:
    """Additive Gaussian noise alone, on every volume, as the UNet is trained with (:data:`RESTORE`)."""
    cfg = RestoreConfig()
    for name in cfg.degradations():
        setattr(cfg, name, dataclasses.replace(getattr(cfg, name), p=0.0))
    cfg.gaussian_noise = dataclasses.replace(cfg.gaussian_noise, p=1.0, low=NOISE[0], high=NOISE[1])
    return cfg


def to_unit(counts: np.ndarray) -> torch.Tensor:
    """``(Z, Y, X)`` counts -> ``(1, 1, Z, Y, X)`` on the [0, 1] scale of the range rule."""
    return torch.from_numpy(np.clip(counts.astype(np.float32) / PEAK, 0, 1))[None, None]


def to_counts(unit: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint(unit[0, 0].numpy().astype(np.float64) * PEAK), 0, 65535).astype(np.uint16)


def noisy(clean: np.ndarray, seed: int) -> np.ndarray:
    """``clean`` counts with the benchmark's noise, drawn from ``seed``."""
    out, _ = degrade(to_unit(clean), noise_config(), torch.Generator().manual_seed(seed))
    return to_counts(out)


def make_data(root: Path, num_train: int, num_val: int, num_test: int, seed: int = 0) -> None:
    for split, count, offset in (("train", num_train, 0), ("val", num_val, 1_000_000)):
        for i in range(count):
            image, _ = make_nuclei_volume(offset + i, seed, SPEC)
            write_volume(root / "vols" / split / "images" / f"v{i:03d}.tif", image, SPEC.spacing)
            if split == "val":
                write_volume(root / "val_noisy" / f"v{i:03d}.tif", noisy(image, 500 + i), SPEC.spacing)
    for i in range(num_test):
        image, _ = make_nuclei_volume(TEST_OFFSET + i, seed, SPEC)
        write_volume(root / "test" / "clean" / f"t{i:03d}.tif", image, SPEC.spacing)
        write_volume(root / "test" / "noisy" / f"t{i:03d}.tif", noisy(image, 900 + i), SPEC.spacing)


def scores(restored: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """PSNR and SSIM of ``(1, 1, Z, Y, X)`` volumes on the [0, 1] scale (the task's own metrics)."""
    s = image_scores(restored.mul(2).sub(1), clean.mul(2).sub(1))
    return {"psnr": float(s["psnr"][0]), "ssim": float(s["ssim"][0])}


def sigma_of(mode: str, lateral: float) -> tuple[float, float, float]:
    z = lateral * SPEC.spacing[1] / SPEC.spacing[0] if mode == "um" else lateral
    return (z, lateral, lateral)


def choose_gaussian(root: Path) -> tuple[tuple[float, float, float], dict[str, float]]:
    """The grid's (z, y, x) sigma with the best mean PSNR on the noisy validation volumes, and every one's."""
    pairs = [(to_unit(read_volume(p).voxels[..., 0]),
              to_unit(read_volume(root / "vols" / "val" / "images" / p.name).voxels[..., 0]))
             for p in sorted((root / "val_noisy").glob("*.tif"))]
    tried = {}
    for mode, lateral in GAUSSIAN_GRID:
        sigma = sigma_of(mode, lateral)
        tried[f"{mode}:{lateral}"] = float(np.mean([scores(gaussian(x, sigma), y)["psnr"] for x, y in pairs]))
    mode, lateral = max(GAUSSIAN_GRID, key=lambda k: tried[f"{k[0]}:{k[1]}"])
    return sigma_of(mode, lateral), tried


def run_arms(root: Path, arms: list[str], budget: str = "8m") -> dict:
    """Each arm's mean PSNR and SSIM over ``root/test`` (and per volume), its seconds, and what it chose; the
    data must already be written (:func:`make_data`)."""
    tests = sorted((root / "test" / "clean").glob("*.tif"))
    clean = {t.stem: to_unit(read_volume(t).voxels[..., 0]) for t in tests}
    inputs = {t.stem: to_unit(read_volume(root / "test" / "noisy" / t.name).voxels[..., 0]) for t in tests}
    results: dict = {}
    for arm in arms:
        row: dict = {}
        start = time.perf_counter()
        if arm == "input":
            restored = inputs
        elif arm == "gaussian":
            sigma, row["val_psnr_by_sigma"] = choose_gaussian(root)
            row["sigma_zyx_voxels"] = list(sigma)
            restored = {k: gaussian(x, sigma) for k, x in inputs.items()}
        elif arm == "nlm":
            restored = {k: nlm(x) for k, x in inputs.items()}
        else:
            run_dir, out, log = root / "run_unet", root / "pred_unet", root / "unet.log"
            row["train_s"] = run([sys.executable, str(Path(__file__).parent.parent / "train_gan.py"), "--task",
                                  "restore", "--data", str(root / "vols"), "--output-dir", str(run_dir), "--budget",
                                  budget, *MODEL, *RESTORE], log)
            logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
            row["steps"] = max(r["step"] for r in logged if "step" in r)
            row["exported_step"] = json.loads((run_dir / "metrics.json").read_text())["step"]
            predict_start = time.perf_counter()
            run([str(Path(sys.executable).parent / "pix2pix-unet"), "predict", "--checkpoint", str(run_dir),
                 "--input", str(root / "test" / "noisy"), "--output", str(out), "--device", "cpu", "--no-progress",
                 "--overwrite"], log)
            row["predict_s"] = time.perf_counter() - predict_start
            written = {t.stem: read_volume(out / t.name) for t in tests}
            assert all(v.spacing == SPEC.spacing and v.voxels.dtype == np.uint16 for v in written.values())
            restored = {k: to_unit(v.voxels[..., 0]) for k, v in written.items()}
        row["seconds"] = time.perf_counter() - start
        per = {k: scores(restored[k], clean[k]) for k in clean}
        row.update({m: float(np.mean([p[m] for p in per.values()])) for m in ("psnr", "ssim")}, per_volume=per)
        results[arm] = row
        print(f"{arm}: psnr={row['psnr']:.2f} ssim={row['ssim']:.4f} ({row['seconds']:.0f} s)", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/volume_restore"))
    p.add_argument("--arms", nargs="*", default=list(ARMS), choices=ARMS)
    p.add_argument("--budget", default="8m", help="the UNet's training time")
    p.add_argument("--train", type=int, default=16)
    p.add_argument("--val", type=int, default=2)
    p.add_argument("--test", type=int, default=4)
    p.add_argument("--reuse-data", action="store_true", help="keep the data another invocation wrote")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.reuse_data and (args.out / "test").is_dir()):
        make_data(args.out, args.train, args.val, args.test)
    results = run_arms(args.out, args.arms, args.budget)
    where = args.out / "results.json"
    where.write_text(json.dumps({"arms": results, "budget": args.budget, "train": args.train, "val": args.val,
                                 "test": args.test, "shape": list(SPEC.shape), "spacing": list(SPEC.spacing),
                                 "noise": list(NOISE)}, indent=1))
    print(f"wrote {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
