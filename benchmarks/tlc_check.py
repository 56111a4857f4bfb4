"""Test-time local pooling (TLC) for a crop-trained NAFNet: does it help whole-image prediction?

NAFNet's simplified channel attention scales each channel by its mean over the whole input. Trained
on crops and run on whole photos, that mean covers far more than training ever showed; TLC (Chu et
al., 2022) replaces it at test time with the mean over a window of the size each block saw in training.
This script scores one restore run's export both ways on the same degraded files:

    python benchmarks/tlc_check.py --run runs/denoise --degraded noisy25/ --clean photos/test/

It prints the mean PSNR of the outputs with global and with local pooling. Measured on the first-run
benchmark's denoising job (a 4-minute run, 64-px crops, McMaster photos at sigma 25): 25.095 dB global,
25.091 dB local, so the project keeps global pooling.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pix2pix_unet.config import load_config  # noqa: E402
from pix2pix_unet.data.folders import list_images  # noqa: E402
from pix2pix_unet.io import read_image  # noqa: E402
from pix2pix_unet.models import Generator  # noqa: E402
from pix2pix_unet.models.blocks import NAFBlock  # noqa: E402


class LocalMean(nn.Module):
    """The mean over a ``window`` x ``window`` neighbourhood of each pixel (edges replicated); the global mean
    when the input is no larger than the window."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h <= self.window and w <= self.window:
            return x.mean((-2, -1), keepdim=True)
        kh, kw = min(self.window, h), min(self.window, w)
        x = F.pad(x, (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2), mode="replicate")
        return F.avg_pool2d(x, (kh, kw), stride=1)


def localise(net: nn.Module, crop: int, channels: int) -> None:
    """Replace every NAFBlock's global pooling by a window of the size the block saw on a ``crop`` input."""
    seen: dict[str, int] = {}
    hooks = [m.register_forward_pre_hook(lambda m, a, n=n: seen.__setitem__(n, a[0].shape[-1]))
             for n, m in net.named_modules() if isinstance(m, NAFBlock)]
    with torch.no_grad():
        net(torch.zeros(1, channels, crop, crop))
    for hook in hooks:
        hook.remove()
    for name, module in net.named_modules():
        if isinstance(module, NAFBlock):
            module.attention[0] = LocalMean(seen[name])


def mean_psnr(net: nn.Module, degraded: Path, clean: Path, multiple: int) -> float:
    scores = []
    for path in list_images(clean):
        target = read_image(path).pixels.astype(np.float64)
        x = torch.from_numpy(read_image(degraded / path.name).pixels).permute(2, 0, 1)[None].float() / 127.5 - 1
        h, w = x.shape[-2:]
        with torch.no_grad():
            y = net(F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="reflect"))[..., :h, :w]
        out = ((y.clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy()
        scores.append(10 * np.log10(255 ** 2 / np.mean((out - target) ** 2)))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a task=restore run folder (its export is scored)")
    p.add_argument("--degraded", type=Path, required=True, help="the degraded inputs, named as the clean files")
    p.add_argument("--clean", type=Path, required=True)
    args = p.parse_args(argv)
    cfg = load_config(args.run / "config.yaml", [])
    net = Generator.from_pretrained(args.run / "checkpoints" / "generator").eval()
    multiple = 2 ** cfg.generator.depth
    print(f"global pooling: {mean_psnr(net, args.degraded, args.clean, multiple):.3f} dB")
    localise(net, cfg.data.crop_size, cfg.generator.in_channels)
    print(f"local pooling ({cfg.data.crop_size}-px training crop): "
          f"{mean_psnr(net, args.degraded, args.clean, multiple):.3f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
