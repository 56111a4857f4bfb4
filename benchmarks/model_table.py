"""Print the model tables of docs/variants.md: parameters and forward GFLOPs of every generator preset and discriminator.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` for one forward
pass of a batch of 1 at ``--size`` px (default 256), on the CPU. It counts the
matrix multiplications and convolutions (2 FLOPs per multiply-add) and nothing
else, so norms, activations, pooling and resizing are not included.

    python benchmarks/model_table.py            # markdown tables for docs/variants.md
    python benchmarks/model_table.py --size 512
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pix2pix_unet.config import (
    GENERATOR_PRESETS, Architecture, Bottleneck, DiscriminatorKind, PatchGANConfig, UNetConfig,
)
from pix2pix_unet.models import Discriminator, build_generator, count_parameters

INTENDED_USE = {
    "small": "the default: 64-px CPU runs and the tests",
    "pix2pix": "the pix2pix paper's 256-px generator (facades, maps, edges2shoes ...)",
    "unet": "Ronneberger et al. 2015: the classic U-Net, full-resolution features",
    "attention-unet": "Oktay et al. 2018: gates suppress skip features the coarser level deems irrelevant",
    "res-unet": "Zhang et al. 2018: residual units, easier optimisation of the deep encoder",
    "lite": "CPU and edge devices: depthwise-separable units, about 50x fewer FLOPs than `unet`",
    "aspp-unet": "DeepLabv3-style multi-rate context (rates 1, 3, 6, 9 + image pooling) at the bottleneck",
    "nafnet": "restoration (task=restore's default): NAFNet blocks, 2 per level, full-resolution features",
    "res-unet-lite": "restoration at CPU width: residual units without batch norm (EDSR)",
    "spade": "label map -> image on a CPU (Park et al. 2019); docs/synthetic.md",
    "spade-256": "label map -> image at 256 px, the paper's widths; docs/synthetic.md",
    "unet++": "Zhou et al. 2018: nested dense skips, one output per depth (deep supervision for segment)",
    "unet3+": "Huang et al. 2020: full-scale skips (every encoder and deeper decoder level into each decoder level)",
    "trans-unet": "Chen et al. 2021: 4 ViT blocks over the 1/16 map's pixels, global context at the bottleneck",
    "resnet34-unet": "segmentation_models.pytorch's Unet: ImageNet ResNet-34 encoder (weights: docs/encoders.md)",
    "vgg11-unet": "TernausNet (Iglovikov & Shvets 2018): ImageNet VGG11 encoder (weights: docs/encoders.md)",
}

DISCRIMINATORS = {
    "70x70 PatchGAN (default)": PatchGANConfig(),
    "70x70 PatchGAN, 2 scales": PatchGANConfig(num_scales=2),
    "70x70 PatchGAN, 3 scales (pix2pixHD)": PatchGANConfig(num_scales=3),
    "PixelGAN (1x1)": PatchGANConfig(kind=DiscriminatorKind.PIXEL),
}


def forward_gflops(module: nn.Module, *inputs: torch.Tensor) -> float:
    """GFLOPs of one forward pass of ``module`` (eval mode, no grad) on ``inputs``."""
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() / 1e9


def blocks(cfg: UNetConfig) -> str:
    if cfg.architecture.value == "spade":
        return "SPADE residual blocks, nearest upsampling, no encoder"
    unit = f"{cfg.conv_unit.value} unit" + (f" x{cfg.units_per_level}" if cfg.units_per_level > 1 else "")
    arch = cfg.architecture
    if arch is Architecture.UNET3P:  # max-pool / bilinear + 3x3 conv-norm-act on every full-scale skip
        parts = [unit, cfg.down.value, f"full-scale skips of {cfg.fullscale_channels} channels per scale"]
    else:
        down = f"timm {cfg.encoder.name} encoder" if arch is Architecture.TIMM_UNET else cfg.down.value
        skips = "nested dense skips" if arch is Architecture.UNETPP else f"{cfg.skip.value} skips"
        parts = [unit if cfg.conv_unit.value != "none" else "4x4 stride-2 convs", down, cfg.up.value, skips]
    if cfg.bottleneck is Bottleneck.TRANSFORMER:
        parts.append(f"transformer bottleneck ({cfg.transformer.depth} blocks, {cfg.transformer.heads} heads)")
    elif cfg.bottleneck.value != "none":
        parts.append(f"{cfg.bottleneck.value} bottleneck")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square input size in px (default 256)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    print(f"| generator preset | blocks | depth, channels | parameters | GFLOPs @{args.size} px | intended use |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    for name, cfg in GENERATOR_PRESETS.items():
        net = build_generator(cfg)  # random weights: a timm encoder's pretrained ones change no count
        gflops = forward_gflops(net, torch.randn(1, cfg.in_channels, args.size, args.size))
        print(f"| `{name}` | {blocks(cfg)} | {cfg.depth}, {cfg.base_channels}→{cfg.max_channels} "
              f"| {count_parameters(net) / 1e6:.2f} M | {gflops:.1f} | {INTENDED_USE.get(name, '')} |")

    print()
    print(f"| discriminator (3 + 3 input channels) | parameters | GFLOPs @{args.size} px | logits per scale |")
    print("| --- | ---: | ---: | --- |")
    for name, cfg in DISCRIMINATORS.items():
        net = Discriminator(3, 3, cfg)
        x = torch.randn(1, 3, args.size, args.size)
        gflops = forward_gflops(net, x, x)
        with torch.no_grad():
            shapes = ", ".join(f"{t.shape[-2]}×{t.shape[-1]}" for t in net(x, x))
        print(f"| {name} | {count_parameters(net) / 1e6:.2f} M | {gflops:.2f} | {shapes} |")


if __name__ == "__main__":
    main()
