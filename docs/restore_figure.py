"""The README's restoration picture, from the files ``benchmarks/restore_vs_classical.py`` wrote.

One row per test photo, a crop of each of: noisy (sigma = 25) | non-local means | BM3D |
ours (what ``predict`` wrote) | clean; then, for x2 super-resolution, bicubic | ours | clean::

    python docs/restore_figure.py --bench runs/restore_bench --out docs/images/restore_vs_classical.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pix2pix_unet.io import read_image, write_image  # noqa: E402
from pix2pix_unet.metrics.classical import nlm  # noqa: E402

CROPS = {"chelsea": (60, 150), "coffee": (120, 300), "camera": (60, 180)}  # top, left of a 160-px crop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, default=Path("runs/restore_bench"))
    p.add_argument("--out", type=Path, default=Path("docs/images/restore_vs_classical.png"))
    p.add_argument("--sigma", type=int, default=25)
    p.add_argument("--size", type=int, default=160)
    args = p.parse_args(argv)
    size, gap = args.size, 4
    rows = []
    for name, (top, left) in CROPS.items():
        def crop(path: Path) -> np.ndarray:
            return read_image(path).pixels[top: top + size, left: left + size, :3]

        noisy = crop(args.bench / f"noisy{args.sigma}" / f"{name}.png")
        unit = torch.from_numpy(noisy).permute(2, 0, 1)[None].float() / 255
        tiles = [noisy, (nlm(unit, args.sigma / 255)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)]
        try:
            import bm3d

            tiles.append((np.clip(bm3d.bm3d_rgb(noisy / 255, sigma_psd=args.sigma / 255), 0, 1) * 255)
                         .round().astype(np.uint8))
        except ImportError:
            pass
        tiles += [crop(args.bench / f"denoised{args.sigma}" / f"{name}.png"),
                  crop(args.bench / "photos" / "test" / f"{name}.png")]
        tiles += [crop(args.bench / "bicubic_x2" / f"{name}.png"), crop(args.bench / "sr_x2" / f"{name}.png"),
                  crop(args.bench / "photos" / "test" / f"{name}.png")]
        rows.append(tiles)
    cols = len(rows[0])
    sheet = np.full((len(rows) * (size + gap) + gap, cols * (size + gap) + gap, 3), 255, np.uint8)
    for i, tiles in enumerate(rows):
        for j, tile in enumerate(tiles):
            y, x = gap + i * (size + gap), gap + j * (size + gap)
            sheet[y: y + tile.shape[0], x: x + tile.shape[1]] = tile
    write_image(args.out, sheet)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
