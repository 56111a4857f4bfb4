"""``pix2pix-unet export --format bioimageio OUT.zip``: a bioimage.io model package for Fiji, ilastik, QuPath, napari.

The package is built and validated by ``bioimageio.spec`` (model spec 0.5) and holds

- ``rdf.yaml``: axes ``batch, channel, y, x`` (``batch, channel, z, y, x`` for a 3D generator,
  ``generator.dims=3``); the pixel type the model takes; per spatial axis, sizes ``min + n * step`` with the
  step the axis's downsampling factor (``2**depth``; a volume's ``UNetConfig.axis_factors``, so a coarse z axis
  can have a smaller step) and a halo from the generator's receptive field, a multiple of the step (for
  tiling): measured for images, computed from the layers for volumes
  (:func:`~pix2pix_unet.runtime.volume_window.receptive_halo`); a volume's axes carry its voxel size
  (``generator.spacing``) as ``scale`` in micrometres;
- weights as ONNX (dynamic sizes, :func:`~pix2pix_unet.export.export_onnx`) and as the PyTorch state dict with
  its architecture, :func:`pix2pix_unet.models.generator.generator_from_kwargs` + the ``UNetConfig``;
- pre-processing from the task's contract (:attr:`TaskBase.input_codec`): ``intensity=dtype`` is a fixed
  ``scale_linear`` by bit depth, ``intensity=image`` a ``scale_range`` over the whole image, ``intensity=range`` a
  ``scale_linear`` + ``clip``; post-processing: images back into the input's units (``clip`` + ``scale_linear``),
  segmenters' class probabilities (``softmax`` over the channel axis);
- a test input (the given ``sample`` image or TIFF stack, else a seeded smooth pattern) and the test output that
  pix2pix-unet's own decode -> generator -> encode path gives for it, so ``bioimageio.core``'s model test checks
  that the rdf's processing reproduces ours;
- a cover (the run's latest sample grid, else input | output rendered; a volume's middle z slice), a README
  with the run's figures and the files they come from (:class:`RunRecord`), ``config.yaml`` of the run, and a licence.

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
from typing import Any, Sequence

import numpy as np
import torch

from .. import io
from ..codec import Decoded, ImageCodec
from ..config import ConfigError, Intensity, to_dict
from ..models import Generator
from ..runtime.volume_window import receptive_halo
from ..tasks import TaskBase
from ..volume_io import Volume, read_volume
from .onnx import export_onnx, for_export

PIX2PIX_DOI = "10.1109/CVPR.2017.632"  # Isola et al., Image-to-image translation with conditional adversarial nets
UNET_DOI = "10.1007/978-3-319-24574-4_28"  # Ronneberger et al., U-Net
DTYPES = ("uint8", "uint16", "float32")
VOLUME_HALO_LIMIT = 32  # voxels of a volume's finest axis (the same extent in space on a coarser one): a tile is
# 2 * halo + step a side, and a stack thinner than that in z is refused by consumers
VOLUME_SAMPLE_CAP = 64  # voxels a side of a volume's test tensors (an image's: 256 px)


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


def preprocessing(contract: PackageContract, spec: Any, spatial: Sequence[str] = ("y", "x")) -> list:
    """The input's bioimage.io pre-processing: what :meth:`ImageCodec.from_pixels` (a volume's
    :meth:`ImageCodec.from_volume`, ``spatial`` ``z, y, x``) does, as spec operations: ``intensity=image`` takes
    the range of the whole image or volume, as ours does."""
    codec, axes = contract.codec, [spec.AxisId(a) for a in ("channel", *spatial)]
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


def decode_sample(contract: PackageContract, pixels: np.ndarray,
                  spacing: Sequence[float] | None = None) -> Decoded:
    """``(H, W, C)`` pixels or ``(Z, Y, X, C)`` voxels as pix2pix-unet decodes such a file: an image by
    :meth:`ImageCodec.from_pixels`, a volume by :meth:`ImageCodec.from_volume` (the whole volume's rule)."""
    if pixels.ndim == 4:
        volume = Volume(pixels, tuple(spacing) if spacing else None, "ZYXC", Path("<sample>"))
        return contract.codec.from_volume(volume)
    return contract.codec.from_pixels(io.ImageFile(pixels, False))


def reference_output(generator: Generator, contract: PackageContract, pixels: np.ndarray) -> np.ndarray:
    """pix2pix-unet's own answer for ``(H, W, C)`` pixels (``(Z, Y, X, C)`` voxels for a 3D generator): decode,
    generator, then probabilities or input units.

    Returns ``(1, C_out, H, W)`` (``(1, C_out, Z, Y, X)``) float32, what the package's test output must hold.
    """
    decoded = decode_sample(contract, pixels)
    with torch.no_grad():
        raw = for_export(generator)(decoded.tensor[None])  # (1, c_out, [z,] h, w) in [-1, 1] or logits
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


@dataclass(frozen=True)
class PackageGeometry:
    """The package's spatial axes and the sizes and halos tiling needs, one entry per axis.

    Attributes:
        axes: ``("y", "x")`` for an image generator, ``("z", "y", "x")`` for a 3D one.
        steps: each axis's downsampling factor (``UNetConfig.axis_factors``): sizes grow by it.
        halos: each axis's output halo, a multiple of its step; by default a volume's receptive radius capped by
            :func:`halo_limits`.
        receptive: the receptive radius per axis (images: measured, at most 128 px; volumes: computed from the
            layers), or None where no halo covers it (a volume's ``aspp`` or ``naf`` pools the whole window) or,
            for images, where the caller gave the halo (it is not measured then).
        spacing: a volume's voxel size in micrometres (``generator.spacing``), the axes' ``scale``; None for
            images and for volumes trained without one.
    """

    axes: tuple[str, ...]
    steps: tuple[int, ...]
    halos: tuple[int, ...]
    receptive: tuple[int, ...] | None
    spacing: tuple[float, ...] | None

    @property
    def minimum(self) -> tuple[int, ...]:
        """The smallest size per axis: a tile keeps at least one ``step`` inside its halo on both sides."""
        return tuple(2 * h + s for h, s in zip(self.halos, self.steps))

    @property
    def volume(self) -> bool:
        return len(self.axes) == 3

    @classmethod
    def of(cls, generator: Generator, halo: int | Sequence[int] | None = None) -> "PackageGeometry":
        """The geometry of ``generator``'s package; ``halo`` (voxels, one for every axis or one per axis)
        replaces the receptive radius, rounded up to each axis's step.

        Raises:
            PackageError: a negative halo, or one per axis of the wrong length.
        """
        cfg = generator.config
        dims = getattr(cfg, "dims", 2)
        axes = ("z", "y", "x")[-dims:]
        steps = tuple(cfg.axis_factors) if dims == 3 else (cfg.factor,) * 2
        given = None
        if halo is not None:
            given = (halo,) * dims if isinstance(halo, int) else tuple(halo)
            if len(given) != dims or any(h < 0 for h in given) or (dims == 2 and given[0] != given[1]):
                per_axis = f", or one per axis ({', '.join(axes)})" if dims == 3 else " (an image's y and x share it)"
                shown = halo if isinstance(halo, int) else ",".join(map(str, halo))
                raise PackageError(f"--halo {shown}: one value >= 0{per_axis}")
        if dims == 2:
            if given is not None:
                return cls(axes, steps, _round_up(given, steps), None, None)
            radius = receptive_radius(generator)
            return cls(axes, steps, _round_up((radius,) * 2, steps), (radius,) * 2, None)
        try:
            receptive: tuple[int, ...] | None = receptive_halo(cfg)
        except ConfigError:  # a block that pools the whole window: no halo covers it; the cap is what is left
            receptive = None
        if given is None:
            limits = halo_limits(_spacing(cfg))
            given = tuple(min(r, lim) for r, lim in zip(receptive, limits)) if receptive else limits
        return cls(axes, steps, _round_up(given, steps), receptive, _spacing(cfg))


def halo_limits(spacing: Sequence[float] | None) -> tuple[int, ...]:
    """The default cap of a volume's halo per axis: :data:`VOLUME_HALO_LIMIT` voxels of the finest axis, and the
    same extent in space on a coarser one (8 slices of 2 µm beside 32 voxels of 0.5 µm), so a coarse z axis keeps
    a tile thin enough for real stacks."""
    if not spacing:
        return (VOLUME_HALO_LIMIT,) * 3
    finest = min(spacing)
    return tuple(max(1, round(VOLUME_HALO_LIMIT * finest / s)) for s in spacing)


def _round_up(values: Sequence[int], steps: Sequence[int]) -> tuple[int, ...]:
    return tuple(-(-v // s) * s for v, s in zip(values, steps))


def _spacing(cfg: Any) -> tuple[float, ...] | None:
    return tuple(float(s) for s in cfg.spacing) if getattr(cfg, "spacing", None) else None


def package_size(sample_shape: Sequence[int], minimum: int | Sequence[int], step: int | Sequence[int],
                 cap: int = 256) -> tuple[int, ...]:
    """The largest ``minimum + n * step`` sizes, per axis, not above the sample's (nor ``cap``).

    ``sample_shape`` is ``(H, W)`` or ``(Z, Y, X)``; ``minimum`` and ``step`` one for every axis or one per axis.
    """
    minimums = (minimum,) * len(sample_shape) if isinstance(minimum, int) else tuple(minimum)
    steps = (step,) * len(sample_shape) if isinstance(step, int) else tuple(step)
    if any(side < low for side, low in zip(sample_shape, minimums)):
        if len(sample_shape) == 2:
            raise PackageError(f"the sample is {sample_shape[1]}x{sample_shape[0]} px; the package needs at least "
                               f"{minimums[0]} px a side")
        raise PackageError(f"the sample is {'x'.join(map(str, sample_shape))} voxels (z, y, x); the package needs "
                           f"at least {'x'.join(map(str, minimums))}")
    return tuple(low + (min(side, max(cap, low)) - low) // st * st
                 for side, low, st in zip(sample_shape, minimums, steps))


def sample_pixels(contract: PackageContract, sample: Path | None, side: int | Sequence[int]) -> np.ndarray:
    """``(H, W, C)`` pixels of the package's pixel type: the ``sample`` file, else a seeded smooth pattern of
    ``side`` px a side. Given ``side`` per axis ``(Z, Y, X)``: ``(Z, Y, X, C)`` voxels, the ``sample`` a TIFF
    stack (:func:`~pix2pix_unet.volume_io.read_volume`)."""
    channels = contract.codec.channels
    shape = (side, side) if isinstance(side, int) else tuple(side)
    if sample is not None:
        if len(shape) == 3:
            volume = read_volume(sample)  # errors name the file (a 2D image is refused as a volume)
            image = io.ImageFile(volume.voxels.reshape(-1, *volume.voxels.shape[2:]), False)
        else:
            image = io.read_image(sample)
        if str(image.dtype) != contract.dtype:
            raise PackageError(f"sample {sample} is {image.dtype} but the package takes {contract.dtype} "
                               "(--input-dtype)")
        decoded = contract.codec.from_pixels(image, sample)  # the model's channel rules, errors naming the file
        pixels = image.pixels[..., : decoded.tensor.shape[0]] if image.shape[2] >= channels else \
            np.repeat(image.pixels, channels, axis=-1)
        if len(shape) == 3:
            pixels = pixels.reshape(*volume.voxels.shape[:2], *pixels.shape[1:])  # (z, y, x, c) again
        return np.ascontiguousarray(pixels)
    rng = np.random.default_rng(0)
    grid = torch.from_numpy(rng.random((1, channels, *(4 if len(shape) == 3 else 6,) * len(shape)))).float()
    mode = "trilinear" if len(shape) == 3 else "bicubic"
    unit = torch.nn.functional.interpolate(grid, size=shape, mode=mode, align_corners=False)
    unit = np.moveaxis(unit[0].clamp(0, 1).numpy(), 0, -1)  # ([z,] h, w, c)
    top = 1.0 if contract.dtype == "float32" else float(np.iinfo(np.dtype(contract.dtype)).max)
    if contract.codec.intensity is Intensity.RANGE:  # values inside the trained range
        low, high = contract.codec.value_range
        return (low + unit * (high - low)).astype(contract.dtype)
    return (unit * top).round().astype(contract.dtype) if top > 1 else unit.astype(np.float32)


# --------------------------------------------------------------------------- the package


def export_bioimageio(generator: Generator, task: TaskBase, path: str | Path, *, input_dtype: str = "uint8",
                      sample: Path | None = None, name: str | None = None, licence: str = "MIT",
                      authors: list[str] | None = None, onnx: bool = True, torchscript: bool = False,
                      halo: int | Sequence[int] | None = None) -> Path:
    """Write a bioimage.io model package (``.zip``) for ``generator`` and validate it with ``bioimageio.spec``.

    Args:
        input_dtype: the pixel type the package takes (``uint8``, ``uint16`` or ``float32``); it fixes the
            ``intensity=dtype`` scaling, and the test input has it.
        sample: an image of that type for the test input and the rendered cover (default: a seeded pattern);
            for a 3D generator a TIFF stack, cut to at most 64 voxels a side.
        name: the model's name (default: from the task and the run folder).
        licence: an SPDX licence id for the weights.
        authors: names for the ``authors`` field (default: ``pix2pix-unet user``).
        onnx: include ONNX weights (what Fiji/deepImageJ, ilastik and QuPath run); without them the package
            holds the PyTorch state dict only (bioimageio.core, napari), and builds in a second, not ~30 s.
        torchscript: also include TorchScript weights (``torch.jit.trace`` at a size the package allows; its
            sizes are all multiples of ``2 ** depth``, where the traced graph needs no padding, so one trace
            serves them all). For consumers that run TorchScript but not ONNX (older deepImageJ).
        halo: the tiling halo in px, rounded up to a multiple of ``2 ** depth`` (default: the measured receptive
            radius, at most 128 px); 0 declares none. A 3D generator's is in voxels, one for every axis or
            ``(z, y, x)``, each rounded up to its axis's factor (default: the receptive halo computed from the
            layers, capped at 32 voxels of the finest axis and the same extent in space on the others).

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
    cfg = generator.config
    geometry = PackageGeometry.of(generator, halo)
    minimum, steps = geometry.minimum, geometry.steps

    with tempfile.TemporaryDirectory(prefix="bioimageio_") as tmp:
        work = Path(tmp)
        # 1. test tensors: our decode -> generator -> encode on a sample; a volume's as small as allowed
        sides = ([max(m, 16) for m in minimum] if geometry.volume else
                 max(*minimum, 4 * steps[0], 64))
        pixels = sample_pixels(contract, sample, sides)
        fitted = package_size(pixels.shape[:-1], minimum, steps, VOLUME_SAMPLE_CAP if geometry.volume else 256)
        pixels = pixels[tuple(slice(0, n) for n in fitted)]
        test_in = np.moveaxis(pixels, -1, 0)[None]  # (1, c, [z,] h, w), the package's dtype
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
            trace_torchscript(generator, test_in.shape[1], tuple(m + s for m, s in zip(minimum, steps)),
                              work / "weights_torchscript.pt")

        # 3. cover, README, the run's config
        cover = work / "cover.png"
        if record.sample_grid is not None:
            shutil.copy(record.sample_grid, cover)
        else:
            render_cover(test_in, test_out, contract, cover)
        readme = work / "README.md"
        readme.write_text(package_readme(kind, contract, geometry, record, licence))
        (work / "pix2pix_unet_config.json").write_text(json.dumps({**meta, **task.describe(),
                                                                   "generator": to_dict(cfg)}, indent=2))
        attachments = [spec.FileDescr(source=work / "pix2pix_unet_config.json")]
        if record.config_yaml is not None:
            shutil.copy(record.config_yaml, work / "config.yaml")
            attachments.append(spec.FileDescr(source=work / "config.yaml"))

        # 4. the description
        channel_in = [f"channel{i}" for i in range(contract.codec.channels)]
        inputs = [spec.InputTensorDescr(
            id=spec.TensorId("input"),
            axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in channel_in]),
                  *space_axes(geometry, spec, output=False)],
            test_tensor=spec.FileDescr(source=work / "test_input.npy"),
            data=spec.IntervalOrRatioDataDescr(type=contract.dtype),
            preprocessing=preprocessing(contract, spec, geometry.axes),
            description=f"{contract.dtype} {'volume' if geometry.volume else 'image'}, "
                        f"intensity={contract.codec.intensity.value}",
        )]
        out_names = contract.classes or [f"channel{i}" for i in range(cfg.out_channels)]
        space_out = space_axes(geometry, spec, output=True)
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
            description=f"pix2pix-unet {kind} generator ({'3D ' if geometry.volume else ''}UNet, "
                        f"{cfg.architecture.value}, depth {cfg.depth}); "
                        + (f"per-{'voxel' if geometry.volume else 'pixel'} class probabilities" if contract.classes
                           else "volume to volume" if geometry.volume else "image to image"),
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
                  kind, *(["segmentation"] if contract.classes else []), *(["3d"] if geometry.volume else [])],
            config={"pix2pix_unet": {"version": __version__, "task": kind, "step": meta.get("step")}},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        save_bioimageio_package(descr, output_path=path)
    return path


def space_axes(geometry: PackageGeometry, spec: Any, output: bool) -> list:
    """The spatial axes of the input (``min + n * step`` per axis) or of the output (the input's size, with the
    halo to crop); a volume's with its voxel size as ``scale`` in micrometres, the same on both so the halo
    bioimage.io pads the input by equals the output's."""
    described = []
    for a, step, low, halo in zip(geometry.axes, geometry.steps, geometry.minimum, geometry.halos):
        scale = dict(scale=geometry.spacing[geometry.axes.index(a)], unit="micrometer") if geometry.spacing else {}
        if not output:
            described.append(spec.SpaceInputAxis(id=spec.AxisId(a), size=spec.ParameterizedSize(min=low, step=step),
                                                 **scale))
            continue
        size = spec.SizeReference(tensor_id=spec.TensorId("input"), axis_id=spec.AxisId(a))
        described.append(spec.SpaceOutputAxisWithHalo(id=spec.AxisId(a), halo=halo, size=size, **scale) if halo
                         else spec.SpaceOutputAxis(id=spec.AxisId(a), size=size, **scale))
    return described


def trace_torchscript(generator: Generator, channels: int, side: int | Sequence[int], path: Path) -> Path:
    """``torch.jit.trace`` of ``generator`` at ``side`` px a side (a multiple of ``2 ** depth``), or at the sizes
    ``(Z, Y, X)`` (multiples of the axes' factors) for a 3D generator, saved at ``path``."""
    import warnings

    sizes = (side, side) if isinstance(side, int) else tuple(side)
    x = torch.rand(1, channels, *sizes, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # trace's deprecation and shape-to-bool notes: the sizes keep one path
        traced = torch.jit.trace(for_export(generator), x)
    traced.save(str(path))
    return path


def render_cover(test_in: np.ndarray, test_out: np.ndarray, contract: PackageContract, path: Path) -> Path:
    """input | output of the test tensors as one PNG (segment: the arg-max classes in gray levels); of volumes,
    their middle z slice."""
    from ..training.samples import to_display
    from torchvision.utils import save_image

    if test_in.ndim == 5:  # (1, c, z, y, x)
        middle = test_in.shape[2] // 2
        test_in, test_out = test_in[:, :, middle], test_out[:, :, middle]
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


def package_readme(kind: str, contract: PackageContract, geometry: PackageGeometry, record: RunRecord,
                   licence: str) -> str:
    """The package's documentation: what goes in and out, how to tile, the validation metrics, the licence."""
    codec = contract.codec
    if contract.classes is not None:
        out = (f"per-{'voxel' if geometry.volume else 'pixel'} class probabilities "
               f"({', '.join(contract.classes)}; softmax over the channel axis). "
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

{_input_text(contract, geometry)}

## Output

{out}

## Tiling

{_tiling_text(geometry)}

## Validation

{record.metrics_table()}
To re-measure on your own labelled files: `pix2pix-unet evaluate --checkpoint RUN --data FOLDER` (files the model
trained or was tuned on are left out by the run's `split.json`).

## Licence

{licence}
"""


def _input_text(contract: PackageContract, geometry: PackageGeometry) -> str:
    codec, (low, *_), (step, *_) = contract.codec, geometry.minimum, geometry.steps
    rule = (f"intensity rule\n`{codec.intensity.value}` ({_rule(codec, contract.dtype)}), done by the package's "
            "pre-processing.")
    if not geometry.volume:
        return (f"`{contract.dtype}` images, axes `batch, channel, y, x`, {codec.channels} channel(s); {rule}\n"
                f"Sides are `{low} + n * {step}` px (the UNet halves the image {step.bit_length() - 1} times).")
    sizes = ", ".join(f"{a} = `{m} + n * {s}`" for a, m, s in zip(geometry.axes, geometry.minimum, geometry.steps))
    voxel = (f"voxel size (z, y, x) is {', '.join(f'{v:g}' for v in geometry.spacing)} µm, the training data's "
             "(the axes' `scale`); resample volumes of another voxel size to it" if geometry.spacing else
             "training data had no voxel size (the network treats voxels as cubes)")
    over = " (`image`: the whole volume's min..max, never a tile's)" if codec.intensity is Intensity.IMAGE else ""
    return (f"`{contract.dtype}` volumes, axes `batch, channel, z, y, x`, {codec.channels} channel(s); {rule[:-1]}"
            f"{over}. The {voxel}.\nSizes are {sizes} voxels (each axis's step is "
            f"the product of its downsampling strides; a coarse z axis is halved fewer times).")


def _tiling_text(geometry: PackageGeometry) -> str:
    tail = ("Pad with a mirror (`symmetric`,\nbioimage.io's default), not zeros. Any size the rule above allows "
            "also runs whole.")
    if not geometry.volume:
        halo, step = geometry.halos[0], geometry.steps[0]
        return (f"Tile with a halo of {halo} px (the generator's measured receptive radius, capped at 128 px, or "
                f"what the export\nwas given, rounded up to a multiple of {step}). {tail}")
    triple, receptive = ", ".join(map(str, geometry.halos)), geometry.receptive
    if receptive is None:
        source = ("this network pools the whole window (`bottleneck=aspp` or `conv_unit=naf`), so no halo covers "
                  "its receptive field and tiles differ from a whole-volume run")
    elif all(h >= r for h, r in zip(geometry.halos, receptive)):
        source = (f"it covers the receptive field computed from the layers, ({', '.join(map(str, receptive))}), so "
                  "with no norm or batch norm a tile's inner output equals a whole-volume run's")
    else:
        limits = ", ".join(map(str, halo_limits(geometry.spacing)))
        source = (f"below the receptive field computed from the layers, ({', '.join(map(str, receptive))}): the "
                  f"default is capped at ({limits}) voxels ({VOLUME_HALO_LIMIT} of the finest axis, the same extent "
                  "in space on the others) or was given, so tiles differ slightly from a whole-volume run near their "
                  "edges")
    return (f"Tile with a halo of (z, y, x) = ({triple}) voxels, each a multiple of its axis's step: {source}. "
            f"{tail}")


def _rule(codec: ImageCodec, dtype: str) -> str:
    if codec.intensity is Intensity.DTYPE:
        return f"0..{io.DTYPE_MAX[np.dtype(dtype)]:g} -> [-1, 1]"
    if codec.intensity is Intensity.RANGE:
        return f"{codec.value_range[0]:g}..{codec.value_range[1]:g} -> [-1, 1], clipped"
    return "each image's own min..max -> [-1, 1]"


__all__ = ["PackageContract", "PackageError", "PackageGeometry", "RunRecord", "export_bioimageio", "halo_of",
           "receptive_radius"]
