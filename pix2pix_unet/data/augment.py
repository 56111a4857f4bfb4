"""Paired augmentation on the device: input and target always get the same geometry."""

from __future__ import annotations

import math
from collections.abc import Sequence

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel1d
from torch import nn

ISOTROPY_TOLERANCE = 0.05  # voxel sizes within this relative difference count as isotropic (any-axis turns)
REFERENCE_CROP = 64  # px: the 2D crop whose elastic displacement (kornia's, at the same alpha and sigma) 3D matches


class PairedAugmentation(nn.Module):
    """Random crop and horizontal flip applied identically to both sides of a pair.

    Built on kornia's ``AugmentationSequential`` with two ``input`` keys, so one
    set of sampled parameters drives both tensors; it runs on whatever device the
    batch is on.

    Args:
        crop_size: square crop, or None to keep the size.
        flip: random horizontal flips.

    Shape:
        ``(B, Ca, H, W), (B, Cb, H, W)`` -> ``(B, Ca, h, w), (B, Cb, h, w)``.
    """

    def __init__(self, crop_size: int | None, flip: bool) -> None:
        super().__init__()
        ops: list[nn.Module] = []
        if crop_size is not None:
            ops.append(K.RandomCrop((crop_size, crop_size)))
        if flip:
            ops.append(K.RandomHorizontalFlip())
        self.crop_size = crop_size
        self.pipeline = K.AugmentationSequential(*ops, data_keys=["input", "input"]) if ops else None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pipeline is None:
            return a, b
        if self.crop_size is not None and min(a.shape[-2:]) < self.crop_size:
            raise ValueError(f"crop_size={self.crop_size} is larger than the images ({a.shape[-2]}x{a.shape[-1]})")
        out_a, out_b = self.pipeline(a, b)
        return out_a, out_b


def elastic_std(alpha: float, sigma: float) -> float:
    """The displacement per axis, px (standard deviation), of kornia's 2D elastic transform with ``alpha`` and
    ``sigma`` on a ``REFERENCE_CROP``-px crop: uniform noise in [-1, 1] (variance 1/3) smoothed by a Gaussian of
    ``sigma`` px keeps a variance of about ``1 / (3 * 4 pi sigma^2)``, times ``alpha``, in units of half the crop.
    2.0 px for the defaults (alpha 3, sigma 8)."""
    return alpha * math.sqrt(1 / 3) / (2 * math.sqrt(math.pi) * sigma) * REFERENCE_CROP / 2


def _smooth(noise: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(c, z, y, x)`` noise, each axis its own sigma (cells), without padding:
    the result is smaller by each kernel's width less one."""
    out = noise[None]  # (1, c, z, y, x)
    c = noise.shape[0]
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0:
            continue
        size = 2 * math.ceil(2.5 * sigma) + 1
        kernel = get_gaussian_kernel1d(size, sigma, device=noise.device, dtype=noise.dtype)[0]
        shape = [1, 1, 1]
        shape[axis] = size
        out = F.conv3d(out, kernel.reshape(1, 1, *shape).expand(c, 1, *shape), groups=c)
    return out[0]


def elastic_displacement3d(shape: Sequence[int], spacing: Sequence[float] | None, alpha: float, sigma: float,
                           device: torch.device | str | None = None) -> torch.Tensor:
    """A smooth random displacement field for a ``(z, y, x)`` volume, in voxels, measured in space.

    The field is 2D elastic's (:func:`elastic_std` px per axis, smooth over ``sigma`` px) made physical: both
    are taken in voxels of the finest axis and turned into µm, so each axis moves by the same distance in µm
    (a z twice as coarse moves half as many voxels) and is as smooth in µm. It is drawn on a coarse grid (a
    cell about half the smoothing length; global torch RNG), smoothed by a Gaussian, scaled to its standard
    deviation and upsampled trilinearly.

    Args:
        shape: ``(z, y, x)`` voxels.
        spacing: ``(z, y, x)`` voxel size, any unit; None: isotropic.
        alpha: strength, as ``segment.elastic_alpha`` (0: no displacement).
        sigma: smoothness in voxels of the finest axis, as ``segment.elastic_sigma``.

    Returns:
        ``(3, z, y, x)`` displacements along z, y and x, in voxels.
    """
    spacing = [1.0, 1.0, 1.0] if spacing is None else [float(v) for v in spacing]
    if len(shape) != 3 or len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"elastic_displacement3d: shape {tuple(shape)} and spacing {tuple(spacing)} must be three "
                         "sizes (z, y, x), the spacing positive")
    if alpha <= 0:
        return torch.zeros(3, *shape, device=device)
    finest = min(spacing)
    sigmas = [sigma * finest / s for s in spacing]  # voxels of each axis
    steps = [max(1, int(v // 2)) for v in sigmas]  # coarse cells, voxels
    coarse = [math.ceil((n - 1) / d) + 1 for n, d in zip(shape, steps)]
    margins = [math.ceil(2.5 * v / d) for v, d in zip(sigmas, steps)]
    noise = torch.randn(3, *(n + 2 * m for n, m in zip(coarse, margins))).to(device)
    field = _smooth(noise, [v / d for v, d in zip(sigmas, steps)])  # (3, cz, cy, cx)
    field = field / field.std().clamp_min(1e-12)
    field = F.interpolate(field[None], size=tuple(shape), mode="trilinear", align_corners=True)[0]
    std_um = elastic_std(alpha, sigma) * finest
    return field * torch.tensor([std_um / s for s in spacing], device=field.device).reshape(3, 1, 1, 1)


def warp3d(volume: torch.Tensor, displacement: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resample a ``(c, z, y, x)`` volume at each voxel plus ``displacement`` ``(3, z, y, x)`` (voxels along z,
    y, x), reflecting at the borders. ``mode="nearest"`` keeps ids ids (label and instance maps, as floats or
    ints; ints come back as their dtype); ``bilinear`` is trilinear for the image and float maps. Zero
    displacement returns the volume (align_corners=True: the identity grid lies on the voxel centres)."""
    z, y, x = volume.shape[-3:]
    axes = [torch.linspace(-1, 1, n, device=volume.device) if n > 1 else torch.zeros(1, device=volume.device)
            for n in (z, y, x)]
    identity = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (3, z, y, x): z, y, x in [-1, 1]
    scale = torch.tensor([2 / (n - 1) if n > 1 else 0.0 for n in (z, y, x)], device=volume.device)
    grid = identity + displacement.to(volume.device) * scale.reshape(3, 1, 1, 1)
    grid = grid.flip(0).permute(1, 2, 3, 0)[None]  # (1, z, y, x, 3) with x, y, z last, as grid_sample reads it
    values = volume.float() if not volume.is_floating_point() else volume
    out = F.grid_sample(values[None], grid.to(values.dtype), mode=mode, padding_mode="reflection",
                        align_corners=True)[0]
    return out.round().to(volume.dtype) if not volume.is_floating_point() else out


class VolumeAugmentation(nn.Module):
    """Random flips along every axis, 90-degree turns and an elastic deformation, the same for a volume, its
    label map (nearest neighbour: ids stay ids) and its float maps; with ``intensity``, a random gain and offset
    of the volume's values.

    The turns stay in the (y, x) plane unless the voxels are isotropic (``spacing`` within
    ``ISOTROPY_TOLERANCE``; unknown counts as anisotropic): a turn through a coarse z would make it fine. With
    isotropic voxels the plane is drawn among those whose two extents are equal. The elastic deformation
    (:func:`elastic_displacement3d`) moves every axis by the same distance in µm. Runs on the batch's device
    with the global torch RNG.

    Args:
        flip: flips along z, y and x, each with probability 0.5.
        turn: 90-degree turns (0-3, uniform); a plane's turns need its two extents equal.
        intensity: gain in [0.8, 1.2] and offset in [-0.1, 0.1] on the [-1, 1] values.
        spacing: the voxel size ``(z, y, x)``, for the turns and the elastic deformation.
        elastic_alpha: strength of the elastic deformation (``segment.elastic_alpha``); 0: none.
        elastic_sigma: its smoothness, voxels of the finest axis (``segment.elastic_sigma``).
        elastic_p: the probability that a patch is deformed (0.5, as in 2D).

    Shape:
        ``(B, C, Z, Y, X), (B, Z, Y, X) int, (B, M, Z, Y, X)`` -> the same shapes.
    """

    def __init__(self, flip: bool, turn: bool, intensity: bool, spacing: Sequence[float] | None = None,
                 elastic_alpha: float = 0.0, elastic_sigma: float = 8.0, elastic_p: float = 0.5) -> None:
        super().__init__()
        self.flip, self.turn, self.intensity = flip, turn, intensity
        self.spacing = None if spacing is None else [float(v) for v in spacing]
        self.isotropic = self.spacing is not None and max(self.spacing) <= (1 + ISOTROPY_TOLERANCE) * min(self.spacing)
        self.elastic_alpha, self.elastic_sigma, self.elastic_p = elastic_alpha, elastic_sigma, elastic_p

    def forward(self, image: torch.Tensor, labels: torch.Tensor,
                maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for x, y, m in zip(image, labels, maps):  # (c, z, y, x), (z, y, x), (m, z, y, x)
            # 1. flips: axis -3, -2, -1 of every tensor are z, y, x
            if self.flip:
                axes = [a for a in (-3, -2, -1) if torch.rand(()) < 0.5]
                if axes:
                    x, y, m = x.flip(axes), y.flip(axes), m.flip(axes)
            # 2. a turn in the (y, x) plane; with isotropic voxels in any plane of two equal extents
            planes = [p for p in ((-2, -1), *(((-3, -2), (-3, -1)) if self.isotropic else ()))
                      if x.shape[p[0]] == x.shape[p[1]]]
            if self.turn and planes:
                k = int(torch.randint(4, ()))
                plane = planes[int(torch.randint(len(planes), ()))] if len(planes) > 1 else planes[0]
                x, y, m = (t.rot90(k, plane) for t in (x, y, m))
            # 3. an elastic deformation, one field for the image, the labels (nearest) and the maps
            if self.elastic_alpha > 0 and torch.rand(()) < self.elastic_p:
                field = elastic_displacement3d(x.shape[-3:], self.spacing, self.elastic_alpha, self.elastic_sigma,
                                               x.device)  # (3, z, y, x) voxels
                both = warp3d(torch.cat([x, m.to(x.dtype)]), field)  # one trilinear pass: (c + m, z, y, x)
                x, m = both[: len(x)], both[len(x):].to(m.dtype)
                y = warp3d(y[None], field, mode="nearest")[0]
            # 4. gain and offset of the values
            if self.intensity:
                gain, offset = 0.8 + 0.4 * torch.rand(()), 0.2 * torch.rand(()) - 0.1
                x = x * gain.to(x.device) + offset.to(x.device)
            out.append((x, y, m))
        return tuple(torch.stack(parts) for parts in zip(*out))  # type: ignore[return-value]
