"""Running a generator: device, precision, test-time augmentation, and overlap-tile for large images.

Everything that runs a trained generator on a batch goes through :func:`run_generator`:
training validation, ``predict``, ``evaluate``, ``synthesize`` and the segmenter score.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from einops import rearrange

from ..codec import VolumeBlocks
from ..config import ConfigError, InferenceConfig, MixedPrecision
from ..models import Generator
from .backends import backend_flags, return_freed_memory
from .tiling import predict_tiled
from .volume_window import Blend, predict_volume, receptive_halo, window_for_budget


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


def inference_flags(device: torch.device | str,
                    keep_freed_memory: bool | None = None) -> contextlib.AbstractContextManager:
    """The process-wide switches of a predict or evaluate run on ``device``, set for the block and restored after.

    With CUDA, cuDNN picks each conv's fastest algorithm once per input size. On a
    CPU, malloc keeps freed memory (256 px inference: 80 ms instead of 108, see
    training/perf.py) unless ``keep_freed_memory`` is False
    (:meth:`~pix2pix_unet.config.InferenceConfig.keeps_freed_memory`: not for volumes).
    """
    device = torch.device(device)
    keep = device.type == "cpu" if keep_freed_memory is None else keep_freed_memory
    return backend_flags(cudnn_benchmark=True if device.type == "cuda" else None, keep_freed_memory=keep)


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
    if batch.ndim == 5 and getattr(generator.config, "dims", 2) == 2:  # 2.5D: slice by slice, neighbours as channels
        return stacked([run_slices(generator, volume, cfg, device, progress) for volume in batch])
    if batch.ndim == 5:  # volumes (b, c, z, y, x)
        with autocast(cfg, device):
            if batch[0].numel() / batch.shape[1] <= cfg.tile_above_mp * 1e6:
                return forward(batch.to(device)).float().cpu()
            return stacked([run_volume(generator, forward, volume, cfg, device, progress) for volume in batch])
    with autocast(cfg, device):
        if h * w <= cfg.tile_above_mp * 1e6:
            return forward(batch.to(device)).float().cpu()
        return torch.stack([
            predict_tiled(forward, image, tile=cfg.tile, overlap=cfg.overlap, factor=factor,
                          window=cfg.window, batch_size=cfg.batch_size, device=device, progress=progress)
            for image in batch
        ])


def stacked(volumes: list[torch.Tensor]) -> torch.Tensor:
    """``volumes`` as one batch; a single volume without a copy (a 512 x 512 x 200 volume's logits are 0.6 GB)."""
    return volumes[0].unsqueeze(0) if len(volumes) == 1 else torch.stack(volumes)


def run_slices(generator: Generator, volume: torch.Tensor, cfg: InferenceConfig, device: torch.device | str,
               progress: bool = False) -> torch.Tensor:
    """A 2D generator over a volume ``(C, Z, Y, X)`` slice by slice (2.5D): each slice with its ``k // 2``
    neighbours on each side as channels (``generator.config.in_channels = C * k``; the end slices repeated past
    the volume's ends), ``cfg.batch_size`` slices per pass, each large slice tiled as a 2D image is. Returns
    ``(C', Z, Y, X)`` on the CPU."""
    channels, depth = volume.shape[0], volume.shape[1]
    k = generator.config.in_channels // channels
    if k * channels != generator.config.in_channels or k % 2 == 0:
        raise ValueError(f"a 2D generator taking {generator.config.in_channels} channels cannot read a volume of "
                         f"{channels} channel(s) as an odd number of slices")
    context = k // 2
    # 1. repeat the end slices, so every slice has its neighbours              (c, z + 2 context, y, x)
    padded = torch.cat([volume[:, :1].expand(-1, context, -1, -1), volume, volume[:, -1:].expand(-1, context, -1, -1)], 1)
    outputs = []
    for start in range(0, depth, cfg.batch_size):
        # 2. each slice of the batch with its neighbours as channels            (n, k c, y, x)
        stack = torch.stack([rearrange(padded[:, z: z + k], "c k y x -> (k c) y x")
                             for z in range(start, min(depth, start + cfg.batch_size))])
        outputs.append(run_generator(generator, stack, cfg, device, progress))
    # 3. the slices' outputs as a volume                                       (c', z, y, x)
    return torch.cat(outputs).permute(1, 0, 2, 3)


@dataclass(frozen=True)
class VoxelReduction:
    """What a task keeps of a volume's output, voxel by voxel, in place of the float output itself.

    A 512 x 512 x 200 segmentation's three float logits are 630 MB, and its softmax as much again; its class
    ids are 52 MB; a restored 16-bit volume is half its float output. ``reduce`` maps an output block
    ``(C', z, y, x)`` (float32) to named maps ``(z, y, x)`` (``(z, y, x, channels[name])``), each of
    ``dtypes[name]``. It must act voxel by voxel, since :func:`run_volume` applies it to each block
    of the sliding window as it is finished, and to a small volume whole.
    """

    dtypes: dict[str, np.dtype]
    reduce: Callable[[torch.Tensor], dict[str, np.ndarray]]
    channels: dict[str, int] = field(default_factory=dict)  # maps of (Z, Y, X, C) rather than (Z, Y, X)


class ReducedOutput:
    """The ``out`` of :func:`~pix2pix_unet.runtime.volume_window.predict_volume` that keeps only a
    :class:`VoxelReduction` of each finished block: ``maps[name]`` ``(Z, Y, X)`` (or ``(Z, Y, X, C)``)."""

    def __init__(self, shape: tuple[int, int, int], reduction: VoxelReduction) -> None:
        self.reduction = reduction
        self.maps = {name: np.zeros((*shape, *([reduction.channels[name]] if name in reduction.channels else [])),
                                    dtype) for name, dtype in reduction.dtypes.items()}

    def __setitem__(self, key: tuple[slice, ...], block: torch.Tensor) -> None:
        for name, values in self.reduction.reduce(block).items():  # block (c', z, y, x)
            self.maps[name][key[:3]] = values


def run_one_volume(generator: Generator, volume: torch.Tensor | VolumeBlocks, cfg: InferenceConfig,
                   device: torch.device | str, progress: bool = False,
                   reduction: VoxelReduction | None = None) -> torch.Tensor | dict[str, np.ndarray]:
    """:func:`run_generator` for one volume, ``(C, Z, Y, X)`` in memory or read block by block (a lazy
    volume's :class:`~pix2pix_unet.codec.VolumeBlocks`), returning its output ``(C', Z, Y, X)`` or, with
    ``reduction``, only that of it (:class:`VoxelReduction`).

    A 3D generator runs whole on a volume of at most ``cfg.tile_above_mp`` megavoxels, else by the sliding
    window (:func:`run_volume`), which reduces each block as it is finished, so the float output is never
    held whole; a lazy volume always goes by the window. A 2D generator runs slice by slice (2.5D).
    """
    by_blocks = isinstance(volume, VolumeBlocks)
    voxels = math.prod(volume.shape[1:])
    if getattr(generator.config, "dims", 2) == 3 and (by_blocks or voxels > cfg.tile_above_mp * 1e6):
        forward = TestTimeAugmented(generator) if cfg.tta else generator
        with autocast(cfg, device):
            output = run_volume(generator, forward, volume, cfg, device, progress, reduction=reduction)
        return output.maps if isinstance(output, ReducedOutput) else output
    if by_blocks:
        raise ValueError(f"{volume.path}: a 2D generator reads a volume slice by slice from memory; "
                         "convert the OME-Zarr to a TIFF stack")
    output = run_generator(generator, volume.unsqueeze(0), cfg, device, progress)[0]
    return reduction.reduce(output) if reduction is not None else output


def run_volume(generator: Generator, forward: torch.nn.Module, volume: torch.Tensor | VolumeBlocks,
               cfg: InferenceConfig,
               device: torch.device | str, progress: bool = False,
               reduction: VoxelReduction | None = None) -> torch.Tensor | ReducedOutput:
    """One volume ``(C, Z, Y, X)``, already normalised as a whole (or a lazy volume's blocks, each decoded by
    the whole volume's intensity map as it is read), by a sliding window of about ``cfg.volume_budget_mb`` of
    activations, one window at a time.

    - When the window is at least twice the network's receptive field, each window reads a halo of the receptive
      field around the voxels it keeps, so the result equals the whole-volume pass (norms that do not depend on
      the window: batch norm in eval mode, or none).
    - Otherwise (a deep 3D net's receptive field is larger than the windows a CPU's memory holds; ASPP and NAF's
      channel attention see the whole window), windows overlap by half and are blended with Gaussian weights,
      nnU-Net's scheme: close to the whole pass, not equal.

    Returns ``(C', Z, Y, X)`` on the CPU, or with ``reduction`` only its maps, kept as
    each block is finished (:class:`ReducedOutput`).
    """
    config = generator.config
    shape = tuple(volume.shape[1:])
    factors = config.axis_factors
    if isinstance(volume, VolumeBlocks):
        voxels, to_input = volume.voxels, volume.decode  # raw (z, y, x, c) blocks, decoded as they are read
    else:
        voxels = volume.permute(1, 2, 3, 0).numpy()  # (Z, Y, X, C), a view
        to_input = lambda block: torch.from_numpy(np.ascontiguousarray(block)).permute(3, 0, 1, 2)  # noqa: E731
    padded = tuple(-(-n // f) * f for n, f in zip(shape, factors))
    window = window_for_budget(config, volume.shape[0], int(cfg.volume_budget_mb * 2**20), shape=shape)
    try:
        halo = receptive_halo(config)
    except ConfigError:  # the net sees the whole window: no halo is enough
        halo = None
    exact = halo is not None and all(w >= min(n, 4 * (-(-h // f) * f)) for w, h, f, n in zip(window, halo, factors,
                                                                                            padded))
    if exact:
        blend, overlap = Blend.CROP, None
    else:  # half-window steps: a quarter of the window blended on each side of each core
        blend, halo = Blend.GAUSSIAN, (0, 0, 0)
        window = tuple(max(w, 2 * f) for w, f in zip(window, factors))
        overlap = tuple(0 if w >= n else (w // 4) // f * f for w, f, n in zip(window, factors, padded))
    if reduction is not None:
        sink: np.ndarray | ReducedOutput = ReducedOutput(shape, reduction)
        from_output: Callable[[torch.Tensor], object] = lambda t: t.float().cpu()  # noqa: E731 (c', z, y, x)
    else:
        sink = np.zeros((*shape, config.out_channels), np.float32)
        from_output = lambda t: t.float().permute(1, 2, 3, 0).cpu().numpy()  # noqa: E731 (z, y, x, c')
    predict_volume(forward.eval(), voxels, to_input=to_input, from_output=from_output, out=sink, window=window,
                   halo=halo, blend=blend, overlap=overlap, factors=factors, batch_size=1, device=device,
                   progress=progress)  # the budget is one window's
    return_freed_memory(force=True)  # the windows' memory, before the task's post-processing allocates its own
    return sink if isinstance(sink, ReducedOutput) else torch.from_numpy(sink).permute(3, 0, 1, 2)


__all__ = ["AUTOCAST_DTYPES", "TestTimeAugmented", "autocast", "best_device", "dihedral", "inference_flags",
           "prepare_generator", "ReducedOutput", "run_generator", "run_slices", "run_volume", "run_one_volume",
           "undo_dihedral", "VoxelReduction"]
