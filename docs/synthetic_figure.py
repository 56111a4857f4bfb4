"""The synthetic-data page's picture, from one seed folder that ``benchmarks/synthetic_gain.py`` kept.

Top row: the real training pairs (label map | image). Then, for the first synthetic
pairs: the new layout | the SPADE image ``synthesize`` wrote | its confidence map
(white where the real-trained segmenter reads the label's class)::

    python docs/synthetic_figure.py --seed-folder runs/synthetic_gain/real4_seed1 \\
        --out docs/images/synthetic_gain_pairs.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pix2pix_unet.io import display_rgb8, palette, read_image, read_label_map, write_image  # noqa: E402

GAP = 4  # px of white between tiles


def rgb(path: Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 (16-bit stretched, as reports show it)."""
    return display_rgb8(read_image(path))


def colour(path: Path, num_classes: int) -> np.ndarray:
    return palette(num_classes)[read_label_map(path)]


def row(tiles: list[np.ndarray]) -> np.ndarray:
    h = tiles[0].shape[0]
    gap = np.full((h, GAP, 3), 255, np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed-folder", type=Path, required=True, help="a realN_seedS folder of synthetic_gain.py")
    p.add_argument("--out", type=Path, default=Path("docs/images/synthetic_gain_pairs.png"))
    p.add_argument("--pairs", type=int, default=4, help="real and synthetic pairs shown (4)")
    p.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscaling (2)")
    args = p.parse_args(argv)

    real, synthetic = args.seed_folder / "real" / "train", args.seed_folder / "synthetic"
    images = real / "images" if (real / "images").is_dir() else real / "B"
    num_classes = 1 + max(int(read_label_map(f).max()) for f in sorted((real / "labels").iterdir()))
    # 1. the real pairs: label map | image, side by side
    top = row([tile for f in sorted(images.iterdir())[: args.pairs]
               for tile in (colour(next((real / "labels").glob(f"{f.stem}.*")), num_classes), rgb(f))])
    # 2. synthetic: layout | image | confidence, one triple per pair
    names = sorted(p.name for p in (synthetic / "images").iterdir())[: args.pairs]
    bottom = []
    for name in names:
        triple = [colour(synthetic / "labels" / name, num_classes), rgb(synthetic / "images" / name)]
        if (synthetic / "confidence" / name).is_file():
            triple.append(rgb(synthetic / "confidence" / name))
        bottom.append(row(triple))
    bottom_row = row(bottom)
    width = max(top.shape[1], bottom_row.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    figure = np.concatenate([pad(top), np.full((3 * GAP, width, 3), 255, np.uint8), pad(bottom_row)], axis=0)
    figure = figure.repeat(args.scale, 0).repeat(args.scale, 1)
    write_image(args.out, figure)
    print(f"wrote {args.out} ({figure.shape[1]}x{figure.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
