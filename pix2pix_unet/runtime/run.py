"""Running a generator: device, precision, test-time augmentation, and overlap-tile for large images.

Everything that runs a trained generator on a batch goes through :func:`run_generator`:
training validation, ``predict``, ``evaluate``, ``synthesize`` and the segmenter score.
"""

from __future__ import annotations

import contextlib

import torch

from ..config import InferenceConfig, MixedPrecision
from ..models import Generator
from .backends import backend_flags
from .tiling import predict_tiled


def best_device(requested: str | None = None) -> torch.device:
    """``requested`` if given, else CUDA, then Apple MPS, then the CPU."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# --------------------------------------------------------------------------- running the generator

AUTOCAST_DTYPES = {MixedPrecision.BF16: torch.bfloat16, MixedPrecision.FP16: torch.float16}


def prepare_generator(generator: Generator, cfg: InferenceConfig, device: torch.device | str) -> Generator:
    """``generator`` moved to ``device`` in eval mode and set up for speed as ``cfg`` says, in place.

    On CUDA and CPU it goes channels-last: tensor cores want NHWC, and so does
    oneDNN (on the project's 2-core CPU the pix2pix preset's 512-px pass took 233
    instead of 277 ms in fp32, 107 instead of 166 ms in bf16). ``cfg.compile``
    compiles it (the first batch of each new size pays for the compilation). The
    process-wide switches that go with it are :func:`inference_flags`, for the
    caller to hold around the run.

    Raises:
        ValueError: ``cfg.precision`` is fp16 on a device other than CUDA.
    """
    device = torch.device(device)
    if cfg.precision is MixedPrecision.FP16 and device.type != "cuda":
        raise ValueError(f"inference precision fp16 needs a CUDA device, not {device}; use bf16 or no")
    generator = generator.to(device).eval()
    if device.type in ("cuda", "cpu") and getattr(generator.config, "dims", 2) == 2:  # 3D: not measured, kept
        generator.to(memory_format=torch.channels_last)
    if cfg.compile:
        generator.compile(mode=cfg.compile_mode.value)
    return generator


def inference_flags(device: torch.device | str) -> contextlib.AbstractContextManager:
    """The process-wide switches of a predict or evaluate run on ``device``, set for the block and restored after.

    With CUDA, cuDNN picks each conv's fastest algorithm once per input size. On a
    CPU, malloc keeps freed memory (256 px inference: 80 ms instead of 108, see
    training/perf.py).
    """
    device = torch.device(device)
    return backend_flags(cudnn_benchmark=True if device.type == "cuda" else None,
                         keep_freed_memory=device.type == "cpu")


def autocast(cfg: InferenceConfig, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The generator's precision context for ``cfg.precision`` on ``device`` (a no-op for ``no``)."""
    dtype = AUTOCAST_DTYPES.get(cfg.precision)
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype else contextlib.nullcontext()


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th of the 8 flips / 90-degree rotations of ``(..., H, W)`` (0 is the identity)."""
    x = x.flip(-1) if k >= 4 else x
    return torch.rot90(x, k % 4, dims=(-2, -1))


def undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`dihedral` ``k``."""
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


class TestTimeAugmented(torch.nn.Module):
    """``generator`` averaged over the 8 flips / 90-degree rotations of its input (each undone on the output).

    Segmenters average their logits, restorers their images. The UNet pads any
    size, so rotated non-square inputs need nothing special.
    """

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [undo_dihedral(self.generator(dihedral(x, k)).float(), k) for k in range(8)]
        return torch.stack(outputs).mean(0)


@torch.no_grad()
def run_generator(
    generator: Generator, batch: torch.Tensor, cfg: InferenceConfig, device: torch.device | str, progress: bool = False
) -> torch.Tensor:
    """Outputs ``(B, C', H, W)`` (float32, CPU) for inputs ``(B, C, H, W)`` in [-1, 1].

    Images of at most ``cfg.tile_above_mp`` megapixels run whole in one batch;
    larger ones run one at a time by overlap-tile. The generator runs at
    ``cfg.precision``, and with ``cfg.tta`` averaged over the 8 flips / rotations
    (of each tile, when tiled); set it up with :func:`prepare_generator` first.
    """
    h, w = batch.shape[-2:]
    factor = generator.config.factor
    forward = TestTimeAugmented(generator) if cfg.tta else generator
    with autocast(cfg, device):
        if h * w <= cfg.tile_above_mp * 1e6:
            return forward(batch.to(device)).float().cpu()
        return torch.stack([
            predict_tiled(forward, image, tile=cfg.tile, overlap=cfg.overlap, factor=factor,
                          window=cfg.window, batch_size=cfg.batch_size, device=device, progress=progress)
            for image in batch
        ])


__all__ = ["AUTOCAST_DTYPES", "TestTimeAugmented", "autocast", "best_device", "dihedral", "inference_flags",
           "prepare_generator", "run_generator", "undo_dihedral"]
