"""Does synthetic training data help? Segment a few real pairs alone, then with synthesised pairs added.

1. Write ``--real`` training pairs and ``--val`` validation pairs of the built-in data
   (``OUT/real/{train,val}/{A,B,labels,instances}``).
2. Train a label -> image generator on the same real pairs only
   (``--task translate labels.format=index``).
3. ``pix2pix-unet synthesize --augment-labels`` turns the real label maps into
   ``--synthetic`` new pairs (``OUT/synthetic/{images,labels}``).
4. Train ``--task segment`` twice with the same seed, steps and batch size: on the
   real pairs alone, and on the real plus the synthetic pairs (the real ones
   repeated to ``--real-share`` of that set). Both are validated on the same real
   validation pairs.
5. Print the final validation mIoU, pixel accuracy and object F1 of both.

Every number printed is read from the runs' ``metrics.jsonl``; nothing is fixed here.

    python benchmarks/synthetic_gain.py --out runs/synthetic_gain
    python benchmarks/synthetic_gain.py --out runs/sg --real 20 --synthetic 200 --gan-steps 500 --seg-steps 400
    python benchmarks/synthetic_gain.py generator.base_channels=32   # any config override, for every run
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

try:
    import pix2pix_unet  # noqa: F401
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pix2pix_unet.cli import main as cli  # noqa: E402
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset  # noqa: E402
from pix2pix_unet.tasks.labels import instances_from_labels  # noqa: E402


# A 1.0 M-parameter generator (the default preset has 7.3 M) keeps the whole script to minutes on a CPU.
MODEL = ["generator.depth=5", "generator.base_channels=16", "generator.max_channels=128",
         "discriminator.base_channels=16"]


def final_metrics(run_dir: Path) -> dict[str, float]:
    """The last validation row of a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "val/miou" in r][-1]


def combine(real: Path, synthetic: Path, out: Path, real_share: float) -> int:
    """``out/train`` = real + synthetic pairs (images/, labels/, instances/), ``out/val`` = the real val split.

    The real pairs are repeated so that they make up about ``real_share`` of the
    training set (at least once each; the count is returned), so the few real
    images are not drowned by the synthetic ones. Synthetic pairs get instance maps from connected components,
    as the segment task would derive them; the real ones keep theirs.
    """
    train = out / "train"
    for name in ("images", "labels", "instances"):
        (train / name).mkdir(parents=True, exist_ok=True)
    reals = sorted((real / "train" / "B").iterdir())
    synthetics = sorted((synthetic / "images").iterdir())
    repeats = max(1, round(real_share / (1 - real_share) * len(synthetics) / len(reals)))
    for r in range(repeats):
        for path in reals:
            name = f"real{r}_{path.name}"
            shutil.copy(path, train / "images" / name)
            shutil.copy(real / "train" / "labels" / path.name, train / "labels" / name)
            shutil.copy(real / "train" / "instances" / path.name, train / "instances" / name)
    for path in synthetics:
        labels = np.asarray(Image.open(synthetic / "labels" / path.name))
        shutil.copy(path, train / "images" / f"syn_{path.name}")
        shutil.copy(synthetic / "labels" / path.name, train / "labels" / f"syn_{path.name}")
        Image.fromarray(instances_from_labels(labels).astype(np.uint16)).save(train / "instances" / f"syn_{path.name}")
    shutil.copytree(real / "val", out / "val")
    return repeats


def train(args: list[str]) -> None:
    if cli(["train", *args]) != 0:
        raise SystemExit(f"training failed: {' '.join(args)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/synthetic_gain"), help="working folder (replaced)")
    p.add_argument("--real", type=int, default=20, help="real training pairs (default 20)")
    p.add_argument("--val", type=int, default=48, help="real validation pairs (default 48)")
    p.add_argument("--synthetic", type=int, default=200, help="synthesised pairs added (default 200)")
    p.add_argument("--real-share", type=float, default=0.5,
                   help="repeat the real pairs to about this share of the combined training set (default 0.5)")
    p.add_argument("--size", type=int, default=72, help="image size; training crops are 64 px (default 72)")
    p.add_argument("--gan-steps", type=int, default=500, help="label -> image training steps (default 500)")
    p.add_argument("--seg-steps", type=int, default=400, help="segmentation training steps per run (default 400)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides for every training run, after the script's small model")
    args = p.parse_args(argv)
    if not 0.0 <= args.real_share < 1.0:
        p.error(f"--real-share {args.real_share} must be in [0, 1)")

    start = time.perf_counter()
    shutil.rmtree(args.out, ignore_errors=True)
    common = ["--no-wandb", "--seed", str(args.seed), "checkpoint_every=100000", "log_every=50", *MODEL,
              *args.overrides]

    # 1. a few real pairs, and real validation pairs
    real = write_dataset(args.out / "real", args.real, args.val, seed=args.seed, spec=SyntheticSpec(size=args.size))
    # 2. label -> image on the real pairs alone
    l2i = args.out / "label2image"
    train(["--task", "translate", "--data", str(real), "--output-dir", str(l2i), "--max-steps", str(args.gan_steps),
           *common, "labels.format=index", f"sample_every={args.gan_steps}"])
    # 3. new pairs from deformed real label maps
    synthetic = args.out / "synthetic"
    if cli(["synthesize", "--checkpoint", str(l2i), "--labels", str(real / "train" / "labels"),
            "--output", str(synthetic), "--num", str(args.synthetic), "--augment-labels",
            "--seed", str(args.seed)]) != 0:
        raise SystemExit("synthesize failed")
    combined = args.out / "combined"
    repeats = combine(real, synthetic, combined, args.real_share)
    # 4. segment: real alone, then real + synthetic; same seed, steps, batch size and validation pairs
    results = {}
    for name, data in (("real only", real), ("real + synthetic", combined)):
        run = args.out / f"segment_{'real' if data is real else 'combined'}"
        train(["--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps", str(args.seg_steps),
               *common, f"sample_every={max(1, args.seg_steps // 4)}"])
        results[name] = final_metrics(run)

    # 5. report
    minutes = (time.perf_counter() - start) / 60
    print(f"\nsegment task, {args.seg_steps} steps, validated on {args.val} real pairs "
          f"(label -> image: {args.gan_steps} steps on the same {args.real} real pairs; {minutes:.1f} min in all)")
    print(f"{'training data':<40} {'val mIoU':>9} {'pixel acc':>10} {'object F1':>10}")
    sizes = {"real only": f"{args.real}", "real + synthetic": f"{args.real} x{repeats} + {args.synthetic}"}
    for name, m in results.items():
        label = f"{name} ({sizes[name]} pairs)"
        print(f"{label:<40} {m['val/miou']:>9.3f} {m['val/pixel_acc']:>10.3f} {m['val/object_f1']:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
