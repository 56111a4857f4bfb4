"""``pix2pix-unet predict``, ``export``, ``evaluate``, ``denoise`` and ``demo``: argument parsing and the summary each prints.

Exit codes: 0 all went well; 1 some inputs failed (each named in a warning and
in the summary); 2 the command could not start (bad checkpoint, options or paths).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import (
    BlendWindow, CompileMode, ConfigError, InferenceConfig, MixedPrecision, OutputDtype, Switch, ZeroShotConfig,
    from_dict,
)
from ..hub import HF_PREFIX, resolve_checkpoint

if TYPE_CHECKING:  # torch is imported by the commands that run a network, not by `--help`
    import torch

    from ..runtime.distributed import Shard

# Flags that are shortcuts for InferenceConfig fields: flag dest -> field.
INFERENCE_FLAGS = {
    "batch_size": "batch_size", "tile": "tile", "overlap": "overlap", "window": "window",
    "tile_above": "tile_above_mp", "output_dtype": "output_dtype", "precision": "precision", "compile": "compile",
    "compile_mode": "compile_mode", "tta": "tta", "volume_budget": "volume_budget_mb",
    "keep_freed_memory": "keep_freed_memory",
}


def add_inference_flags(p: argparse.ArgumentParser) -> None:
    d = InferenceConfig()
    g = p.add_argument_group("running the generator")
    g.add_argument("--device", help="cpu, cuda, cuda:1, mps ... (default: cuda, then mps, then cpu)")
    g.add_argument("--batch-size", type=int, help=f"images of one size, or tiles, per forward pass ({d.batch_size})")
    g.add_argument("--tile", type=int, help=f"tile side for large images, a multiple of 2**depth ({d.tile})")
    g.add_argument("--overlap", type=int, help=f"pixels shared by neighbouring tiles ({d.overlap})")
    g.add_argument("--window", choices=[w.value for w in BlendWindow], help=f"tile blending ({d.window.value})")
    g.add_argument("--tile-above", type=float, metavar="MP",
                   help=f"tile images of more than MP megapixels; 0 tiles every image ({d.tile_above_mp})")
    g.add_argument("--volume-budget", type=float, metavar="MB",
                   help=f"volumes above --tile-above megavoxels: the sliding window's activation memory "
                        f"({d.volume_budget_mb:g})")
    g.add_argument("--keep-freed-memory", choices=[s.value for s in Switch],
                   help="CPU: malloc keeps freed memory for reuse; auto: for images, not volumes "
                        f"({d.keep_freed_memory.value})")
    g.add_argument("--precision", choices=[m.value for m in MixedPrecision],
                   help=f"autocast the generator to bf16 or fp16 (CUDA); outputs stay float32 ({d.precision.value})")
    g.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the generator: the first batch of each size is slow, later ones faster")
    g.add_argument("--compile-mode", choices=[m.value for m in CompileMode],
                   help=f"with --compile; reduce-overhead adds CUDA graphs ({d.compile_mode.value})")
    g.add_argument("--tta", action="store_true", default=None,
                   help="test-time augmentation: average the 8 flips / 90-degree rotations (8x slower)")
    t = p.add_argument_group("segment instance mode (default: the thresholds tuned at the end of training)")
    t.add_argument("--prob-threshold", type=float, help="foreground probability")
    t.add_argument("--seed-threshold", type=float, help="interior probability of a watershed seed")
    t.add_argument("--min-size", type=int, help="drop objects of fewer pixels")


def inference_config(args: argparse.Namespace) -> InferenceConfig:
    values = {key: getattr(args, dest) for dest, key in INFERENCE_FLAGS.items() if getattr(args, dest, None) is not None}
    cfg = from_dict(InferenceConfig, values, "inference")
    cfg.validate()
    return cfg


def _load_generator(path: str | Path, args: argparse.Namespace | None = None):
    """The generator export at ``path`` and the task its ``config.json`` describes, with the
    instance-threshold flags of ``args`` applied."""
    from ..models import Generator
    from ..tasks import generator_task

    generator = Generator.from_pretrained(resolve_checkpoint(path))
    task = generator_task(generator)
    flags = {k: getattr(args, k, None) for k in ("prob_threshold", "seed_threshold", "min_size")}
    if any(v is not None for v in flags.values()):
        try:
            task.override_thresholds(flags["prob_threshold"], flags["seed_threshold"], flags["min_size"])
        except ValueError as err:
            raise ValueError("--prob-threshold, --seed-threshold and --min-size are for segmenters trained in "
                             f"instance mode; {path} is not one ({err})") from None
    return generator, task


# --------------------------------------------------------------------------- predict


def predict_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pix2pix-unet predict",
        description="Run a trained generator on images of any size and bit depth; outputs mirror the input names.",
    )
    p.add_argument("--checkpoint", required=True, help="run folder, generator export folder or hf://ORG/NAME")
    p.add_argument("--input", required=True, help="an image, a folder (searched recursively) or a quoted glob")
    p.add_argument("--output", required=True, type=Path, help="folder for the outputs")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    p.add_argument("--output-dtype", choices=[d.value for d in OutputDtype],
                   help="pixel type of written images (default: that of each input)")
    p.add_argument("--suffix", help="write this format instead of each input's, e.g. .tif (translate/restore)")
    p.add_argument("--overlay", type=Path, metavar="DIR",
                   help="segment: also write each label map blended over its input, as PNGs in DIR")
    p.add_argument("--mask", type=Path, metavar="DIR",
                   help="restore with inpainting: hole masks (non-zero = hole), paired with the inputs by file name")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_inference_flags(p)
    args = p.parse_args(argv)

    from ..runtime.distributed import launched_processes

    # under accelerate launch / torchrun / srun each process takes every n-th input, on its own device; the
    # process group is torn down when the command ends, on every path
    with launched_processes() as (shard, launched_device):
        return _predict(args, shard, launched_device)


def _predict(args: argparse.Namespace, shard: Shard, launched_device: torch.device) -> int:
    """``predict_main`` once parsed, in one of ``shard.count`` processes: its share, then the gathered report."""
    from ..predict import PredictSummary, collect_inputs, predict_files
    from ..runtime import best_device
    from ..runtime.distributed import end_process_group, gather

    failed = False
    try:
        cfg = inference_config(args)
        generator, task = _load_generator(args.checkpoint, args)
        if task.needs_mask and args.mask is None:
            raise ValueError(f"{args.checkpoint} is an inpainting generator: pass --mask DIR with a hole mask per "
                             "input, named like it (non-zero = hole)")
        suffix = args.suffix if not args.suffix or args.suffix.startswith(".") else f".{args.suffix}"
        inputs = collect_inputs(args.input, exclude=args.output)
        device = best_device(args.device) if shard.count == 1 or args.device else launched_device
        mine = predict_files(generator, task, inputs, args.output, cfg, device=device, overwrite=args.overwrite,
                             suffix=suffix, overlay_dir=args.overlay, masks=args.mask,
                             progress=not args.no_progress and shard.main, shard=shard)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        failed = True
    # a process that failed still joins this gather, so every process ends on the same collectives
    if any(gather([failed])):
        return 2
    summary = PredictSummary(*(gather(getattr(mine, k)) for k in ("written", "existing", "failed", "warnings")))
    end_process_group()  # the last collective
    if not shard.main:
        return 1 if summary.failed else 0
    where = f"{shard.count} processes" if shard.count > 1 else str(device)
    print(f"{len(inputs)} input(s) on {where}: wrote {len(summary.written)} file(s) to {args.output}")
    if summary.existing:
        print(f"  {len(summary.existing)} skipped because the output exists (--overwrite replaces them)")
    if summary.failed:
        print(f"  {len(summary.failed)} failed:", file=sys.stderr)
        for _, reason in summary.failed:
            print(f"    {reason}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- export


def _halo(text: str) -> int | tuple[int, ...]:
    """``--halo``: ``N`` for every axis, or ``Z,Y,X`` (a volume's halo per axis)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not N or Z,Y,X (whole voxels)") from None
    return values[0] if len(values) == 1 else values


def export_main(argv: list[str] | None = None) -> int:
    from ..export import EXPORTERS, ExportFormat

    p = argparse.ArgumentParser(
        prog="pix2pix-unet export",
        description="Export a trained generator as ONNX (dynamic batch, height, width), a safetensors folder or a "
                    "bioimage.io model package (.zip for Fiji/deepImageJ, ilastik, QuPath, napari).",
    )
    p.add_argument("--checkpoint", required=True, help="run folder, generator export folder or hf://ORG/NAME")
    p.add_argument("--format", required=True, choices=[f.value for f in ExportFormat])
    p.add_argument("out", type=Path, help="the .onnx file, the folder for safetensors, the .zip for bioimageio")
    p.add_argument("--no-check", action="store_true", help="onnx: skip the onnxruntime vs PyTorch comparison")
    b = p.add_argument_group("bioimageio")
    b.add_argument("--input-dtype", default="uint8", choices=["uint8", "uint16", "float32"],
                   help="pixel type the package takes; sets intensity=dtype scaling and the test input (uint8)")
    b.add_argument("--sample", type=Path, help="an image of that type for the test tensors (default: a pattern)")
    b.add_argument("--name", help="model name (default: pix2pix-unet TASK RUN)")
    b.add_argument("--license", default="MIT", help="SPDX licence id of the weights (MIT)")
    b.add_argument("--author", action="append", help="an author's name (repeatable)")
    b.add_argument("--no-onnx", action="store_true", help="PyTorch state dict only (Fiji/ilastik/QuPath need ONNX)")
    b.add_argument("--torchscript", action="store_true", help="also TorchScript weights (traced; older deepImageJ)")
    b.add_argument("--halo", type=_halo, help="tiling halo in px (default: the measured receptive radius, <= 128); "
                   "a 3D generator's in voxels, N or Z,Y,X (default: its receptive field, <= 32 voxels of the "
                   "finest axis)")
    args = p.parse_args(argv)

    try:
        generator, task = _load_generator(args.checkpoint)
        fmt = ExportFormat(args.format)
        options = {} if fmt is not ExportFormat.BIOIMAGEIO else dict(
            input_dtype=args.input_dtype, sample=args.sample, name=args.name, licence=args.license,
            authors=args.author, onnx=not args.no_onnx, torchscript=args.torchscript, halo=args.halo)
        path = EXPORTERS[fmt](generator, task, args.out, **options)
    except (FileNotFoundError, ImportError, ValueError, RuntimeError) as err:
        extra = "bioimageio" if args.format == ExportFormat.BIOIMAGEIO.value else "export"
        hint = f" (pip install 'pix2pix-unet[{extra}]')" if isinstance(err, ImportError) else ""
        print(f"error: {err}{hint}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    if fmt is ExportFormat.ONNX and not args.no_check:
        from ..export import onnx_max_difference

        diff = onnx_max_difference(generator, path)
        ok = diff <= 1e-3
        print(f"onnxruntime vs PyTorch on a batch of 2 at another odd size: max |difference| = {diff:.2e}"
              + ("" if ok else "  (too large)"))
        return 0 if ok else 1
    return 0


# --------------------------------------------------------------------------- evaluate


def evaluate_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pix2pix-unet evaluate",
        description="Score a generator on a folder of pairs: metrics.json plus report.html and report.png.",
    )
    p.add_argument("--checkpoint", required=True, help="run folder, generator export folder or hf://ORG/NAME")
    p.add_argument("--data", required=True, type=Path,
                   help="folder of pairs: A/ + B/ (by file stem) or aligned A|B images; test/ or val/ used if present")
    p.add_argument("--split", help="sub-folder of --data to score (default: test/, else val/, else --data itself)")
    p.add_argument("--inputs", help="sub-folder holding the generator inputs (default: A, or B for BtoA; images for "
                                    "segment; labels for translate with index labels; restore: real degraded "
                                    "images, else the clean images are degraded as in validation)")
    p.add_argument("--targets", help="sub-folder holding the targets (default: B, or A for BtoA; labels for "
                                     "segment; images for index labels; the clean images for restore)")
    p.add_argument("--mask", type=Path, metavar="DIR", help="restore with inpainting and --inputs: the hole masks")
    p.add_argument("--output", type=Path, help="folder for metrics.json and the reports (default CHECKPOINT/eval)")
    p.add_argument("--all-files", action="store_true",
                   help="also score the files the model trained or was tuned on (by default its split.json leaves "
                        "them out); a warning counts them")
    p.add_argument("--num-examples", type=int, default=8, help="worst examples shown in the report (8)")
    p.add_argument("--no-progress", action="store_true")
    add_inference_flags(p)
    args = p.parse_args(argv)

    from ..data import DatasetError
    from ..data.split import read_split
    from ..evaluation import evaluate_dataset, select_files, split_folder
    from ..runtime import best_device

    try:
        cfg = inference_config(args)
        generator, task = _load_generator(args.checkpoint, args)
        meta = getattr(generator, "metadata", {}) or {}
        root = split_folder(args.data, args.split)
        if not root.is_dir():
            raise DatasetError(f"evaluation data folder {root} does not exist")
        dataset = task.eval_dataset(root, args.inputs, args.targets, args.mask)
        # the run's split.json, beside its export: files that trained or tuned the model are left out, or counted
        selection = select_files(dataset, read_split(getattr(generator, "export_dir", args.checkpoint)), root,
                                 args.all_files)
        print(selection.message)
        if selection.warning:
            print(selection.warning, file=sys.stderr)
        dataset = selection.dataset
        device = best_device(args.device)
        out = args.output or (Path(f"eval-{Path(args.checkpoint).name}") if args.checkpoint.startswith(HF_PREFIX)
                              else Path(args.checkpoint) / "eval")
        info = {"checkpoint": str(args.checkpoint), "data": str(root), "step": meta.get("step"),
                "device": str(device), **selection.info}
        result = evaluate_dataset(generator, task, dataset, out, cfg, device=device, num_examples=args.num_examples,
                                  info=info)
    except (ConfigError, DatasetError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    shown = {k: v for k, v in result.metrics.items() if not isinstance(v, list)}
    print(", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
    print(f"wrote {result.json_path}, {result.html_path}" + (f", {result.png_path}" if result.png_path else ""))
    if result.failed:
        print(f"  {len(result.failed)} pair(s) failed:", file=sys.stderr)
        for _, reason in result.failed:
            print(f"    {reason}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- demo


def demo_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pix2pix-unet demo",
        description="Serve a browser page that runs a trained generator on an uploaded image, as predict runs it "
                    "(needs pip install 'pix2pix-unet[demo]').",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="run folder or generator export folder")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on; 0.0.0.0 for other machines (127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: gradio's, 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="also ask gradio for a public share link (needs internet)")
    p.add_argument("--workdir", type=Path, help="folder for uploads and outputs (default: a temporary folder)")
    args = p.parse_args(argv)

    try:
        import gradio  # noqa: F401
    except ImportError:
        print("error: the demo needs gradio: pip install 'pix2pix-unet[demo]'", file=sys.stderr)
        return 2
    from ..demo import DemoModel, launch

    try:
        model = DemoModel(args.checkpoint, args.workdir)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(model.title)
    launch(model, host=args.host, port=args.port, share=args.share)
    return 0


__all__ = ["demo_main", "evaluate_main", "export_main", "predict_main"]


def denoise_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pix2pix-unet denoise",
        description="Denoise images with no training set: --zero-shot fits a tiny network (ZS-N2N, about 22 k "
                    "parameters) to each noisy image itself, then writes it denoised in the input's format and dtype. "
                    "The noise must be independent from pixel to pixel; a warning names the files where it is not.",
    )
    p.add_argument("--zero-shot", required=True, nargs="+", metavar="IMAGE", type=Path,
                   help="noisy images (or folders of them) to denoise, each on its own")
    p.add_argument("--output", required=True, type=Path, help="folder for the outputs (same names as the inputs)")
    p.add_argument("--steps", type=int, default=ZeroShotConfig.steps, help="fitting steps per image (default 2000)")
    p.add_argument("--time-limit", type=float, default=ZeroShotConfig.time_limit_s, metavar="SECONDS",
                   help="fit each image within this many seconds, lowering its steps if needed (default 60; 0: none)")
    p.add_argument("--crop", type=int, default=ZeroShotConfig.crop,
                   help="fit on random windows of this size (default 64; 0: the whole image every step)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tta", action="store_true", help="one pass, not the mean over the 8 flips and rotations")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    args = p.parse_args(argv)

    import json

    from ..data.folders import list_images
    from ..io import DatasetError, ImageWriteError
    from ..zero_shot import denoise_file

    cfg = ZeroShotConfig(steps=args.steps, crop=args.crop, seed=args.seed, tta=not args.no_tta,
                         time_limit_s=args.time_limit if args.time_limit and args.time_limit > 0 else None)
    try:
        cfg.validate()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    inputs: list[Path] = []
    for spec in args.zero_shot:
        if spec.is_dir():
            inputs += list_images(spec)
        elif spec.is_file():
            inputs.append(spec)
        else:
            print(f"error: --zero-shot {spec} is neither an image nor a folder", file=sys.stderr)
            return 2
    if not inputs:
        print(f"error: no images in {' '.join(map(str, args.zero_shot))}", file=sys.stderr)
        return 2
    failed, report = 0, []
    for path in inputs:
        out = args.output / path.name
        if out.resolve() == path.resolve():
            print(f"error: refusing to overwrite input {path}: choose another --output folder", file=sys.stderr)
            return 2
        if out.exists() and not args.overwrite:
            print(f"kept {out} (exists; --overwrite replaces it)")
            continue
        try:
            result = denoise_file(path, out, cfg)
        except (DatasetError, ImageWriteError) as err:
            print(f"warning: {err}", file=sys.stderr)
            failed += 1
            continue
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        d = result.diagnostics
        print(f"{path} -> {out}: {result.steps} steps in {result.seconds:.1f} s; removed std {d['residual_std']:.4f} "
              f"vs estimated noise sigma {d['estimated_sigma']:.4f} (of the image's range; ratio "
              f"{d['sigma_ratio']:.2f}), neighbour correlation of the removed part {d['residual_correlation']:.2f}")
        report.append(result.to_dict())
    if report:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "denoise.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"denoised {len(report)} image(s), {failed} failed; diagnostics in {args.output / 'denoise.json'}")
    return 1 if failed else 0
