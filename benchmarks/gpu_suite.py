"""The GPU measurements of the performance issue, as one prepared run inside a time budget.

    python benchmarks/gpu_suite.py --out $OUT --budget-s 540      # on the GPU machine
    python benchmarks/gpu_suite.py --out /tmp/suite --quick        # the same plan, tiny, on a CPU (tests)

Runs :mod:`bench_train` and :mod:`inference` (each configuration in a process of
its own, so every one compiles and counts its peak memory afresh), most important
first:

1. the baseline, fp32 batch 1, optimised (compiled, channels-last) against the
   plain eager step in the same run (``--compare-plain``), with 512-px latency;
2. bf16 at batch 128, decoding PNG pairs from disk in loader workers (the MFU target);
3. inference latency at batch 1 as ``predict --precision bf16 --compile
   --compile-mode reduce-overhead`` runs it (the 2 ms target);
4. bf16 at batch 256 and 32 (PNG pairs), then bf16 batch 1 with and without CUDA graphs.

A run that would start with less than ``--reserve-s`` of the budget left is
skipped (and listed as such). After every run, ``suite.json`` (all results) and
``suite.md`` (one table row per run) are rewritten under ``--out``, so a run cut
off by its time limit still leaves everything measured before it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Run:
    name: str
    argv: list[str]  # the script's arguments
    needs_data: bool = False  # reads the PNG pair folder the suite writes
    script: str = "bench_train.py"  # or inference.py, whose printed table is kept as it is
    result: dict | None = None
    status: str = "not run"
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)


def plan(quick: bool, data: Path) -> list[Run]:
    """The runs, most important first. ``quick``: the same runs on a tiny model and image, uncompiled."""
    if quick:
        common = ["--preset", "small", "--size", "64", "--steps", "3", "--warmup", "1", "--no-compile",
                  "--num-workers", "1"]
        batches, latency, workers = [4, 8, 2], ["--inference-sizes", "64"], "1"
        inference = ["--preset", "small", "--large", "256", "--tile", "128", "--overlap", "32", "--repeats", "2",
                     "--warmup", "1", "--devices", "cpu"]
    else:
        common = ["--preset", "pix2pix", "--size", "256", "--steps", "30", "--warmup", "5"]
        batches, latency, workers = [128, 256, 32], ["--inference-sizes", "512"], str(min(12, os.cpu_count() or 1))
        inference = ["--preset", "pix2pix", "--repeats", "50", "--warmup", "10", "--devices", "cuda",
                     "--precision", "bf16", "--compile", "--compile-mode", "reduce-overhead"]

    def large(batch: int) -> Run:
        return Run(f"bf16 b{batch} png", [*common, "--batch-size", str(batch), "--mixed-precision", "bf16",
                                          "--data", str(data), "--num-workers", workers, "--inference-sizes"],
                   needs_data=True)

    return [
        Run("fp32 b1 vs plain", [*common, "--batch-size", "1", "--compare-plain", "--blocks", "1", *latency]),
        large(batches[0]),
        Run("inference bf16 cuda-graphs", inference, script="inference.py"),
        large(batches[1]),
        large(batches[2]),
        Run("bf16 b1", [*common, "--batch-size", "1", "--mixed-precision", "bf16", "--inference-sizes"]),
        Run("bf16 b1 cuda-graphs", [*common, "--batch-size", "1", "--mixed-precision", "bf16",
                                     "--compile-mode", "reduce-overhead", *latency]),
    ]


def row(run: Run) -> str:
    r = run.result
    if r is None:
        return f"| {run.name} | {run.status} ({run.seconds:.0f} s) | | | | | | | |"
    mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
    latency = ", ".join(f"{s} px {ms:.2f} ms" for s, ms in r["inference_ms"].items()) or "-"
    plain = f"{r['optimised_over_plain']:.2f}x plain" if r.get("optimised_over_plain") else "-"
    syncs = "n/a" if r["host_syncs_per_step"] is None else str(len(r["host_syncs_per_step"]))
    return (f"| {run.name} | {r['images_per_s']:.1f} | {r['pipelined_step_ms']:.2f} | {100 * r['device_busy']:.0f}% "
            f"| {syncs} | {mfu} | {r['peak_memory_mb']:.0f} | {latency} | {plain} |")


def write_report(out: Path, runs: list[Run]) -> None:
    train = [r for r in runs if r.script == "bench_train.py"]
    device = next((r.result["device"] for r in train if r.result), "?")
    lines = [f"device: {device}", "",
             "| run | images/s | ms/step | device busy | host syncs/step | MFU | peak MiB | inference (batch 1) "
             "| vs plain eager |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *map(row, train)]
    for run in runs:
        if run.script == "inference.py":
            lines += ["", f"{run.name}: benchmarks/inference.py {' '.join(run.argv)} ({run.status})",
                      "```", run.result["output"] if run.result else "\n".join(run.log), "```"]
    (out / "suite.md").write_text("\n".join(lines) + "\n")
    (out / "suite.json").write_text(json.dumps(
        {"runs": [{"name": r.name, "script": r.script, "argv": r.argv, "status": r.status, "seconds": r.seconds,
                   "result": r.result} for r in runs]}, indent=2))


def main(argv: list[str] | None = None) -> list[Run]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for suite.json, suite.md and the logs")
    p.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget for the whole suite")
    p.add_argument("--reserve-s", type=float, default=90.0, help="start no run with less than this left")
    p.add_argument("--quick", action="store_true", help="tiny model, uncompiled: checks the suite itself on a CPU")
    args = p.parse_args(argv)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    data = Path(os.environ.get("TMPDIR", "/tmp")) / f"pix2pix_suite_pairs_{'quick' if args.quick else 256}"
    runs = plan(args.quick, data)

    def left() -> float:
        return args.budget_s - (time.perf_counter() - start)

    # the PNG pairs for the large-batch runs are written while the first runs measure (renamed when complete)
    size, count = ("64", "8") if args.quick else ("256", "256")
    partial = data.with_name(data.name + ".partial")
    writer = None
    if not data.is_dir() and left() >= args.reserve_s:
        shutil.rmtree(partial, ignore_errors=True)
        writer = subprocess.Popen([sys.executable, str(ROOT / "datasets" / "make_synthetic.py"), "--out", str(partial),
                                   "--num-train", count, "--num-val", "1", "--size", size],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    for run in runs:
        if left() < args.reserve_s:
            run.status = "skipped: out of budget"
            continue
        if run.needs_data and writer is not None:
            if writer.wait() != 0:
                raise RuntimeError(f"datasets/make_synthetic.py failed: {writer.stderr.read()}")
            partial.rename(data)
            writer = None
        json_path = args.out / f"{run.name.replace(' ', '_')}.json"
        cmd = [sys.executable, str(HERE / run.script), *run.argv]
        if run.script == "bench_train.py":
            cmd += ["--json", str(json_path)]
        t0 = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, left() - 5))
            run.status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
            run.log = (done.stdout + done.stderr).splitlines()[-40:]
            if done.returncode == 0:
                run.result = (json.loads(json_path.read_text()) if run.script == "bench_train.py"
                              else {"output": done.stdout.strip()})
        except subprocess.TimeoutExpired:
            run.status = "timed out"
        run.seconds = time.perf_counter() - t0
        print(f"{run.name}: {run.status} in {run.seconds:.0f} s", flush=True)
        if run.result is None:
            print("\n".join(run.log), flush=True)
        write_report(args.out, runs)
    if writer is not None:  # every run that needed the pairs was skipped
        writer.kill()
    write_report(args.out, runs)
    print((args.out / "suite.md").read_text())
    return runs


if __name__ == "__main__":
    main()
