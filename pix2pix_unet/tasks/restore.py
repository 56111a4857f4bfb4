"""``task=restore``: degraded image -> clean image, from a folder of clean images alone.

Training batches are cropped and flipped, then degraded on the device by
:func:`~pix2pix_unet.tasks.degrade.degrade` with fresh randomness every step.
Validation degrades the same way with the fixed ``restore.val_seed``, so every
evaluation sees the same inputs. The losses are pix2pix's (GAN + L1 to the clean
image); with inpainting on, the hole mask is an extra generator input channel.
PSNR and SSIM are logged for the output and for the degraded input side by side.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import kornia.metrics
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import DataConfig, Intensity, MetricMode, Task, TrainConfig
from ..data.folders import DatasetError, list_images
from ..data.synthetic import VAL_INDEX_OFFSET, SyntheticPairs, SyntheticSpec
from ..training.loop import Evaluation
from ..training.step import Pix2PixObjective
from .base import TaskBase
from .degrade import degrade
from .labels import read_image, uniform_size


class CleanImages(Dataset):
    """Clean images as ``{"clean": (C, H, W)}`` in [-1, 1], from files or from memory.

    Args:
        source: image files, or a ``(N, C, H, W)`` tensor in [-1, 1].
        channels: channels to load files with (1 or 3).
        load_size: resize files to this square size.
    """

    def __init__(self, source: list[Path] | torch.Tensor, channels: int = 3, load_size: int | None = None) -> None:
        self.source, self.channels, self.load_size = source, channels, load_size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if isinstance(self.source, torch.Tensor):
            return {"clean": self.source[index]}
        image = read_image(self.source[index], self.channels, Intensity.DTYPE)
        if self.load_size:
            size = [self.load_size, self.load_size]
            image = torch.nn.functional.interpolate(image[None], size, mode="bilinear", antialias=True)[0]
        return {"clean": image}


def builtin_photos(num: int, seed: int, size: int, channels: int, index_offset: int = 0) -> torch.Tensor:
    """``(num, channels, size, size)`` built-in photos in [-1, 1]."""
    source = SyntheticPairs(num, seed=seed, spec=SyntheticSpec(size=size), index_offset=index_offset)
    photos = torch.stack([source[i]["photo"] for i in range(num)])
    return (photos.mean(1, keepdim=True) if channels == 1 else photos).mul(2).sub(1)


def clean_files(folder: Path) -> list[Path]:
    """The images of one split: ``images/`` or ``B/`` when there is one, else the folder's own images."""
    for name in ("images", "B"):
        if (folder / name).is_dir():
            folder = folder / name
            break
    files = list_images(folder)
    if not files:
        raise DatasetError(f"{folder} holds no images to restore")
    return files


def build_clean(data: DataConfig, channels: int, seed: int) -> tuple[CleanImages, CleanImages]:
    """Train and validation clean images of ``data.path`` (``train/`` + ``val/`` or ``test/``, or one
    folder of which ``data.val_fraction`` is held out), every file checked up front."""
    if channels not in (1, 3):
        raise DatasetError(f"restore reads images with 1 or 3 channels, got generator.out_channels={channels}")
    if data.path == "builtin":
        return (
            CleanImages(builtin_photos(data.builtin_train, seed, data.builtin_size, channels)),
            CleanImages(builtin_photos(data.builtin_val, seed, data.builtin_size, channels, VAL_INDEX_OFFSET)),
        )
    root = Path(data.path)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (use data.path=builtin for the built-in data)")
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir():
        train, val = clean_files(root / "train"), clean_files(val_dir) if val_dir else []
    else:
        train, val = clean_files(root), []
    if not val:
        if len(train) < 2:
            raise DatasetError(f"{root} holds {len(train)} image; need at least 2 to hold one out for validation")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
        n_val = max(1, math.floor(len(train) * data.val_fraction))
        train, val = [train[i] for i in sorted(order[n_val:])], [train[i] for i in sorted(order[:n_val])]
    h, w = uniform_size(train + val, need_uniform=data.load_size is None)
    size = data.load_size or min(h, w)
    if data.crop_size and data.crop_size > size:
        raise DatasetError(f"data.crop_size={data.crop_size} is larger than the images in {root} ({h}x{w})")
    return CleanImages(train, channels, data.load_size), CleanImages(val, channels, data.load_size)


class RestoreTask(TaskBase):
    """Degraded image (+ hole mask) -> clean image; see the module docstring."""

    kind = Task.RESTORE
    best = ("val/psnr", MetricMode.MAX)

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self.objective = Pix2PixObjective(cfg.loss)
        self.channels = cfg.generator.out_channels
        self.mask_channel = cfg.restore.inpaint.p > 0

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        cfg = self.cfg
        train, val = build_clean(cfg.data, self.channels, cfg.seed)
        in_channels = self.channels + int(self.mask_channel)
        self.cfg = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, in_channels=in_channels))
        ops: list[nn.Module] = [K.RandomCrop((cfg.data.crop_size,) * 2)] if cfg.data.crop_size else []
        if cfg.data.flip:
            ops.append(K.RandomHorizontalFlip())
        self.augment = K.AugmentationSequential(*ops) if ops else nn.Identity()
        return train, val

    def degrade(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generator input for a clean batch in [-1, 1]: the degraded images in [-1, 1] (+ the hole mask)."""
        degraded, mask = degrade(clean.float().add(1).div(2), self.cfg.restore, generator)
        inputs = degraded.mul(2).sub(1)
        return inputs if mask is None else torch.cat([inputs, mask], dim=1)

    def train_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        clean = self.augment(batch["clean"])
        return self.degrade(clean), clean

    def discriminator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.objective.discriminator_losses(discriminator, inputs, fake, target)

    def generator_losses(self, discriminator: nn.Module, inputs: torch.Tensor, fake: torch.Tensor,
                         target: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.objective.generator_losses(discriminator, inputs, fake, target)

    @torch.no_grad()
    def evaluate(self, generator: nn.Module, dataset: Dataset, device: torch.device) -> Evaluation:
        """PSNR and SSIM (11-px window, images in [0, 1]) of the output and of the degraded input,
        each against the clean image, averaged over the validation images, degraded with ``val_seed``."""
        was_training = generator.training
        generator.eval()
        rng = torch.Generator(device=device).manual_seed(self.cfg.restore.val_seed)
        loader = DataLoader(dataset, batch_size=self.cfg.batch_size, shuffle=False, num_workers=0)
        sums = {"psnr": 0.0, "ssim": 0.0, "psnr_input": 0.0, "ssim_input": 0.0}
        count = 0
        shown: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for batch in loader:
            clean = batch["clean"].to(device)
            inputs = self.degrade(clean, rng)
            degraded = inputs[:, : self.channels]
            outputs = generator(inputs).float().clamp(-1, 1)
            for suffix, image in (("", outputs), ("_input", degraded)):
                a, b = image.add(1).div(2), clean.add(1).div(2)  # (b, c, h, w) in [0, 1]
                for x, y in zip(a, b):
                    sums[f"psnr{suffix}"] += kornia.metrics.psnr(x, y, max_val=1.0).item()
                sums[f"ssim{suffix}"] += kornia.metrics.ssim(a, b, window_size=11).flatten(1).mean(1).sum().item()
            count += len(clean)
            if sum(len(s[0]) for s in shown) < self.cfg.num_samples:
                shown.append((degraded, outputs, clean))
        generator.train(was_training)
        metrics = {f"val/{k}": v / count for k, v in sums.items()}
        metrics["val/psnr_gain"] = metrics["val/psnr"] - metrics["val/psnr_input"]
        parts = [torch.cat([s[i] for s in shown])[: self.cfg.num_samples] for i in range(3)]
        return Evaluation(metrics, *parts)

    def export_metadata(self) -> dict[str, Any]:
        return {"task": self.kind.value, "num_classes": None, "hole_mask_channel": self.mask_channel}
