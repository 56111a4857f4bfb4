"""``task=translate``: image or label map -> image, with the pix2pix losses.

With ``labels.format=rgb`` (the default) this is the core's A -> B translation of
colour images (``A/`` + ``B/`` or aligned ``A|B`` files, 8 or 16 bits). With
``labels.format=index`` the inputs are class-id label maps (``labels/``: palette
PNGs or 8/16-bit gray ids), fed to the generator one-hot as in pix2pixHD, and the
targets are the images (``images/`` or ``B/``); the built-in data gives class
map -> photo. ``predict`` reads the same label maps; an id at or above
``num_classes`` is an error naming the file and the id.

The objective is pix2pix's (GAN + L1) plus, opt-in, feature matching
(``loss.fm_weight``) and a VGG16 perceptual term (``loss.vgg_weight``, weights from
the local file ``loss.vgg_weights``); SPADE's recipe is ``loss.gan=hinge``, both at 10,
and ``discriminator.spectral_norm=true``. With index labels and ``labels.segmenter``
(a segment export trained on real pairs) validation also logs ``val/seg_miou``:
that segmenter's mIoU on the generated images against their label maps
(:mod:`~pix2pix_unet.metrics.segmenter`).

With ``generator.dims=3`` (and index labels) it translates label volumes to image volumes, so synthetic
volumes can be made: pairs of TIFF stacks (:mod:`~pix2pix_unet.data.volume_pairs`; built in: nucleus masks ->
16-bit nuclei volumes), random 3D patches (``data.crop_size`` x ``data.crop_depth``) with
:class:`~pix2pix_unet.data.augment.VolumeAugmentation`, a 3D PatchGAN, L1/PSNR/SSIM over each whole volume
(FID/KID are not measured: the Inception network sees 2D images, and a few volumes' slices are too few and too
alike for an honest FID), and ``predict`` writes each label volume's image volume as a TIFF hyperstack with
the label file's voxel size, in the dtype of the training images.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from ..codec import Decoded, ImageCodec, decode_class_ids, decode_class_volume, one_hot
from ..config import (
    ConfigError, Direction, DiscriminatorKind, FidWhen, LabelConfig, LabelFormat, OutputDtype, Task, TrainConfig,
    patchgan_min_size,
)
from ..data import PairedAugmentation, PairedFolderDataset, build_datasets, orient, side_channels
from ..data.augment import VolumeAugmentation
from ..data.folders import DatasetError, PairFiles, find_pairs, list_images, pair_by_stem
from ..data.volume_pairs import LabelVolumePairs, build_volume_pairs
from ..data.volumes import LabelledVolumes, spacing_warning
from ..io import from_tensor, read_image
from ..volume_io import VolumeError, write_volume, z_slices
from ..runtime import VoxelReduction
from ..metrics.fid import FidMeter
from ..metrics.segmenter import SegmenterScoreMeter
from .base import ImageMeter, Meter, TaskBase, require
from ..data.labels import (
    LabelledDataset, LabelledFiles, LabelledFolder, build_labelled, colorize_labels, discover_labelled,
)


class OneHotPairs(Dataset):
    """A labelled dataset as translation pairs ``{"A": (K, H, W) one-hot, "B": (C, H, W) image, "name"}``."""

    def __init__(self, base: LabelledDataset, num_classes: int) -> None:
        self.base, self.num_classes = base, num_classes

    def __len__(self) -> int:
        return len(self.base)

    def source(self, index: int) -> Path | str:
        return self.base.files[index].labels if isinstance(self.base, LabelledFolder) else str(index)

    def example_files(self) -> list[dict[str, Path | int]]:
        return self.base.example_files()

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = self.base[index]
        if int(item["labels"].max()) >= self.num_classes:
            raise DatasetError(f"label map {self.source(index)} holds class id {int(item['labels'].max())}, but the "
                               f"generator has {self.num_classes} classes (ids 0..{self.num_classes - 1})")
        return {"A": one_hot(item["labels"], self.num_classes), "B": item["image"], "name": item["name"]}


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"evaluation folder {folder} does not exist")
    files = list_images(folder)
    if not files:
        raise DatasetError(f"{folder} holds no images")
    return files


class TranslateTask(TaskBase):
    """Image -> image (or label map -> image) with GAN + L1; see the module docstring."""

    kind = Task.TRANSLATE

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.indexed = cfg.labels.format is LabelFormat.INDEX
        if self.indexed and cfg.data.direction is not Direction.A_TO_B:
            raise ConfigError(
                "labels.format=index translates label maps to images, so it needs data.direction=AtoB; "
                "for images -> label maps use --task segment"
            )
        self.num_classes: int | None = cfg.labels.num_classes if self.indexed else None
        if cfg.labels.segmenter and not self.indexed:
            raise ConfigError("labels.segmenter scores label -> image generators: it needs labels.format=index")
        if self.volumes:
            refused = [(not self.indexed, "labels.format=index: a 3D translate model draws image volumes from "
                                          "label volumes"),
                       (bool(cfg.labels.segmenter), "no labels.segmenter: it scores 2D images"),
                       (cfg.loss.vgg_weight > 0, "loss.vgg_weight=0: VGG16 sees 2D images")]
            wanted = [need for bad, need in refused if bad]
            if wanted:
                raise ConfigError("task=translate with generator.dims=3 needs " + "; ".join(wanted))
            d, depth = cfg.discriminator, cfg.data.crop_depth
            need = patchgan_min_size(d.n_layers, d.num_scales)
            if d.kind is DiscriminatorKind.NLAYER and depth is not None and depth < need:
                raise ConfigError(f"data.crop_depth={depth}: the 3D PatchGAN with discriminator.n_layers={d.n_layers} "
                                  f"needs patches of at least {need} voxels along every axis (its kernels and "
                                  f"strides are the same along z); use data.crop_depth>={need} or lower n_layers")
        self.segmenter = None  # Segmenter, loaded by build_datasets when labels.segmenter is set
        self.device: torch.device | str = "cpu"  # where the segmenter runs (set by `to`)

    # ----------------------------------------------------------------- what callers ask

    def summary(self) -> str:
        if self.volumes:
            return f"Label volume ({self.num_classes} classes) -> image volume."
        if self.indexed:
            return f"Label map ({self.num_classes} classes) -> image."
        return f"Image -> image ({self.cfg.data.direction.value})."

    @property
    def display_name(self) -> str:
        return "label map -> image" if self.indexed else self.kind.value

    @property
    def label_input(self) -> bool:
        return self.indexed

    def bioimageio_refusal(self) -> str | None:
        if self.indexed:
            return ("a label-map -> image generator (labels.format=index) takes one-hot label maps, which a "
                    "bioimage.io package cannot decode; export it as onnx or safetensors")
        return super().bioimageio_refusal()

    # ----------------------------------------------------------------- training data

    def to(self, device: torch.device | str) -> "TranslateTask":
        if self.objective.features is not None:
            self.objective.features = self.objective.features.to(device)
        if self.segmenter is not None:
            self.segmenter = self.segmenter.to(device)
        self.device = device
        return super().to(device)

    def datasets(self) -> tuple[Dataset, Dataset, TrainConfig]:
        cfg = self.cfg
        self.augment = PairedAugmentation(None, cfg.data.flip)  # crops are taken per example (RandomCrops)
        if cfg.loss.vgg_weight > 0:
            from ..models.vgg import VGGFeatures

            self.objective.features = VGGFeatures(cfg.loss.vgg_weights, key="loss.vgg_weights")
        if self.volumes:
            return self.volume_datasets()
        if not self.indexed:
            train, val = build_datasets(cfg.data, cfg.generator, cfg.seed)
            side = "A" if cfg.data.direction is Direction.A_TO_B else "B"
            self.note_training_inputs([train[i][side] for i in range(min(len(train), 16))])
            return train, val, cfg
        codec = ImageCodec(cfg.generator.out_channels)
        train, val, self.num_classes = build_labelled(cfg.data, cfg.labels, codec, cfg.seed)
        if isinstance(train, LabelledFolder):
            self.output_dtype = str(read_image(train.files[0].image).dtype)
        resolved = dataclasses.replace(
            cfg,
            labels=dataclasses.replace(cfg.labels, num_classes=self.num_classes),
            generator=dataclasses.replace(cfg.generator, in_channels=self.num_classes),
        )
        if cfg.labels.segmenter:
            from .segment import Segmenter

            self.segmenter = Segmenter.load(cfg.labels.segmenter)
            if self.segmenter.num_classes != self.num_classes:
                raise ConfigError(f"labels.segmenter={cfg.labels.segmenter} segments {self.segmenter.num_classes} "
                                  f"classes, but the label maps have {self.num_classes}")
        return OneHotPairs(train, self.num_classes), OneHotPairs(val, self.num_classes), resolved

    def volume_datasets(self) -> tuple[Dataset, Dataset, TrainConfig]:
        """Label volume -> image volume pairs; the files' voxel size builds the network's anisotropic kernels
        and pooling, and the images' dtype is the outputs'."""
        cfg = self.cfg
        spacing = tuple(cfg.generator.spacing) if cfg.generator.spacing else None
        train, val, self.num_classes, spacing, self.output_dtype = build_volume_pairs(
            cfg.data, cfg.labels, ImageCodec(cfg.generator.out_channels), cfg.seed, spacing)
        # flips and turns (through z only where the voxels are isotropic); no gain: the image is the target
        self.augment = VolumeAugmentation(cfg.data.flip, turn=cfg.data.flip, intensity=False, spacing=spacing)
        resolved = dataclasses.replace(
            cfg,
            labels=dataclasses.replace(cfg.labels, num_classes=self.num_classes),
            generator=dataclasses.replace(cfg.generator, in_channels=self.num_classes,
                                          spacing=list(spacing) if spacing else cfg.generator.spacing),
        )
        return train, val, resolved

    def volume_inputs(self, labels: torch.Tensor) -> torch.Tensor:
        """``(B, Z, Y, X)`` class ids -> the generator's one-hot input ``(B, K, Z, Y, X)``."""
        return one_hot(labels, self.num_classes, dims=3)

    def train_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.volumes:  # one geometry for the ids and the image, then the ids one-hot
            target, labels, _ = self.augment(batch["B"], batch["labels"], batch["B"][:, :0])  # no float maps
            return self.volume_inputs(labels), target
        return self.augment(*orient(batch, self.cfg.data.direction))

    # ----------------------------------------------------------------- the contract

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "num_classes": self.num_classes, "label_format": self.cfg.labels.format.value,
                "a_channels": side_channels(self.cfg.data, self.cfg.generator)[0],
                "b_channels": side_channels(self.cfg.data, self.cfg.generator)[1]}

    @classmethod
    def config_from_export(cls, meta: dict[str, Any], source: str | Path) -> TrainConfig:
        cfg = super().config_from_export(meta, source)
        label_format = LabelFormat(meta.get("label_format", LabelFormat.RGB.value))
        num_classes = require(meta, "num_classes", source) if label_format is LabelFormat.INDEX else None
        return dataclasses.replace(cfg, labels=LabelConfig(format=label_format, num_classes=num_classes))

    # ----------------------------------------------------------------- files

    def decode_input(self, path: Path, mask: Path | None = None) -> Decoded:
        """An image, or with index labels a label map (one-hot; an id >= ``num_classes`` names the file); for
        a 3D model a label volume (the trained voxel size where the file states none). A 2D label map given to
        a 3D model, or a Z stack to a 2D one, is an error naming the file."""
        if self.volumes:
            return self.decode_label_volume(Path(path))
        slices = z_slices(path)
        if slices > 1:
            raise VolumeError(f"{path} is a Z stack of {slices} slices, but this generator is 2D "
                              "(generator.dims=2); translate label volumes with a 3D model (generator.dims=3)")
        if not self.indexed:
            return self.input_codec.decode(path)
        ids = decode_class_ids(path, self.num_classes)
        return Decoded(one_hot(ids, self.num_classes), Path(path), None)

    def decode_label_volume(self, path: Path) -> Decoded:
        """A label volume as one-hot ``(K, Z, Y, X)``, its voxels and spacing kept for the output file."""
        trained = tuple(self.cfg.generator.spacing) if self.cfg.generator.spacing else None
        ids, volume = decode_class_volume(path, self.num_classes, trained)  # (z, y, x)
        return Decoded(self.volume_inputs(ids[None])[0], path, None, volume=volume)

    def input_warnings(self, decoded: Decoded) -> list[str]:
        """Images: their value range; label volumes: a voxel size other than the trained one."""
        if decoded.volume is not None:
            warning = spacing_warning(decoded.path, decoded.volume.spacing, self.cfg.generator.spacing)
            return [warning] if warning else []
        return [] if self.indexed else super().input_warnings(decoded)

    def output_path(self, relative: Path, output_dir: Path, suffix: str | None = None) -> Path:
        if self.volumes:  # a hyperstack whatever the label file's suffix (.tiff, .ome.tif)
            return output_dir / relative.with_suffix(".tif")
        return super().output_path(relative, output_dir, suffix)

    def encode(self, output: torch.Tensor, decoded: Decoded, path: Path, dtype: OutputDtype = OutputDtype.INPUT,
               overlay_dir: Path | None = None, relative: Path | None = None) -> list[Path]:
        """Images as the base task writes them; a volume ``(C, Z, Y, X)`` as a TIFF hyperstack with the label
        file's voxel size, in the training images' dtype (``dtype=input``) or ``dtype``'s full range."""
        if decoded.volume is None:
            return super().encode(output, decoded, path, dtype, overlay_dir, relative)
        voxels = output["voxels"] if isinstance(output, dict) else self.volume_voxels(output, dtype)
        return [write_volume(path, voxels, decoded.volume.spacing)]

    def volume_voxels(self, output: torch.Tensor, dtype: OutputDtype) -> np.ndarray:
        """A volume's output ``(C, Z, Y, X)`` (or a block of it) as voxels ``(Z, Y, X, C)`` in the training
        images' dtype (``dtype=input``) or ``dtype``'s full range: the 2D pixel rule on the volume seen as one
        ``(Z * Y, X)`` image."""
        target = np.dtype(self.output_dtype or "uint16") if dtype is OutputDtype.INPUT else np.dtype(dtype.value)
        return rearrange(from_tensor(rearrange(output, "c z y x -> c (z y) x"), target), "(z y) x c -> z y x c",
                         z=output.shape[1])

    def volume_reduction(self, decoded: Decoded, dtype: OutputDtype = OutputDtype.INPUT) -> VoxelReduction | None:
        """Of a volume's output, predict keeps the written voxels (16-bit: half the float output)."""
        if decoded.volume is None:
            return None
        return self.voxels_reduction(lambda block: self.volume_voxels(block, dtype))

    def eval_dataset(self, folder: Path, inputs: str | None, targets: str | None, masks: Path | None) -> Dataset:
        """``A/`` + ``B/`` (or ``--inputs``/``--targets``) or aligned images; with index labels ``labels/`` +
        ``images/`` (Z stacks for a 3D model)."""
        if self.volumes:
            cfg = dataclasses.replace(self.cfg.labels, image_folder=targets, label_folder=inputs or "labels")
            spacing = tuple(self.cfg.generator.spacing) if self.cfg.generator.spacing else None
            codec = ImageCodec(self.cfg.generator.out_channels)
            return LabelVolumePairs(LabelledVolumes(discover_labelled(folder, cfg), codec, spacing), self.num_classes)
        if self.indexed:
            labels_dir, images_dir = folder / (inputs or "labels"), folder / (targets or "images")
            if not images_dir.is_dir() and targets is None:
                images_dir = folder / "B"
            labels = _images_in(labels_dir)
            files = [LabelledFiles(image, label) for label, image in
                     zip(labels, pair_by_stem(labels, images_dir, "target image"))]
            codec = ImageCodec(self.cfg.generator.out_channels)
            return OneHotPairs(LabelledFolder(files, codec), self.num_classes)
        a_name, b_name = ("A", "B")
        if inputs or targets:  # name the generator's side and the target's side
            a_name, b_name = (inputs or "A", targets or "B") if self.cfg.data.direction is Direction.A_TO_B else \
                (targets or "A", inputs or "B")
        a_dir, b_dir = folder / a_name, folder / b_name
        if a_dir.is_dir() or b_dir.is_dir():
            a_files = _images_in(a_dir)
            pairs = [PairFiles(a, b) for a, b in zip(a_files, pair_by_stem(a_files, b_dir, f"partner in {b_name}/"))]
        else:
            pairs, _ = find_pairs(folder)
        a_ch, b_ch = side_channels(self.cfg.data, self.cfg.generator)
        return PairedFolderDataset(pairs, ImageCodec(a_ch), ImageCodec(b_ch))

    # ----------------------------------------------------------------- evaluation

    def meter(self, dataset: Dataset, report: bool = False) -> Meter:
        """L1, PSNR and SSIM; with ``labels.segmenter`` its score; and FID/KID against the targets when ``fid.when``
        asks for them (``report``: by default only ``evaluate`` and the run's final figures do)."""
        meter: Meter = ImageMeter(self.cfg.generator.out_channels)
        if self.segmenter is not None:
            meter = SegmenterScoreMeter(meter, self.segmenter, self.device)
        if self.volumes:
            if self.cfg.fid.when is not FidWhen.OFF and report:
                print("FID/KID not measured: the Inception network scores 2D images, and this generator draws "
                      "volumes (L1, PSNR and SSIM are over each whole volume)")
            return meter
        features = self.inception(self.device, report)
        return meter if features is None else FidMeter(meter, features)

    def val_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.volumes:
            return self.volume_inputs(batch["labels"]), batch["B"]
        return orient(batch, self.cfg.data.direction)

    def display(self, inputs: torch.Tensor, outputs: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """Images as they are; one-hot inputs as coloured label maps; of a volume, its middle slice."""
        if inputs.ndim == 5:  # (b, c, z, y, x): the middle z slice of each
            middle = inputs.shape[2] // 2
            inputs, outputs, target = inputs[:, :, middle], outputs[:, :, middle], target[:, :, middle]
        shown = colorize_labels(inputs.argmax(1), self.num_classes) if self.indexed else inputs
        return [shown, outputs.clamp(-1, 1), target]
