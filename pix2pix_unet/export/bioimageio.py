"""``pix2pix-unet export --format bioimageio OUT.zip``: a bioimage.io model package for Fiji, ilastik, QuPath, napari.

The package is built and validated by ``bioimageio.spec`` (model spec 0.5) and holds

- ``rdf.yaml``: axes ``batch, channel, y, x``; the pixel type the model takes; sizes ``min + n * 2**depth``
  and a halo from the generator's measured receptive field, a multiple of ``2**depth`` (for tiling);
- weights as ONNX (dynamic sizes, :func:`~pix2pix_unet.export.export_onnx`) and as the PyTorch state dict with
  its architecture, :func:`pix2pix_unet.models.generator.generator_from_kwargs` + the ``UNetConfig``;
- pre-processing from the task's contract (:attr:`TaskBase.input_codec`): ``intensity=dtype`` is a fixed
  ``scale_linear`` by bit depth, ``intensity=image`` a ``scale_range`` over the whole image, ``intensity=range`` a
  ``scale_linear`` + ``clip``; post-processing: images back into the input's units (``clip`` + ``scale_linear``),
  segmenters' class probabilities (``softmax`` over the channel axis);
- a test input (the given ``sample`` image, else a seeded smooth pattern) and the test output that
  pix2pix-unet's own decode -> generator -> encode path gives for it, so ``bioimageio.core``'s model test checks
  that the rdf's processing reproduces ours;
- a cover (the run's latest sample grid, else input | output rendered), a README with the run's figures and the
  files they come from (:class:`RunRecord`), ``config.yaml`` of the run, and a licence.

What a package cannot express is refused with an error naming it: label-map inputs (translate with
``labels.format=index``), hole-mask inputs (restore with inpainting) and segmenters with a distance head.
Instance maps (segment's instance mode) are post-processing outside the package (watershed on the probabilities).
Needs the ``bioimageio`` extra (``bioimageio.core``, ``bioimageio.spec``, onnx).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ..codec import Decoded, ImageCodec
from ..config import Intensity, to_dict
from ..models import Generator
from ..tasks import TaskBase
from .onnx import export_onnx, for_export

PIX2PIX_DOI = "10.1109/CVPR.2017.632"  # Isola et al., Image-to-image translation with conditional adversarial nets
UNET_DOI = "10.1007/978-3-319-24574-4_28"  # Ronneberger et al., U-Net
DTYPES = ("uint8", "uint16", "float32")


class PackageError(ValueError):
    """The generator's task cannot be written as a bioimage.io package; the message says why."""


# --------------------------------------------------------------------------- what the run left


@dataclass
class RunRecord:
    """What a run folder tells about an export: the folder, the figures of its weights and which files they come
    from, its config and latest sample grid.

    The figures are the run's final ones (``metrics.json``: the export's weights, tuned, on the report files of
    ``split.json``) when it has them for the export's step; else the validation metrics of that step's checkpoint
    (``meta.json``) or of ``metrics.jsonl``. Every field is None when the export is not inside a run folder
    (``run/checkpoints/generator``).
    """

    run_dir: Path | None
    step: int | None
    metrics: dict[str, float]  # names without the val/ prefix, as evaluate's
    config_yaml: Path | None
    sample_grid: Path | None
    source: str | None = None  # which files, a phrase: "on 5 held-out files not used for training or ..."
    chosen_by: str | None = None  # export=best: the metric and the files the checkpoint was chosen on

    @classmethod
    def of(cls, generator: Generator) -> "RunRecord":
        export_dir = getattr(generator, "export_dir", None)
        meta = getattr(generator, "metadata", None) or {}
        run = None
        if export_dir is not None and Path(export_dir).parent.name == "checkpoints":
            run = Path(export_dir).parent.parent
        if run is None or not (run / "config.yaml").is_file():
            return cls(None, meta.get("step"), {}, None, None)
        step = meta.get("step")
        grids = sorted((run / "samples").glob("step_*.png")) if (run / "samples").is_dir() else []
        grid = grids[-1] if grids else None
        final = _read_json(run / "metrics.json")
        if final.get("step") == step and final.get("metrics"):
            return cls(run, step, _numbers(final["metrics"]), run / "config.yaml", grid, final.get("source"),
                       final.get("chosen_by"))
        metrics = _numbers(_read_json(run / "checkpoints" / f"step_{step or 0:08d}" / "meta.json").get("metrics", {}))
        log = run / "metrics.jsonl"
        if not metrics and log.is_file():  # the last validation at or before the export's step
            for line in log.read_text().splitlines():
                row = json.loads(line)
                if any(k.startswith("val/") for k in row) and row.get("step", 0) <= (step or 1 << 62):
                    metrics = _numbers(row)
        split = _read_json(run / "split.json")
        source = (f"on the run's {len(split['val'])} validation files, held out from training (the run has no final "
                  "figures for this step, so nothing was tuned on them)" if split.get("val") else
                  "on the run's validation files (the run records neither which files nor what was tuned on them)")
        return cls(run, step, metrics, run / "config.yaml", grid, source)

    def metrics_table(self) -> str:
        if not self.metrics:
            return "No validation metrics were found beside this export (it is not inside a run folder).\n"
        rows = "".join(f"| {k} | {v:.4f} |\n" for k, v in sorted(self.metrics.items()))
        chosen = (f" The exported weights are the best checkpoint by {self.chosen_by}." if self.chosen_by else "")
        return f"Step {self.step}, {self.source}.{chosen}\n\n| metric | value |\n| --- | --- |\n{rows}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of a row, without the ``val/`` prefix."""
    return {k.removeprefix("val/"): v for k, v in metrics.items() if isinstance(v, (int, float))
            and not isinstance(v, bool) and k != "step" and (k.startswith("val/") or "/" not in k)}


# --------------------------------------------------------------------------- the contract in bioimage.io terms


@dataclass(frozen=True)
class PackageContract:
    """The task's file <-> tensor rules that a package carries.

    Attributes:
        codec: how input pixels become the generator's input.
        dtype: the pixel type the package takes (and its test input has).
        classes: segment: one name per output channel; None for image outputs.
        output_span: image outputs: the ``(low, high)`` that [-1, 1] maps to (the input's units).
    """

    codec: ImageCodec
    dtype: str
    classes: list[str] | None
    output_span: tuple[float, float] | None

    @classmethod
    def of(cls, task: TaskBase, dtype: str) -> "PackageContract":
        if dtype not in DTYPES:
            raise PackageError(f"--input-dtype {dtype!r}: choose one of {list(DTYPES)}")
        refusal = task.bioimageio_refusal()
        if refusal:
            raise PackageError(refusal)
        codec = task.input_codec
        classes = task.bioimageio_outputs()
        if classes is not None:
            return cls(codec, dtype, classes, None)
        return cls(codec, dtype, None, output_span(codec, dtype))


def output_span(codec: ImageCodec, dtype: str) -> tuple[float, float]:
    """The input units that an image output's [-1, 1] maps back to (as ``ImageCodec.encode`` does).

    ``intensity=image`` maps back with each input's own min..max, which the spec cannot express: such outputs
    stay in [0, 1].
    """
    if codec.intensity is Intensity.DTYPE:
        return 0.0, io.DTYPE_MAX[np.dtype(dtype)]
    if codec.intensity is Intensity.RANGE:
        return float(codec.value_range[0]), float(codec.value_range[1])
    return 0.0, 1.0


def preprocessing(contract: PackageContract, spec: Any) -> list:
    """The input's bioimage.io pre-processing: what :meth:`ImageCodec.from_pixels` does, as spec operations."""
    codec, axes = contract.codec, [spec.AxisId("channel"), spec.AxisId("y"), spec.AxisId("x")]
    steps: list = [spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32"))]
    if codec.intensity is Intensity.IMAGE:  # the whole image's min..max -> [0, 1], then [-1, 1]
        steps.append(spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(axes=axes, min_percentile=0.0,
                                                                       max_percentile=100.0, eps=1e-6)))
        low, high = 0.0, 1.0
    elif codec.intensity is Intensity.RANGE:
        low, high = float(codec.value_range[0]), float(codec.value_range[1])
    else:
        low, high = 0.0, io.DTYPE_MAX[np.dtype(contract.dtype)]
    gain = 2.0 / (high - low)
    steps.append(spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=gain, offset=-1.0 - low * gain)))
    if codec.intensity is Intensity.RANGE:
        steps.append(spec.ClipDescr(kwargs=spec.ClipKwargs(min=-1.0, max=1.0)))
    # the spec ends pre-processing with a cast back to the input's type unless told otherwise
    return [*steps, spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32"))]


def postprocessing(contract: PackageContract, spec: Any) -> list:
    """The output's bioimage.io post-processing: class probabilities, or the image in the input's units."""
    if contract.classes is not None:
        return [spec.SoftmaxDescr(kwargs=spec.SoftmaxKwargs(axis=spec.AxisId("channel")))]
    low, high = contract.output_span
    return [spec.ClipDescr(kwargs=spec.ClipKwargs(min=-1.0, max=1.0)),
            spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=(high - low) / 2, offset=(high + low) / 2))]


def reference_output(generator: Generator, contract: PackageContract, pixels: np.ndarray) -> np.ndarray:
    """pix2pix-unet's own answer for ``(H, W, C)`` pixels: decode, generator, then probabilities or input units.

    Returns ``(1, C_out, H, W)`` float32, what the package's test output must hold.
    """
    decoded: Decoded = contract.codec.from_pixels(io.ImageFile(pixels, False))
    with torch.no_grad():
        raw = for_export(generator)(decoded.tensor[None])  # (1, c_out, h, w) in [-1, 1] or logits
    if contract.classes is not None:
        return raw.softmax(1).numpy().astype(np.float32)
    low, high = contract.output_span
    unit = raw.clamp(-1, 1).add(1).div(2)
    return (low + unit * (high - low)).numpy().astype(np.float32)


# --------------------------------------------------------------------------- sizes


def receptive_radius(generator: Generator, limit: int = 128) -> int:
    """How far (px) an input pixel reaches into the output, measured: where the gradients of a few output pixels
    near the centre (one per phase of the ``2 ** depth`` grid) are non-zero. At most ``limit``."""
    f = generator.config.factor
    side = -(-(2 * limit + 2 * f) // f) * f
    net = for_export(generator)
    # random, not zeros: a ReLU passes no gradient at exactly 0
    x = torch.rand(1, generator.config.in_channels, side, side, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    out = net(x)
    radius = 0
    for k in sorted({0, f // 4, f // 2, f - 1}):
        c = side // 2 + k
        (grad,) = torch.autograd.grad(out[0, :, c, c].sum(), x, retain_graph=True)
        reach = grad[0].abs().sum(0).nonzero()  # (n, 2) input pixels that move output pixel (c, c)
        if len(reach):
            radius = max(radius, int((reach - c).abs().max()))
    return min(radius, limit)


def halo_of(generator: Generator, limit: int = 128) -> int:
    """The output halo for tiling: the receptive radius rounded up to a multiple of ``2 ** depth``.

    A multiple, because consumers pad the input by the halo: a shift by a multiple keeps the strided convs'
    grid on the image, so the inner outputs equal an unpadded run's.
    """
    f = generator.config.factor
    return -(-receptive_radius(generator, limit) // f) * f


def package_size(sample_hw: tuple[int, int], minimum: int, step: int, cap: int = 256) -> tuple[int, int]:
    """The largest ``minimum + n * step`` sides not above the sample's (nor ``cap``)."""

    def fit(side: int) -> int:
        if side < minimum:
            raise PackageError(f"the sample is {sample_hw[1]}x{sample_hw[0]} px; the package needs at least "
                               f"{minimum} px a side")
        return minimum + (min(side, max(cap, minimum)) - minimum) // step * step

    return fit(sample_hw[0]), fit(sample_hw[1])


def sample_pixels(contract: PackageContract, sample: Path | None, side: int) -> np.ndarray:
    """``(H, W, C)`` pixels of the package's pixel type: the ``sample`` file, else a seeded smooth pattern."""
    channels = contract.codec.channels
    if sample is not None:
        image = io.read_image(sample)
        if str(image.dtype) != contract.dtype:
            raise PackageError(f"sample {sample} is {image.dtype} but the package takes {contract.dtype} "
                               "(--input-dtype)")
        decoded = contract.codec.from_pixels(image, sample)  # the model's channel rules, errors naming the file
        pixels = image.pixels[..., : decoded.tensor.shape[0]] if image.shape[2] >= channels else \
            np.repeat(image.pixels, channels, axis=-1)
        return np.ascontiguousarray(pixels)
    rng = np.random.default_rng(0)
    grid = torch.from_numpy(rng.random((1, channels, 6, 6))).float()
    unit = torch.nn.functional.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
    unit = unit[0].clamp(0, 1).permute(1, 2, 0).numpy()
    top = 1.0 if contract.dtype == "float32" else float(np.iinfo(np.dtype(contract.dtype)).max)
    if contract.codec.intensity is Intensity.RANGE:  # values inside the trained range
        low, high = contract.codec.value_range
        return (low + unit * (high - low)).astype(contract.dtype)
    return (unit * top).round().astype(contract.dtype) if top > 1 else unit.astype(np.float32)


# --------------------------------------------------------------------------- the package


def export_bioimageio(generator: Generator, task: TaskBase, path: str | Path, *, input_dtype: str = "uint8",
                      sample: Path | None = None, name: str | None = None, licence: str = "MIT",
                      authors: list[str] | None = None, onnx: bool = True, torchscript: bool = False,
                      halo: int | None = None) -> Path:
    """Write a bioimage.io model package (``.zip``) for ``generator`` and validate it with ``bioimageio.spec``.

    Args:
        input_dtype: the pixel type the package takes (``uint8``, ``uint16`` or ``float32``); it fixes the
            ``intensity=dtype`` scaling, and the test input has it.
        sample: an image of that type for the test input and the rendered cover (default: a seeded pattern).
        name: the model's name (default: from the task and the run folder).
        licence: an SPDX licence id for the weights.
        authors: names for the ``authors`` field (default: ``pix2pix-unet user``).
        onnx: include ONNX weights (what Fiji/deepImageJ, ilastik and QuPath run); without them the package
            holds the PyTorch state dict only (bioimageio.core, napari), and builds in a second, not ~30 s.
        torchscript: also include TorchScript weights (``torch.jit.trace`` at a size the package allows; its
            sizes are all multiples of ``2 ** depth``, where the traced graph needs no padding, so one trace
            serves them all). For consumers that run TorchScript but not ONNX (older deepImageJ).
        halo: the tiling halo in px, rounded up to a multiple of ``2 ** depth`` (default: the measured receptive
            radius, at most 128 px); 0 declares none.

    Raises:
        PackageError: a task the package cannot express, a sample of the wrong type or size.
        ValueError: ``bioimageio.spec`` rejected the description (its message lists the fields).
    """
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as spec

    from ..version import __version__

    path = Path(path)
    if path.suffix != ".zip":
        raise PackageError(f"{path}: a bioimage.io package is a .zip file")
    contract = PackageContract.of(task, input_dtype)
    record = RunRecord.of(generator)
    generator = for_export(generator)  # one copy for every step below; the caller's model stays as it is
    meta = getattr(generator, "metadata", None) or {}
    kind = task.kind.value
    cfg, f = generator.config, generator.config.factor
    if halo is not None and halo < 0:
        raise PackageError(f"--halo {halo}: must be >= 0")
    halo = halo_of(generator) if halo is None else -(-halo // f) * f
    minimum = 2 * halo + f  # a tile keeps at least `factor` px inside its halo

    with tempfile.TemporaryDirectory(prefix="bioimageio_") as tmp:
        work = Path(tmp)
        # 1. test tensors: our decode -> generator -> encode on a sample
        pixels = sample_pixels(contract, sample, max(minimum, 4 * f, 64))
        h, w = package_size(pixels.shape[:2], minimum, f)
        pixels = pixels[:h, :w]
        test_in = pixels.transpose(2, 0, 1)[None]  # (1, c, h, w), the package's dtype
        test_out = reference_output(generator, contract, pixels)
        np.save(work / "test_input.npy", test_in)
        np.save(work / "test_output.npy", test_out)

        # 2. weights: the state dict with its architecture, and ONNX (dynamic sizes)
        torch.save({k: v.detach().cpu() for k, v in generator.state_dict().items()}, work / "weights.pt")
        opset = None
        if onnx:
            import onnx as onnx_lib

            export_onnx(generator, task, work / "weights.onnx")
            opset = max(o.version for o in onnx_lib.load(str(work / "weights.onnx")).opset_import
                        if o.domain in ("", "ai.onnx"))
        if torchscript:
            trace_torchscript(generator, test_in.shape[1], minimum + f, work / "weights_torchscript.pt")

        # 3. cover, README, the run's config
        cover = work / "cover.png"
        if record.sample_grid is not None:
            shutil.copy(record.sample_grid, cover)
        else:
            render_cover(test_in, test_out, contract, cover)
        readme = work / "README.md"
        readme.write_text(package_readme(kind, contract, cfg.factor, halo, minimum, record, licence))
        (work / "pix2pix_unet_config.json").write_text(json.dumps({**meta, **task.describe(),
                                                                   "generator": to_dict(cfg)}, indent=2))
        attachments = [spec.FileDescr(source=work / "pix2pix_unet_config.json")]
        if record.config_yaml is not None:
            shutil.copy(record.config_yaml, work / "config.yaml")
            attachments.append(spec.FileDescr(source=work / "config.yaml"))

        # 4. the description
        channel_in = [f"channel{i}" for i in range(contract.codec.channels)]
        size = spec.ParameterizedSize(min=minimum, step=f)
        inputs = [spec.InputTensorDescr(
            id=spec.TensorId("input"),
            axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in channel_in]),
                  spec.SpaceInputAxis(id=spec.AxisId("y"), size=size),
                  spec.SpaceInputAxis(id=spec.AxisId("x"), size=size)],
            test_tensor=spec.FileDescr(source=work / "test_input.npy"),
            data=spec.IntervalOrRatioDataDescr(type=contract.dtype),
            preprocessing=preprocessing(contract, spec),
            description=f"{contract.dtype} image, intensity={contract.codec.intensity.value}",
        )]
        out_names = contract.classes or [f"channel{i}" for i in range(cfg.out_channels)]
        space_out = [
            spec.SpaceOutputAxisWithHalo(id=spec.AxisId(a), halo=halo,
                                         size=spec.SizeReference(tensor_id=spec.TensorId("input"),
                                                                 axis_id=spec.AxisId(a)))
            if halo else spec.SpaceOutputAxis(id=spec.AxisId(a), size=spec.SizeReference(
                tensor_id=spec.TensorId("input"), axis_id=spec.AxisId(a)))
            for a in ("y", "x")]
        outputs = [spec.OutputTensorDescr(
            id=spec.TensorId("output"),
            axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in out_names]),
                  *space_out],
            test_tensor=spec.FileDescr(source=work / "test_output.npy"),
            data=spec.IntervalOrRatioDataDescr(type="float32"),
            postprocessing=postprocessing(contract, spec),
            description="class probabilities (softmax)" if contract.classes else "image in the input's units",
        )]
        torch_version = spec.Version(torch.__version__.split("+")[0])
        weights = spec.WeightsDescr(
            onnx=spec.OnnxWeightsDescr(source=work / "weights.onnx", opset_version=opset) if onnx else None,
            pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
                source=work / "weights.pt", pytorch_version=torch_version,
                architecture=spec.ArchitectureFromLibraryDescr(
                    import_from="pix2pix_unet.models.generator", callable=spec.Identifier("generator_from_kwargs"),
                    kwargs=to_dict(cfg)),
            ),
            torchscript=spec.TorchscriptWeightsDescr(source=work / "weights_torchscript.pt",
                                                     pytorch_version=torch_version) if torchscript else None,
        )
        run_name = record.run_dir.name if record.run_dir is not None else "export"
        descr = spec.ModelDescr(
            name=name or f"pix2pix-unet {kind} {run_name}",
            description=f"pix2pix-unet {kind} generator (UNet, {cfg.architecture.value}, depth {cfg.depth}); "
                        + ("per-pixel class probabilities" if contract.classes else "image to image"),
            authors=[spec.Author(name=a) for a in (authors or ["pix2pix-unet user"])],
            cite=[spec.CiteEntry(text="Isola et al. Image-to-Image Translation with Conditional Adversarial "
                                      "Networks. CVPR 2017", doi=spec.Doi(PIX2PIX_DOI)),
                  spec.CiteEntry(text="Ronneberger et al. U-Net: Convolutional Networks for Biomedical Image "
                                      "Segmentation. MICCAI 2015", doi=spec.Doi(UNET_DOI))],
            license=spec.LicenseId(licence),
            documentation=spec.FileDescr(source=readme),
            covers=[spec.FileDescr(source=cover)],
            attachments=attachments,
            inputs=inputs,
            outputs=outputs,
            weights=weights,
            tags=["pix2pix", "unet", "pytorch", *(["onnx"] if onnx else []), *(["torchscript"] if torchscript else []),
                  kind, *(["segmentation"] if contract.classes else [])],
            config={"pix2pix_unet": {"version": __version__, "task": kind, "step": meta.get("step")}},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        save_bioimageio_package(descr, output_path=path)
    return path


def trace_torchscript(generator: Generator, channels: int, side: int, path: Path) -> Path:
    """``torch.jit.trace`` of ``generator`` at ``side`` px (a multiple of ``2 ** depth``), saved at ``path``."""
    import warnings

    x = torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # trace's deprecation and shape-to-bool notes: the sizes keep one path
        traced = torch.jit.trace(for_export(generator), x)
    traced.save(str(path))
    return path


def render_cover(test_in: np.ndarray, test_out: np.ndarray, contract: PackageContract, path: Path) -> Path:
    """input | output of the test tensors as one PNG (segment: the arg-max classes in gray levels)."""
    from ..training.samples import to_display
    from torchvision.utils import save_image

    x = torch.from_numpy(test_in.astype(np.float32))
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-6) * 2 - 1
    y = torch.from_numpy(test_out)
    if contract.classes is not None:
        y = y.argmax(1, keepdim=True).float() / max(len(contract.classes) - 1, 1) * 2 - 1
    else:
        low, high = contract.output_span
        y = (y - low) / (high - low) * 2 - 1
    save_image(torch.cat([to_display(x), to_display(y)], dim=3), str(path))
    return path


def package_readme(kind: str, contract: PackageContract, factor: int, halo: int, minimum: int,
                   record: RunRecord, licence: str) -> str:
    """The package's documentation: what goes in and out, how to tile, the validation metrics, the licence."""
    codec = contract.codec
    if contract.classes is not None:
        out = (f"per-pixel class probabilities ({', '.join(contract.classes)}; softmax over the channel axis). "
               "The arg-max over channels is the label map. In instance mode the `border` channel marks object "
               "borders; instance maps (a seeded watershed on these probabilities, with the thresholds tuned on "
               "part of the validation files, `tune` in the run's split.json) are post-processing outside this "
               "package: `pix2pix-unet predict` writes them.")
    else:
        low, high = contract.output_span
        out = (f"an image of {codec.channels if kind == 'restore' else 'the output'} channel(s) as float32, "
               f"[-1, 1] mapped to {low:g}..{high:g}"
               + (" (intensity=image: the input's own min..max is not restored)" if
                  codec.intensity is Intensity.IMAGE else " (the input's units)"))
    return f"""# pix2pix-unet {kind} model

Trained with [pix2pix-unet](https://github.com/) (`pix2pix-unet export --format bioimageio`).

## Input

`{contract.dtype}` images, axes `batch, channel, y, x`, {codec.channels} channel(s); intensity rule
`{codec.intensity.value}` ({_rule(codec, contract.dtype)}), done by the package's pre-processing.
Sides are `{minimum} + n * {factor}` px (the UNet halves the image {factor.bit_length() - 1} times).

## Output

{out}

## Tiling

Tile with a halo of {halo} px (the generator's measured receptive radius, capped at 128 px, or what the export
was given, rounded up to a multiple of {factor}). Pad with a mirror (`symmetric`,
bioimage.io's default), not zeros. Any size the rule above allows also runs whole.

## Validation

{record.metrics_table()}
To re-measure on your own labelled files: `pix2pix-unet evaluate --checkpoint RUN --data FOLDER` (files the model
trained or was tuned on are left out by the run's `split.json`).

## Licence

{licence}
"""


def _rule(codec: ImageCodec, dtype: str) -> str:
    if codec.intensity is Intensity.DTYPE:
        return f"0..{io.DTYPE_MAX[np.dtype(dtype)]:g} -> [-1, 1]"
    if codec.intensity is Intensity.RANGE:
        return f"{codec.value_range[0]:g}..{codec.value_range[1]:g} -> [-1, 1], clipped"
    return "each image's own min..max -> [-1, 1]"


__all__ = ["PackageContract", "PackageError", "RunRecord", "export_bioimageio", "halo_of", "receptive_radius"]
