"""The transformer-bottleneck and timm-encoder presets at full size: ONNX parity and CPU time.

For each preset (random weights; pretrained ones change no figure here) it prints the
parameters, the largest |ONNX - PyTorch| difference on two odd-sized inputs (onnxruntime,
CPU), the time of one ONNX export, and the median CPU time of a forward pass at ``--size``
px (batch 1, eval) and of a forward + backward at 64 px (batch ``--batch``, train mode).

    python benchmarks/variant_checks.py                       # trans-unet, resnet34-unet, vgg11-unet
    python benchmarks/variant_checks.py --presets trans-unet --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pix2pix_unet.config import UNetConfig, from_dict
from pix2pix_unet.export import export_onnx, onnx_max_difference
from pix2pix_unet.models import build_generator, count_parameters
from pix2pix_unet.tasks import generator_task


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["trans-unet", "resnet34-unet", "vgg11-unet"])
    parser.add_argument("--size", type=int, default=256, help="forward-pass size in px (default 256)")
    parser.add_argument("--batch", type=int, default=8, help="training batch at 64 px (default 8)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"| preset | parameters | ONNX max abs diff | ONNX export s | forward @{args.size} px, ms "
          f"| train fwd+bwd @64 px x{args.batch}, ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.presets:
        net = build_generator(from_dict(UNetConfig, {"preset": name})).eval()
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            path = export_onnx(net, generator_task(net), Path(tmp) / f"{name}.onnx")
            export_s = time.perf_counter() - start
            f = net.config.factor
            diff = max(onnx_max_difference(net, path),  # 2 x (2f + 7) x (f + 9)
                       onnx_max_difference(net, path, torch.rand(1, 3, 3 * f + 1, 2 * f - 5) * 2 - 1))
        x = torch.randn(1, 3, args.size, args.size)
        with torch.no_grad():
            forward = median_seconds(lambda: net(x), args.repeats)
        net.train()
        batch = torch.randn(args.batch, 3, 64, 64)
        step = median_seconds(lambda: net(batch).square().mean().backward(), args.repeats)
        print(f"| `{name}` | {count_parameters(net) / 1e6:.2f} M | {diff:.1e} | {export_s:.0f} "
              f"| {forward * 1e3:.0f} | {step * 1e3:.0f} |")


if __name__ == "__main__":
    main()
