"""Does synthetic training data help? Segment a few real pairs alone, then with synthesised pairs, over seeds.

For each regime (``--regimes``, real training pairs) and seed (``--seeds``):

1. Write the real training pairs and ``--val`` validation pairs of the built-in data
   (``--kind photos`` or ``nuclei``), drawn with that seed.
2. ``real``: train ``--task segment`` on the real pairs alone. This segmenter is also
   the judge of steps 4 and 5 (it never sees a validation pair).
3. Train one label -> image generator on the same real pairs (``--gan-preset``, SPADE by
   default, with hinge loss, feature matching and spectral norm) and
   ``pix2pix-unet synthesize --layouts`` ``--synthetic`` pairs from new label maps
   (a layout model fitted to the real maps). The segmenter score of those pairs is printed.
4. ``joint``: segment on real + synthetic, the real pairs repeated to ``--real-share``.
5. ``filtered``: the same with ``synthesize --min-seg-miou`` (pairs the real-trained
   segmenter does not read as their label map are dropped and redrawn: FreeMask-style).
   ``weighted``: the joint set with the ``synthesize --confidence`` maps, so the synthetic
   pixels the real-trained segmenter disagrees with weigh less in the loss (FreeMask's
   per-pixel half).
6. ``pretrain``: segment on the synthetic pairs alone for ``--pretrain-steps``, then
   fine-tune on the real pairs alone (``init_from``) for the rest of ``--seg-steps``.

Every arm trains the same number of segmentation steps (``--seg-steps``; the default
is near convergence for 4 real pairs: a real-only run with fewer steps is still
improving, and an arm given more steps would win by the steps alone), with the same
seed and batch size, and is validated on the same real validation pairs. The generator and the synthetic pairs are made once
per seed and regime and shared by the arms. The script prints, per regime and arm,
the mean ± std over seeds of the final validation mIoU and object F1, the gain over
``real``, whether it clears the target (mean mIoU gain above twice the std of ``real``,
object F1 not lower), and the wall-clock time. Every number is read from the runs'
``metrics.jsonl``; nothing is fixed here.

    python benchmarks/synthetic_gain.py --out runs/synthetic_gain                 # 3 seeds x 4, 8, 20 real pairs
    python benchmarks/synthetic_gain.py --regimes 4 --seeds 3 --gan-steps 600 --seg-steps 300
    python benchmarks/synthetic_gain.py --arms real joint weighted     # only some arms
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

try:
    import pix2pix_unet  # noqa: F401
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pix2pix_unet.cli import main as cli  # noqa: E402
from pix2pix_unet.data.nuclei import NucleiSpec, write_nuclei  # noqa: E402
from pix2pix_unet.data.synthetic import SyntheticSpec, write_dataset  # noqa: E402
from pix2pix_unet.data.labels import instances_from_labels  # noqa: E402

ARMS = ("real", "joint", "filtered", "weighted", "pretrain")
# The segmenter: a 1.0 M-parameter UNet (the default preset has 7.3 M) keeps each run to a minute or two on a CPU.
SEG_MODEL = ["generator.depth=5", "generator.base_channels=16", "generator.max_channels=128"]
# SPADE's recipe (Park et al. 2019) without the VGG term (no VGG16 weights here): hinge, feature matching, spectral norm.
GAN_RECIPE = ["loss.gan=hinge", "loss.fm_weight=10", "discriminator.spectral_norm=true",
              "discriminator.base_channels=32", "discriminator.norm=instance"]


def final_metrics(run_dir: Path) -> dict[str, float]:
    """The last validation row of a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "val/miou" in r or "val/l1" in r][-1]


def real_images(real: Path) -> Path:
    return real / "train" / ("images" if (real / "train" / "images").is_dir() else "B")


def add_pairs(images: Path, labels: Path, instances: Path | None, train: Path, prefix: str,
              confidence: Path | None = None) -> None:
    """Copy a folder's pairs into ``train/{images,labels,instances}``; instances from connected components
    where there is no instance map; and the ``confidence`` folder's maps into ``train/confidence``."""
    for path in sorted(images.iterdir()):
        stem = path.stem
        label = next(labels.glob(f"{stem}.*"))
        shutil.copy(path, train / "images" / f"{prefix}{path.name}")
        shutil.copy(label, train / "labels" / f"{prefix}{label.name}")
        partner = next(instances.glob(f"{stem}.*"), None) if instances is not None and instances.is_dir() else None
        if partner is not None:
            shutil.copy(partner, train / "instances" / f"{prefix}{label.name}")
        else:
            ids = instances_from_labels(np.asarray(Image.open(label)))
            Image.fromarray(ids.astype(np.uint16)).save(train / "instances" / f"{prefix}{label.name}")
        if confidence is not None:
            (train / "confidence").mkdir(exist_ok=True)
            shutil.copy(confidence / label.name, train / "confidence" / f"{prefix}{label.name}")


def combine(real: Path, synthetic: Path | None, out: Path, real_share: float, confidence: bool = False) -> int:
    """``out/train`` = the real pairs repeated to about ``real_share`` of the set, plus the synthetic pairs
    (none: ``synthetic`` alone when ``real_share`` is 0) with, if ``confidence``, their confidence maps;
    ``out/val`` = the real validation split. Returns the real pairs' repeat count."""
    train = out / "train"
    for name in ("images", "labels", "instances"):
        (train / name).mkdir(parents=True, exist_ok=True)
    n_real = len(list(real_images(real).iterdir()))
    n_syn = len(list((synthetic / "images").iterdir())) if synthetic else 0
    repeats = 0 if real_share == 0 else max(1, round(real_share / (1 - real_share) * n_syn / n_real))
    for r in range(repeats):
        add_pairs(real_images(real), real / "train" / "labels", real / "train" / "instances", train, f"real{r}_")
    if synthetic is not None:
        add_pairs(synthetic / "images", synthetic / "labels", synthetic / "instances", train, "syn_",
                  synthetic / "confidence" if confidence else None)
    shutil.copytree(real / "val", out / "val")
    return repeats


def run_cli(args: list[str]) -> None:
    if cli(args) != 0:
        raise SystemExit(f"failed: pix2pix-unet {' '.join(args)}")


def segment(data: Path, run: Path, steps: int, common: list[str], *extra: str) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    run_cli(["train", "--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps", str(steps),
             *common, *SEG_MODEL, f"sample_every={steps}", *extra])
    return final_metrics(run), time.perf_counter() - start


def one_seed(n_real: int, seed: int, args: argparse.Namespace, out: Path) -> dict[str, dict[str, float]]:
    """Every arm for one regime and seed: ``{arm: {"miou", "object_f1", "minutes"}}``, plus ``"gan"``."""
    common = ["--no-wandb", "--seed", str(seed), "checkpoint_every=100000", "log_every=50", *args.overrides]
    kind = [] if args.kind == "photos" else ["generator.in_channels=1", "segment.intensity=image"]
    shutil.rmtree(out, ignore_errors=True)
    if args.kind == "photos":
        real = write_dataset(out / "real", n_real, args.val, seed=seed, spec=SyntheticSpec(size=args.size))
    else:
        real = write_nuclei(out / "real", n_real, args.val, seed=seed, spec=NucleiSpec(size=args.size))
    results: dict[str, dict[str, float]] = {}

    def record(arm: str, metrics: dict[str, float], seconds: float) -> None:
        results[arm] = {"miou": metrics["val/miou"], "object_f1": metrics["val/object_f1"], "minutes": seconds / 60}
        print(f"  [{n_real} real, seed {seed}] {arm}: mIoU {metrics['val/miou']:.3f}, object F1 "
              f"{metrics['val/object_f1']:.3f} ({seconds / 60:.1f} min)", flush=True)

    # 1. real only; its segmenter is the judge below
    record("real", *segment(real, out / "seg_real", args.seg_steps, common, *kind))
    if set(args.arms) == {"real"}:
        return results
    # 2. one label -> image generator on the real pairs, and pairs from new layouts
    start = time.perf_counter()
    gan = out / "label2image"
    channels = [] if args.kind == "photos" else ["generator.out_channels=1"]
    run_cli(["train", "--task", "translate", "--data", str(real), "--output-dir", str(gan), "--max-steps",
             str(args.gan_steps), *common, "--preset", args.gan_preset, *GAN_RECIPE, "labels.format=index",
             f"labels.segmenter={out / 'seg_real'}", f"sample_every={args.gan_steps}", *channels, *args.gan_overrides])
    gan_row = final_metrics(gan)
    synth = ["synthesize", "--checkpoint", str(gan), "--labels", str(real / "train" / "labels"), "--num",
             str(args.synthetic), "--layouts", "--seed", str(seed), "--segmenter", str(out / "seg_real"),
             "--device", "cpu"]
    run_cli([*synth, "--output", str(out / "synthetic"), *(["--confidence"] if "weighted" in args.arms else [])])
    results["gan"] = {"seg_miou": gan_row.get("val/seg_miou", float("nan")), "minutes": (time.perf_counter() - start) / 60}
    # 3. the arms that use the synthetic pairs
    if "joint" in args.arms:
        combine(real, out / "synthetic", out / "joint", args.real_share)
        record("joint", *segment(out / "joint", out / "seg_joint", args.seg_steps, common, *kind))
    if "filtered" in args.arms:
        # exit code 1: some pairs never passed the judge in their draws; the arm trains on those that did,
        # unless they are fewer than half (a weak judge rejects nearly all)
        code = cli([*synth, "--output", str(out / "synthetic_filtered"), "--min-seg-miou", str(args.min_seg_miou)])
        if code not in (0, 1):  # 2: an error, not a filter that some pairs failed
            raise SystemExit(f"failed ({code}): pix2pix-unet {' '.join(synth)} --min-seg-miou {args.min_seg_miou}")
        passed = len(list((out / "synthetic_filtered" / "images").glob("*.png")))
        if passed >= args.synthetic / 2:
            combine(real, out / "synthetic_filtered", out / "filtered", args.real_share)
            record("filtered", *segment(out / "filtered", out / "seg_filtered", args.seg_steps, common, *kind))
            results["filtered"]["pairs"] = passed
        else:
            print(f"  [{n_real} real, seed {seed}] filtered: left out, {passed} of {args.synthetic} pairs reached "
                  f"segmenter mIoU {args.min_seg_miou}", flush=True)
    if "weighted" in args.arms:
        combine(real, out / "synthetic", out / "weighted", args.real_share, confidence=True)
        record("weighted", *segment(out / "weighted", out / "seg_weighted", args.seg_steps, common, *kind))
    if "pretrain" in args.arms:
        combine(real, out / "synthetic", out / "synthetic_only", 0.0)
        pre, pre_s = segment(out / "synthetic_only", out / "seg_pre", args.pretrain_steps, common, *kind)
        tuned, tune_s = segment(real, out / "seg_finetune", args.seg_steps - args.pretrain_steps, common, *kind,
                                f"init_from={out / 'seg_pre'}")
        record("pretrain", tuned, pre_s + tune_s)
        results["pretrain"].update(synthetic_only_miou=pre["val/miou"], synthetic_only_object_f1=pre["val/object_f1"])
    return results


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def report(all_results: dict[int, list[dict]], args: argparse.Namespace, minutes: float | None) -> list[str]:
    """The markdown table (and the target check per regime), from the measured results."""
    took = f"; {minutes:.1f} min in all" if minutes is not None else ""
    lines = [f"{args.kind} data; segmentation: {args.seg_steps} steps, validated on {args.val} real pairs; "
             f"label -> image: {args.gan_preset}, {args.gan_steps} steps; {args.synthetic} synthetic pairs from new "
             f"layouts; real share {args.real_share}{took}", "",
             "| real pairs | seeds | arm | val mIoU | object F1 | mIoU gain | F1 gain | paired mIoU gain | target "
             "| min per run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n_real, runs in all_results.items():
        _, base_s = mean_std([r["real"]["miou"] for r in runs])
        for arm in [a for a in ARMS if any(a in r for r in runs)]:
            done = [r for r in runs if arm in r]  # gains against `real` on the same seeds
            m, s = mean_std([r[arm]["miou"] for r in done])
            f, fs = mean_std([r[arm]["object_f1"] for r in done])
            t = statistics.fmean(r[arm]["minutes"] for r in done)
            if arm == "real":
                cells = " | | | "
            else:
                base_m = statistics.fmean(r["real"]["miou"] for r in done)
                base_f = statistics.fmean(r["real"]["object_f1"] for r in done)
                diffs = [r[arm]["miou"] - r["real"]["miou"] for r in done]
                d, ds = mean_std(diffs)
                met = m - base_m > 2 * base_s and f >= base_f
                cells = (f"{m - base_m:+.3f} | {f - base_f:+.3f} | {d:+.3f} ± {ds:.3f}, higher in "
                         f"{sum(x > 0 for x in diffs)}/{len(diffs)} | {'met' if met else 'not met'}")
            lines.append(f"| {n_real} | {len(done)} | {arm} | {m:.3f} ± {s:.3f} | {f:.3f} ± {fs:.3f} | {cells} | "
                         f"{t:.1f} |")
        if "gan" in runs[0]:
            scores = [r["gan"]["seg_miou"] for r in runs]
            m, s = mean_std(scores)
            lines.append(f"| {n_real} | {len(runs)} | (generator's segmenter score, val) | {m:.3f} ± {s:.3f} | | | | | | "
                         f"{statistics.fmean(r['gan']['minutes'] for r in runs):.1f} |")
    lines += ["", "target: mean mIoU gain > 2 x the seed-to-seed std of `real`, and object F1 not lower; paired: "
              "the per-seed difference from `real` (same real pairs, same seed)"]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/synthetic_gain"), help="working folder (replaced)")
    p.add_argument("--kind", choices=["photos", "nuclei"], default="photos", help="built-in data (photos)")
    p.add_argument("--regimes", type=int, nargs="+", default=[4, 8, 20], help="real training pairs (4 8 20)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per regime (3)")
    p.add_argument("--first-seed", type=int, default=1, help="seeds run from this one (1)")
    p.add_argument("--seeds-large", type=int, help="seeds for regimes above 4 pairs (default: --seeds)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--val", type=int, default=48, help="real validation pairs (48)")
    p.add_argument("--synthetic", type=int, default=200, help="synthesised pairs (200)")
    p.add_argument("--real-share", type=float, default=0.5, help="share of real pairs in joint training (0.5)")
    p.add_argument("--min-seg-miou", type=float, default=0.75, help="the filter arm's threshold (0.75)")
    p.add_argument("--size", type=int, default=72, help="image size; training crops are 64 px (72)")
    p.add_argument("--gan-preset", default="spade", help="label -> image generator preset (spade)")
    p.add_argument("--gan-steps", type=int, default=800, help="label -> image training steps (800)")
    p.add_argument("--seg-steps", type=int, default=2000, help="segmentation steps of every arm (2000)")
    p.add_argument("--pretrain-steps", type=int, help="the pretrain arm's steps on synthetic pairs, out of "
                   "--seg-steps (half)")
    p.add_argument("--gan-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides for the label -> image run only")
    p.add_argument("--report", action="store_true",
                   help="print the table of --out/results.json (a finished or running benchmark) and stop")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for every training run")
    args = p.parse_args(argv)
    if not 0.0 < args.real_share < 1.0:
        p.error(f"--real-share {args.real_share} must be in (0, 1)")
    args.pretrain_steps = args.seg_steps // 2 if args.pretrain_steps is None else args.pretrain_steps
    if not 0 < args.pretrain_steps < args.seg_steps:
        p.error(f"--pretrain-steps {args.pretrain_steps} must be between 0 and --seg-steps {args.seg_steps}")

    if args.report:  # the other arguments describe the run, as they were given to it
        saved = json.loads((args.out / "results.json").read_text())
        print("\n".join(report({int(k): v for k, v in saved.items()}, args, None)))
        return 0
    start = time.perf_counter()
    all_results: dict[int, list[dict]] = {}
    for n_real in args.regimes:
        seeds = args.seeds if n_real <= 4 or args.seeds_large is None else args.seeds_large
        all_results[n_real] = []
        for seed in range(args.first_seed, args.first_seed + seeds):  # the table so far after every seed, so a long run is read as it goes
            all_results[n_real].append(one_seed(n_real, seed, args, args.out / f"real{n_real}_seed{seed}"))
            minutes = (time.perf_counter() - start) / 60
            (args.out / "results.json").write_text(json.dumps({str(k): v for k, v in all_results.items()}, indent=1))
            print("\n".join(report(all_results, args, minutes)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
