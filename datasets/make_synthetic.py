"""Write the built-in procedural paired dataset to disk.

Example (from the repository root, package not installed)::

    python datasets/make_synthetic.py --out datasets/synthetic --num-train 400 --num-val 50

Layout written (see ``pix2pix_unet.data.synthetic.write_dataset``)::

    OUT/{train,val}/A/00000.png          colourised label map (RGB)
    OUT/{train,val}/B/00000.png          rendered photo (RGB)
    OUT/{train,val}/labels/00000.png     class ids (8-bit L)
    OUT/{train,val}/instances/00000.png  instance ids (16-bit)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    import pix2pix_unet  # noqa: F401
except ImportError:
    # Allow running straight from a checkout without installing the package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pix2pix_unet.data.synthetic import (  # noqa: E402
    NUM_CLASSES,
    SyntheticSpec,
    write_dataset,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line.

    Args:
        argv: Arguments without the program name; ``None`` uses ``sys.argv``.

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description="Generate the procedural label-map <-> photo paired dataset."
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--num-train", type=int, default=400, help="training pairs (default 400)")
    parser.add_argument("--num-val", type=int, default=50, help="validation pairs (default 50)")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument(
        "--num-classes",
        type=int,
        default=NUM_CLASSES,
        help=f"classes incl. background (default {NUM_CLASSES})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generates the dataset and prints a summary.

    Args:
        argv: Arguments without the program name; ``None`` uses ``sys.argv``.

    Returns:
        Process exit code.
    """
    args = parse_args(argv)
    try:
        spec = SyntheticSpec(size=args.size, num_classes=args.num_classes)
        start = time.perf_counter()
        root = write_dataset(args.out, args.num_train, args.num_val, seed=args.seed, spec=spec)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(
        f"wrote {args.num_train} train + {args.num_val} val pairs "
        f"({spec.size}x{spec.size}, {spec.num_classes} classes, seed {args.seed}) "
        f"to {root} in {elapsed:.1f}s"
    )
    for split in ("train", "val"):
        print(f"  {root / split}/{{A,B,labels,instances}}/*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
