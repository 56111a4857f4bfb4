"""Unpaired translation on sets whose ground truth the model never sees, against the tools a user would use.

Two sets, built offline, each written as ``trainA/ trainB/ testA/ testB/`` folders (the layout users have):

- **stain**: scikit-image's immunohistochemistry image (IHC, haematoxylin + DAB), unmixed with ``rgb2hed`` and
  re-rendered with a perturbed stain matrix: domain B is the re-rendered image. A is cut from the top-left
  384 x 256 px of the original, B from the top-right 384 x 256 px of the re-rendered one (64-px tiles, stride
  32), so no place is seen in both domains. The bottom 128 rows are held out: their original tiles are testA,
  and the hidden truth is the same tiles re-rendered. Scored: PSNR/SSIM against that truth, and FID/KID against
  testB (re-rendered tiles of the training region). Baselines: the unchanged input, and Reinhard and Macenko
  stain normalisation (``torchstain``, fitted to the B training region), when installed.
- **nuclei**: fluorescence-like A (the built-in 16-bit nuclei, scaled to 8 bits: bright nuclei on dark) and
  brightfield-like B (other layouts rendered as dark purple nuclei on a light background). The translated test
  images are thresholded (Otsu; nuclei are the dark side) and scored by mask IoU against the true nuclei: an
  inverted translation scores near 0. Baseline: the inverted input's threshold (what a user would do by hand).

Each mode (``--modes cyclegan cut fastcut``) trains through ``train_gan.py --task unpaired`` within ``--budget``
and predicts with ``pix2pix-unet predict``; the written files are scored. ``--probe`` measures, per mode, the
seconds per training step and the peak memory (RSS) at 256 x 256, batch 1, each in a fresh process.

    python benchmarks/unpaired.py --out runs/unpaired --sets stain nuclei --budget 5m --threads 1
    python benchmarks/unpaired.py --out runs/unpaired_probe --probe --threads 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata
from skimage.color import combine_stains, rgb2gray, rgb_from_hed, rgb2hed
from skimage.filters import threshold_otsu
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pix2pix_unet.cli import main as cli
from pix2pix_unet.cli import train_main
from pix2pix_unet.data.nuclei import make_nuclei
from pix2pix_unet.io import read_image, write_image

TILE, STRIDE, TEST_ROWS = 64, 32, 128
# the perturbed stain matrix: haematoxylin bluer, DAB redder (rows: H, E, DAB colours in optical density)
PERTURBED = np.array([[0.45, 0.60, 0.66], [0.07, 0.99, 0.11], [0.40, 0.70, 0.59]])


def tiles(image: np.ndarray, size: int, stride: int) -> list[np.ndarray]:
    h, w = image.shape[:2]
    return [image[y: y + size, x: x + size] for y in range(0, h - size + 1, stride)
            for x in range(0, w - size + 1, stride)]


def to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def make_stain(root: Path) -> dict:
    """The stain-shift folders; returns the hidden truth of each scored tile and the B training region.

    The held-out bottom rows are split in two: their left half (testA, 64-px tiles) is what validation translates
    to choose the checkpoint, their right half (scoreA, 64-px tiles) is what is scored."""
    original = skdata.immunohistochemistry()
    matrix = PERTURBED / np.linalg.norm(PERTURBED, axis=1, keepdims=True)
    shifted = to_uint8(combine_stains(rgb2hed(original), matrix))
    top = original.shape[0] - TEST_ROWS
    for i, t in enumerate(tiles(original[:top, :256], TILE, STRIDE)):
        write_image(root / "trainA" / f"a{i:03d}.png", t)
    for i, t in enumerate(tiles(shifted[:top, 256:], TILE, STRIDE)):
        write_image(root / "trainB" / f"b{i:03d}.png", t)
    for i, t in enumerate(tiles(shifted[:top, 256:], 128, 128)):
        write_image(root / "testB" / f"b{i:03d}.png", t)
    for i, t in enumerate(tiles(original[top:, :256], TILE, TILE)):
        write_image(root / "testA" / f"v{i:03d}.png", t)
    truth = {}
    for i, (a, b) in enumerate(zip(tiles(original[top:, 256:], TILE, TILE), tiles(shifted[top:, 256:], TILE, TILE))):
        write_image(root / "scoreA" / f"t{i:03d}.png", a)
        truth[f"t{i:03d}"] = b
    return {"truth": truth, "b_region": shifted[:top, 256:], "check": rgb_from_hed.shape}


def fluorescence(index: int) -> tuple[np.ndarray, np.ndarray]:
    image, instances = make_nuclei(index, seed=5)
    x = image.astype(np.float64)
    x = (x - np.percentile(x, 0.5)) / (np.percentile(x, 99.5) - np.percentile(x, 0.5))
    return to_uint8(x)[..., None].repeat(3, 2), instances > 0


def brightfield(index: int) -> np.ndarray:
    image, _ = make_nuclei(index, seed=6)
    x = image.astype(np.float64)
    x = np.clip((x - np.percentile(x, 0.5)) / (np.percentile(x, 99.5) - np.percentile(x, 0.5)), 0, 1)
    paper, ink = np.array([0.93, 0.90, 0.94]), np.array([0.35, 0.15, 0.50])  # light background, purple nuclei
    return to_uint8(paper * (1 - x[..., None]) + ink * x[..., None])


def make_nuclei_set(root: Path, n_train: int = 40, n_test: int = 8) -> dict:
    for i in range(n_train):
        write_image(root / "trainA" / f"a{i:03d}.png", fluorescence(i)[0])
        write_image(root / "trainB" / f"b{i:03d}.png", brightfield(1000 + i))
    for i in range(4):
        write_image(root / "testB" / f"b{i:03d}.png", brightfield(3000 + i))
    for i in range(n_test):  # validation: chooses the checkpoint
        write_image(root / "testA" / f"v{i:03d}.png", fluorescence(5000 + i)[0])
    masks = {}
    for i in range(n_test):  # scored
        image, mask = fluorescence(2000 + i)
        write_image(root / "scoreA" / f"t{i:03d}.png", image)
        masks[f"t{i:03d}"] = mask
    return {"masks": masks}


def mask_iou(image: np.ndarray, mask: np.ndarray) -> float:
    """IoU of the dark side of an Otsu threshold of ``image`` (brightfield: nuclei are dark) with ``mask``."""
    g = rgb2gray(image)
    found = g < threshold_otsu(g)
    union = np.logical_or(found, mask).sum()
    return float(np.logical_and(found, mask).sum() / union) if union else 1.0


def fid_kid(folder: Path, reference: Path) -> dict[str, float]:
    from pix2pix_unet.metrics.fid import InceptionFeatures, frechet_distance, kernel_inception_distance

    try:
        features = InceptionFeatures()
    except FileNotFoundError:
        return {}

    def feats(d: Path) -> np.ndarray:
        images = [torch.from_numpy(read_image(f).pixels[..., :3]).permute(2, 0, 1).float() / 127.5 - 1
                  for f in sorted(d.glob("*.png"))]
        return np.concatenate([features(x[None]) for x in images])

    a, b = feats(folder), feats(reference)
    return {"fid": frechet_distance(a, b), "kid": kernel_inception_distance(a, b)}


def realness(folder: Path, reference: Path) -> float:
    """The held-out accuracy of a from-scratch CNN telling ``folder``'s images from ``reference``'s (0.5: it
    cannot), :func:`~pix2pix_unet.metrics.realness.real_vs_generated`."""
    from pix2pix_unet.metrics.realness import real_vs_generated

    def load(d: Path) -> list[torch.Tensor]:
        return [torch.from_numpy(read_image(f).pixels[..., :3]).permute(2, 0, 1).float() / 127.5 - 1
                for f in sorted(d.glob("*.png"))]

    return real_vs_generated(load(reference), load(folder))


def stain_baselines(root: Path, made: dict) -> dict[str, Path]:
    """Reinhard and Macenko normalisation of each test tile, fitted to the B training region (torchstain)."""
    if importlib.util.find_spec("torchstain") is None:
        print("torchstain not installed: the stain-normalisation baselines are skipped")
        return {}
    from torchstain.numpy.normalizers import NumpyMacenkoNormalizer, NumpyReinhardNormalizer

    out = {}
    for name, normaliser in (("reinhard", NumpyReinhardNormalizer()), ("macenko", NumpyMacenkoNormalizer())):
        normaliser.fit(made["b_region"])
        folder = root / name
        for f in sorted((root / "scoreA").glob("*.png")):
            tile = read_image(f).pixels[..., :3]
            result = normaliser.normalize(I=tile) if name == "reinhard" else normaliser.normalize(I=tile,
                                                                                                  stains=False)[0]
            write_image(folder / f.name, np.clip(result, 0, 255).astype(np.uint8))
        out[name] = folder
    return out


def train_mode(root: Path, mode: str, budget: str, run: Path, contrast: str, every: int) -> float:
    """Train one mode within ``budget``, validating (FID against testB, which chooses the export) and
    checkpointing every ``every`` steps."""
    start = time.perf_counter()
    code = train_main(["--task", "unpaired", "--data", str(root), "--output-dir", str(run), "--no-wandb",
                       "--budget", budget, f"unpaired.mode={mode}", "data.crop_size=64", "batch_size=1",
                       "generator.depth=6", f"sample_every={every}", f"checkpoint_every={every}",
                       f"unpaired.expect_contrast={contrast}"])
    if code != 0:
        raise SystemExit(f"training {mode} failed ({code})")
    return time.perf_counter() - start


def score_set(name: str, root: Path, made: dict, folders: dict[str, Path]) -> dict[str, dict]:
    rows = {}
    for method, folder in folders.items():
        per = {}
        for f in sorted((root / "scoreA").glob("*.png")):
            out = read_image(folder / f.name).pixels[..., :3]
            if name == "stain":
                truth = made["truth"][f.stem]
                per[f.stem] = {"psnr": peak_signal_noise_ratio(truth, out, data_range=255),
                               "ssim": structural_similarity(truth, out, channel_axis=-1, data_range=255)}
            else:
                per[f.stem] = {"iou": mask_iou(out, made["masks"][f.stem])}
        keys = next(iter(per.values())).keys()
        rows[method] = {k: float(np.mean([p[k] for p in per.values()])) for k in keys}
        rows[method].update(fid_kid(folder, root / "testB"))
        rows[method]["real_vs_generated"] = realness(folder, root / "testB")
        rows[method]["per_image"] = per
    return rows


def probe(mode: str, steps: int) -> dict[str, float]:
    """Seconds per training step, peak RSS and the peak's rise over the RSS before any net was built
    (``training_mib``: nets, optimiser states, activations), of one mode at 256 x 256, batch 1 (run in its own
    process)."""
    from accelerate import Accelerator

    from pix2pix_unet.config import load_config
    from pix2pix_unet.tasks.unpaired import UnpairedTask
    from pix2pix_unet.training.step import train_step

    def rss_mib() -> float:  # the resident set now
        status = Path("/proc/self/status").read_text()
        return float(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024

    cfg = load_config(None, ["task=unpaired", f"unpaired.mode={mode}", "generator.depth=8"])
    before = rss_mib()  # the interpreter, torch and the package, before any net exists
    task = UnpairedTask(cfg)
    g, d = task.build_generator(pretrained=False), task.build_discriminator()
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    a, b = torch.rand(1, 3, 256, 256) * 2 - 1, torch.rand(1, 3, 256, 256) * 2 - 1
    accelerator = Accelerator(cpu=True)
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        train_step(accelerator, g, d, opt_g, opt_d, a, b, cfg.loss, objective=task)
        times.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    params = sum(p.numel() for p in g.parameters()) + sum(p.numel() for p in d.parameters())
    return {"s_per_step": float(np.median(times[2:])), "peak_rss_mib": rss, "training_mib": rss - before,
            "parameters": params}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/unpaired"))
    p.add_argument("--sets", nargs="*", default=["stain", "nuclei"], choices=["stain", "nuclei"])
    p.add_argument("--modes", nargs="*", default=["cyclegan", "cut", "fastcut"])
    p.add_argument("--budget", default="5m", help="training time per mode and set")
    p.add_argument("--probe", action="store_true", help="time and memory per mode at 256 x 256 instead")
    p.add_argument("--probe-one", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--every", type=int, default=250, help="steps between validations and checkpoints")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe_one:
        print(json.dumps(probe(args.probe_one, args.steps)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.probe:
        results = {}
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--probe-one", mode, "--steps", str(args.steps)]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[mode] = json.loads(line)
            print(mode, results[mode])
        (args.out / "probe.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0
    results: dict = {}
    for name in args.sets:
        root = args.out / name
        made = make_stain(root) if name == "stain" else make_nuclei_set(root)
        folders = {"input": root / "scoreA"}
        if name == "stain":
            folders.update(stain_baselines(root, made))
        else:  # what a user would do by hand: invert the fluorescence image
            inv = root / "inverted"
            for f in sorted((root / "scoreA").glob("*.png")):
                write_image(inv / f.name, 255 - read_image(f).pixels[..., :3])
            folders["inverted"] = inv
        seconds, chosen = {}, {}
        for mode in args.modes:
            run = args.out / f"{name}_{mode}"
            seconds[mode] = train_mode(root, mode, args.budget, run, "same" if name == "stain" else "inverted",
                                       args.every)
            final = json.loads((run / "metrics.json").read_text())
            chosen[mode] = {k: final[k] for k in ("step", "export", "chosen_by")}
            last = max((run / "checkpoints").glob("step_*/generator"))
            for label, weights in ((mode, run), (f"{mode}_last", last)):  # the export, and the last step's
                cli(["predict", "--checkpoint", str(weights), "--input", str(root / "scoreA"), "--output",
                     str(args.out / f"{name}_{label}_out"), "--device", "cpu", "--overwrite", "--no-progress"])
                folders[label] = args.out / f"{name}_{label}_out"
        rows = score_set(name, root, made, folders)
        for mode in args.modes:
            rows[mode]["train_s"] = seconds[mode]
            rows[mode]["export"] = chosen[mode]
        results[name] = rows
        print(f"\n{name}")
        for method, row in rows.items():
            print(f"| {method} | " + " | ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in row.items() if k != "per_image") + " |")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
