"""The plan: training settings derived from a :class:`~.fingerprint.Fingerprint` by rules a reader can check.

Each rule gives a config key, its value and the reason, in words and numbers from
the fingerprint. The rules read the data's properties (sizes, object diameters,
thinness, touching share, file count, intensity range, noise), never a dataset's
name. A plan is a list of ``key=value`` overrides: an explicit key of the user's
always wins over it (:func:`overrides`).

Volumes (a fingerprint with :attr:`~.fingerprint.Fingerprint.volumes`) get the
3D rules of :func:`volume_geometry` in place of the 2D crop rule: ``generator.dims=3``,
the files' voxel size, a patch as physically cubic as the stacks allow within a memory
budget (so fewer slices along a coarse z), each axis a multiple of its downsampling
factor, and a depth whose coarsest level keeps a few voxels on every axis. Strongly
anisotropic stacks get the 2.5D option as advice (:func:`two_and_a_half_d`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..config import Architecture, ConvUnit, Degradation, Down, SelfSupervised, Task, TrainConfig, UNetConfig
from ..errors import DatasetError
from ..runtime.volume_window import estimate_window_bytes
from .fingerprint import Fingerprint

CROP_CAP = 256  # the largest crop the CPU-sized default plans; larger images are trained on crops of it
MIN_BOTTLENECK = 4  # px the innermost level keeps at the crop size (a 1x1 bottleneck has no spatial context)
MIN_DEPTH, MAX_DEPTH = 3, 8
PIXELS_PER_BATCH = 2 * 256 * 256  # the pixels of a step when the machine's speed is not measured
MIN_STEPS = 2000  # the steps a budget should afford: fewer leave a U-Net trained from scratch short of its best
TRAIN_SHARE = 0.8  # of the budget, for training steps; the rest is setup, validation and the end of the run
MIN_BATCH = 2  # images a step at the largest crop
MIN_CROP = 64  # px, or 4 object diameters when larger: the smallest crop the budget may shrink to
MIN_BATCH_NORM = 8  # under this many images a batch's statistics are too noisy for batch norm
DEFAULT_BUDGET_S = 15.0 * 60  # the steps of a run given neither --budget nor --max-steps: what fits 15 minutes
CONTRAST_SPREAD = 1.5  # 16-bit files whose contrast differs more than this are scaled per image (segment)
LOG_SPAN = 4.0  # noise levels spanning more than this ratio are drawn log-uniformly
BUDGET_CAP = 1_000_000  # max_steps of a budgeted run until its warm-up fixes it
FEW_FILES = 100  # under this many files, crops of at most half the short side: random windows add variety
MIN_TUNE_FILES = 3  # held-out files the instance thresholds are tuned on, where the data allows
MAX_VAL_FRACTION = 0.25  # of the training files, the most the plan holds out for validation
SMALL_VAL = 10  # held-out files under which picking the best checkpoint on them picks noise
# volumes
MIN_DEPTH_3D, MAX_DEPTH_3D = 2, 6
CPU_MEMORY_MB = 1024.0  # estimated activations of a training step on a CPU (the sliding window's default budget)
GPU_MEMORY_SHARE = 0.5  # of a GPU's memory, for a training step's estimated activations
# a training step keeps every activation for the backward pass and their gradients: the forward-only estimate
# of estimate_window_bytes times this. Measured on the CPU (fp32, one thread, peak RSS growth over one step of
# Adam after a warm-up): 3.5-3.7x for a depth-3 double-conv UNet (16-64 channels, 2x32x64x64 and 1x32x96x96),
# 1.2x for pix2pix's (conv_unit none, 32-256 channels, 1x32x64x64)
TRAIN_MEMORY_FACTOR = 4.0
OBJECT_SPAN = 3  # a patch spans this many median object extents per axis, where the stacks and memory allow
ANISOTROPY_2_5D = 3.0  # z this many times coarser than in-plane: the 2.5D option is advised


@dataclass(frozen=True)
class Decision:
    """One planned setting: the dotted config key, its value and why."""

    key: str
    value: Any
    reason: str
    applied: bool = True  # False: advice the plan prints (an alternative), never an override

    def override(self) -> str:
        value = str(self.value).lower() if isinstance(self.value, bool) else self.value
        if isinstance(self.value, list):  # one shell word: [2.0,0.5,0.5]
            value = "[" + ",".join(str(v) for v in self.value) + "]"
        return f"{self.key}={value}"


def _floor_to(value: float, multiple: int) -> int:
    return int(value // multiple) * multiple


def crop_and_depth(fp: Fingerprint, px_per_s: float | None = None, budget_s: float = DEFAULT_BUDGET_S,
                   steps: int = MIN_STEPS, depth: int | None = None, crop: int | None = None,
                   halves: bool = False) -> list[Decision]:
    """The crop covers several object diameters with context, up to what the images and the time budget allow;
    the depth keeps the bottleneck at ``MIN_BOTTLENECK`` px or more; the batch fills the step's pixels.

    ``px_per_s`` is the generator's measured training speed here (:mod:`.probe`): a step may hold the pixels
    that let ``steps`` steps fit into ``TRAIN_SHARE`` of ``budget_s``. Without it the crop is ``CROP_CAP``.
    With ``halves`` the generator trains on half-size sub-images of each crop (Neighbor2Neighbor), so the crop
    is a multiple of ``2 * 2**depth``.
    """
    side = fp.images.min_side
    objects = fp.labels.object_diameter if fp.labels is not None else 0.0
    afford = PIXELS_PER_BATCH if px_per_s is None else px_per_s * TRAIN_SHARE * budget_s / steps
    # the largest crop whose MIN_BATCH images fit the pixels a step may hold; never under MIN_CROP (or the image)
    fits = int(math.sqrt(afford / MIN_BATCH))
    floor = min(side, max(MIN_CROP, int(4 * objects)))
    fixed_depth, fixed_crop = depth is not None, crop is not None
    few = fp.images.count < FEW_FILES and max(floor, side // 2) < min(side, CROP_CAP, max(fits, floor))
    if crop is None:
        top = min(side, CROP_CAP, max(fits, floor))
        if few:  # seen whole, few files are few views; random half-size windows are many
            top = max(floor, side // 2)
        crop = max(_floor_to(top, 2 ** MIN_DEPTH), 2 ** MIN_DEPTH)
    if depth is None:
        depth = max(MIN_DEPTH, min(MAX_DEPTH, int(math.log2(crop / MIN_BOTTLENECK))))
    multiple = 2 ** (depth + int(halves))
    if not fixed_crop:
        crop = _floor_to(crop, multiple) or multiple
    speed = ("" if px_per_s is None else f"; a training step here runs at {px_per_s / 1000:.0f} k px/s (measured), "
             f"so {steps} steps in {TRAIN_SHARE:.0%} of {budget_s / 60:g} min hold {afford / 1000:.0f} k px each")
    why_crop = (f"the smallest image side is {side} px" + (f", objects are {objects:.0f} px across" if objects else "")
                + speed + f"; the crop takes as much as fits under {CROP_CAP} px, a multiple of {multiple}"
                + (" (the model sees its half-size sub-images)" if halves else "")
                + (f" ({crop / objects:.1f} object diameters)" if objects else ""))
    if few and not fixed_crop:
        why_crop += (f"; with {fp.images.count} files (under {FEW_FILES}) at most half the {side}-px side, so random "
                     "windows add the variety the files lack")
    if crop >= side:
        why_crop = f"the images are {side} px on their short side: train on them whole (a multiple of {multiple})"
    why_depth = f"{crop} px halved {depth} times leaves a {crop // 2 ** depth}-px bottleneck (at least {MIN_BOTTLENECK})"
    decisions = [] if fixed_crop else [Decision("data.crop_size", crop, why_crop)]
    if not fixed_depth:
        decisions.append(Decision("generator.depth", depth, why_depth))
    return decisions + [batch_size(fp, crop, afford)]


def memory_budget() -> float:
    """Bytes of estimated activations a training step may hold: ``GPU_MEMORY_SHARE`` of the GPU training
    would use, else ``CPU_MEMORY_MB``."""
    if torch.cuda.is_available():
        return GPU_MEMORY_SHARE * torch.cuda.get_device_properties(0).total_memory
    return CPU_MEMORY_MB * 2**20


def _ceil_to(value: float, multiple: int) -> int:
    return int(math.ceil(value / multiple)) * multiple


def _patch_at(size_um: float, spacing: list[float], factors: tuple[int, int], caps: tuple[int, int],
              floors: tuple[int, int]) -> tuple[int, int]:
    """The (z, y = x) patch of about ``size_um`` on a side: each axis ``size_um`` over its spacing, floored to
    its factor, no smaller than ``floors``, no larger than ``caps``."""
    in_plane = max(spacing[1], spacing[2])
    return tuple(min(cap, max(low, _floor_to(size_um / s, f)))  # type: ignore[return-value]
                 for s, f, cap, low in zip((spacing[0], in_plane), factors, caps, floors))


def _patch_for(g: UNetConfig, fp: Fingerprint, spacing: list[float], budget: float, multiple_xy: int,
               fixed: tuple[int | None, int | None]) -> tuple[int, int, int, int] | None:
    """The largest (z, y = x) patch whose ``MIN_BATCH`` copies fit ``budget`` for generator ``g``, with its
    factors ``(fz, fxy)``; None when the stacks are thinner than one factor."""
    fz, fy, fx = g.axis_factors
    fxy = max(fy, fx) * multiple_xy
    caps = (_floor_to(fp.volumes.min_depth, fz), _floor_to(fp.images.min_side, fxy))
    if min(caps) == 0:
        return None
    extent = (fp.labels.object_extent if fp.labels is not None and fp.labels.object_extent else [0.0] * 3)
    floors = (min(caps[0], max(fz, _ceil_to(OBJECT_SPAN * extent[0], fz))),
              min(caps[1], max(fxy, _ceil_to(OBJECT_SPAN * max(extent[1:]), fxy))))
    caps = tuple(f if f is not None else c for f, c in zip(fixed, caps))  # type: ignore[assignment]
    floors = tuple(f if f is not None else lo for f, lo in zip(fixed, floors))  # type: ignore[assignment]

    def cost(patch: tuple[int, int]) -> float:
        return MIN_BATCH * TRAIN_MEMORY_FACTOR * estimate_window_bytes(g, (patch[0], patch[1], patch[1]))

    sizes = sorted({k * f * s for f, s, cap in ((fz, spacing[0], caps[0]), (fxy, max(spacing[1:]), caps[1]))
                    for k in range(1, cap // f + 1)})
    best = _patch_at(0.0, spacing, (fz, fxy), caps, floors)
    for size in sizes:  # the patch grows with its physical size; keep the largest that fits
        patch = _patch_at(size, spacing, (fz, fxy), caps, floors)
        if cost(patch) > budget:
            break
        best = patch
    return best[0], best[1], fz, fxy


def volume_geometry(fp: Fingerprint, user: TrainConfig, explicit: frozenset[str] | set[str], budget: float,
                    halves: bool = False) -> list[Decision]:
    """``generator.dims``, ``generator.spacing``, the patch (``data.crop_depth`` x ``data.crop_size`` squared),
    ``generator.depth`` and ``batch_size`` for Z stacks, nnU-Net's way.

    The patch is as physically cubic as the stacks allow (an axis of coarse spacing gets fewer voxels), spans
    ``OBJECT_SPAN`` median object extents per axis where it can, and grows until ``MIN_BATCH`` patches fill the
    memory ``budget`` (bytes of :func:`~pix2pix_unet.runtime.volume_window.estimate_window_bytes` times
    ``TRAIN_MEMORY_FACTOR``). Each axis is a multiple of its downsampling factor
    (:attr:`~pix2pix_unet.config.UNetConfig.axis_factors`: a coarse z is pooled later, so its factor is smaller).
    The depth is the deepest in ``MIN_DEPTH_3D..MAX_DEPTH_3D`` whose coarsest level keeps ``MIN_BOTTLENECK``
    voxels on every axis. The batch is what the budget holds at that patch.
    """
    vol = fp.volumes
    decisions = []
    if "generator.dims" not in explicit:
        decisions.append(Decision("generator.dims", 3, f"the {fp.images.count} training files are Z stacks "
                                  f"({min(vol.depths)}-{max(vol.depths)} slices): a 3D UNet"))
    spacing = list(user.generator.spacing) if "generator.spacing" in explicit and user.generator.spacing else None
    if spacing is None and vol.spacing is not None:
        spacing = [round(v, 6) for v in vol.spacing]
        decisions.append(Decision("generator.spacing", spacing, f"the voxel size every file states, (z, y, x) µm; "
                                  f"z is {vol.anisotropy:.1f}x the in-plane spacing, so kernels and pooling "
                                  "follow it (a coarse z is pooled later)"))
    elif spacing is None:
        spacing = [1.0, 1.0, 1.0]
        why = ("the files state no voxel size" if vol.same_spacing else
               "the files' voxel sizes differ (training refuses them until they are resampled to one)")
        decisions.append(Decision("generator.spacing", "null", f"{why}: isotropic voxels are assumed; set "
                                  "generator.spacing=[z,y,x] if they are not", applied=False))
    fixed_depth = user.generator.depth if "generator.depth" in explicit else None
    fixed = (user.data.crop_depth if "data.crop_depth" in explicit else None,
             user.data.crop_size if "data.crop_size" in explicit else None)
    channels = fp.images.channels
    multiple_xy = 2 if halves else 1
    depths = [fixed_depth] if fixed_depth else range(MAX_DEPTH_3D, MIN_DEPTH_3D - 1, -1)
    chosen = None
    for depth in depths:
        g = dataclasses.replace(user.generator, dims=3, spacing=spacing, depth=depth, in_channels=channels)
        found = _patch_for(g, fp, spacing, budget, multiple_xy, fixed)
        if found is None:
            continue
        chosen = (depth, g, *found)
        pz, pxy, fz, fxy = found
        if pz // fz >= MIN_BOTTLENECK and pxy // fxy >= MIN_BOTTLENECK:
            break
    if chosen is None:
        raise DatasetError(f"{fp.data}: stacks of {fp.volumes.min_depth} slices are thinner than the downsampling "
                           f"factor along z at depth {MIN_DEPTH_3D}; a 2D model with context slices "
                           "(data.context_slices) fits them")
    depth, g, pz, pxy, fz, fxy = chosen
    memory = TRAIN_MEMORY_FACTOR * estimate_window_bytes(g, (pz, pxy, pxy))
    extent = fp.labels.object_extent if fp.labels is not None and fp.labels.object_extent else None
    physical = f" ({pz * spacing[0]:g} x {pxy * spacing[1]:g} x {pxy * spacing[2]:g} µm)"
    why_patch = (f"the stacks are at least {vol.min_depth} x {fp.images.min_side} x {fp.images.min_side} voxels"
                 + (f", objects span {extent[0]:.0f} x {extent[1]:.0f} x {extent[2]:.0f} voxels (median)" if extent
                    else "")
                 + f"; the patch is about as long in µm on every axis as the stacks allow{physical}, up to what "
                 f"{MIN_BATCH} patches "
                 f"hold in {budget / 2**20:.0f} MiB of estimated training activations, each axis a multiple of its "
                 f"downsampling factor ({fz} along z, {fxy} in-plane)")
    if "data.crop_depth" not in explicit:
        decisions.append(Decision("data.crop_depth", pz, why_patch))
    if "data.crop_size" not in explicit:
        decisions.append(Decision("data.crop_size", pxy, why_patch))
    if fixed_depth is None:
        decisions.append(Decision("generator.depth", depth, f"{pz} x {pxy} x {pxy} voxels over the factors {fz} x "
                                  f"{fxy} x {fxy} leave a {pz // fz} x {pxy // fxy} x {pxy // fxy} coarsest level "
                                  f"(at least {MIN_BOTTLENECK} per axis where the stacks allow; strides "
                                  f"{[list(st) for st in g.strides]})"))
    batch = max(1, min(16, int(budget // memory), fp.images.count))
    decisions.append(Decision("batch_size", batch, f"a {pz} x {pxy} x {pxy} patch holds about {memory / 2**20:.0f} "
                              f"MiB of estimated training activations; {budget / 2**20:.0f} MiB hold {batch}"
                              + (f", at most the {fp.images.count} training files" if batch == fp.images.count
                                 else "")))
    return decisions


def two_and_a_half_d(fp: Fingerprint, task: Task) -> list[Decision]:
    """Advice, never applied: with z at least ``ANISOTROPY_2_5D`` times coarser than in-plane, a 2D model seeing
    each slice with its neighbours as channels (``data.context_slices``) is the recommended alternative for
    segmentation, from the measurement on the built-in volumes; under it, a 3D model."""
    if task is not Task.SEGMENT or fp.volumes is None or fp.volumes.spacing is None:
        return []
    ratio, channels = fp.volumes.anisotropy, fp.images.channels
    alternative = f"data.context_slices=1 generator.dims=2 generator.in_channels={3 * channels}"
    if ratio >= ANISOTROPY_2_5D:
        return [Decision("data.context_slices", 1, f"z is {ratio:.1f}x coarser than in-plane "
                         f"(at least {ANISOTROPY_2_5D:g}x), so a 2D model with a neighbouring slice on each side as "
                         f"channels ({alternative}) is worth a run beside this 3D plan: on the built-in volumes at "
                         "2 x 0.5 x 0.5 µm (4x) it reached object F1 0.877 against 0.737 for the 3D UNet in the same "
                         "8-min CPU budget (benchmarks/results/volumes_2026-12-05.json)", applied=False)]
    return [Decision("data.context_slices", 0, f"z is {ratio:.1f}x the in-plane spacing (under "
                     f"{ANISOTROPY_2_5D:g}x): a 3D model sees z nearly as finely as y and x; the 2.5D option is "
                     "not advised", applied=False)]


def volume_augmentation(fp: Fingerprint) -> list[Decision]:
    """What :class:`~pix2pix_unet.data.augment.VolumeAugmentation` does with this voxel size (it reads the
    spacing itself; the decision says why, and turns augmentation on)."""
    ratio = fp.volumes.anisotropy
    isotropic = fp.volumes.spacing is None or max(fp.volumes.spacing) <= (1 + 0.05) * min(fp.volumes.spacing)
    turns = ("90° turns about any axis (isotropic voxels)" if isotropic else
             f"90° turns in the (y, x) plane only (z is {ratio:.1f}x the in-plane spacing: a turn through z would "
             "make the coarse axis fine)")
    return [Decision("segment.augment", True, f"{fp.images.count} training volumes: flips along every axis, "
                     f"{turns}, an elastic deformation measured in µm (less along a coarse z) and a random gain "
                     "and offset")]


def batch_size(fp: Fingerprint, crop: int, afford: float = PIXELS_PER_BATCH) -> Decision:
    batch = max(1, min(16, int(afford // (crop * crop)), fp.images.count))
    return Decision("batch_size", batch, f"about {afford / 1000:.0f} k px per step at a {crop}-px crop"
                    + (f", at most the {fp.images.count} training files" if batch == fp.images.count else ""))


def intensity(fp: Fingerprint, prefix: str) -> list[Decision]:
    """8-bit data keeps the dtype rule. 16-bit data whose files differ in contrast (the brightest file's
    0.5-99.5 percentile span over ``CONTRAST_SPREAD`` times the dimmest's) is scaled per image, so that a dim
    field looks like a bright one; otherwise, when it uses a small part of its range, every file gets the
    dataset's own 0.5-99.5 percentile range (never per image, so tiles and files agree)."""
    used, spread = fp.images.range_used, fp.images.contrast_spread
    if fp.images.dtype != "uint16":
        return [Decision(f"{prefix}.intensity", "dtype",
                         f"{fp.images.dtype} images use {used:.0%} of their range: the dtype's range maps to [-1, 1]")]
    if prefix == "segment" and spread > CONTRAST_SPREAD:
        return [Decision(f"{prefix}.intensity", "image",
                         f"the files' contrast differs {spread:.1f}-fold (over {CONTRAST_SPREAD:g}): each image's own "
                         "min..max maps to [-1, 1], so dim and bright fields look alike")]
    if used > 0.5:
        return [Decision(f"{prefix}.intensity", "dtype",
                         f"{fp.images.dtype} images use {used:.0%} of their range: the dtype's range maps to [-1, 1]")]
    low = min(p[0] for p in fp.images.percentiles)
    high = max(p[-1] for p in fp.images.percentiles)
    reason = (f"16-bit images use {used:.1%} of their range and their files' contrast differs only {spread:.1f}-fold: "
              f"the dataset's 0.5-99.5 percentiles {low:g}..{high:g} map to [-1, 1], the same for every file")
    return [Decision(f"{prefix}.intensity", "range", reason), Decision(f"{prefix}.intensity_min", low, reason),
            Decision(f"{prefix}.intensity_max", high, reason)]


def augmentation(fp: Fingerprint) -> list[Decision]:
    """Few files get strong geometric augmentation, many files mild: the augmentation stands in for data."""
    n = fp.images.count
    if n <= 30:
        return [Decision("segment.rotate_degrees", 45.0, f"{n} training files: strong rotations"),
                Decision("segment.scale", 0.2, f"{n} training files: zoom by up to 20 %")]
    if n >= 300:
        return [Decision("segment.rotate_degrees", 10.0, f"{n} training files: mild rotations suffice"),
                Decision("segment.scale", 0.05, f"{n} training files: zoom by up to 5 %")]
    return [Decision("segment.rotate_degrees", 15.0, f"{n} training files: the default rotations")]


def segmentation(fp: Fingerprint) -> list[Decision]:
    labels = fp.labels
    decisions = []
    rare = min(labels.class_frequency[1:] or [1.0])
    decisions.append(Decision("segment.class_balance", rare < 0.25,
                              f"the rarest foreground class covers {rare:.1%} of the pixels"
                              + (" (under 25 %: weigh classes by frequency)" if rare < 0.25 else "")))
    thin = labels.structure_width and labels.structure_width <= 6
    touching = labels.touching >= 0.1 and not thin
    decisions.append(Decision("segment.instances", "on" if touching else "off",
                              f"{labels.touching:.0%} of the objects touch another"
                              + (" (thin structures: no instances)" if thin else "")
                              + (": border class + seeded watershed" if touching else "")))
    if touching:
        sigma = max(2.0, min(10.0, labels.object_diameter / 6))
        decisions.append(Decision("segment.sigma", round(sigma, 1),
                                  f"the U-Net border weight decays over a sixth of the {labels.object_diameter:.0f}-px"
                                  " object diameter"))
    if thin:
        decisions.append(Decision("segment.boundary_weight", 0.0,
                                  f"structures are {labels.structure_width:.1f} px wide: a border weight would "
                                  "weigh the whole foreground"))
    return decisions


def normalisation(batch: int) -> list[Decision]:
    if batch >= MIN_BATCH_NORM:
        return []
    return [Decision("generator.norm", "instance", f"a batch of {batch}: batch norm's statistics are noisy under "
                     f"{MIN_BATCH_NORM} images, and eval mode would use running ones; instance norm instead")]


def noise_sampling(fp: Fingerprint, noise: Degradation, low_is_yours: bool = False) -> list[Decision]:
    """Noise levels drawn uniformly leave weak noise under-served (from 0.01 to 0.2, one draw in 19 falls under
    0.02); drawn log-uniformly, each doubling of sigma gets the same share, as each costs the input 6 dB alike."""
    low = noise.low if low_is_yours else max(noise.low, fp.noise_sigma or 0.0)  # the plan may raise low (above)
    if noise.p == 0 or low <= 0 or noise.high / low < LOG_SPAN:
        return []
    return [Decision("restore.gaussian_noise.log_uniform", True,
                     f"noise sigma spans {low:.3g}..{noise.high:.3g} ({noise.high / low:.0f}x): drawn log-uniformly, "
                     "every doubling of sigma trains as often, so weak noise is not under-served")]


def _adversarial(task: Task, user: TrainConfig) -> bool:
    """Whether the objective has a discriminator's term."""
    return {Task.SEGMENT: user.segment.adversarial, Task.RESTORE: user.restore.gan_weight > 0,
            Task.TRANSLATE: user.loss.gan_weight > 0}[task]


def optimiser(task: Task, user: TrainConfig) -> list[Decision]:
    """Without an adversarial term the objective is an ordinary regression or classification loss: AdamW at
    a higher rate with a cosine decay (NAFNet's and most segmenters' recipe) trains it faster than pix2pix's
    GAN-stable Adam (lr 2e-4, beta1 0.5). With a discriminator, pix2pix's recipe stays."""
    if _adversarial(task, user):
        return []
    why = "no adversarial term in the objective: "
    return [Decision("optim.lr_g", 1e-3, why + "a regression/classification loss takes a 5x higher rate than a GAN"),
            Decision("optim.beta1", 0.9, why + "Adam's usual momentum (0.5 only steadies a GAN)"),
            Decision("optim.weight_decay", 1e-4, why + "AdamW's decoupled weight decay"),
            Decision("optim.decay", "cosine", why + "the rate decays along half a cosine over the second half")]


def blind_spot_network(user: TrainConfig, explicit: frozenset[str] | set[str]) -> list[Decision]:
    """N2V2's changes to a UNet trained by blind spots (Höck et al. 2022): blur-pool down-sampling and no top
    skip. A blind-spot net's full-resolution skip and its strided sampling let the hidden pixel's neighbourhood
    through at the pixel grid's period, which shows as checkerboards."""
    g = user.generator
    if g.architecture is not Architecture.UNET or g.conv_unit is ConvUnit.NONE:
        return []
    why = "blind spots (N2V2): "
    decisions = []
    if "generator.down" not in explicit and g.down is not Down.BLURPOOL:
        decisions.append(Decision("generator.down", Down.BLURPOOL.value, why + "max then blur at stride 2, in place "
                                  f"of {g.down.value} down-sampling, against checkerboard artefacts"))
    if "generator.top_skip" not in explicit and g.top_skip:
        decisions.append(Decision("generator.top_skip", False, why + "the full-resolution skip is dropped, so the "
                                  "output is built from the coarser, less aliased levels"))
    return decisions


def held_out(fp: Fingerprint, fraction: float) -> int:
    """The validation files a run will have: the val/ folder's, else ``fraction`` of the training files
    (as :func:`~pix2pix_unet.data.folders.hold_out` takes them)."""
    return fp.val_count if fp.val_count is not None else max(1, math.floor(fp.images.count * fraction))


def validation(fp: Fingerprint, user: TrainConfig, explicit: frozenset[str] | set[str],
               tunes: bool, adversarial: bool) -> list[Decision]:
    """What is held out, and which checkpoint is exported.

    Instance thresholds are tuned on half of the held-out files (:func:`~pix2pix_unet.data.split.tune_and_report`);
    at 10 % of 30 files one file decides them, so a tuning run holds out enough files for ``MIN_TUNE_FILES`` (up
    to ``MAX_VAL_FRACTION`` of the files). On under ``SMALL_VAL`` held-out files the best of a run's checkpoints
    is chosen by noise; a loss without an adversarial term, whose rate decays to 0, ends on its trained weights,
    so those are exported.
    """
    decisions = []
    fraction = user.data.val_fraction
    if tunes and fp.val_count is None and "data.val_fraction" not in explicit:
        want = 2 * MIN_TUNE_FILES
        fraction = min(MAX_VAL_FRACTION, max(fraction, want / fp.images.count))
        if held_out(fp, fraction) > held_out(fp, user.data.val_fraction):
            decisions.append(Decision(
                "data.val_fraction", round(fraction, 3),
                f"the instance thresholds are tuned on half the held-out files: {held_out(fp, fraction)} of the "
                f"{fp.images.count} files are held out (at {user.data.val_fraction:g}, "
                f"{held_out(fp, user.data.val_fraction)}: one file would decide them)"))
    n_val = held_out(fp, fraction)
    if not adversarial and n_val < SMALL_VAL and "export" not in explicit:
        decisions.append(Decision(
            "export", "last", f"{n_val} held-out file(s): the best checkpoint on so few is chosen by noise; the "
            "rate decays to 0, so the last step's weights are the trained ones"))
    return decisions


def plan(fp: Fingerprint, max_steps: int | None = None, explicit: frozenset[str] | set[str] = frozenset(),
         user: TrainConfig | None = None, px_per_s: float | None = None) -> list[Decision]:
    """The decisions for ``fp``'s task, in the order they were taken.

    Args:
        max_steps: the steps the user asked for, if any (the validation cadence follows them).
        explicit: the keys the user set; with neither ``max_steps`` nor ``budget_s`` among them the run gets
            the default time budget.
        user: the config as the user set it (the defaults elsewhere): rules that refine a user's setting, such
            as the noise levels they asked for, read it.
        px_per_s: the generator's training speed on this machine (:func:`.probe.pixels_per_second`); the
            crop and batch then fit the budget's steps, else they are sized for ``PIXELS_PER_BATCH``.
    """
    user = user or TrainConfig(task=Task(fp.task))
    task = Task(fp.task)
    steps = max_steps if max_steps is not None and "budget_s" not in explicit else MIN_STEPS
    budget_s = user.budget_s or DEFAULT_BUDGET_S
    # restore keeps its preset's depth (NAFNet: local detail, not global context); the user's keys are kept
    depth = user.generator.depth if task is Task.RESTORE or "generator.depth" in explicit else None
    crop = user.data.crop_size if "data.crop_size" in explicit else None
    self_supervised = task is Task.RESTORE and user.restore.self_supervised is not SelfSupervised.NONE
    halves = task is Task.RESTORE and user.restore.self_supervised is SelfSupervised.NEIGHBOR2NEIGHBOR
    volumes = fp.volumes is not None and (user.generator.dims == 3 or "generator.dims" not in explicit)
    if volumes:
        decisions = volume_geometry(fp, user, explicit, memory_budget(), halves=halves)
        decisions += two_and_a_half_d(fp, task)
    else:
        decisions = crop_and_depth(fp, px_per_s, budget_s, steps, depth, crop, halves=halves)
    if task is not Task.RESTORE:
        decisions += normalisation(next(d.value for d in decisions if d.key == "batch_size"))
    if task is Task.SEGMENT:
        decisions += (intensity(fp, "segment") + (volume_augmentation(fp) if volumes else augmentation(fp))
                      + segmentation(fp))
        decisions.append(Decision("generator.dropout", 0.0, "segmentation trains on few files with strong "
                                  "augmentation: no dropout in the decoder"))
    elif task is Task.RESTORE and self_supervised:  # the images are the noisy ones: nothing is degraded
        decisions += intensity(fp, "restore")
        if user.restore.self_supervised is SelfSupervised.BLIND_SPOT:
            decisions += blind_spot_network(user, explicit)
    elif task is Task.RESTORE:
        decisions += intensity(fp, "restore")
        if fp.noise_sigma is not None and fp.noise_sigma > 0.01:
            decisions.append(Decision("restore.gaussian_noise.low", round(fp.noise_sigma, 4),
                                      f"the clean images already hold noise of sigma {fp.noise_sigma:.3f}: "
                                      "weaker added noise would teach nothing"))
        decisions += noise_sampling(fp, user.restore.gaussian_noise, "restore.gaussian_noise.low" in explicit)
    adversarial = _adversarial(task, user)
    decisions += optimiser(task, user)
    instances = (user.segment.instances.value if "segment.instances" in explicit
                 else next((d.value for d in decisions if d.key == "segment.instances"), "off"))
    tunes = task is Task.SEGMENT and instances == "on"
    decisions += validation(fp, user, explicit, tunes, adversarial)
    if max_steps is not None:
        every = max(50, max_steps // 10)
        decisions.append(Decision("sample_every", every, f"validate ten times over {max_steps} steps"))
    elif not {"max_steps", "budget_s"} & set(explicit):
        minutes = f"{DEFAULT_BUDGET_S / 60:g}"
        decisions += [Decision("budget_s", DEFAULT_BUDGET_S, f"neither --budget nor --max-steps: the default "
                               f"budget, {minutes} min; a warm-up on this machine fixes the steps that fit"),
                      Decision("max_steps", BUDGET_CAP, "a cap only: the budget's warm-up decides the steps")]
    return decisions


def overrides(decisions: list[Decision], explicit: set[str]) -> list[str]:
    """``key=value`` overrides of the applied decisions whose key the user did not set (an explicit key wins)."""
    return [d.override() for d in decisions if d.applied and d.key not in explicit]


def to_json(fp: Fingerprint, decisions: list[Decision]) -> dict[str, Any]:
    return {"fingerprint": fp.to_dict(), "plan": [asdict(d) for d in decisions]}


__all__ = ["Decision", "batch_size", "blind_spot_network", "crop_and_depth", "held_out", "memory_budget",
           "noise_sampling", "optimiser", "overrides", "plan", "to_json", "two_and_a_half_d", "validation",
           "volume_augmentation", "volume_geometry"]
