"""Compare the generator presets on segmentation: mIoU, object F1, parameters and CPU time per step.

For each row (a preset, or a preset with deep supervision) and each seed, the script
trains ``--task segment`` with the real CLI on files it wrote first (the built-in
photos, or the nuclei-like 16-bit tiles with ``--kind nuclei``), with the same steps,
batch size and crop for every row, and reads the last validation (held-out files) from
the run's ``metrics.jsonl``. It prints one markdown table: mean ± sample standard
deviation over the seeds.

On a CPU the paper widths are too slow for several seeds of every preset, so by default
every preset is shrunk the same way (``--width-divisor 8``: ``base_channels``,
``max_channels`` and UNet 3+'s ``fullscale_channels`` divided by 8, at least 8) and its
depth capped so that the crop still halves that often (``--max-depth``); the table
gives the sizes that ran. ``--width-divisor 1`` runs the presets as they are.

Time per step is the wall time of the training steps alone (validation and saving
excluded), from the images/s the loop logs, over the steps after the first logging
window; on a shared machine it is a rough figure.

    python benchmarks/compare_presets.py --out runs/compare                # built-in photos, 3 seeds
    python benchmarks/compare_presets.py --out runs/compare_nuclei --kind nuclei
    python benchmarks/compare_presets.py --rows unet unet++ unet++/ds --seeds 0 --steps 100
    python benchmarks/compare_presets.py --out runs/compare --table-only   # the table of the runs done

Runs already finished in ``--out`` are read back, not repeated, so an interrupted
comparison resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

try:
    import pix2pix_unet  # noqa: F401
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from pix2pix_unet.cli import train_main  # noqa: E402
from pix2pix_unet.config import GENERATOR_PRESETS, Architecture, UNetConfig  # noqa: E402
from pix2pix_unet.data.nuclei import NucleiSpec, write_nuclei  # noqa: E402
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset  # noqa: E402
from pix2pix_unet.models import Generator, count_parameters  # noqa: E402

DEEP = "/ds"  # a row "PRESET/ds" is that preset with deep supervision (unet++, unet3+)
HEADED = (Architecture.UNETPP, Architecture.UNET3P)  # the architectures with deep-supervision heads
KINDS = {"photos": [], "nuclei": ["generator.in_channels=1", "segment.intensity=image"]}


def default_rows() -> list[str]:
    """Every image -> image preset (not SPADE, which draws images from label maps), then the deep-supervised
    variants of those that have heads (unet++, unet3+)."""
    rows = [name for name, cfg in GENERATOR_PRESETS.items() if cfg.architecture is not Architecture.SPADE]
    return rows + [f"{name}{DEEP}" for name in rows if GENERATOR_PRESETS[name].architecture in HEADED]


def shrunk(cfg: UNetConfig, divisor: int, max_depth: int) -> UNetConfig:
    """``cfg`` with its widths divided by ``divisor`` (at least 8) and its depth capped at ``max_depth``."""
    def narrow(c: int) -> int:
        return max(8, c // divisor)

    return dataclasses.replace(cfg, base_channels=narrow(cfg.base_channels), max_channels=narrow(cfg.max_channels),
                               fullscale_channels=narrow(cfg.fullscale_channels), depth=min(cfg.depth, max_depth))


def row_overrides(row: str, divisor: int, max_depth: int) -> list[str]:
    """The generator options of one row: its preset, shrunk, and deep supervision for ``PRESET/ds``."""
    name, deep = row.removesuffix(DEEP), row.endswith(DEEP)
    if name not in GENERATOR_PRESETS:
        raise SystemExit(f"--rows: {name!r} is not a generator preset ({', '.join(GENERATOR_PRESETS)})")
    cfg = shrunk(GENERATOR_PRESETS[name], divisor, max_depth)
    if deep and cfg.architecture.value == "unet":
        raise SystemExit(f"--rows: {row!r}: preset {name!r} has no deep-supervision heads")
    keys = ["base_channels", "max_channels", "depth"] + (["fullscale_channels"]
                                                         if cfg.architecture.value == "unet3+" else [])
    return (["--preset", name] + [f"generator.{k}={getattr(cfg, k)}" for k in keys]
            + (["generator.deep_supervision=true"] if deep else []))


def make_data(kind: str, out: Path, train: int, val: int, size: int) -> Path:
    """Write the training and validation files once; later calls reuse them."""
    root = out / f"data_{kind}"
    if not (root / "val").is_dir():
        if kind == "nuclei":
            write_nuclei(root, train, val, spec=NucleiSpec(size=size))
        else:
            write_dataset(root, train, val, spec=SyntheticSpec(size=size))
    return root


def summarise(run: Path, batch_size: int) -> dict[str, float]:
    """The last validation, parameters and seconds per training step of a finished run."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if "val/miou" in r][-1]
    speeds = [r["train/images_per_s"] for r in rows if "train/images_per_s" in r][1:]  # the first: warm-up
    generator = Generator.from_pretrained(run)
    return {"miou": last["val/miou"], "object_f1": last.get("val/object_f1", math.nan),
            "params": count_parameters(generator), "s_per_step": statistics.median(batch_size / s for s in speeds),
            "depth": generator.config.depth, "base": generator.config.base_channels,
            "max": generator.config.max_channels}


def mean_std(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/compare_presets"), help="working folder (kept; resumed)")
    p.add_argument("--kind", choices=sorted(KINDS), default="photos", help="built-in data to write (photos)")
    p.add_argument("--rows", nargs="+", default=None, help="presets, PRESET/ds for deep supervision (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=150, help="training steps per run (default 150)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--crop", type=int, default=48, help="training crop in px (default 48)")
    p.add_argument("--size", type=int, default=56, help="image size of the written files (default 56)")
    p.add_argument("--train", type=int, default=48, help="training files (default 48)")
    p.add_argument("--val", type=int, default=24, help="validation files (default 24)")
    p.add_argument("--width-divisor", type=int, default=8, help="divide every preset's widths by this (default 8)")
    p.add_argument("--max-depth", type=int, default=None, help="cap on the depth (default: log2 of --crop)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's); on a busy machine 1 is often the fastest")
    p.add_argument("--table-only", action="store_true", help="print the table of the runs already in --out")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every run")
    args = p.parse_args(argv)
    rows = args.rows or default_rows()
    if args.threads:
        torch.set_num_threads(args.threads)
    max_depth = args.max_depth or int(math.log2(args.crop))

    start = time.perf_counter()
    data = make_data(args.kind, args.out, args.train, args.val, args.size)
    results: dict[str, list[dict[str, float]]] = {}
    for row in rows:
        generator = row_overrides(row, args.width_divisor, max_depth)
        for seed in args.seeds:
            run = args.out / args.kind / row.replace("/", "_") / f"seed{seed}"
            done = (run / "checkpoints" / "generator" / "config.json").is_file()
            if not done and not args.table_only:
                code = train_main(["--task", "segment", "--data", str(data), "--output-dir", str(run),
                                   "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
                                   "--seed", str(seed), "--no-wandb", *generator, *KINDS[args.kind],
                                   f"data.crop_size={args.crop}", f"sample_every={args.steps}",
                                   f"checkpoint_every={args.steps}", f"log_every={max(1, args.steps // 10)}",
                                   *args.overrides])
                if code != 0:
                    raise SystemExit(f"training failed ({code}): {row} seed {seed}, see {run}")
                done = True
            if done:
                results.setdefault(row, []).append(summarise(run, args.batch_size))

    minutes = (time.perf_counter() - start) / 60
    print(f"\n{args.kind}: {args.train} training / {args.val} validation files of {args.size} px, "
          f"task=segment, {args.steps} steps of batch {args.batch_size} at {args.crop} px crops, seeds "
          f"{' '.join(map(str, args.seeds))}; widths / {args.width_divisor}, depth <= {max_depth}, "
          f"{torch.get_num_threads()} CPU thread(s)"
          f"{' ' + ' '.join(args.overrides) if args.overrides else ''} ({minutes:.1f} min)\n")
    print("| row | depth, channels | parameters | s / step (CPU) | val mIoU | val object F1 | seeds |")
    print("| --- | --- | ---: | ---: | --- | --- | ---: |")
    for row, runs in results.items():
        r = runs[0]
        label = f"`{row.removesuffix(DEEP)}`" + (" + deep supervision" if row.endswith(DEEP) else "")
        print(f"| {label} | {r['depth']}, {r['base']}→{r['max']} | {r['params'] / 1e6:.2f} M "
              f"| {statistics.median(x['s_per_step'] for x in runs):.3f} "
              f"| {mean_std([x['miou'] for x in runs])} | {mean_std([x['object_f1'] for x in runs])} | {len(runs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
