"""Command line: ``pix2pix-unet train`` (same as ``python train_gan.py``), ``predict``, ``export``, ``evaluate``,
``synthesize``, ``push``, ``demo``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .commands import demo_main, denoise_main, evaluate_main, export_main, predict_main
from ..config import GENERATOR_PRESETS, ConfigError, Task, TrainConfig, load_config

if TYPE_CHECKING:  # torch is imported by the commands that run a network, not by `--help`
    import torch

    from ..runtime.distributed import Shard

# Flags that are shortcuts for config keys: flag dest -> dotted key.
TRAIN_FLAGS = {
    "data": "data.path",
    "output_dir": "output_dir",
    "max_steps": "max_steps",
    "batch_size": "batch_size",
    "direction": "data.direction",
    "mixed_precision": "mixed_precision",
    "seed": "seed",
    "preset": "generator.preset",
    "task": "task",
}


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_gan.py",
        description="Train a pix2pix UNet generator + PatchGAN discriminator (on the built-in data by default).",
        epilog="Any config key can be set as KEY=VALUE, e.g. generator.norm=instance loss.gan=lsgan ema=true",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (dotted keys, YAML values)")
    p.add_argument("--config", type=Path, help="YAML config file")
    p.add_argument("--data", help="dataset folder (aligned AB images, or A/ and B/), or 'builtin' (default)")
    p.add_argument("--output-dir", help="run folder (default runs/pix2pix)")
    p.add_argument("--max-steps", type=int, help="optimiser steps to train for (with --budget: at most)")
    p.add_argument("--budget", help="wall time for the whole run, e.g. 90s, 15m, 1.5h: the first steps are timed "
                                    "and max_steps is set so that training and validation end inside it")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--direction", choices=["AtoB", "BtoA"])
    p.add_argument("--preset", help=f"generator preset: {', '.join(GENERATOR_PRESETS)}")
    p.add_argument("--task", choices=[t.value for t in Task],
                   help="what to learn: translate (default), segment (image -> labels), restore (degraded -> clean), "
                   "unpaired (domain A -> domain B from unpaired trainA/ + trainB/)")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="end this session after STEP (checkpointed; the lr schedule still runs to --max-steps)")
    p.add_argument("--no-wandb", action="store_true", help="do not log to Weights & Biases")
    p.add_argument("--skip-bad", action="store_true",
                   help="train on the good pairs when some files are bad (default: list them all and stop)")
    return p


def _flatten(data: dict, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        keys |= _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return keys


def explicit_keys(args: argparse.Namespace, values: dict[str, object]) -> set[str]:
    """The dotted keys the user set: in ``--config``, by a flag, or as ``KEY=VALUE``. A generator preset
    counts as setting the whole generator."""
    import yaml

    keys = set(values) | {o.split("=", 1)[0].strip() for o in args.overrides if "=" in o}
    if args.config is not None and args.config.is_file():
        keys |= _flatten(yaml.safe_load(args.config.read_text()) or {})
    if any(k == "generator.preset" or k == "generator" for k in keys):
        keys |= {"generator.depth", "generator.dropout"}
    return keys


def config_from_args(args: argparse.Namespace, plan_out: list | None = None) -> TrainConfig:
    """Base config (the run's own config.yaml on --resume, else --config), then flags, then KEY=VALUE.

    Flag values are applied as argparse typed them, not re-read as YAML: ``--output-dir 2024`` is a folder name.
    With folder data and ``plan`` on, the keys the user did not set come from the dataset's plan
    (:mod:`pix2pix_unet.planner`); its fingerprint and decisions are appended to ``plan_out``. A resumed run
    keeps the settings its ``config.yaml`` recorded, plan included.
    """
    values = {key: getattr(args, dest) for dest, key in TRAIN_FLAGS.items() if getattr(args, dest) is not None}
    if args.no_wandb:
        values["wandb"] = False
    if args.skip_bad:
        values["data.skip_bad"] = True
    if getattr(args, "budget", None) is not None:
        from ..planner.rules import BUDGET_CAP
        from ..training.budget import parse_duration

        try:
            values["budget_s"] = parse_duration(args.budget)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        values.setdefault("max_steps", BUDGET_CAP)  # the budget decides; --max-steps, if given, caps it
    base = args.config
    if args.resume:
        output_dir = Path(args.output_dir or TrainConfig().output_dir)
        saved = output_dir / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"--resume: {saved} does not exist; is {output_dir} a run folder?")
        return load_config(saved, args.overrides, values)
    cfg = load_config(base, args.overrides, values)
    if not cfg.plan or cfg.data.path == "builtin" or not Path(cfg.data.path).is_dir():
        return cfg
    if cfg.task is Task.UNPAIRED:
        print("plan: none for task=unpaired yet; the settings are the reference code's (docs/unpaired.md)",
              file=sys.stderr)
        return cfg
    from ..data import DatasetError
    from ..planner import fingerprint, measured_speed, overrides, plan

    try:
        fp = fingerprint(cfg.data.path, cfg.task, cfg.labels)
    except DatasetError as err:  # the data checks that follow name every bad file (and --skip-bad can train)
        print(f"plan: not made, the data has problems the checks below list ({err})", file=sys.stderr)
        return cfg
    explicit = explicit_keys(args, values)
    asked = cfg.max_steps if "max_steps" in explicit and "budget_s" not in explicit else None
    speed = measured_speed(cfg, fp.images.channels, explicit) if fp.volumes is None else None
    try:
        decisions = plan(fp, asked, explicit, cfg, speed)
    except DatasetError as err:  # stacks the 3D rules cannot fit; training's own checks say the rest
        print(f"plan: not made ({err})", file=sys.stderr)
        return cfg
    if plan_out is not None:
        plan_out += [fp, decisions, explicit]
    return load_config(base, overrides(decisions, explicit) + list(args.overrides), values)


def report_plan(fp, decisions, explicit: set[str], output_dir: Path) -> None:
    """Print the plan's decisions with their reasons and keep it as ``plan.json`` in the run folder."""
    import json

    from ..planner import to_json

    print(f"plan from {fp.data} ({fp.images.count} training files; `plan=false` turns it off):")
    for d in decisions:
        mark = "(yours wins) " if d.key in explicit else "" if d.applied else "(advice, not applied) "
        print(f"  {d.override():<36} {mark}{d.reason}")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "plan.json").write_text(json.dumps(to_json(fp, decisions), indent=2) + "\n")


def train_main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = train_parser().parse_intermixed_args(argv)
    from ..data import DatasetError
    from ..training import train
    from ..training.faults import TrainingStopped, error_message

    try:
        planned: list = []
        cfg = config_from_args(args, planned)
        if planned:
            report_plan(*planned, Path(cfg.output_dir))
        train(cfg, resume=args.resume, stop_at=args.stop_at, started=started)
    except (ConfigError, DatasetError, FileNotFoundError) as err:
        print(f"error: {error_message(err)}", file=sys.stderr)
        return 2
    except TrainingStopped as err:
        print(f"{error_message(err)}", file=sys.stderr)
        return err.exit_code
    return 0


def synthesize_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pix2pix-unet synthesize",
        description="Write a paired dataset (images/ + labels/) from label maps with a trained label -> image "
                    "generator (--task translate labels.format=index).",
    )
    p.add_argument("--checkpoint", required=True, help="run folder, generator export folder or hf://ORG/NAME")
    p.add_argument("--labels", required=True, type=Path,
                   help="a class-id label map or a folder of them (no images needed; instances/ beside it is read)")
    p.add_argument("--output", required=True, type=Path, help="dataset folder to write (images/, labels/)")
    p.add_argument("--num", type=int, help="pairs to write (default: one per label map); may exceed the maps")
    p.add_argument("--augment-labels", action="store_true",
                   help="flip, rotate and deform each label map (nearest neighbour) first, for new layouts")
    p.add_argument("--layouts", action="store_true",
                   help="draw new label maps from a layout model fitted to --labels: real object shapes at new "
                        "positions, scales and rotations, with the real maps' object counts, classes and touching")
    p.add_argument("--segmenter", type=Path,
                   help="a segment export trained on real pairs: print its mIoU on the written pairs (FCN score)")
    p.add_argument("--min-seg-miou", type=float, default=0.0, metavar="T",
                   help="with --segmenter: drop pairs it segments with an mIoU below T and draw others")
    p.add_argument("--confidence", action="store_true",
                   help="with --segmenter: write confidence/, per-pixel loss weights for --task segment (255 where "
                        "it reads the label's class, its probability of that class where it does not)")
    p.add_argument("--seed", type=int, default=0, help="seed of the label-map augmentation and of the layouts")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    args = p.parse_args(argv)

    from ..runtime.distributed import launched_processes

    # under accelerate launch / torchrun / srun each process writes every n-th pair, on its own device; the
    # process group is torn down when the command ends, on every path
    with launched_processes() as (shard, launched_device):
        return _synthesize(args, shard, launched_device)


def _synthesize(args: argparse.Namespace, shard: Shard, launched_device: torch.device) -> int:
    """``synthesize_main`` once parsed, in one of ``shard.count`` processes: its pairs, then the gathered report."""
    import torch

    from ..data import DatasetError
    from ..hub import resolve_checkpoint
    from ..predict import collect_inputs
    from ..models import Generator
    from ..codec import decode_class_ids
    from ..synthesis.layouts import LayoutModel
    from ..tasks.segment import Segmenter
    from ..synthesis.synthesize import SynthesisReport, label_to_image_task, read_instance_maps, synthesize
    from ..runtime.distributed import end_process_group, gather

    device = args.device or (launched_device if shard.count > 1 else "cuda" if torch.cuda.is_available() else "cpu")
    failed = False
    try:
        if args.layouts and args.augment_labels:
            raise ValueError("--layouts and --augment-labels are two ways to get new label maps; choose one")
        if args.min_seg_miou and args.segmenter is None:
            raise ValueError(f"--min-seg-miou {args.min_seg_miou} needs --segmenter, the segmenter that judges")
        if args.confidence and args.segmenter is None:
            raise ValueError("--confidence needs --segmenter, the segmenter whose agreement weighs the pixels")
        checkpoint = resolve_checkpoint(args.checkpoint)
        generator = Generator.from_pretrained(checkpoint)
        task = label_to_image_task(generator, checkpoint)
        files = [found.path for found in collect_inputs(args.labels)]
        num = args.num if args.num is not None else len(files)
        if num < 1:
            raise DatasetError(f"--num {num}: need at least one pair")
        layouts = None
        if args.layouts:
            layouts = LayoutModel.fit([decode_class_ids(f, task.num_classes).numpy() for f in files],
                                      read_instance_maps(files))
        segmenter = Segmenter.load(args.segmenter).to(device) if args.segmenter else None
        if segmenter is not None and segmenter.num_classes != task.num_classes:
            raise ValueError(f"--segmenter {args.segmenter} segments {segmenter.num_classes} classes, but "
                             f"{args.checkpoint} draws {task.num_classes}")
        mine = synthesize(generator, task, files, args.output, num, args.augment_labels, args.seed, device, shard,
                          layouts=layouts, segmenter=segmenter, min_seg_miou=args.min_seg_miou,
                          confidence=args.confidence)
    except (DatasetError, FileNotFoundError, FileExistsError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        failed = True
    # a process that failed still joins this gather, so every process ends on the same collectives
    if any(gather([failed])):
        return 2
    reports = gather([mine])
    end_process_group()  # the last collective: the main process's scoring below keeps no one waiting
    report = SynthesisReport(sorted(p for r in reports for p in r.written), sum(r.dropped for r in reports),
                             sum(r.drawn for r in reports))
    if not shard.main:
        return 0 if len(report.written) == num else 1
    print(f"wrote {len(report.written)} pairs to {args.output}/images and {args.output}/labels"
          + (f" (+ {args.output}/instances)" if layouts else "")
          + (f" (+ {args.output}/confidence)" if args.confidence else "")
          + (f" ({shard.count} processes)" if shard.count > 1 else ""))
    if args.min_seg_miou:
        print(f"  the segmenter filter dropped {report.dropped} of {report.drawn} drawn pairs "
              f"(mIoU < {args.min_seg_miou})")
    if len(report.written) < num:
        print(f"error: only {len(report.written)} of {num} pairs passed --min-seg-miou {args.min_seg_miou} in "
              f"{report.drawn} draws; lower it, or train the generator (or the segmenter) longer", file=sys.stderr)
        return 1
    if segmenter is not None:
        scores = segmenter.task.evaluate(segmenter.generator, segmenter.task.eval_dataset(args.output, None, None,
                                                                                            None), device).metrics
        shown = ["miou", "pixel_acc", *(["object_f1"] if "object_f1" in scores else [])]
        print(f"segmenter score of the written pairs ({args.segmenter}): "
              + ", ".join(f"{k}={scores[k]:.4f}" for k in shown))
    return 0


def push_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pix2pix-unet push",
        description="Upload a generator export with a generated model card to the Hugging Face Hub "
                    "(huggingface_hub; log in with `hf auth login` or HF_TOKEN).",
    )
    p.add_argument("--checkpoint", required=True, help="run folder or generator export folder")
    p.add_argument("--repo", required=True, help="ORG/NAME of the Hub model repo (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--license", default="MIT", help="licence id for the card and the bioimage.io package (MIT)")
    p.add_argument("--bioimageio", action="store_true", help="also upload the bioimage.io package (bioimageio.zip)")
    p.add_argument("--stage", type=Path, help="write the upload into this empty folder and keep it (default: a "
                                              "temporary folder)")
    p.add_argument("--dry-run", action="store_true", help="stage the files and card, upload nothing")
    p.add_argument("--message", help="commit message")
    args = p.parse_args(argv)

    import tempfile

    from ..hub import HubError
    from ..publish import stage, upload

    with tempfile.TemporaryDirectory(prefix="pix2pix_push_") as tmp:
        folder = args.stage or Path(tmp) / "upload"
        try:
            files = stage(args.checkpoint, folder, args.repo, args.license, args.bioimageio)
            print(f"staged {len(files)} file(s) in {folder}: {', '.join(f.name for f in files)}")
            if args.dry_run:
                print(f"--dry-run: nothing uploaded to {args.repo}")
                return 0
            url = upload(folder, args.repo, args.private, args.message)
        except (FileNotFoundError, FileExistsError, ImportError, ValueError, HubError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # noqa: BLE001 - the Hub's HTTP and auth errors, reported by name
            print(f"error: upload to {args.repo} failed: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
    print(f"uploaded to https://huggingface.co/{args.repo} ({url})")
    return 0


def plan_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pix2pix-unet plan",
        description="Read a dataset's training files and print its fingerprint and the training settings the "
                    "planner derives from it, each with its reason, as KEY=VALUE overrides for train.",
    )
    p.add_argument("--data", required=True, type=Path, help="the dataset folder, as train's --data takes it")
    p.add_argument("--task", choices=["translate", "segment", "restore"], default="translate")
    p.add_argument("--max-steps", type=int, help="plan the validation cadence for this many steps")
    p.add_argument("--output", type=Path, help="also write the fingerprint and the plan to this JSON file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="settings you fix yourself: the plan leaves these keys alone")
    args = p.parse_args(argv)

    import json

    from ..data import DatasetError
    from ..io import ImageReadError
    from ..planner import fingerprint, measured_speed, overrides, plan, to_json

    labels = load_config(None, [o for o in args.overrides if o.startswith("labels.")]).labels
    try:
        fp = fingerprint(args.data, args.task, labels)
    except (DatasetError, ImageReadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    im, vol = fp.images, fp.volumes
    depth = f"{min(vol.depths)}-{max(vol.depths)} x " if vol is not None else ""
    print(f"{fp.data}: {im.count} training {'volume' if vol else 'file'}(s), {im.channels} channel(s) {im.dtype}, "
          f"{'shapes (z, y, x)' if vol else 'sides'} {depth}{min(im.heights)}-{max(im.heights)} x "
          f"{min(im.widths)}-{max(im.widths)} {'voxels' if vol else 'px'}; intensity 0.5/50/99.5 "
          f"percentiles per channel {[[round(v, 1) for v in p] for p in im.percentiles]} "
          f"({im.range_used:.1%} of the dtype's range)")
    if vol is not None:
        stated = (f"voxel size {tuple(vol.spacing)} µm (z, y, x) in every file, z {vol.anisotropy:.1f}x the "
                  "in-plane spacing" if vol.spacing else "voxel sizes " + ("not stated" if vol.same_spacing
                                                                          else "that differ between files"))
        print(f"volumes: {stated}")
    if fp.labels is not None and vol is not None:
        lb = fp.labels
        um3 = f" = {[round(v, 1) for v in lb.object_um3]} µm³" if lb.object_um3 else ""
        print(f"labels: class frequency {[round(f, 4) for f in lb.class_frequency]}; object volume p10/p50/p90 "
              f"{[round(a) for a in lb.object_area]} voxels{um3} ({lb.object_diameter:.1f} in-plane voxels across); "
              f"median extent (z, y, x) {[round(e, 1) for e in lb.object_extent]} voxels; {lb.touching:.0%} touch "
              f"another in 3D; structures {lb.structure_width:.1f} px wide in-plane")
    elif fp.labels is not None:
        lb = fp.labels
        print(f"labels: class frequency {[round(f, 4) for f in lb.class_frequency]}; object area p10/p50/p90 "
              f"{[round(a) for a in lb.object_area]} px ({lb.object_diameter:.1f} px across); {lb.touching:.0%} "
              f"touch another; structures {lb.structure_width:.1f} px wide")
    for note in fp.notes:
        print(f"note: {note}")
    if fp.noise_sigma is not None:
        print(f"noise already in the clean images: sigma {fp.noise_sigma:.4f} of the range "
              f"({fp.noise_sigma * 255:.1f}/255)")
    if fp.val_count is not None:
        print(f"validation: {fp.val_count} file(s) in the val/ (or test/) folder")
    explicit = {o.split("=", 1)[0] for o in args.overrides} | ({"max_steps"} if args.max_steps else set())
    user = load_config(None, [*args.overrides, f"task={args.task}"])
    speed = measured_speed(user, fp.images.channels, explicit) if fp.volumes is None else None
    try:
        decisions = plan(fp, args.max_steps, explicit, user, speed)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("plan:")
    for d in decisions:
        mark = "  (yours wins)" if d.key in explicit else "" if d.applied else "  (advice, not applied)"
        print(f"  {d.override():<36} {d.reason}{mark}")
    print("train with: " + " ".join(overrides(decisions, explicit) + list(args.overrides)))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(to_json(fp, decisions), indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


COMMANDS = {
    "plan": plan_main,
    "train": train_main, "predict": predict_main, "export": export_main, "evaluate": evaluate_main,
    "synthesize": synthesize_main, "push": push_main, "demo": demo_main, "denoise": denoise_main,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: pix2pix-unet {{{','.join(COMMANDS)}}} ...  (pix2pix-unet COMMAND --help for options)",
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:])

