"""Peak memory and time of sliding-window inference over a volume larger than one window (issue #24).

Writes a uint16 volume (Z, Y, X) to a TIFF, builds a small random 3D UNet (the point is memory, not quality),
and runs :func:`~pix2pix_unet.runtime.volume_window.predict_volume` from a ``tifffile.memmap`` of the input into a
:class:`~pix2pix_unet.volume_io.VolumeWriter`, so neither the input nor the output is ever held whole::

    python benchmarks/volume_memory.py                           # Z=200, Y=512, X=512
    python benchmarks/volume_memory.py --z 40 --blend gaussian   # a smaller run
    python benchmarks/volume_memory.py --budget-mb 256           # the window from a memory budget

Prints the window plan, the wall time of the prediction and the peak RSS of the process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), beside the input and output sizes and the
model's estimate of one window's memory.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

if importlib.util.find_spec("pix2pix_unet") is None:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pix2pix_unet.config import UNetConfig, from_dict
from pix2pix_unet.models import build_generator
from pix2pix_unet.runtime.volume_window import (
    estimate_window_bytes, percentile_normalizer, plan_windows, predict_volume, receptive_halo, volume_statistics,
    window_for_budget,
)
from pix2pix_unet.volume_io import VolumeWriter


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def write_input(path: Path, shape: tuple[int, int, int], seed: int = 0) -> None:
    """A uint16 volume written plane by plane (a smooth ramp plus noise), never held whole."""
    rng = np.random.default_rng(seed)
    z, y, x = shape
    ramp = np.add.outer(np.linspace(0, 20000, y), np.linspace(0, 20000, x))
    with tifffile.TiffWriter(path) as tif:
        for k in range(z):
            plane = ramp + 5000 * np.sin(k / 7) + rng.normal(0, 500, (y, x))
            tif.write(np.clip(plane, 0, 65535).astype(np.uint16), contiguous=True)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--z", type=int, default=200)
    p.add_argument("--y", type=int, default=512)
    p.add_argument("--x", type=int, default=512)
    p.add_argument("--window", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                   help="the generator's input size (default: from --budget-mb)")
    p.add_argument("--budget-mb", type=float, default=512.0, help="activation budget that picks the window")
    p.add_argument("--blend", choices=["crop", "gaussian"], default="crop")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--base-channels", type=int, default=8)
    p.add_argument("--dir", type=Path, default=None, help="where to write the files (default: a temporary folder)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="instead: `pix2pix-unet predict` with this trained 3D run on the volume, in a fresh process "
                        "(the user's path: the volume held whole, windows by inference.volume_budget_mb, instances "
                        "by the 3D watershed), and that process's peak RSS")
    p.add_argument("--predict-flag", action="append", default=[], metavar="FLAG",
                   help="with --checkpoint: a flag for predict, e.g. --predict-flag=--keep-freed-memory=on")
    args = p.parse_args(argv)
    shape = (args.z, args.y, args.x)
    if args.checkpoint is not None:
        return predict_cli(args.checkpoint, shape, args.dir, args.predict_flag)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        # 1. the input, on disk
        source, target = folder / "input.tif", folder / "output.tif"
        t0 = time.perf_counter()
        write_input(source, shape)
        print(f"input: {shape} uint16 (Z, Y, X), {np.prod(shape) * 2 / 2**20:.0f} MiB, written in "
              f"{time.perf_counter() - t0:.1f} s; peak RSS so far {peak_rss_mb():.0f} MiB")
        # 2. a small random 3D UNet and its window
        torch.manual_seed(0)
        cfg = from_dict(UNetConfig, {"dims": 3, "depth": args.depth, "base_channels": args.base_channels,
                                     "max_channels": 64, "in_channels": 1, "out_channels": 1, "norm": "batch",
                                     "conv_unit": "double", "down": "maxpool", "up": "bilinear", "dropout": 0.0})
        generator = build_generator(cfg).eval()
        halo = receptive_halo(cfg)
        window = tuple(args.window) if args.window else window_for_budget(cfg, 1, int(args.budget_mb * 2**20),
                                                                          shape=shape)
        overlap = tuple(w // 8 for w in window) if args.blend == "gaussian" else (0, 0, 0)
        plan = plan_windows(shape, window, halo, cfg.axis_factors, overlap)
        estimate = estimate_window_bytes(cfg, window, 1) / 2**20
        print(f"generator: depth {cfg.depth}, base {cfg.base_channels} channels; halo {halo}, window {window}, "
              f"{len(plan)} windows ({args.blend}); estimated window memory {estimate:.0f} MiB")
        # 3. predict from a memory map into a VolumeWriter
        volume = tifffile.memmap(source)
        stats = volume_statistics(volume)
        to_input = percentile_normalizer(stats)

        def to_uint16(t: torch.Tensor) -> np.ndarray:
            scaled = ((t.clamp(-1, 1) + 1) * 32767.5).round().to(torch.int32)  # (c, z, y, x)
            return scaled.permute(1, 2, 3, 0).numpy().astype(np.uint16)

        rss_before = peak_rss_mb()
        t0 = time.perf_counter()
        with VolumeWriter(target, (*shape, 1), np.uint16) as out:
            used = predict_volume(generator, volume, to_input=to_input, from_output=to_uint16, out=out,
                                  window=window, halo=halo, blend=args.blend, overlap=overlap)
        seconds = time.perf_counter() - t0
        result = {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "peak_rss_before_mb": rss_before,
                  "volume_mb": float(np.prod(shape) * 2 / 2**20), "estimate_mb": estimate, "windows": len(plan)}
        print(f"predicted {shape} in {seconds:.1f} s ({np.prod(shape) / seconds / 1e6:.2f} Mvoxel/s), window {used}; "
              f"output {target.stat().st_size / 2**20:.0f} MiB")
        print(f"peak RSS {result['peak_rss_mb']:.0f} MiB (before predicting {rss_before:.0f} MiB); the input is "
              f"{result['volume_mb']:.0f} MiB and so is the output")
        return result


def predict_cli(checkpoint: Path, shape: tuple[int, int, int], folder: Path | None,
                flags: list[str] = ()) -> dict[str, float]:
    """``pix2pix-unet predict`` of a written uint16 volume (with the run's voxel size) in a child process, timed
    and its peak RSS read by :func:`volumes.predict_rss` (the volumes benchmark's own)."""
    import json

    from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, make_nuclei_volume
    from pix2pix_unet.volume_io import write_volume
    from volumes import predict_rss  # benchmarks/volumes.py, beside this script

    config = json.loads((checkpoint / "checkpoints" / "generator" / "config.json").read_text())["generator"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = folder or Path(tmp)
        # built-in nuclei at this size (the trained spacing's): a volume like the ones the model was trained on
        spacing = tuple(config.get("spacing") or (2.0, 0.5, 0.5))
        t0 = time.perf_counter()
        image, _ = make_nuclei_volume(0, seed=11, spec=Nuclei3DSpec(shape=shape, spacing=spacing))
        write_volume(folder / "in" / "volume.tif", image, spacing)
        print(f"made and wrote a {shape} uint16 nuclei volume in {time.perf_counter() - t0:.0f} s")
        log = folder / "predict.log"
        seconds, peak_mb = predict_rss(["pix2pix-unet", "predict", "--checkpoint", str(checkpoint), "--input",
                                        str(folder / "in"), "--output", str(folder / "out"), "--device", "cpu",
                                        "--no-progress", "--overwrite", *flags], log)
        print(log.read_text()[-2000:])
        result = {"seconds": seconds, "peak_rss_mb": peak_mb, "volume_mb": float(np.prod(shape) * 2 / 2**20)}
        how = " ".join(["predict (CLI)", *flags])
        print(f"{how} of {shape} uint16 in {seconds:.1f} s; peak RSS {result['peak_rss_mb']:.0f} MiB "
              f"(the input is {result['volume_mb']:.0f} MiB)")
        return result


if __name__ == "__main__":
    main()
