"""Write a built-in procedural dataset to disk: the photos (default) or the nuclei.

Example (from the repository root, package not installed)::

    python datasets/make_synthetic.py --out datasets/synthetic --num-train 400 --num-val 50
    python datasets/make_synthetic.py --kind nuclei --out datasets/nuclei --num-train 400 --num-val 50

Layout written by ``--kind photos`` (see ``pix2pix_unet.data.synthetic.write_dataset``)::

    OUT/{train,val}/A/00000.png          colourised label map (RGB)
    OUT/{train,val}/B/00000.png          rendered photo (RGB)
    OUT/{train,val}/labels/00000.png     class ids (8-bit L)
    OUT/{train,val}/instances/00000.png  instance ids (16-bit)

Layout written by ``--kind nuclei`` (see ``pix2pix_unet.data.nuclei.write_nuclei``),
which ``--task segment --data OUT`` reads::

    OUT/{train,val}/images/00000.tif     fluorescence-like counts (16-bit gray)
    OUT/{train,val}/labels/00000.png     class ids, 0 background / 1 nucleus (palette PNG)
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

from pix2pix_unet.config import BuiltinKind  # noqa: E402
from pix2pix_unet.data.nuclei import NucleiSpec, write_nuclei  # noqa: E402
from pix2pix_unet.data.synthetic import (  # noqa: E402
    NUM_CLASSES,
    SyntheticSpec,
    write_dataset,
)

DEFAULT_SIZE: dict[BuiltinKind, int] = {BuiltinKind.PHOTOS: 64, BuiltinKind.NUCLEI: NucleiSpec().size}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line.

    Args:
        argv: Arguments without the program name; ``None`` uses ``sys.argv``.

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description="Generate a procedural dataset: label-map <-> photo pairs, or fluorescence-like nuclei."
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--kind",
        choices=[kind.value for kind in BuiltinKind],
        default=BuiltinKind.PHOTOS.value,
        help="photos: label maps and RGB photos (default); nuclei: 16-bit gray nuclei with instance maps",
    )
    parser.add_argument("--num-train", type=int, default=400, help="training pairs (default 400)")
    parser.add_argument("--num-val", type=int, default=50, help="validation pairs (default 50)")
    parser.add_argument(
        "--size", type=int, default=None, help="image size in pixels (default 64 for photos, 72 for nuclei)"
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help=f"photos only: classes incl. background (default {NUM_CLASSES}); nuclei have 2",
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
    kind = BuiltinKind(args.kind)
    size = args.size if args.size is not None else DEFAULT_SIZE[kind]
    nuclei = kind is BuiltinKind.NUCLEI
    if nuclei and args.num_classes not in (None, 2):
        print(f"error: --num-classes={args.num_classes}: the nuclei data has 2 classes", file=sys.stderr)
        return 2
    try:
        start = time.perf_counter()
        if nuclei:
            spec = NucleiSpec(size=size)
            root = write_nuclei(args.out, args.num_train, args.num_val, seed=args.seed, spec=spec)
            what, classes, files = "nuclei tiles", 2, "{images/*.tif,labels/*.png,instances/*.png}"
        else:
            spec = SyntheticSpec(size=size, num_classes=NUM_CLASSES if args.num_classes is None else args.num_classes)
            root = write_dataset(args.out, args.num_train, args.num_val, seed=args.seed, spec=spec)
            what, classes, files = "pairs", spec.num_classes, "{A,B,labels,instances}/*.png"
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(
        f"wrote {args.num_train} train + {args.num_val} val {what} "
        f"({size}x{size}, {classes} classes, seed {args.seed}) "
        f"to {root} in {elapsed:.1f}s"
    )
    for split in ("train", "val"):
        print(f"  {root / split}/{files}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
