"""What every task is: one object that owns a model's path from file to file.

A task is built either for training (``Task(cfg)``, then ``build_datasets()``
settles what the data decides, such as ``num_classes``) or from a generator
export alone (:func:`~pix2pix_unet.tasks.task_from_export`). Either way it gives

- ``decode_input(path, mask)``: a file as the generator's input (channels, bit
  depth, intensity rule, one-hot labels, hole mask), used by the datasets,
  ``predict``, ``evaluate``, ``synthesize`` and the export alike;
- ``generator_losses`` / ``discriminator_losses``: the training objective
  (:class:`~pix2pix_unet.losses.objective.Objective`);
- ``evaluate(generator, dataset, device)``: the task's metrics on a dataset, the
  same function for training validation and ``pix2pix-unet evaluate``;
- ``encode(output, decoded, path)``: an output written as a file;
- ``describe()``: what the export's ``config.json`` records to rebuild all of the
  above (:data:`SCHEMA_VERSION`);
- the hooks its callers ask instead of checking its class: ``summary()`` (model
  cards), ``display_name`` and ``label_input`` (the demo), ``writes_overlays``,
  ``bioimageio_outputs()`` / ``bioimageio_refusal()`` (the bioimage.io package),
  ``override_thresholds()`` (``predict --prob-threshold`` ...).

:class:`TaskBase` declares the whole contract; what every task must bring is abstract.
"""

from __future__ import annotations

import abc
import dataclasses
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, NamedTuple, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from ..config import (
    ConfigError, DataConfig, Direction, FidWhen, InferenceConfig, MetricMode, OutputDtype, Task, TrainConfig,
    UNetConfig, from_dict,
)
from ..data.folders import DatasetError
from ..data.volumes import spacing_warning
from ..runtime import VoxelReduction, run_generator
from ..io import ChannelError, ImageReadError, write_image
from ..losses.objective import Pix2PixObjective
from ..metrics.fid import InceptionFeatures
from ..models import Discriminator, build_generator
from ..codec import Decoded, ImageCodec, out_of_range, training_span

SCHEMA_VERSION = 2  # of the export's config.json; 1 = the exports before it (no "schema_version" key)


class ExportError(ValueError):
    """A generator export lacks what its task needs; the message names the field and the file."""


def require(meta: dict[str, Any], key: str, source: str | Path) -> Any:
    """``meta[key]``, or an :class:`ExportError` naming the missing field and the export."""
    if meta.get(key) is None:
        version = meta.get("schema_version", 1)
        raise ExportError(f"{source}: config.json (schema version {version}) has no {key!r} field, which a "
                          f"{meta.get('task', 'translate')} generator needs; re-export it with this version "
                          f"(train --resume writes a new export) or add the field")
    return meta[key]


@dataclass
class Evaluation:
    """What a task's evaluation gives: metrics (no ``val/`` prefix), a row per image, and sample pictures.

    ``inputs``, ``outputs``, ``targets`` are ``(N, 3, h, w)`` display tensors in [-1, 1]
    of the first examples, centre-cropped to one size for the sample grid.
    """

    metrics: dict[str, float]
    rows: list[dict[str, Any]]
    inputs: torch.Tensor
    outputs: torch.Tensor
    targets: torch.Tensor
    warnings: list[str] = field(default_factory=list)  # outputs that cannot be right, each naming its file


class Meter(Protocol):
    """Accumulates a task's metrics batch by batch."""

    key: str  # the per-image metric examples are ranked by in reports
    higher_is_better: bool

    def update(self, outputs: torch.Tensor, target: Any, inputs: torch.Tensor,
               names: list[str]) -> list[dict[str, float]]: ...

    def summary(self) -> dict[str, float]: ...


class RandomCrops(Dataset):
    """Random ``size`` crops of every example, the same window for all its maps, for training.

    Images may have any size. The window of draw ``index`` is seeded by
    ``(seed, index)``, and the sampler numbers draws across epochs
    (:class:`~pix2pix_unet.training.loop.EpochSampler`), so the crops repeat
    exactly in a resumed run. ``size=None`` passes the examples through. With ``dims=3`` the examples are
    volumes and the crops are ``depth x size x size`` patches (``depth=None``: every slice).
    """

    def __init__(self, base: Dataset, size: int | None, seed: int, dims: int = 2, depth: int | None = None) -> None:
        self.base, self.size, self.seed, self.dims, self.depth = base, size, seed, dims, depth

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str) -> Any:  # `skipped`, `has_instances` ... of the wrapped set
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.base[index % len(self.base)]
        if self.size is None and (self.dims == 2 or self.depth is None):
            return item
        maps = [v for v in item.values() if isinstance(v, torch.Tensor) and v.ndim >= self.dims]
        shape = tuple(maps[0].shape[-self.dims:])
        wanted = ((self.depth or shape[0],) if self.dims == 3 else ()) + (self.size or shape[-2], self.size or shape[-1])
        if any(n < w for n, w in zip(shape, wanted)):
            size = "x".join(map(str, shape[::-1]))  # width first
            if self.dims == 2:
                raise DatasetError(f"{item.get('name', index)} is {size} px, smaller than data.crop_size={self.size}")
            raise DatasetError(f"{item.get('name', index)} is {size} voxels (x, y, z), smaller than the "
                               f"{'x'.join(map(str, wanted[::-1]))} patches of data.crop_size={self.size} and "
                               f"data.crop_depth={self.depth}")
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        starts = [int(torch.randint(n - w + 1, (1,), generator=rng)) for n, w in zip(shape[-2:], wanted[-2:])]
        if self.dims == 3:  # drawn after y and x, so 2D crops keep their windows
            starts.insert(0, int(torch.randint(shape[0] - wanted[0] + 1, (1,), generator=rng)))
        window = tuple(slice(a, a + w) for a, w in zip(starts, wanted))
        return {k: v[(..., *window)]
                if isinstance(v, torch.Tensor) and v.ndim >= self.dims and tuple(v.shape[-self.dims:]) == shape else v
                for k, v in item.items()}


def name_seed(seed: int, name: str) -> int:
    """A per-example seed from a fixed seed and the example's name (its file name)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def size_batches(dataset: Dataset, batch_size: int,
                 failed: list[tuple[str, str]] | None = None) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """``(indices, collated batch)`` of examples of one size, in order of first appearance.

    With ``failed`` given, an example that cannot be read is appended to it as
    ``(source, reason)`` and skipped; otherwise the error propagates.
    """
    buckets: dict[tuple, list[tuple[int, dict]]] = {}
    for i in range(len(dataset)):
        try:
            item = dataset[i]
        except (DatasetError, ImageReadError, ChannelError) as err:
            if failed is None:
                raise
            source = dataset.source(i) if hasattr(dataset, "source") else str(i)
            failed.append((str(source), str(err)))
            continue
        key = tuple(tuple(v.shape) for v in item.values() if isinstance(v, torch.Tensor))
        bucket = buckets.setdefault(key, [])
        bucket.append((i, item))
        if len(bucket) == batch_size:
            yield [j for j, _ in bucket], default_collate([it for _, it in bucket])
            bucket.clear()
    for bucket in buckets.values():
        if bucket:
            yield [j for j, _ in bucket], default_collate([it for _, it in bucket])


def centre_crop_to(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate ``(b, c, h, w)`` tensors, centre-cropped to the smallest height and width among them."""
    h = min(t.shape[-2] for t in tensors)
    w = min(t.shape[-1] for t in tensors)

    def crop(t: torch.Tensor) -> torch.Tensor:
        top, left = (t.shape[-2] - h) // 2, (t.shape[-1] - w) // 2
        return t[..., top: top + h, left: left + w]

    return torch.cat([crop(t) for t in tensors])


ExampleHook = Callable[[str, dict[str, float], list[torch.Tensor]], None]


class TaskData(NamedTuple):
    """What :meth:`TaskBase.build_datasets` gives the loop: the two splits and the config the data resolved
    (the generator's channels and head, ``num_classes`` ...), which the run then trains and saves."""

    train: Dataset
    val: Dataset
    cfg: TrainConfig


class TaskBase(abc.ABC):
    """The task contract, and the plumbing the tasks share: device-side augmentation, the evaluation driver.

    Args:
        cfg: the run's config. ``build_datasets`` returns the copy the data resolves, and the task is set up
            for that copy from then on.
    """

    kind: ClassVar[Task]
    best: ClassVar[tuple[str, MetricMode]] = ("val/l1", MetricMode.MIN)  # the task's own `best_metric`

    def __init__(self, cfg: TrainConfig) -> None:
        # An unset `best_metric` is the task's own (val/l1 is not measured by every task); a set one is kept, and
        # without a `best_mode` it is minimised unless it is the task's own
        own = self.own_best(cfg)
        metric = cfg.best_metric or own[0]
        mode = cfg.best_mode or (own[1] if metric == own[0] else MetricMode.MIN)
        self.cfg = dataclasses.replace(cfg, best_metric=metric, best_mode=mode)
        cfg = self.cfg
        self.augment: nn.Module = nn.Identity()  # set by build_datasets; runs on the batch's device
        self.objective = Pix2PixObjective(cfg.loss)  # translate and restore; segment has its own
        self.input_range: list[float] | None = None  # decoded training inputs' span, for predict's warning
        self.output_dtype: str | None = None  # dtype of outputs whose input has none of its own (label maps)
        self._inception: InceptionFeatures | None = None  # the FID network, loaded on first use

    @property
    def volumes(self) -> bool:
        """Whether Z stacks go in and out (a 3D generator; a task may add 2.5D)."""
        return self.cfg.generator.dims == 3

    def patches(self) -> tuple[int, int | None]:
        """How training crops its examples (:class:`RandomCrops`): ``(dims, depth)``, 2 for images, 3 for
        volumes with ``depth`` slices (None: every slice)."""
        return self.cfg.generator.dims, self.cfg.data.crop_depth

    def own_best(self, cfg: TrainConfig) -> tuple[str, MetricMode]:
        """The metric (and its direction) that chooses the exported checkpoint when ``best_metric`` is unset:
        :attr:`best`, unless what ``cfg`` measures decides otherwise."""
        return self.best

    def to(self, device: torch.device | str) -> "TaskBase":
        self.augment = self.augment.to(device)
        return self

    def prepare_target(self, generator: nn.Module, target: Any) -> Any:
        """The training step's hook before each update (:meth:`Objective.prepare_target`): the target with what
        the objective needs from the generator; the task's objective decides."""
        return self.objective.prepare_target(generator, target)

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: Any) -> dict[str, torch.Tensor]:
        return self.objective.discriminator_losses(discriminator, inputs, fake, target)

    def generator_losses(self, discriminator: nn.Module | None, inputs: torch.Tensor, fake: torch.Tensor,
                         target: Any) -> dict[str, torch.Tensor]:
        return self.objective.generator_losses(discriminator, inputs, fake, target)

    def generate(self, generator: nn.Module, inputs: torch.Tensor, target: Any) -> tuple[Any, Any]:
        """The training step's forward (:meth:`Objective.generate`): ``(output, heads)``, the heads only with
        deep supervision. A task whose losses need more than ``generator(inputs)`` runs it all here."""
        return generator(inputs, deep=True) if self.deep_supervision else (generator(inputs), None)

    @property
    def deep_supervision(self) -> bool:
        """Whether ``generator_losses`` takes every output head (``heads=``) besides the output; segment's can."""
        return False

    @property
    def uses_discriminator(self) -> bool:
        """Whether the objective has an adversarial term (else no D, D optimiser or D schedule is built)."""
        return True

    # ----------------------------------------------------------------- training

    def build_generator(self, pretrained: bool = True) -> nn.Module:
        """What the training loop trains as its generator (built after :meth:`build_datasets`): the configured
        generator; a task may wrap it with more nets (unpaired: G_BA or CUT's projector)."""
        return build_generator(self.cfg.generator, pretrained=pretrained)

    def build_discriminator(self) -> nn.Module | None:
        """The conditional PatchGAN on (input, output), or None without an adversarial term."""
        if not self.uses_discriminator:
            return None
        return Discriminator(self.cfg.generator.in_channels, self.cfg.generator.out_channels, self.cfg.discriminator,
                             self.cfg.generator.dims)

    def exported(self, generator: nn.Module) -> nn.Module:
        """The part of the trained generator that is exported and predicted with (all of it, by default)."""
        return generator

    def checkpoint_objects(self) -> list[Any]:
        """State the task keeps across steps (``state_dict``/``load_state_dict``), saved with every checkpoint
        so a resumed run continues exactly: unpaired's image pools."""
        return []

    def build_datasets(self) -> TaskData:
        """The training and validation splits, and the config the data resolves (``num_classes``, the
        generator's channels and head); the task is set up for that config from then on."""
        train, val, cfg = self.datasets()
        self.cfg = cfg
        return TaskData(train, val, cfg)

    @abc.abstractmethod
    def datasets(self) -> tuple[Dataset, Dataset, TrainConfig]:
        """What :meth:`build_datasets` returns: the splits read from ``self.cfg.data``, and the resolved
        config. Sets up what the data decides (augmentation, classes, losses that need them)."""

    @abc.abstractmethod
    def train_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        """(generator input, target) of a training batch, augmented on its device."""

    # ----------------------------------------------------------------- what callers ask of a task

    @abc.abstractmethod
    def summary(self) -> str:
        """One sentence on what goes in and what comes out (model cards)."""

    @property
    def display_name(self) -> str:
        """The task's name as pages show it (the demo's title)."""
        return self.kind.value

    @property
    def label_input(self) -> bool:
        """Whether inputs are class-id label maps rather than images."""
        return False

    @property
    def writes_overlays(self) -> bool:
        """Whether ``encode`` can also write a picture of the output over the input (``overlay_dir``)."""
        return False

    pipeline_tag: ClassVar[str] = "image-to-image"  # the Hugging Face Hub's name for what the model does

    def bioimageio_outputs(self) -> list[str] | None:
        """The output channels' names when they are class scores (a bioimage.io package labels them),
        or None for image outputs."""
        return None

    def bioimageio_refusal(self) -> str | None:
        """Why a bioimage.io package cannot describe this generator, or None when it can."""
        if self.needs_mask:
            return ("an inpainting restorer takes a hole mask beside each image, which this package does not "
                    "describe; export it as onnx or safetensors")
        return None

    def override_thresholds(self, prob: float | None = None, seed: float | None = None,
                            min_size: int | None = None) -> None:
        """Replace the post-processing thresholds recorded in the export (``predict --prob-threshold`` ...).

        Raises:
            ValueError: the task has no such thresholds (only segmenters in instance mode have).
        """
        raise ValueError(f"a {self.display_name} generator has no instance thresholds")

    # ----------------------------------------------------------------- the contract

    def describe(self) -> dict[str, Any]:
        """What the export's ``config.json`` records for this task (beside ``generator``), to rebuild it."""
        return {"schema_version": SCHEMA_VERSION, "task": self.kind.value, "num_classes": None,
                "direction": self.cfg.data.direction.value, "input_range": self.input_range,
                "output_dtype": self.output_dtype}

    @classmethod
    def config_from_export(cls, meta: dict[str, Any], source: str | Path) -> TrainConfig:
        """The part of a :class:`TrainConfig` an export records; each task adds its own fields."""
        generator = from_dict(UNetConfig, require(meta, "generator", source), "generator")
        try:
            direction = Direction(meta.get("direction", Direction.A_TO_B.value))
        except ValueError:
            raise ExportError(f"{source}: config.json has direction {meta.get('direction')!r}") from None
        return TrainConfig(task=cls.kind, generator=generator, data=DataConfig(direction=direction))

    @classmethod
    def from_export(cls, meta: dict[str, Any], source: str | Path = "<export>") -> "TaskBase":
        """The task a generator export describes, ready to decode, encode and score."""
        try:
            task = cls(cls.config_from_export(meta, source))
        except ConfigError as err:
            raise ExportError(f"{source}: config.json: {err}") from None
        task.resolve_from_export(meta, source)
        task.input_range = meta.get("input_range")
        task.output_dtype = meta.get("output_dtype")
        return task

    def resolve_from_export(self, meta: dict[str, Any], source: str | Path) -> None:
        """Set what ``build_datasets`` would have settled from the data (``num_classes`` ...)."""

    def note_training_inputs(self, tensors: list[torch.Tensor]) -> None:
        """Record the span of some decoded training inputs (predict warns on inputs far outside it)."""
        if tensors:
            self.input_range = training_span(tensors)

    # ----------------------------------------------------------------- files

    @property
    def input_codec(self) -> ImageCodec:
        """How image inputs are decoded (tasks whose inputs are images)."""
        return ImageCodec(self.cfg.generator.in_channels)

    @property
    def needs_mask(self) -> bool:
        """Whether every input comes with a hole mask (restore with inpainting)."""
        return False

    def decode_input(self, path: Path, mask: Path | None = None) -> Decoded:
        """A file as the generator's input."""
        return self.input_codec.decode(path)

    def input_warnings(self, decoded: Decoded) -> list[str]:
        """Warnings about an input that cannot give a sensible output (named by file): values far outside the
        training span, and a volume whose voxel size differs from the trained one (its anisotropy is not the one
        the kernels were built for)."""
        warning = out_of_range(decoded, self.input_range, self.input_codec.intensity)
        warnings = [warning] if warning else []
        if decoded.volume is not None:
            warning = spacing_warning(decoded.path, decoded.volume.spacing, self.cfg.generator.spacing)
            warnings += [warning] if warning else []
        return warnings

    def output_path(self, relative: Path, output_dir: Path, suffix: str | None = None) -> Path:
        """Where the output of the input at ``relative`` (to the input root) goes."""
        return output_dir / relative.with_suffix(suffix or relative.suffix)

    def encode(self, output: torch.Tensor, decoded: Decoded, path: Path, dtype: OutputDtype = OutputDtype.INPUT,
               overlay_dir: Path | None = None, relative: Path | None = None) -> list[Path]:
        """Write one output; returns the paths written. Images: the input's dtype and units."""
        fallback = np.dtype(self.output_dtype or "uint8")
        return [write_image(path, self.input_codec.encode(output, decoded, dtype, fallback))]

    def output_warnings(self, output: torch.Tensor, decoded: Decoded) -> list[str]:
        """Warnings about an output that cannot be right (named by file)."""
        return []

    def volume_reduction(self, decoded: Decoded, dtype: OutputDtype = OutputDtype.INPUT) -> VoxelReduction | None:
        """What :meth:`encode` needs of a volume's output (``decoded``'s, written as ``dtype``), voxel by voxel,
        when that is much smaller than the float output: ``predict`` then keeps only it, block by block, and
        hands :meth:`encode` and :meth:`output_warnings` its maps instead of the output. None: the output."""
        return None

    def voxels_reduction(self, encode: Callable[[torch.Tensor], np.ndarray]) -> VoxelReduction:
        """A :meth:`volume_reduction` that keeps the written voxels ``(Z, Y, X, C)`` themselves, ``encode`` (an
        output block ``(C', z, y, x)`` to voxels, voxel by voxel) applied to each block; its dtype and channels
        are those ``encode`` gives one voxel."""
        probe = encode(torch.zeros(self.cfg.generator.out_channels, 1, 1, 1))  # (1, 1, 1, c)
        return VoxelReduction({"voxels": probe.dtype}, lambda block: {"voxels": encode(block)},
                              {"voxels": probe.shape[-1]})

    # ----------------------------------------------------------------- evaluation

    @abc.abstractmethod
    def meter(self, dataset: Dataset, report: bool = False) -> Meter:
        """A fresh :class:`Meter` of the task's metrics for ``dataset``; ``report``: for ``evaluate`` or the run's
        final figures rather than a validation during training (costly metrics may be measured only then)."""

    def inception(self, device: torch.device | str = "cpu", report: bool = False) -> InceptionFeatures | None:
        """The FID network when ``fid.when`` asks for FID/KID here (always with ``validation``, only for a report
        with ``report``), loaded once; None otherwise, and (said once) when none is installed and none is named.
        A named file that is missing is an error."""
        when = self.cfg.fid.when
        if when is FidWhen.OFF or (when is FidWhen.REPORT and not report):
            return None
        if self._inception is None:
            try:
                self._inception = InceptionFeatures(self.cfg.fid.inception, device)
            except FileNotFoundError as err:
                if self.cfg.fid.inception:
                    raise
                print(f"FID/KID not measured: {err}")
                self.cfg = dataclasses.replace(self.cfg, fid=dataclasses.replace(self.cfg.fid, when=FidWhen.OFF))
                return None
        return self._inception

    @abc.abstractmethod
    def val_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        """(generator input, target) of a validation batch, without augmentation."""

    display_names: tuple[str, ...] = ("input", "output", "target")  # what each picture of `display` shows

    @abc.abstractmethod
    def display(self, inputs: torch.Tensor, outputs: torch.Tensor, target: Any) -> list[torch.Tensor]:
        """``[input, output, target]`` as ``(b, 3|1, h, w)`` pictures in [-1, 1]."""

    @torch.no_grad()
    def evaluate(self, generator: nn.Module, dataset: Dataset, device: torch.device | str,
                 infer: InferenceConfig | None = None, *, on_example: ExampleHook | None = None,
                 failed: list[tuple[str, str]] | None = None, report: bool = False) -> Evaluation:
        """The task's metrics of ``generator`` on ``dataset``, whole images, in eval mode.

        Training validation and ``pix2pix-unet evaluate`` both call this, so their
        numbers agree. Images of one size share a batch; large ones are tiled as in
        ``predict`` (:func:`~pix2pix_unet.runtime.run_generator`).

        Args:
            infer: how to run the generator (batching, tiling, precision); default: ``batch_size`` of the run.
            on_example: called per image with its name, metrics row and pictures (reports).
            failed: collects ``(file, reason)`` of unreadable examples, which are then skipped.
            report: for ``evaluate`` or the run's final figures (:meth:`meter`).
        """
        infer = infer or InferenceConfig(batch_size=self.cfg.batch_size)
        was_training = generator.training
        generator.eval()
        meter = self.meter(dataset, report)
        rows: dict[int, dict[str, Any]] = {}
        shown: list[list[torch.Tensor]] = []
        count = 0
        for indices, batch in size_batches(dataset, infer.batch_size, failed):
            inputs, target = self.val_batch(batch)
            outputs = run_generator(generator, inputs, infer, device)
            new_rows = meter.update(outputs, target, inputs, list(batch["name"]))
            pictures = self.display(inputs, outputs, target) if on_example or count < self.cfg.num_samples else None
            for j, (index, name, row) in enumerate(zip(indices, batch["name"], new_rows)):
                rows[index] = {"name": name, **row}
                if on_example is not None:
                    on_example(name, row, [p[j] for p in pictures])
            if count < self.cfg.num_samples:
                shown.append([p[: self.cfg.num_samples - count] for p in pictures])
            count += len(indices)
        generator.train(was_training)
        if not shown:
            raise DatasetError("no example could be evaluated")
        parts = [centre_crop_to([s[k] for s in shown]) for k in range(3)]
        return Evaluation(meter.summary(), [rows[i] for i in sorted(rows)], *parts,
                          warnings=list(getattr(meter, "warnings", [])))

    def tunes(self, dataset: Dataset) -> str | None:
        """What :meth:`tune` settles on ``dataset`` once training ends ("the instance thresholds"), or None when
        nothing. When it settles something, training sets part of the validation files aside to tune on and
        reports its figures on the rest (``split.json``: ``tune``, ``report``)."""
        return None

    def tune(self, generator: nn.Module, dataset: Dataset, device: torch.device | str) -> dict[str, float] | None:
        """Settle what is chosen on ``dataset`` (the validation files set aside for it) once training ends
        (segment's instance thresholds); what was chosen, for the log, or None when the task has nothing to tune."""
        return None

    @abc.abstractmethod
    def eval_dataset(self, folder: Path, inputs: str | None, targets: str | None, masks: Path | None) -> Dataset:
        """The examples of ``folder`` to evaluate, read as validation reads them."""


def mean_rows(rows: list[dict[str, float]], keys: list[str]) -> dict[str, float]:
    """The mean of each of ``keys`` over per-image rows."""
    return {k: float(np.mean([r[k] for r in rows])) for k in keys} if rows else {}


@dataclass
class ImageMeter:
    """L1, PSNR and SSIM per image, averaged over the set.

    ``baseline`` also scores the degraded input (``*_input``); ``classical``, a
    classical restorer of ``(inputs in [-1, 1], names)``, gets the same
    scores (``*_classical``), each image's cached in ``cache`` by name, so a run
    computes them once for all its evaluations.
    """

    channels: int
    baseline: bool = False
    classical: Callable[[torch.Tensor], torch.Tensor] | None = None
    cache: dict[str, dict[str, float]] = field(default_factory=dict)
    key: str = "psnr"
    higher_is_better: bool = True
    rows: list[dict[str, float]] = field(default_factory=list)

    def update(self, outputs: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor,
               names: list[str]) -> list[dict[str, float]]:
        from ..metrics.image import image_scores

        scores = image_scores(outputs, target)
        new = [{k: float(v[i]) for k, v in scores.items()} for i in range(len(outputs))]
        if self.baseline:
            base = image_scores(inputs[:, : self.channels], target)
            for i, row in enumerate(new):
                row.update({f"{k}_input": float(base[k][i]) for k in ("psnr", "ssim")})
        if self.classical is not None:
            for i, (row, name) in enumerate(zip(new, names)):
                if name not in self.cache:
                    restored = self.classical(inputs[i: i + 1, : self.channels])
                    classical = image_scores(restored, target[i: i + 1])
                    self.cache[name] = {f"{k}_classical": float(classical[k][0]) for k in ("psnr", "ssim")}
                row.update(self.cache[name])
        self.rows += new
        return new

    def summary(self) -> dict[str, float]:
        keys = list(self.rows[0]) if self.rows else []
        metrics = mean_rows(self.rows, keys)
        if self.baseline and metrics:
            metrics["psnr_gain"] = metrics["psnr"] - metrics["psnr_input"]
        if self.classical is not None and metrics:
            metrics["psnr_over_classical"] = metrics["psnr"] - metrics["psnr_classical"]
        return metrics


__all__ = ["SCHEMA_VERSION", "Evaluation", "ExportError", "ImageMeter", "Meter", "RandomCrops", "TaskBase",
           "TaskData",
           "centre_crop_to", "name_seed", "require", "size_batches"]
