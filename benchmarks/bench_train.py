"""Training and inference speed of a pix2pix configuration: prints a table and JSON.

    python benchmarks/bench_train.py                                  # the baseline: pix2pix preset, 256 px, batch 1, fp32
    python benchmarks/bench_train.py --mixed-precision bf16 --batch-size 64 --compile
    python benchmarks/bench_train.py --mixed-precision bf16 --compile-mode reduce-overhead   # + CUDA graphs
    python benchmarks/bench_train.py --compare-plain --steps 10       # vs a straightforward eager step, same run
    python benchmarks/bench_train.py --small-conv-gemm off            # set a CPU option instead of measuring it

Reports, per training step: throughput (images/s), the host-device syncs in a
step (CUDA's sync debug mode: where the host waits for the GPU), and time split into data
(loader + augmentation), generate (G forward), discriminator update and generator
update; peak memory; model FLOPs per image (torch's FlopCounterMode on one
uncompiled step) and the achieved fraction of the device's peak (MFU); and the
generator's inference latency at 256 and 512 px (batch 1). On a CPU the options
left to ``auto`` are first measured as training measures them (training/perf.py):
the choice and each combination's step time are printed and in the JSON
(``cpu_options``).

``--compare-plain`` times benchmarks/reference_step.py, a straightforward eager
step, in a process of its own (as a user's plain script runs: default
allocator, no speed settings), alternating with blocks of the optimised step in
this process, so both see the same machine load; both step the same fixed batch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pix2pix_unet.config import (  # noqa: E402
    GENERATOR_PRESETS, CompileMode, DataConfig, LossConfig, MixedPrecision, PatchGANConfig, PerfConfig, Switch, from_dict,
    UNetConfig,
)
from pix2pix_unet.data import PairedAugmentation, build_datasets, builtin_pairs  # noqa: E402
from pix2pix_unet.models import Discriminator, build_generator  # noqa: E402
from pix2pix_unet.training.perf import (  # noqa: E402
    SpeedPlan, adam, decide_cpu_options, measured_options, plan, speed_up, step_sampler,
)
from pix2pix_unet.training.step import train_step  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_step import fixed_batch  # noqa: E402

# Dense tensor-core peaks (TFLOP/s) from the vendors' data sheets; fp32 convs run as TF32 by default in PyTorch.
PEAK_TFLOPS = {
    "H100": {"bf16": 989.4, "fp16": 989.4, "no": 494.7},
    "H200": {"bf16": 989.4, "fp16": 989.4, "no": 494.7},
    "A100": {"bf16": 312.0, "fp16": 312.0, "no": 156.0},
    "L4": {"bf16": 121.0, "fp16": 121.0, "no": 60.0},
}

SPEED_OPTIONS = [f.name for f in dataclasses.fields(SpeedPlan)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="pix2pix", choices=sorted(GENERATOR_PRESETS))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    p.add_argument("--mixed-precision", default="no", choices=[m.value for m in MixedPrecision])
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC G and D (default: both with CUDA, D only on CPU)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile G and D (default: on with CUDA)")
    p.add_argument("--compile-mode", default="default", choices=[m.value for m in CompileMode],
                   help="with compile: reduce-overhead adds CUDA graphs")
    p.add_argument("--fused-adam", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                   help="CUDA: autotune cuDNN's conv algorithms per shape")
    p.add_argument("--small-conv-gemm", default="auto", choices=[m.value for m in Switch],
                   help="CPU: convs on inputs of <= 16x16 px through im2col + GEMM (auto: measured, as training does)")
    p.add_argument("--keep-freed-memory", default="auto", choices=[m.value for m in Switch],
                   help="CPU: malloc keeps freed memory for reuse (auto: measured, as training does)")
    p.add_argument("--data", type=Path, default=None,
                   help="a pair folder (A/ + B/ or aligned AB images) decoded from disk in the workers, resized to "
                        "--size; default: the built-in pairs, held in memory")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is there")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--compare-plain", action="store_true",
                   help="also time the straightforward eager step (benchmarks/reference_step.py, own process)")
    p.add_argument("--blocks", type=int, default=3, help="--compare-plain: alternating blocks of each")
    p.add_argument("--inference-sizes", type=int, nargs="*", default=[256, 512])
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (known GPUs are built in)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args(argv)


class Clock:
    """Wall-clock marks that wait for the device first, so each phase is charged its own work."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.last = time.perf_counter()
        self.phases: dict[str, list[float]] = {}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def reset(self) -> None:
        self.sync()
        self.last = time.perf_counter()

    def mark(self, name: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.phases.setdefault(name, []).append(now - self.last)
        self.last = now


def peak_tflops(device: torch.device, precision: str, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((table[precision] for key, table in PEAK_TFLOPS.items() if key in name), None)


def train_flops_per_image(gen_cfg: UNetConfig, disc_cfg: PatchGANConfig, size: int, device: torch.device) -> float:
    """FLOPs of one eager training step (G and D, forward and backward) divided by the batch (2 images)."""
    g = build_generator(gen_cfg).to(device)
    d = Discriminator(gen_cfg.in_channels, gen_cfg.out_channels, disc_cfg).to(device)
    acc = Accelerator(cpu=device.type == "cpu")
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    x = torch.randn(2, gen_cfg.in_channels, size, size, device=device)
    y = torch.randn(2, gen_cfg.out_channels, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        train_step(acc, g, d, opt_g, opt_d, x, y, LossConfig())
    return counter.get_total_flops() / 2


def host_syncs(step, device: torch.device) -> list[str] | None:
    """Where one call of ``step`` makes the host wait for the GPU (torch's CUDA sync debug mode): one
    ``file:line`` per synchronising call. None on other devices, which have nothing to wait for."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def plain_block(args: argparse.Namespace, device: torch.device) -> list[float]:
    """Step times (s) of benchmarks/reference_step.py, run in a fresh process with the same settings."""
    cmd = [sys.executable, str(Path(__file__).with_name("reference_step.py")), "--preset", args.preset,
           "--size", str(args.size), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--device", str(device)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [ms / 1000 for ms in json.loads(out.strip().splitlines()[-1])["step_ms"]]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with contextlib.ExitStack() as scope:  # the run's process-wide switches, put back when it ends
        return run(args, scope)


def run(args: argparse.Namespace, scope: contextlib.ExitStack) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    AcceleratorState._reset_state()  # a process may benchmark more than once (tests): forget earlier precision settings
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=args.cpu)
    device = accelerator.device
    perf = PerfConfig(channels_last=args.channels_last, compile=args.compile,
                      compile_mode=CompileMode(args.compile_mode), fused_adam=args.fused_adam,
                      cudnn_benchmark=args.cudnn_benchmark, small_conv_gemm=Switch(args.small_conv_gemm),
                      keep_freed_memory=Switch(args.keep_freed_memory))
    speed = plan(perf, device)
    gen_cfg = from_dict(UNetConfig, {"preset": args.preset})
    disc_cfg = PatchGANConfig()
    torch.manual_seed(0)

    # 1. nets and data, as train_gan.py builds them
    generator = build_generator(gen_cfg)
    discriminator = Discriminator(gen_cfg.in_channels, gen_cfg.out_channels, disc_cfg)
    speed_up(generator, discriminator, speed)
    loss_cfg = LossConfig()
    fixed = functools.partial(fixed_batch, (gen_cfg.in_channels, gen_cfg.out_channels), args.size, args.batch_size,
                              device)
    cpu_options = decide_cpu_options(  # perf auto, as a training run measures it: on copies, the fixed batch
        accelerator, speed, measured_options(perf, speed, device, autocast=args.mixed_precision != "no"), None,
        functools.partial(step_sampler, accelerator, generator, discriminator, fixed, loss_cfg, speed),
        reuse=False)
    speed = cpu_options.speed
    scope.enter_context(speed.flags())
    opt_g = adam(generator.parameters(), 2e-4, (0.5, 0.999), speed)
    opt_d = adam(discriminator.parameters(), 2e-4, (0.5, 0.999), speed)
    if args.data:
        dataset = build_datasets(DataConfig(path=str(args.data), load_size=args.size, crop_size=None), gen_cfg, 0)[0]
    else:
        dataset = builtin_pairs(max(16, args.batch_size), seed=0, size=args.size)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=args.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=args.num_workers > 0)
    generator, discriminator, opt_g, opt_d, loader = accelerator.prepare(generator, discriminator, opt_g, opt_d, loader)
    augment = PairedAugmentation(crop_size=None, flip=True).to(device)

    def batches():
        while True:
            yield from loader

    stream = batches()
    clock = Clock(device)

    def one_step(on_phase=None) -> None:
        """One training step as the loop runs it; with ``on_phase``, each phase is timed (and waited for)."""
        if on_phase:
            clock.reset()
        batch = next(stream)
        inputs, target = (speed.batch(t) for t in augment(batch["A"], batch["B"]))
        if on_phase:
            on_phase("data")
        with speed.kernels():
            train_step(accelerator, generator, discriminator, opt_g, opt_d, inputs, target, loss_cfg,
                       on_phase=on_phase)

    x_fixed, y_fixed = (speed.batch(t) for t in fixed())

    def fixed_step() -> None:
        """The same step on one batch already on the device: the compute alone, no data pipeline."""
        with speed.kernels():
            train_step(accelerator, generator, discriminator, opt_g, opt_d, x_fixed, y_fixed, loss_cfg)

    def back_to_back(step, n: int) -> float:
        """Seconds per step over ``n`` steps run as training runs them: one wait for the device, at the end."""
        clock.reset()
        start = time.perf_counter()
        for _ in range(n):
            step()
        clock.sync()
        return (time.perf_counter() - start) / n

    # 2. training: warm up (and compile) on both kinds of batch, then throughput as training runs
    for _ in range(args.warmup):
        one_step()
        fixed_step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # three alternating blocks of each, the median block counted: both see the same machine, and one
    # slow step (another process, the OS) does not decide the figure
    blocks: dict[str, list[float]] = {"pipelined": [], "fixed": []}
    for _ in range(3):
        blocks["pipelined"].append(back_to_back(one_step, max(1, args.steps // 3)))
        blocks["fixed"].append(back_to_back(fixed_step, max(1, args.steps // 3)))
    pipelined_s, fixed_s = (statistics.median(blocks[k]) for k in ("pipelined", "fixed"))

    syncs = host_syncs(one_step, device)

    # 3. the split of a step into phases (each waited for, so the sum is a little above the pipelined step)
    clock.phases.clear()
    for _ in range(args.steps):
        one_step(on_phase=clock.mark)
    phase_ms = {k: 1000 * statistics.mean(v) for k, v in clock.phases.items()}
    step_ms = sum(phase_ms.values())
    memory = peak_memory_mb(device)

    # 4. the straightforward eager step (own process) and ours on the same fixed batch, in alternating blocks
    plain_ms = optimised_ms = None
    if args.compare_plain:
        times: dict[str, list[float]] = {"plain": [], "optimised": []}
        for _ in range(args.blocks):
            times["plain"] += plain_block(args, device)
            for i in range(args.warmup + args.steps):
                clock.reset()
                fixed_step()
                clock.sync()
                if i >= args.warmup:
                    times["optimised"].append(time.perf_counter() - clock.last)
        plain_ms = 1000 * statistics.median(times["plain"])
        optimised_ms = 1000 * statistics.median(times["optimised"])

    # 5. FLOPs and MFU, at the pipelined throughput
    flops = train_flops_per_image(gen_cfg, disc_cfg, args.size, device)
    images_per_s = args.batch_size / pipelined_s
    peak = peak_tflops(device, args.mixed_precision, args.peak_tflops)
    mfu = flops * images_per_s / (peak * 1e12) if peak else None

    # 6. inference latency, batch 1
    net = accelerator.unwrap_model(generator).eval()
    latency = {}
    with torch.inference_mode(), accelerator.autocast(), speed.kernels():
        for size in args.inference_sizes:
            x = speed.batch(torch.randn(1, gen_cfg.in_channels, size, size, device=device))
            times = []
            for i in range(args.warmup + max(5, args.steps // 2)):
                clock.reset()
                net(x)
                clock.sync()
                if i >= args.warmup:
                    times.append(time.perf_counter() - clock.last)
            latency[str(size)] = 1000 * statistics.median(times)

    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "preset": args.preset, "size": args.size, "batch_size": args.batch_size,
        "data": str(args.data) if args.data else "built-in (in memory)", "num_workers": args.num_workers,
        "mixed_precision": args.mixed_precision,
        **{k: getattr(v, "value", v) for k, v in dataclasses.asdict(speed).items()},  # enums as their names
        "cpu_options": cpu_options.record,  # what auto measured: the choice, each combination's step times
        "steps": args.steps,
        "images_per_s": images_per_s,
        "pipelined_step_ms": 1000 * pipelined_s,
        "fixed_batch_step_ms": 1000 * fixed_s,
        "device_busy": min(1.0, fixed_s / pipelined_s),
        "host_syncs_per_step": syncs,
        "step_ms": step_ms,
        "phase_ms": phase_ms,
        "peak_memory_mb": memory,
        "train_gflop_per_image": flops / 1e9,
        "achieved_tflops": flops * images_per_s / 1e12,
        "peak_tflops": peak,
        "mfu": mfu,
        "inference_ms": latency,
        "plain_step_ms": plain_ms,
        "optimised_step_ms": optimised_ms,
        "optimised_over_plain": optimised_ms / plain_ms if plain_ms else None,
    }
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return result


def print_table(r: dict) -> None:
    rows = [
        ("device", r["device"]),
        ("config", f"{r['preset']} @ {r['size']} px, batch {r['batch_size']}, precision {r['mixed_precision']}"),
        ("data", f"{r['data']}, {r['num_workers']} loader workers"),
        ("speed options", ", ".join(f"{k}={r[k]}" for k in SPEED_OPTIONS)),
        *([("measured (auto)", ", ".join(" ".join(f"{k}={'on' if v else 'off'}" for k, v in c["options"].items())
                                         + f" {c['best_ms']:.1f} ms" for c in r["cpu_options"]["candidates"])
            + f" per step: kept the fastest, in {r['cpu_options']['seconds']:.1f} s")] if r["cpu_options"] else []),
        ("throughput", f"{r['images_per_s']:.2f} images/s ({r['pipelined_step_ms']:.1f} ms per step, back to back)"),
        ("data pipeline", f"a step on one batch kept on the device takes {r['fixed_batch_step_ms']:.1f} ms: "
                          f"device busy ~{100 * r['device_busy']:.0f}% of the pipelined step"),
        ("host syncs", "n/a (not CUDA)" if r["host_syncs_per_step"] is None else
                       f"{len(r['host_syncs_per_step'])} per step" + (f" at {', '.join(sorted(set(r['host_syncs_per_step'])))}"
                                                                        if r["host_syncs_per_step"] else "")),
        ("phases", f"{r['step_ms']:.1f} ms = " + " + ".join(f"{k} {v:.1f}" for k, v in r["phase_ms"].items())
                   + " (each waited for)"),
        ("peak memory", f"{r['peak_memory_mb']:.0f} MiB"),
        ("model FLOPs", f"{r['train_gflop_per_image']:.1f} GFLOP per image per training step"),
        ("achieved", f"{r['achieved_tflops']:.3f} TFLOP/s" + (f", MFU {100 * r['mfu']:.1f}% of {r['peak_tflops']} TFLOP/s"
                                                               if r["mfu"] is not None else ", MFU n/a (no known peak; --peak-tflops)")),
        ("inference", ", ".join(f"{s} px {ms:.1f} ms" for s, ms in r["inference_ms"].items())),
    ]
    if r["plain_step_ms"]:
        rows.append(("vs plain eager", f"optimised {r['optimised_step_ms']:.1f} ms vs plain {r['plain_step_ms']:.1f} ms "
                                       f"per step = {r['optimised_over_plain']:.2f}x"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:>{width}}  {v}")


if __name__ == "__main__":
    main()
