"""How ``predict`` and ``evaluate`` run a generator: :class:`InferenceConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from .base import ConfigError, _positive
from .enums import BlendWindow, CompileMode, MixedPrecision, OutputDtype


@dataclass
class InferenceConfig:
    """How ``predict`` and ``evaluate`` run a generator on images of any size.

    Images of at most ``tile_above_mp`` megapixels run whole (padded to the UNet's
    multiple and cropped back); larger ones run as overlapping ``tile`` x ``tile``
    tiles blended with ``window``. ``tile`` must be a multiple of the generator's
    ``2 ** depth``; the step between tiles is rounded down to one.
    """

    batch_size: int = 4  # images of one size, or tiles, per forward pass
    tile: int = 512
    overlap: int = 128
    window: BlendWindow = BlendWindow.LINEAR
    tile_above_mp: float = 4.0  # tile images with more megapixels than this; 0 tiles every image
    output_dtype: OutputDtype = OutputDtype.INPUT
    precision: MixedPrecision = MixedPrecision.NO  # bf16/fp16: autocast the generator (outputs stay float32)
    compile: bool = False  # torch.compile the generator: slow first batch (and per new size), faster after
    compile_mode: CompileMode = CompileMode.DEFAULT  # reduce-overhead: CUDA graphs, for small batches
    tta: bool = False  # average the outputs of the 8 flips / 90-degree rotations (8x the compute)

    def validate(self, where: str = "inference") -> None:
        _positive(self, where, "batch_size", "tile")
        if not 0 <= self.overlap < self.tile:
            raise ConfigError(f"{where}.overlap={self.overlap} must be in [0, tile={self.tile})")
        if self.tile_above_mp < 0:
            raise ConfigError(f"{where}.tile_above_mp={self.tile_above_mp} must be >= 0")
