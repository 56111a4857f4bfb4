"""Inference speed: latency at 256 and 512 px, and megapixels per second of overlap-tile inference.

Runs a generator with random weights (speed does not depend on them) on the CPU
and, where one is available, on CUDA. Example::

    python benchmarks/inference.py                        # the default `small` preset
    python benchmarks/inference.py --preset pix2pix --large 4096 --repeats 5
    python benchmarks/inference.py --preset pix2pix --devices cuda --precision bf16 --compile --compile-mode reduce-overhead

Prints one table per device. Latency is the median of ``--repeats`` timed
forward passes (batch 1) after ``--warmup`` untimed ones. The generator is set up
and run exactly as ``pix2pix-unet predict`` runs it with the same ``--precision``
and ``--compile`` options (:func:`pix2pix_unet.runtime.prepare_generator`).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

try:
    import pix2pix_unet  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pix2pix_unet.config import GENERATOR_PRESETS, BlendWindow, CompileMode, InferenceConfig, MixedPrecision  # noqa: E402
from pix2pix_unet.runtime import autocast, prepare_generator  # noqa: E402
from pix2pix_unet.models import Generator, build_generator, count_parameters  # noqa: E402
from pix2pix_unet.runtime.tiling import plan_tiles, predict_tiled  # noqa: E402
from pix2pix_unet.models.unet import pad_to_multiple  # noqa: E402
from pix2pix_unet.runtime import backend_flags, inference_flags  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Seconds per call of ``fn``, ``repeats`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def bench_device(net: Generator, device: torch.device, args: argparse.Namespace) -> list[tuple[str, str]]:
    cfg = InferenceConfig(precision=MixedPrecision(args.precision), compile=args.compile,
                          compile_mode=CompileMode(args.compile_mode))
    net = prepare_generator(net, cfg, device)
    channels = net.config.in_channels
    rows = []
    for size in (256, 512):
        x = torch.rand(1, channels, size, size, device=device) * 2 - 1

        def forward() -> torch.Tensor:
            with autocast(cfg, device):
                return net(x)

        t = statistics.median(timed(forward, device, args.repeats, args.warmup))
        rows.append((f"latency {size}x{size}", f"{t * 1e3:.1f} ms  ({size * size / t / 1e6:.2f} MP/s)"))
    large = torch.rand(channels, args.large, args.large) * 2 - 1  # on the CPU, as a decoded image would be
    padded = pad_to_multiple(large[None], net.config.factor)[0]
    plan = plan_tiles(padded.shape[-2], padded.shape[-1], args.tile, args.overlap, net.config.factor)

    def tiled() -> torch.Tensor:
        with autocast(cfg, device):
            return predict_tiled(net, large, tile=args.tile, overlap=args.overlap, factor=net.config.factor,
                                 window=BlendWindow(args.window), batch_size=args.batch_size, device=device)

    t = statistics.median(timed(tiled, device, max(1, args.repeats // 4), 1))
    mp = args.large * args.large / 1e6
    rows.append((f"tiled {args.large}x{args.large} ({len(plan)} tiles of {args.tile}, overlap "
                 f"{args.tile - plan.step}, batch {args.batch_size})", f"{t:.2f} s  ({mp / t:.2f} MP/s)"))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", choices=sorted(GENERATOR_PRESETS))
    p.add_argument("--large", type=int, default=2048, help="side of the large image for tiled inference (2048)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument("--window", default="linear", choices=[w.value for w in BlendWindow])
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (4)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--devices", nargs="*", help="default: cpu, plus cuda where available")
    p.add_argument("--precision", default="no", choices=[m.value for m in MixedPrecision], help="autocast (no)")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator (warm-up pays for it)")
    p.add_argument("--compile-mode", default="default", choices=[m.value for m in CompileMode])
    p.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                   help="malloc keeps freed memory, as `pix2pix-unet predict` holds it on CPU while it runs")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    net = build_generator(GENERATOR_PRESETS[args.preset])
    devices = args.devices or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    print(f"generator preset {args.preset}: {count_parameters(net) / 1e6:.1f} M parameters, "
          f"2**depth = {net.config.factor}; torch {torch.__version__}")
    for name in devices:
        device = torch.device(name)
        where = (torch.cuda.get_device_name(device) if device.type == "cuda"
                 else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
        print(f"\n{name} ({where}; precision {args.precision}, compile {args.compile and args.compile_mode})")
        # predict's process-wide switches, held for this device's runs (without the allocator's, if asked)
        flags = inference_flags(device) if args.keep_freed_memory else backend_flags(
            cudnn_benchmark=True if device.type == "cuda" else None)
        with flags:
            for label, value in bench_device(net, device, args):
                print(f"  {label:<55} {value}")


if __name__ == "__main__":
    main()
