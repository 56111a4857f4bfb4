"""Draw docs/images/tiling.png: a trained generator on a large mosaic, whole vs overlap-tiled.

Example (after ``python train_gan.py --output-dir runs/demo``)::

    python docs/tiling_figure.py --checkpoint runs/demo --out docs/images/tiling.png

The input is a mosaic of the built-in validation label maps (so objects have the
size the generator was trained on). Panels, top to bottom: input, the tiled
output, and ``|tiled - whole| x 20`` with the tile origins marked. Prints the
largest and mean difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageDraw

try:
    import pix2pix_unet  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pix2pix_unet.config import BlendWindow  # noqa: E402
from pix2pix_unet.data.synthetic import VAL_INDEX_OFFSET, SyntheticPairs, SyntheticSpec  # noqa: E402
from pix2pix_unet.models import UNet  # noqa: E402
from pix2pix_unet.models.unet import pad_to_multiple  # noqa: E402
from pix2pix_unet.runtime.tiling import plan_tiles, predict_tiled  # noqa: E402


def mosaic(rows: int, cols: int, size: int, seed: int) -> torch.Tensor:
    """``(3, rows * size, cols * size)`` in [-1, 1]: built-in validation label maps side by side."""
    source = SyntheticPairs(rows * cols, seed=seed, spec=SyntheticSpec(size=size), index_offset=VAL_INDEX_OFFSET)
    maps = torch.stack([source[i]["label_rgb"] for i in range(rows * cols)])
    return rearrange(maps, "(r c) ch h w -> ch (r h) (c w)", r=rows).mul(2).sub(1)


def to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(rearrange(x.clamp(-1, 1).add(1).mul(127.5).round().byte(), "c h w -> h w c").numpy())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/images/tiling.png"))
    p.add_argument("--rows", type=int, default=3)
    p.add_argument("--cols", type=int, default=6)
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--window", default="linear", choices=[w.value for w in BlendWindow])
    args = p.parse_args(argv)

    net = UNet.from_pretrained(args.checkpoint)
    image = mosaic(args.rows, args.cols, 64, seed=0)
    with torch.no_grad():
        whole = net(image[None])[0]
    tiled = predict_tiled(net, image, tile=args.tile, overlap=args.overlap, factor=net.config.factor,
                          window=BlendWindow(args.window))
    diff = (tiled - whole).abs()
    print(f"{image.shape[-1]}x{image.shape[-2]} px, tile {args.tile}, overlap {args.overlap}, {args.window}: "
          f"max |tiled - whole| = {diff.max():.4f}, mean = {diff.mean():.5f} (outputs in [-1, 1])")

    heat = (diff.mean(0) * 20).clamp(0, 1).mul(255).byte().numpy()
    heat_img = Image.fromarray(np.stack([heat] * 3, -1))
    draw = ImageDraw.Draw(heat_img)
    padded = pad_to_multiple(image[None], net.config.factor)[0]
    plan = plan_tiles(padded.shape[-2], padded.shape[-1], args.tile, args.overlap, net.config.factor)
    for y, x in plan.origins():
        draw.rectangle([x, y, x + plan.tile_w - 1, y + plan.tile_h - 1], outline=(255, 80, 80))
    panels = [to_pil(image), to_pil(tiled), heat_img]
    w, h = panels[0].size
    canvas = Image.new("RGB", (w, 3 * h + 8), "white")
    for i, panel in enumerate(panels):
        canvas.paste(panel, (0, i * (h + 4)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # an adaptive 256-colour palette keeps the picture small; the label maps and photos have few colours
    canvas.quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
