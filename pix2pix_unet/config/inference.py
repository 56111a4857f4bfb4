"""How ``predict`` and ``evaluate`` run a generator: :class:`InferenceConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from .base import ConfigError, _positive
from .enums import BlendWindow, CompileMode, MixedPrecision, OutputDtype, Switch


@dataclass
class InferenceConfig:
    """How ``predict`` and ``evaluate`` run a generator on images of any size.

    Images of at most ``tile_above_mp`` megapixels run whole (padded to the UNet's
    multiple and cropped back); larger ones run as overlapping ``tile`` x ``tile``
    tiles blended with ``window``. ``tile`` must be a multiple of the generator's
    ``2 ** depth``; the step between tiles is rounded down to one. Volumes of more than ``tile_above_mp``
    megavoxels run by a sliding 3D window sized to ``volume_budget_mb``
    (:mod:`~pix2pix_unet.runtime.volume_window`).
    """

    batch_size: int = 4  # images of one size, or tiles, per forward pass
    tile: int = 512
    overlap: int = 128
    window: BlendWindow = BlendWindow.LINEAR
    tile_above_mp: float = 4.0  # tile images with more megapixels (volumes: megavoxels) than this; 0: always
    volume_budget_mb: float = 1024.0  # volumes: the sliding window's estimated activation memory
    output_dtype: OutputDtype = OutputDtype.INPUT
    precision: MixedPrecision = MixedPrecision.NO  # bf16/fp16: autocast the generator (outputs stay float32)
    compile: bool = False  # torch.compile the generator: slow first batch (and per new size), faster after
    compile_mode: CompileMode = CompileMode.DEFAULT  # reduce-overhead: CUDA graphs, for small batches
    tta: bool = False  # average the outputs of the 8 flips / 90-degree rotations (8x the compute)
    # CPU: glibc malloc keeps freed memory for reuse. auto: for images (256 px: 80 instead of 108 ms), not for
    # volumes, whose stages (windows, watershed) would each keep their high-water mark (docs/volumes.md)
    keep_freed_memory: Switch = Switch.AUTO

    def keeps_freed_memory(self, device: str | object, volumes: bool) -> bool:
        """Whether a run on ``device`` (of volumes, or of images) has malloc keep freed memory."""
        if str(device).split(":")[0] != "cpu" or self.keep_freed_memory is Switch.OFF:
            return False
        return self.keep_freed_memory is Switch.ON or not volumes

    def validate(self, where: str = "inference") -> None:
        _positive(self, where, "batch_size", "tile")
        if not 0 <= self.overlap < self.tile:
            raise ConfigError(f"{where}.overlap={self.overlap} must be in [0, tile={self.tile})")
        if not self.volume_budget_mb > 0:
            raise ConfigError(f"{where}.volume_budget_mb={self.volume_budget_mb} must be > 0")
        if self.tile_above_mp < 0:
            raise ConfigError(f"{where}.tile_above_mp={self.tile_above_mp} must be >= 0")


@dataclass
class ZeroShotConfig:
    """``pix2pix-unet denoise --zero-shot``: a :class:`~pix2pix_unet.models.tiny.TinyDenoiser` fitted to the one
    noisy image it denoises with ZS-N2N's loss (:func:`~pix2pix_unet.losses.self_supervised.zero_shot_loss`).

    Each step fits ``batch`` random ``crop`` x ``crop`` windows (0: the whole image); the rate halves after half
    the steps. A step count that would overrun ``time_limit_s`` is lowered after a short warm-up, so the run ends
    inside it with its schedule whole.
    """

    steps: int = 2000  # ZS-N2N's count
    lr: float = 1e-3
    width: int = 48
    crop: int = 64  # px; 0 fits the whole image every step (64 matched 128 on a 512-px photo at a quarter of the time)
    batch: int = 4
    time_limit_s: float | None = 60.0  # None: no limit
    seed: int = 0
    tta: bool = True  # the output is the mean over the 8 flips / 90-degree rotations (8 cheap passes)

    def validate(self, where: str = "zero_shot") -> None:
        _positive(self, where, "steps", "lr", "width", "batch")
        if self.crop != 0 and (self.crop < 8 or self.crop % 2):
            raise ConfigError(f"{where}.crop={self.crop} must be 0 (the whole image) or an even size >= 8")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ConfigError(f"{where}.time_limit_s={self.time_limit_s} must be > 0 (or None: no limit)")
