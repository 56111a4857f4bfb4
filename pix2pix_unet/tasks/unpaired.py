"""``task=unpaired``: domain A -> domain B from unpaired folders, by CycleGAN, CUT or FastCUT.

The data is ``trainA/`` and ``trainB/`` (and ``testA/``, ``testB/``), the reference codebase's layout, with no
pairing by name (:mod:`~pix2pix_unet.data.unpaired`). The generator the loop trains is an
:class:`~pix2pix_unet.models.unpaired.UnpairedTranslator`; what is exported, predicted with and served is its
A -> B generator alone, so ``predict``, ONNX, bioimage.io, the Hub and the demo take it as any image generator.

Defaults follow the reference code (:data:`~pix2pix_unet.config.TASK_DEFAULTS`): least-squares GAN losses,
instance norm, no dropout; CycleGAN's cycle weight 10, identity 0.5 and image pool of 50; CUT's PatchNCE over
256 patches per encoder layer at temperature 0.07.

Nothing in the data says how good a translation is, so validation reports what needs no target, and warns:

- ``input_correlation``: the correlation of each output with its input (gray), per image. With
  ``unpaired.expect_contrast=same`` (the default: A and B share a structure and its polarity, as in a stain
  change) an output at -0.5 or below is named as inverted; with ``inverted`` (B shows A's structure with the
  contrast reversed, as brightfield does fluorescence) one at +0.5 or above is named as keeping A's contrast;
  ``any`` expects nothing;
- ``output_spread_ratio``: how much the outputs differ from one another (8 x 8 thumbnails) against how much
  the inputs do; under ``COLLAPSED`` the outputs no longer depend on the inputs, and the run is warned;
- ``fid``, ``kid`` of the outputs against B images (``testB/``, or trainB files held out from training), and
  ``input_fid``, ``input_kid`` of the inputs themselves, the do-nothing baseline
  (:mod:`~pix2pix_unet.metrics.fid`; at every validation with ``fid.when=validation``, this task's default, and an
  Inception network installed or named);
- ``real_vs_generated``: the held-out accuracy of a small CNN trained from scratch to tell the outputs' patches
  from the B images' (:mod:`~pix2pix_unet.metrics.realness`: 0.5 cannot tell them apart), and
  ``input_real_vs_generated`` of the inputs; it needs no pretrained weights.

The export is the last step's weights (``export=last``, this task's default: on held-out truth it did as well as
or better than the lowest-FID checkpoint in every benchmark run). With ``export=best`` it is the checkpoint with
the lowest ``val/fid``, or without FID the lowest ``val/real_vs_generated`` (:meth:`UnpairedTask.own_best`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..codec import ImageCodec
from ..config import Contrast, FidWhen, MetricMode, Task, TrainConfig
from ..data.folders import hold_out, list_images
from ..data.unpaired import UnpairedFiles, UnpairedFolderDataset, discover_unpaired
from ..errors import DatasetError
from ..losses.unpaired import ImagePool, cycle_discriminator_losses, unpaired_generator_losses
from ..metrics.fid import InceptionFeatures, frechet_distance, inception_available, kernel_inception_distance
from ..metrics.realness import real_vs_generated
from ..models import build_generator
from ..models.nce import PatchProjector
from ..models.unpaired import UnpairedDiscriminators, UnpairedTranslator
from .base import Meter, TaskBase

INVERTED = 0.5  # |input-output correlation| past which an output broke the expected contrast
COLLAPSED = 0.1  # output spread over input spread under which the outputs are reported as not depending on inputs


class DomainImages(Dataset):
    """Whole images of one domain for validation and ``evaluate``: ``{"A": (C, H, W), "name"}``."""

    def __init__(self, files: list[Path], codec: ImageCodec) -> None:
        if not files:
            raise DatasetError("no images to validate the unpaired run on")
        self.files, self.codec = files, codec

    def __len__(self) -> int:
        return len(self.files)

    def source(self, index: int) -> Path:
        return self.files[index]

    def example_files(self) -> list[dict[str, Path]]:
        return [{"A": f} for f in self.files]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"A": self.codec.decode(self.files[index]).tensor, "name": self.files[index].name}


def gray(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H, W)``: the channel mean."""
    return x.float().mean(1)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each image pair, ``(B, H, W)`` twice -> ``(B,)`` (0 where one is constant)."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    denominator = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(denominator > 0, (a * b).sum(1) / denominator.clamp_min(1e-12), torch.zeros_like(denominator))


class UnpairedMeter:
    """Input-output correlation per image, the outputs' spread against the inputs', and with ``features`` and
    ``reference`` (B images' Inception features) FID/KID of outputs and inputs (see the module)."""

    key = "input_correlation"
    higher_is_better = True

    KEEP = 32  # images kept for the real-vs-generated classifier

    def __init__(self, features: InceptionFeatures | None = None, reference: np.ndarray | None = None,
                 expect: Contrast = Contrast.SAME, reference_images: list[torch.Tensor] | None = None) -> None:
        self.expect = expect
        self.reference_images = reference_images or []
        self.kept: dict[str, list[torch.Tensor]] = {"in": [], "out": []}
        self.thumbs: dict[str, list[torch.Tensor]] = {"in": [], "out": []}
        self.correlations: list[float] = []
        self.warnings: list[str] = []
        self.features, self.reference = features, reference
        self.inception: dict[str, list[np.ndarray]] = {"in": [], "out": []}

    def update(self, outputs: torch.Tensor, target: Any, inputs: torch.Tensor, names: list[str]) -> list[dict]:
        c = correlation(gray(inputs), gray(outputs)).tolist()
        for name, value in zip(names, c):
            if self.expect is Contrast.SAME and value <= -INVERTED:
                self.warnings.append(f"{name}: the output is inverted against its input (correlation {value:.2f}); "
                                     "A and B share a structure (unpaired.expect_contrast=same), so the translation "
                                     "has flipped its contrast")
            elif self.expect is Contrast.INVERTED and value >= INVERTED:
                self.warnings.append(f"{name}: the output keeps its input's contrast (correlation {value:.2f}), but "
                                     "B shows A's structure inverted (unpaired.expect_contrast=inverted)")
        for key, x in (("in", inputs), ("out", outputs)):
            self.thumbs[key].append(F.adaptive_avg_pool2d(gray(x).unsqueeze(1), 8).flatten(1).cpu())
            if self.features is not None and self.reference is not None:
                self.inception[key].append(self.features(x))
            if len(self.reference_images) > 1:
                self.kept[key] += [image.float().cpu() for image in x[: self.KEEP - len(self.kept[key])]]
        self.correlations += c
        return [{"input_correlation": value} for value in c]

    def summary(self) -> dict[str, float]:
        spread = {k: torch.cat(v).std(0).mean().item() if sum(len(t) for t in v) > 1 else 0.0
                  for k, v in self.thumbs.items()}
        ratio = spread["out"] / spread["in"] if spread["in"] > 0 else 1.0
        if len(self.correlations) > 1 and ratio < COLLAPSED:
            self.warnings.append(f"the outputs of {len(self.correlations)} validation images hardly differ from one "
                                 f"another (spread {ratio:.3f} of the inputs'): they no longer depend on the inputs")
        scores = {"input_correlation": sum(self.correlations) / max(1, len(self.correlations)),
                  "output_spread_ratio": ratio}
        if self.inception["out"] and len(self.correlations) > 1 and len(self.reference) > 1:
            for key, prefix in (("out", ""), ("in", "input_")):
                feats = np.concatenate(self.inception[key])
                scores[f"{prefix}fid"] = frechet_distance(feats, self.reference)
                scores[f"{prefix}kid"] = kernel_inception_distance(feats, self.reference)
        if len(self.kept["out"]) > 1:
            for key, prefix in (("out", ""), ("in", "input_")):
                scores[f"{prefix}real_vs_generated"] = real_vs_generated(self.reference_images, self.kept[key])
        return scores


class UnpairedTask(TaskBase):
    """Domain A -> domain B without pairs; see the module docstring."""

    kind = Task.UNPAIRED
    best = ("val/real_vs_generated", MetricMode.MIN)  # without FID at validation; see own_best

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        seed = cfg.seed
        self.pools = {"a": ImagePool(cfg.unpaired.pool_size, seed=seed + 1),
                      "b": ImagePool(cfg.unpaired.pool_size, seed=seed + 2)}
        self.reference_b: list[Path] = []  # B images FID/KID compare the outputs with
        self._reference: dict[tuple[Path, ...], np.ndarray] = {}
        self._reference_images: dict[tuple[Path, ...], list[torch.Tensor]] = {}
        self.device: torch.device | str = "cpu"
        self._back: nn.Module | None = None  # CycleGAN's G_BA while evaluating, for the A -> B -> A pictures

    def own_best(self, cfg: TrainConfig) -> tuple[str, MetricMode]:
        """The export is the checkpoint whose outputs look most like B: the lowest FID when validation measures
        it (``fid.when=validation``, the default, with an Inception network at hand), else the lowest accuracy of
        the real-vs-generated classifier."""
        if cfg.fid.when is FidWhen.VALIDATION and inception_available(cfg.fid.inception):
            return "val/fid", MetricMode.MIN
        return self.best

    def to(self, device: torch.device | str) -> "UnpairedTask":
        self.device = device
        return super().to(device)

    def reference_images(self) -> list[torch.Tensor]:
        """The B images the outputs are compared with, decoded once."""
        key = tuple(self.reference_b)
        if key not in self._reference_images:
            codec = ImageCodec(self.cfg.generator.out_channels)
            self._reference_images[key] = [codec.decode(f).tensor for f in key]
        return self._reference_images[key]

    def reference_features(self, features: InceptionFeatures | None) -> np.ndarray | None:
        if features is None or len(self.reference_b) < 2:
            return None
        key = tuple(self.reference_b)
        if key not in self._reference:
            self._reference[key] = np.concatenate([features(x[None]) for x in self.reference_images()])
        return self._reference[key]

    # ----------------------------------------------------------------- what callers ask

    def summary(self) -> str:
        return f"Domain A -> domain B, trained on unpaired images ({self.cfg.unpaired.mode.value})."

    # ----------------------------------------------------------------- training data

    def datasets(self) -> tuple[Dataset, Dataset, TrainConfig]:
        cfg = self.cfg
        root = Path(cfg.data.path)
        train = discover_unpaired(root, "train")
        if (root / "testA").is_dir():
            val_a = list_images(root / "testA")
            self.reference_b = list_images(root / "testB") if (root / "testB").is_dir() else []
        else:  # hold out part of each domain (never trained on): A to translate, B for FID/KID
            kept_a, val_a = hold_out(train.a, cfg.data.val_fraction, cfg.seed, root / "trainA")
            kept_b, self.reference_b = hold_out(train.b, cfg.data.val_fraction, cfg.seed, root / "trainB")
            train = UnpairedFiles(kept_a, kept_b)
        a_codec, b_codec = ImageCodec(cfg.generator.in_channels), ImageCodec(cfg.generator.out_channels)
        train_set = UnpairedFolderDataset(train, a_codec, b_codec, cfg.data.crop_size, cfg.seed)
        self.augment = K.RandomHorizontalFlip() if cfg.data.flip else nn.Identity()
        self.note_training_inputs([a_codec.decode(f).tensor for f in train.a[:16]])
        return train_set, DomainImages(val_a, a_codec), cfg

    def train_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.augment(batch["A"]), self.augment(batch["B"])

    # ----------------------------------------------------------------- nets and objective

    def build_generator(self, pretrained: bool = True) -> nn.Module:
        cfg, u = self.cfg, self.cfg.unpaired
        ab = build_generator(cfg.generator, pretrained=pretrained)
        if not u.cut:
            reverse = dataclasses.replace(cfg.generator, in_channels=cfg.generator.out_channels,
                                          out_channels=cfg.generator.in_channels)
            return UnpairedTranslator(ab, ba=build_generator(reverse, pretrained=pretrained),
                                      identity=u.identity_weight > 0)
        with torch.no_grad():  # the widths of the compared layers
            probe = torch.zeros(1, cfg.generator.in_channels, cfg.generator.factor, cfg.generator.factor)
            widths = [f.shape[1] for f in ab.eval().encoder_features(probe)]
        ab.train()
        layers = u.layers(len(widths))
        projector = PatchProjector([widths[i] for i in layers], u.projector_dim)
        return UnpairedTranslator(ab, projector=projector, identity=u.resolved_nce_identity,
                                  nce_layers=layers, num_patches=u.num_patches, flip=u.flip_equivariance)

    def build_discriminator(self) -> nn.Module:
        g = self.cfg.generator
        return UnpairedDiscriminators(g.out_channels, None if self.cfg.unpaired.cut else g.in_channels,
                                      self.cfg.discriminator)

    def exported(self, generator: nn.Module) -> nn.Module:
        return generator.exported() if isinstance(generator, UnpairedTranslator) else generator

    def checkpoint_objects(self) -> list[Any]:
        return [self.pools["a"], self.pools["b"]]

    def generate(self, generator: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> tuple[Any, None]:
        return generator(inputs, target), None

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: Any,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        return cycle_discriminator_losses(discriminator, fake, inputs, target, self.pools, self.cfg.loss.gan)

    def generator_losses(self, discriminator: nn.Module | None, inputs: torch.Tensor, fake: Any,
                         target: torch.Tensor) -> dict[str, torch.Tensor]:
        return unpaired_generator_losses(discriminator, fake, inputs, target, self.cfg.unpaired, self.cfg.loss.gan)

    # ----------------------------------------------------------------- evaluation and files

    def meter(self, dataset: Dataset, report: bool = False) -> Meter:
        features = self.inception(self.device, report)
        reference = self.reference_features(features)
        return UnpairedMeter(features if reference is not None else None, reference,
                             self.cfg.unpaired.expect_contrast, self.reference_images()[: UnpairedMeter.KEEP])

    def val_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, None]:
        return batch["A"], None

    @property
    def display_names(self) -> tuple[str, ...]:
        if self._back is not None:
            return ("input (A)", "output (A -> B)", "back to A (B -> A of the output)")
        return ("input (A)", "output (A -> B)", "change (output - input, gray; mid-gray = 0)")

    @torch.no_grad()
    def evaluate(self, generator: nn.Module, dataset: Dataset, device: torch.device | str, *args: Any,
                 **kwargs: Any):
        """As every task's, and with CycleGAN's B -> A generator at hand (training validation), the pictures
        show A -> B -> A."""
        self._back = generator.ba if isinstance(generator, UnpairedTranslator) and generator.ba is not None else None
        try:
            return super().evaluate(generator, dataset, device, *args, **kwargs)
        finally:
            self._back = None

    def display(self, inputs: torch.Tensor, outputs: torch.Tensor, target: Any) -> list[torch.Tensor]:
        """``[input A, output B, back to A]`` with CycleGAN's B -> A generator at hand, else ``[input A, output B,
        change]``: the change is the output's gray minus the input's (mid-gray = 0)."""
        if self._back is not None:
            back = self._back(outputs.to(next(self._back.parameters()).device)).to(outputs.device)
            return [inputs, outputs.clamp(-1, 1), back.clamp(-1, 1)]
        change = (gray(outputs) - gray(inputs)).unsqueeze(1).clamp(-1, 1)
        return [inputs, outputs.clamp(-1, 1), change]

    def eval_dataset(self, folder: Path, inputs: str | None, targets: str | None, masks: Path | None) -> Dataset:
        """The A images of ``folder/testA`` (or ``--inputs``); FID/KID against ``folder/testB`` (or ``--targets``)
        when it exists."""
        a_dir, b_dir = folder / (inputs or "testA"), folder / (targets or "testB")
        if not a_dir.is_dir():
            raise DatasetError(f"evaluation folder {a_dir} does not exist (unpaired runs are evaluated on testA/)")
        self.reference_b = list_images(b_dir) if b_dir.is_dir() else []
        return DomainImages(list_images(a_dir), self.input_codec)


__all__ = ["UnpairedMeter", "UnpairedTask"]
