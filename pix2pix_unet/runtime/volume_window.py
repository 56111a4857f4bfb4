"""Sliding-window inference of a 3D generator over a volume of any size, in bounded memory.

A ``(Z, Y, X, C)`` volume, possibly a memory map far larger than RAM (``np.memmap``,
``tifffile.memmap``), is cut into windows; only each window's slice is read, and the
output goes block by block into ``out`` (a numpy array, a memory map, or a
:class:`~pix2pix_unet.volume_io.VolumeWriter`).

The plan (:func:`plan_windows`). Each axis is first padded to the generator's
multiple (``cfg.axis_factors``) exactly as :class:`~pix2pix_unet.models.UNet` pads a
whole volume: by reflection past the end (replication where the volume is too thin),
so the padding is read, never stored. The padded volume is split into *cores* that
tile it exactly once; each window is its core grown by a *halo* of context on every
side (clipped to the volume), and every core and window starts on a multiple of the
factors, so each window sees the same strided-conv grid as the whole volume.

Blending (:class:`Blend`):

- ``crop``: each window's output is cut to its core and written once. When the halo
  covers the generator's receptive field (:func:`receptive_halo`) and its norms do
  not depend on the window (no norm, or batch norm in eval mode), the tiled output
  equals the whole-volume output.
- ``gaussian`` (nnU-Net, MONAI): each window also writes ``overlap`` voxels beyond its
  core, weighted by a Gaussian importance map (sigma 1/8 of that extent per axis),
  and the weighted sum is divided by the summed weights, so a window whose border
  outputs differ from its neighbour's (a halo below the receptive field, instance
  norm) cross-fades instead of leaving a seam. The volume is processed in z-slabs: the
  output and weight buffers hold one slab of windows (with its overlap), and each
  finished slab is flushed to ``out``.

Normalisation must come from the whole volume, never from a window (a window's own
percentiles would change from window to window and leave seams). The caller passes
``to_input`` already closed over whole-volume statistics: :func:`volume_statistics`
and :func:`percentile_normalizer`.

Memory: peak use is about one window's activations (:func:`estimate_window_bytes`,
:func:`window_for_budget`) plus, with ``gaussian``, a float32 slab of ``Y x X`` planes.
A window that runs out of memory halves the window and restarts the run
(:func:`predict_volume`).
"""

from __future__ import annotations

import enum
import math
import sys
from dataclasses import dataclass
from itertools import groupby, product
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .backends import return_freed_memory
from ..config import Architecture, Bottleneck, ConfigError, ConvUnit, Down, UNetConfig, Up

__all__ = ["ACTIVATION_FACTOR", "Blend", "FLUSH_PLANES", "VolumeStatistics", "Window", "estimate_window_bytes",
           "percentile_normalizer", "plan_windows", "predict_volume", "receptive_halo", "volume_statistics",
           "window_for_budget"]

Triple = tuple[int, int, int]
Slices = tuple[slice, slice, slice]


class Blend(str, enum.Enum):
    """How window outputs make the volume's output."""

    CROP = "crop"  # each window's core only, written once
    GAUSSIAN = "gaussian"  # core + overlap, weighted by a Gaussian importance map and averaged


# --------------------------------------------------------------------------- receptive field


def _cumulative_strides(cfg: UNetConfig) -> list[Triple]:
    """The stride of each resolution (0: full) relative to the input voxels, per axis."""
    cumulative = [(1, 1, 1)]
    for stride in cfg.strides:
        cumulative.append(tuple(c * s for c, s in zip(cumulative[-1], stride)))  # type: ignore[misc]
    return cumulative


def receptive_halo(cfg: UNetConfig) -> Triple:
    """The halo ``(z, y, x)``, in voxels, that covers the receptive field of a 3D :class:`UNet` built from ``cfg``.

    An analytic bound: the input voxels an output voxel depends on lie within this many
    voxels along each axis. Every layer reaches ``before`` and ``after`` its output
    (in units of its finer resolution's cumulative stride ``S``): a same-size conv of
    kernel ``k`` and dilation ``d`` reaches ``d (k - 1) / 2`` each way; pix2pix's 4-wide
    stride-2 conv (padding 1) reaches ``1`` before and ``2`` after; the transposed conv
    that undoes it ``2`` before and ``1`` after; a 2-wide pool ``0`` and ``1``; a
    trilinear 2x upsampling ``2`` and ``1``, a nearest one ``1`` and ``0``. The reaches
    add up along the net (stem, encoder, decoder, head); the halo is the larger of the
    two sums on each axis. The convs' zero padding at a window's border reaches exactly
    as far, so a core whose halo is at least this is unaffected by the window's border.

    Raises:
        ConfigError: ``cfg`` is not a 3D UNet, or has a block whose reach is the whole
            window (``bottleneck=aspp``'s image pooling, ``conv_unit=naf``'s channel
            attention): give :func:`predict_volume` a ``halo`` and ``blend="gaussian"``.
    """
    if cfg.dims != 3:
        raise ConfigError(f"receptive_halo is for 3D generators, got dims={cfg.dims}")
    if cfg.architecture is not Architecture.UNET:
        raise ConfigError(f"receptive_halo knows architecture=unet, got {cfg.architecture.value}")
    if cfg.bottleneck is not Bottleneck.NONE:
        raise ConfigError(f"bottleneck={cfg.bottleneck.value} pools the whole window, so no halo covers its receptive "
                          "field; pass a halo and blend='gaussian'")
    if cfg.conv_unit is ConvUnit.NAF:
        raise ConfigError("conv_unit=naf's channel attention pools the whole window, so no halo covers its receptive "
                          "field; pass a halo and blend='gaussian'")
    strides, kernels, cumulative = cfg.strides, cfg.kernels, _cumulative_strides(cfg)
    before, after = [0, 0, 0], [0, 0, 0]

    def reach(level: int, per_axis: Callable[[int], tuple[int, int]]) -> None:
        for a in range(3):
            b, f = per_axis(a)
            before[a] += b * cumulative[level][a]
            after[a] += f * cumulative[level][a]

    def convs(level: int, count: int, dilation: int = 1) -> None:  # same-size convs at `level`
        reach(level, lambda a: ((kernels[level][a] - 1) // 2 * dilation * count,) * 2)

    def sampling(level: int, halved: tuple[int, int]) -> None:  # between `level` and `level + 1`
        reach(level, lambda a: halved if strides[level][a] == 2 else (0, 0))

    def up(level: int) -> None:  # from `level + 1` to `level`, then (resize) a conv
        if cfg.up is Up.TRANSPOSED:
            sampling(level, (2, 1))
            return
        sampling(level, (2, 1) if cfg.up is Up.BILINEAR else (1, 0))
        convs(level, 1)

    unit_convs = 0 if cfg.conv_unit is ConvUnit.NONE else 2 * cfg.units_per_level  # every unit is two convs deep
    dilation = cfg.dilation if cfg.conv_unit is ConvUnit.DILATED else 1
    down = (1, 2) if cfg.down is Down.STRIDED else (0, 1)  # 4-wide strided conv, or a 2-wide pool
    if cfg.conv_unit is ConvUnit.NONE:  # pix2pix: the stem and every level is one strided conv
        for level in range(cfg.depth):
            sampling(level, (1, 2))
        for level in range(cfg.depth - 1, 0, -1):
            up(level)
        sampling(0, (2, 1))  # the head's transposed conv
    else:
        convs(0, unit_convs, dilation)  # the stem
        for level in range(1, cfg.depth + 1):
            sampling(level - 1, down)
            convs(level, unit_convs, dilation)
        for level in range(cfg.depth - 1, -1, -1):
            up(level)
            convs(level, unit_convs, dilation)
        # the head is a 1x1 conv
    return tuple(max(b, f) for b, f in zip(before, after))  # type: ignore[return-value]


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Window:
    """One window of a :func:`plan_windows` plan.

    Attributes:
        input: the voxels the generator reads, in the coordinates of the volume padded
            to the factors (a stop past the volume's end reads the reflection).
        core: the output voxels this window owns, in volume coordinates; the cores of a
            plan tile the volume exactly once.
        offset: where ``core`` starts inside the window's output.
        blend: the output voxels this window contributes to: ``core`` grown by the
            overlap and clipped to the volume (``core`` itself without overlap).
        blend_offset: where ``blend`` starts inside the window's output.
    """

    input: Slices
    core: Slices
    offset: Triple
    blend: Slices
    blend_offset: Triple

    @property
    def shape(self) -> Triple:
        """The window's input size ``(z, y, x)``."""
        return tuple(s.stop - s.start for s in self.input)  # type: ignore[return-value]


def _round_up(n: int, f: int) -> int:
    return -(-n // f) * f


def _triple(value: Sequence[int] | int, name: str) -> Triple:
    values = (value,) * 3 if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name}={value!r} must be three integers (z, y, x)")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _axis_cores(padded: int, window: int, context: int, factor: int) -> list[tuple[int, int]]:
    """Core ``(start, stop)`` pairs tiling ``[0, padded)``, balanced, each a multiple of ``factor``."""
    if padded <= window:  # the whole axis fits in one window: no halo needed
        return [(0, padded)]
    room = (window - 2 * context) // factor  # core size, in factors
    units = padded // factor
    count = -(-units // room)
    sizes = [units // count + (i < units % count) for i in range(count)]
    starts = np.cumsum([0, *sizes]) * factor
    return [(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def plan_windows(shape: Sequence[int], window: Sequence[int], halo: Sequence[int], factors: Sequence[int],
                 overlap: Sequence[int] = (0, 0, 0)) -> list[Window]:
    """Windows covering a volume of ``shape`` ``(Z, Y, X)``, z-major (all windows of a z-slab together).

    Args:
        shape: the volume's ``(Z, Y, X)``.
        window: the largest input the generator takes, ``(z, y, x)``; rounded down to
            the factors (and larger than needed on an axis the volume is shorter on).
        halo: context voxels on each side of the core (or of the blended extent, with
            ``overlap``) that the window reads but never writes.
        factors: the generator's per-axis padding multiple (``cfg.axis_factors``).
        overlap: voxels each window blends beyond its core on each side (Gaussian blending).

    Context ``halo + overlap`` is rounded up to the factors, so windows start on the
    factors' grid; each core is a multiple of the factors (the last one may end in the
    padding, and its ``core`` is clipped to the volume).

    Raises:
        ValueError: a bad shape, window, halo, factors or overlap, or a window too small
            to leave a core of one factor inside its context.
    """
    shape3, window3 = _triple(shape, "shape"), _triple(window, "window")
    halo3, factors3, overlap3 = _triple(halo, "halo"), _triple(factors, "factors"), _triple(overlap, "overlap")
    if min(shape3) < 1 or min(factors3) < 1 or min(halo3) < 0 or min(overlap3) < 0:
        raise ValueError(f"plan_windows needs shape={shape3} and factors={factors3} of at least 1 and halo={halo3} "
                         f"and overlap={overlap3} of at least 0")
    axes = []
    for a, (n, w, h, f, o) in enumerate(zip(shape3, window3, halo3, factors3, overlap3)):
        padded, context, w = _round_up(n, f), _round_up(h + o, f), w // f * f
        if padded > w and w - 2 * context < f:
            raise ValueError(f"window={window3} leaves no core on axis {'zyx'[a]}: it needs at least 2 x (halo + "
                             f"overlap) rounded to the factor + one factor = {2 * context + f}, got {w} (halo={halo3}, "
                             f"overlap={overlap3}, factors={factors3})")
        spans = []
        for start, stop in _axis_cores(padded, w, context, f):
            lo, hi = max(0, start - context), min(padded, stop + context)
            core = slice(start, min(stop, n))
            blend = slice(max(0, start - o), min(stop + o, n))
            spans.append((slice(lo, hi), core, start - lo, blend, blend.start - lo))
        axes.append(spans)
    return [Window(tuple(s[0] for s in spans), tuple(s[1] for s in spans),  # type: ignore[arg-type]
                   tuple(s[2] for s in spans), tuple(s[3] for s in spans),  # type: ignore[arg-type]
                   tuple(s[4] for s in spans))  # type: ignore[arg-type]
            for spans in product(*axes)]


# --------------------------------------------------------------------------- normalisation


@dataclass(frozen=True)
class VolumeStatistics:
    """Intensity percentiles of a whole volume, per channel.

    Attributes:
        percentiles: which percentiles ``(low, high)``.
        low: ``(C,)`` the low percentile of each channel, in the volume's units.
        high: ``(C,)`` the high percentile.
        stride: the sampling stride on every axis (1: every voxel).
        sampled: the voxels the percentiles were computed from.
    """

    percentiles: tuple[float, float]
    low: np.ndarray
    high: np.ndarray
    stride: int
    sampled: int


def volume_statistics(volume: Any, percentiles: tuple[float, float] = (1.0, 99.8),
                      sample: int | None = 2**22) -> VolumeStatistics:
    """Per-channel percentiles of the whole ``(Z, Y, X, C)`` (or ``(Z, Y, X)``) ``volume``.

    At most ``sample`` voxels are read: the strided view ``volume[::s, ::s, ::s]`` with
    the smallest ``s`` that gets under ``sample`` (``None``: every voxel). A strided
    view is spread evenly over the whole volume, so its percentiles stand for the
    volume's, and from a memory map it reads only every ``s``-th plane.

    Raises:
        ValueError: a volume that is not 3D or 4D, or percentiles not ``0 <= low < high <= 100``.
    """
    low_p, high_p = (float(p) for p in percentiles)
    if not 0 <= low_p < high_p <= 100:
        raise ValueError(f"percentiles={percentiles!r} must be (low, high) with 0 <= low < high <= 100")
    if volume.ndim not in (3, 4):
        raise ValueError(f"volume must be (Z, Y, X) or (Z, Y, X, C), got shape {volume.shape}")
    voxels = math.prod(volume.shape[:3])
    stride = 1 if sample is None or voxels <= sample else math.ceil((voxels / sample) ** (1 / 3))
    while sample is not None and math.prod(-(-n // stride) for n in volume.shape[:3]) > sample:
        stride += 1
    values = np.asarray(volume[::stride, ::stride, ::stride])
    values = values.reshape(-1, 1 if volume.ndim == 3 else volume.shape[3])
    low, high = np.percentile(values, [low_p, high_p], axis=0)  # each (C,)
    return VolumeStatistics((low_p, high_p), low.astype(np.float64), high.astype(np.float64), stride, len(values))


def percentile_normalizer(stats: VolumeStatistics, clip: bool = False,
                          eps: float = 1e-6) -> Callable[[np.ndarray], torch.Tensor]:
    """``to_input`` for :func:`predict_volume`: a block ``(z, y, x, C)`` (or ``(z, y, x)``) in any dtype to a
    float32 tensor ``(C, z, y, x)``, each channel's ``stats`` low..high percentiles mapped to -1..1.

    Every window is mapped by the same whole-volume percentiles. ``clip`` clamps to
    [-1, 1] (off by default: values beyond the percentiles keep their contrast).
    """
    low = stats.low.astype(np.float32)
    scale = (2.0 / np.maximum(stats.high - stats.low, eps)).astype(np.float32)

    def normalize(block: np.ndarray) -> torch.Tensor:
        block = block[..., None] if block.ndim == 3 else block
        if block.shape[-1] != len(low):
            raise ValueError(f"block of shape {block.shape} has {block.shape[-1]} channels; the statistics have "
                             f"{len(low)}")
        values = (block.astype(np.float32) - low) * scale - 1.0  # (z, y, x, c)
        if clip:
            np.clip(values, -1.0, 1.0, out=values)
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(values, -1, 0)))  # (c, z, y, x)

    return normalize


# --------------------------------------------------------------------------- memory


ACTIVATION_FACTOR = 6.0
"""Bytes of a forward-only window per modelled 4-byte value in :func:`estimate_window_bytes`, over 4.

Measured on the CPU (torch 2.14, fp32, one thread), as the growth of the peak RSS
(``ru_maxrss``) of a fresh process over one window's forward under ``no_grad``, after a
32-voxel warm-up: 3D UNets of depth 2-4 (``conv_unit`` none, double and residual,
4-16 base channels) on windows of 64 and 128 voxels a side took 2.1 to 5.5 times
the model's values (the larger windows 2.5 to 5.5). A decoder level holds its skip,
the upsampled features, their concatenation (twice the channels) and a conv's
output at once, so a few per level is what one expects; 6 leaves room for the
allocator. Not included: a one-off ~100 MiB of library scratch that some conv
shapes allocate on first use (it dominates windows under ~64 a side), and the weights.
"""


def estimate_window_bytes(cfg: UNetConfig, window: Sequence[int], in_channels: int | None = None,
                          bytes_per_value: int = 4) -> int:
    """Estimated peak memory of one forward pass of a 3D UNet on a ``window`` ``(z, y, x)``, without gradients.

    The model: ``ACTIVATION_FACTOR * bytes_per_value * sum(channels_l * voxels_l)`` over
    the resolutions ``l`` (each level's width at its voxel count, after the strides of
    ``cfg.strides``), plus the input and output channels at full resolution. Weights
    are not counted.
    """
    z, y, x = _triple(window, "window")
    in_channels = cfg.in_channels if in_channels is None else in_channels
    widths = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(cfg.depth + 1)]
    if cfg.conv_unit is ConvUnit.NONE:  # pix2pix: level l (after l downsamplings) has widths[l - 1]
        widths = [0, *widths[: cfg.depth]]
    values = (in_channels + cfg.out_channels) * z * y * x
    for width, stride in zip(widths, _cumulative_strides(cfg)):
        values += width * math.prod(-(-n // s) for n, s in zip((z, y, x), stride))
    return int(ACTIVATION_FACTOR * bytes_per_value * values)


def window_for_budget(cfg: UNetConfig, in_channels: int, budget_bytes: int, spacing: Sequence[float] | None = None,
                      shape: Sequence[int] | None = None) -> Triple:
    """The largest window ``(z, y, x)`` whose :func:`estimate_window_bytes` fits ``budget_bytes``.

    The window is about the same physical size on every axis (voxels inversely
    proportional to ``spacing``, by default ``cfg.spacing``, else isotropic), each axis a
    multiple of ``cfg.axis_factors`` (at least one factor), and no larger than ``shape``
    ``(Z, Y, X)`` padded to the factors, when given; an axis capped by the volume leaves
    the others to grow.

    Raises:
        ValueError: a bad spacing or shape, or a budget below the smallest window's estimate.
    """
    factors = cfg.axis_factors
    spacing = spacing if spacing is not None else (cfg.spacing or (1.0, 1.0, 1.0))
    if len(spacing) != 3 or not all(s > 0 for s in spacing):
        raise ValueError(f"spacing={spacing!r} must be three positive voxel sizes (z, y, x)")
    caps = [None] * 3 if shape is None else [_round_up(n, f) for n, f in zip(_triple(shape, "shape"), factors)]

    def window_at(size: float) -> Triple:
        return tuple(min(cap or math.inf, max(f, int(size / s) // f * f))  # type: ignore[return-value]
                     for s, f, cap in zip(spacing, factors, caps))

    def fits(size: float) -> bool:
        return estimate_window_bytes(cfg, window_at(size), in_channels) <= budget_bytes

    if not fits(0.0):
        raise ValueError(f"budget_bytes={budget_bytes} is below the smallest window's estimate, "
                         f"{estimate_window_bytes(cfg, window_at(0.0), in_channels)} bytes for {window_at(0.0)}")
    low, high = 0.0, max(f * s for f, s in zip(factors, spacing))
    while fits(high) and window_at(high) != window_at(2 * high):
        low, high = high, 2 * high
    if fits(high):
        return window_at(high)
    for _ in range(64):  # bisect the physical size
        mid = (low + high) / 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return window_at(low)


# --------------------------------------------------------------------------- running


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    message = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in message
                                              or "DefaultCPUAllocator: can't allocate memory" in message)


def _halved(window: Triple, factors: Triple, minimum: Triple) -> Triple | None:
    """``window`` with its longest axis (in factors) halved, kept a multiple of the factor and at least
    ``minimum``; None when no axis can shrink."""
    shrinkable = [a for a in range(3) if window[a] > minimum[a]]
    if not shrinkable:
        return None
    a = max(shrinkable, key=lambda i: window[i] / factors[i])
    smaller = list(window)
    smaller[a] = max(minimum[a], window[a] // 2 // factors[a] * factors[a])
    return tuple(smaller)  # type: ignore[return-value]


FLUSH_PLANES = 4
"""Planes of a finished Gaussian slab handed to ``out`` at a time: what ``out`` makes of them (a segmenter's
softmax and class ids) costs a few planes' memory, not a slab's (3 float logits of 60 planes of 512 x 512 are
190 MB)."""


def _padding_mode(shape: Triple, factors: Triple) -> str:
    """:func:`~pix2pix_unet.models.generator.pad_to_multiple`'s choice for the whole volume."""
    pads = [(-n) % f for n, f in zip(shape, factors)]
    return "reflect" if all(p < n for p, n in zip(pads, shape)) else "replicate"


def _read(volume: Any, slices: Slices, shape: Triple, mode: str) -> np.ndarray:
    """The block ``(z, y, x, C)`` at ``slices`` of the volume padded past its end by ``mode``; reads one slice."""
    index = []
    for s, n in zip(slices, shape):
        i = np.arange(s.start, s.stop)
        index.append(np.where(i < n, i, 2 * (n - 1) - i) if mode == "reflect" else np.minimum(i, n - 1))
    lows = [int(i.min()) for i in index]
    block = np.asarray(volume[tuple(slice(lo, int(i.max()) + 1) for lo, i in zip(lows, index))])
    if any(s.stop > n for s, n in zip(slices, shape)):  # past the end: gather the reflected (replicated) planes
        block = block[np.ix_(*(i - lo for i, lo in zip(index, lows)))]
    return block[..., None] if block.ndim == 3 else block


def _gaussian(window: Window, overlap: Triple) -> torch.Tensor:
    """``(z, y, x)`` weights over ``window.blend``: a Gaussian centred on the core, sigma 1/8 of core + 2 overlap."""
    axes = []
    for core, blend, o in zip(window.core, window.blend, overlap):
        extent = core.stop - core.start + 2 * o
        centre = (core.start + core.stop - 1) / 2
        position = torch.arange(blend.start, blend.stop, dtype=torch.float64)
        axes.append(torch.exp(-((position - centre) ** 2) / (2 * (extent / 8) ** 2)))
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (weights / weights.max()).float()


def _batches(windows: list[Window], batch_size: int) -> Iterator[list[Window]]:
    """Consecutive windows of the same input shape, ``batch_size`` at most."""
    for _, same in groupby(windows, key=lambda w: w.shape):
        group = list(same)
        for i in range(0, len(group), batch_size):
            yield group[i: i + batch_size]


def _crop(output: torch.Tensor, slices: Slices, offset: Triple) -> torch.Tensor:
    """The part ``(c, *slices sizes)`` of a window's output ``(c, z, y, x)`` that starts at ``offset``."""
    return output[(slice(None), *(slice(o, o + s.stop - s.start) for o, s in zip(offset, slices)))]


class _Run:
    """One pass over a plan; split out of :func:`predict_volume` so an out-of-memory retry restarts it whole."""

    def __init__(self, generator: Callable[[torch.Tensor], torch.Tensor], volume: Any, shape: Triple, mode: str,
                 to_input: Callable[[np.ndarray], torch.Tensor], from_output: Callable[[torch.Tensor], np.ndarray],
                 out: Any, batch_size: int, device: torch.device, progress: bool) -> None:
        self.generator, self.volume, self.shape, self.mode = generator, volume, shape, mode
        self.to_input, self.from_output, self.out = to_input, from_output, out
        self.batch_size, self.device, self.progress = batch_size, device, progress

    def forward(self, batch: list[Window]) -> torch.Tensor:
        """The generator's outputs ``(b, c', z, y, x)`` (float32, CPU) for a batch of same-shape windows."""
        # 1. read, pad past the end, normalise                          (b, c, z, y, x)
        x = torch.stack([self.to_input(_read(self.volume, w.input, self.shape, self.mode)) for w in batch])
        # 2. run                                                        (b, c', z, y, x)
        y = self.generator(x.to(self.device)).float().cpu()
        return_freed_memory()  # the window's activations, unless a run keeps freed memory on purpose
        if y.shape[0] != len(batch) or y.shape[2:] != x.shape[2:]:
            raise ValueError(f"the generator mapped windows of shape {tuple(x.shape)} to {tuple(y.shape)}; "
                             "predict_volume needs (B, C', z, y, x) outputs of the windows' size")
        return y

    def crop(self, windows: list[Window]) -> None:
        """Each window's core, written to ``out`` once."""
        bar = tqdm(total=len(windows), desc="windows", unit="window", leave=False, disable=not self.progress)
        for batch in _batches(windows, self.batch_size):
            for w, y in zip(batch, self.forward(batch)):
                self.out[w.core] = self.from_output(_crop(y, w.core, w.offset))  # (z, y, x, c')
            bar.update(len(batch))
        bar.close()

    def gaussian(self, windows: list[Window], overlap: Triple) -> None:
        """Weighted sums over z-slabs of windows; each slab flushed to ``out`` once no later window reaches it.

        The sums live in two buffers allocated once, as deep as the deepest slab's blended extent; a flushed
        slab's planes go out :data:`FLUSH_PLANES` at a time (what ``out`` makes of a block, e.g. a softmax, is
        then a few planes' worth), and the overlap the next slab still adds to moves to the buffers' front.
        """
        _, height, width = self.shape
        slabs = [list(row) for _, row in groupby(windows, key=lambda w: w.core[0].start)]
        stops = [slab[0].blend[0].stop for slab in slabs]
        dones = [slabs[k + 1][0].blend[0].start if k + 1 < len(slabs) else stops[k] for k in range(len(slabs))]
        starts = [0, *dones[:-1]]
        depth = max(stop - lo for stop, lo in zip(stops, starts))
        total: torch.Tensor | None = None  # (c', depth, Y, X) weighted outputs of z in [lo, lo + depth)
        weight = torch.zeros(depth, height, width)  # (depth, Y, X)
        bar = tqdm(total=len(windows), desc="windows", unit="window", leave=False, disable=not self.progress)
        for slab, lo, stop, done in zip(slabs, starts, stops, dones):
            # 1. accumulate each window's weighted output over its blended extent
            for batch in _batches(slab, self.batch_size):
                for w, y in zip(batch, self.forward(batch)):
                    if total is None:
                        total = torch.zeros(y.shape[0], depth, height, width)
                    g = _gaussian(w, overlap)  # (z, y, x)
                    z, yy, xx = w.blend
                    region = (slice(z.start - lo, z.stop - lo), yy, xx)
                    total[(slice(None), *region)] += _crop(y, w.blend, w.blend_offset) * g
                    weight[region] += g
                bar.update(len(batch))
            assert total is not None
            # 2. flush what no later slab reaches, a few planes at a time        (z, Y, X, c')
            for a in range(0, done - lo, FLUSH_PLANES):
                b = min(done - lo, a + FLUSH_PLANES)
                self.out[lo + a: lo + b, :, :] = self.from_output(total[:, a:b] / weight[a:b])
            # 3. keep the overlap the next slab adds to, at the front
            kept = stop - done
            total[:, :kept] = total[:, done - lo: stop - lo].clone()
            weight[:kept] = weight[done - lo: stop - lo].clone()
            total[:, kept:] = 0
            weight[kept:] = 0
        bar.close()


@torch.no_grad()
def predict_volume(
    generator: Callable[[torch.Tensor], torch.Tensor],
    volume: Any,
    *,
    to_input: Callable[[np.ndarray], torch.Tensor],
    from_output: Callable[[torch.Tensor], np.ndarray],
    out: Any,
    window: Sequence[int],
    halo: Sequence[int] | None = None,
    blend: Blend | str = Blend.CROP,
    overlap: Sequence[int] | None = None,
    factors: Sequence[int] | None = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Triple:
    """Run a 3D ``generator`` over ``volume`` window by window, writing the output into ``out`` block by block.

    Args:
        generator: ``(B, C, z, y, x) -> (B, C', z, y, x)``, in eval mode (batch norm in
            training mode would normalise each window by its own statistics). Usually a
            :class:`~pix2pix_unet.models.UNet` with ``dims=3``.
        volume: ``(Z, Y, X, C)`` or ``(Z, Y, X)`` in any dtype: an array or a memory map
            (``np.memmap``, ``tifffile.memmap``); only windows are read.
        to_input: a raw block ``(z, y, x, C)`` to the generator's input ``(C, z, y, x)``,
            closed over whole-volume statistics (:func:`percentile_normalizer`); it must
            act voxel by voxel, since the padding past the volume's end is read raw.
        from_output: a float32 output block ``(C', z, y, x)`` to what ``out`` stores,
            ``(z, y, x, C')`` (e.g. scaled and cast to uint16).
        out: takes ``out[z0:z1, y0:y1, x0:x1] = block``: a ``(Z, Y, X, C')`` array or
            memory map, or an open :class:`~pix2pix_unet.volume_io.VolumeWriter`.
        window: the generator's largest input ``(z, y, x)`` (see :func:`window_for_budget`).
        halo: context voxels around each core; default :func:`receptive_halo` of
            ``generator.config``.
        blend: ``crop`` or ``gaussian`` (see the module's docstring).
        overlap: with ``gaussian``, voxels each window blends beyond its core per side;
            default an eighth of the window per axis. Must be 0 (or None) with ``crop``.
        factors: the per-axis padding multiple; default ``generator.config.axis_factors``.
        batch_size: windows of the same shape per forward pass.
        device: where the generator runs; windows go there one batch at a time.
        progress: show a progress bar over the windows.

    Returns:
        The window the run finished with (smaller than ``window`` after an out-of-memory retry).

    Out of memory (``torch.OutOfMemoryError``, ``MemoryError``, or a ``RuntimeError``
    saying "out of memory" or "DefaultCPUAllocator: can't allocate memory") on a
    window halves the window's longest axis, keeping the factors and room for the
    halo, prints a note to stderr and restarts the run (blocks already written are
    written again); it is raised once the window cannot shrink.

    Raises:
        ValueError: a bad volume, window, halo, overlap, blend or batch size, a generator
            in training mode, or no ``config`` to take a halo or factors from.
    """
    # 1. check the arguments, take the halo and factors from the generator's config
    if volume.ndim not in (3, 4):
        raise ValueError(f"volume must be (Z, Y, X) or (Z, Y, X, C), got shape {volume.shape}")
    try:
        blend = Blend(blend)
    except ValueError:
        raise ValueError(f"blend={blend!r} must be one of {[b.value for b in Blend]}") from None
    if isinstance(generator, nn.Module) and generator.training:
        raise ValueError("the generator is in training mode: batch norm would normalise each window by its own "
                         "statistics and dropout would drop voxels; call generator.eval() first")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    cfg = getattr(generator, "config", None)
    if (halo is None or factors is None) and not isinstance(cfg, UNetConfig):
        raise ValueError("predict_volume takes the halo and factors from generator.config (a UNetConfig); this "
                         f"generator ({type(generator).__name__}) has none, so pass halo= and factors=")
    halo3 = _triple(halo if halo is not None else receptive_halo(cfg), "halo")
    factors3 = _triple(factors if factors is not None else cfg.axis_factors, "factors")
    shape: Triple = tuple(int(n) for n in volume.shape[:3])  # type: ignore[assignment]
    window3 = _triple(window, "window")
    if min(window3) < 1:
        raise ValueError(f"window={window3} must be positive")
    if blend is Blend.CROP:
        if overlap is not None and any(overlap):
            raise ValueError(f"overlap={overlap!r} blends windows; it needs blend='gaussian', not crop")
        overlap3: Triple = (0, 0, 0)
    else:
        overlap3 = _triple(overlap if overlap is not None else tuple(max(1, w // 8) for w in window3), "overlap")
    # a window larger than the padded volume costs memory and adds nothing
    window3 = tuple(min(w, _round_up(n, f)) for w, n, f in zip(window3, shape, factors3))  # type: ignore[assignment]
    minimum: Triple = tuple(min(_round_up(n, f), 2 * _round_up(h + o, f) + f)  # type: ignore[assignment]
                            for n, f, h, o in zip(shape, factors3, halo3, overlap3))
    run = _Run(generator, volume, shape, _padding_mode(shape, factors3), to_input, from_output, out, batch_size,
               torch.device(device), progress)
    # 2. run the plan, halving the window on out-of-memory
    while True:
        windows = plan_windows(shape, window3, halo3, factors3, overlap3)
        try:
            if blend is Blend.CROP:
                run.crop(windows)
            else:
                run.gaussian(windows, overlap3)
            return window3
        except Exception as err:  # noqa: BLE001 (re-raised unless it is out of memory)
            if not _is_out_of_memory(err):
                raise
            smaller = _halved(window3, factors3, minimum)
            if smaller is None:
                raise
            print(f"note: out of memory on a window of {window3} voxels (z, y, x); retrying with {smaller}",
                  file=sys.stderr)
            window3 = smaller
            if run.device.type == "cuda":
                torch.cuda.empty_cache()
