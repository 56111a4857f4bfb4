"""Degradations for ``task=restore``, made on the fly on whatever device the batch is on.

Each degradation is a pure function of a ``(B, C, H, W)`` batch in [0, 1] and a
per-sample strength ``(B,)``; :func:`degrade` applies the ones a
:class:`~pix2pix_unet.config.RestoreConfig` turns on, each to a random subset of
the batch at a random strength per sample, in a fixed order: blur, motion blur,
down-sampling, Gaussian noise, Poisson noise, JPEG, holes; or, with
``second_order.enabled``, Real-ESRGAN's pipeline
(:mod:`~pix2pix_unet.data.second_order`), then holes. Every random number is
drawn from ``generator`` (the global RNG when it is None), so a seeded generator
gives the same degraded batch every time.

Volumes ``(B, C, Z, Y, X)`` take the degradations that have a meaning in 3D
(:data:`VOLUME_DEGRADATIONS`): noise, voxel by voxel, and blur by an anisotropic
Gaussian PSF whose lateral sigma is the strength in micrometres and whose axial
sigma is ``restore.psf_axial_ratio`` times it, both turned into voxels by the
voxel size (:func:`psf_sigmas`), as a widefield or confocal PSF is longer along z.
The others are refused by name (:func:`check_volume_degradations`).
"""

from __future__ import annotations

import math
from typing import Callable

import kornia
import torch
import torch.nn.functional as F

from ..config import ConfigError, Degradation, RestoreConfig
from .second_order import second_order

# what each degradation means for a volume: only these are made in 3D; the others are refused with the reason
VOLUME_DEGRADATIONS = ("gaussian_blur", "gaussian_noise", "poisson_noise")
NOT_IN_3D = {
    "motion_blur": "a camera's motion streak is a 2D kernel in the image plane",
    "downsample": "super-resolution of volumes (an axial factor apart from the lateral one) is not made",
    "jpeg": "JPEG compresses 2D pictures",
    "inpaint": "the hole masks are strokes and boxes drawn in 2D",
}


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device,
             log: bool = False) -> torch.Tensor:
    """``n`` strengths in ``[low, high]``, uniform in value or (``log``) in its logarithm."""
    u = torch.rand(n, generator=generator, device=device)
    return low * (high / low) ** u if log else low + (high - low) * u


def _per_sample(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` -> ``(B, 1, ...)``, broadcastable against ``x`` (an image or a volume batch)."""
    return value.reshape(-1, *[1] * (x.ndim - 1))


def _kernel_size(sigma: float, size: int) -> int:
    """An odd kernel spanning 3 sigma each side, below the axis' ``size`` (reflect padding needs it)."""
    return min(2 * math.ceil(3 * sigma) + 1, 2 * ((size - 1) // 2) + 1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own ``sigma`` (pixels); the kernel spans 3 sigma of the largest.

    Volumes ``(B, C, Z, Y, X)`` take ``sigma (B, 3)``, the standard deviation along z, y and x in voxels
    (:func:`psf_sigmas`), and are blurred one axis at a time (the Gaussian is separable).
    """
    if x.ndim == 4:
        kernel = _kernel_size(float(sigma.max()), min(x.shape[-2:]))
        return kornia.filters.gaussian_blur2d(x, (kernel, kernel), sigma[:, None].expand(-1, 2))
    if sigma.shape != (len(x), 3):
        raise ValueError(f"a volume batch of {len(x)} is blurred with (B, 3) sigmas (z, y, x), "
                         f"got {tuple(sigma.shape)}")
    for axis in range(3):  # z, y, x
        size = _kernel_size(float(sigma[:, axis].max()), x.shape[2 + axis])
        if size < 3 or float(sigma[:, axis].max()) <= 0:
            continue
        line = kornia.filters.get_gaussian_kernel1d(size, sigma[:, axis: axis + 1].clamp(min=1e-3))  # (b, size)
        shape = [len(x), 1, 1, 1]
        shape[1 + axis] = size
        x = kornia.filters.filter3d(x, line.reshape(shape).to(x.dtype), border_type="reflect")
    return x


def psf_sigmas(lateral: torch.Tensor, spacing: tuple[float, ...] | list[float] | None,
               axial_ratio: float) -> torch.Tensor:
    """The ``(B, 3)`` voxel sigmas (z, y, x) of an anisotropic Gaussian PSF whose lateral sigma is ``lateral (B,)``
    in the spacing's unit (µm) and whose axial sigma is ``axial_ratio`` times it; ``spacing`` None: 1 µm voxels."""
    size = torch.tensor(list(spacing) if spacing else [1.0, 1.0, 1.0], dtype=lateral.dtype, device=lateral.device)
    if size.shape != (3,) or not bool((size > 0).all()):
        raise ValueError(f"the voxel size must be three positive numbers (z, y, x), got {spacing!r}")
    microns = torch.stack([lateral * axial_ratio, lateral, lateral], dim=1)  # (b, 3)
    return microns / size


def check_volume_degradations(cfg: RestoreConfig, where: str = "restore") -> None:
    """Refuse, by name, the degradations turned on in ``cfg`` that have no meaning for a volume.

    Raises:
        ConfigError: naming each such degradation, why, and the override that turns it off.
    """
    on = [name for name in NOT_IN_3D if getattr(cfg, name).p > 0]
    if cfg.second_order.enabled:
        raise ConfigError(f"{where}.second_order.enabled=true: Real-ESRGAN's pipeline is made of 2D steps (JPEG, "
                          f"sinc kernels, resizes) and has no 3D form; degrade volumes with "
                          f"{', '.join(VOLUME_DEGRADATIONS)}")
    if on:
        reasons = "; ".join(f"{where}.{name}.p={getattr(cfg, name).p} ({NOT_IN_3D[name]})" for name in on)
        off = " ".join(f"{where}.{name}.p=0" for name in on)
        raise ConfigError(f"volumes (generator.dims=3) take only {', '.join(VOLUME_DEGRADATIONS)}: {reasons}; "
                          f"turn them off with {off}")


def motion_blur(x: torch.Tensor, length: torch.Tensor, angle: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Blur each image along a line of ``length`` pixels (rounded to odd) at ``angle`` degrees.

    ``direction`` in [-1, 1] shifts the weight towards one end of the line (kornia's motion kernel).
    """
    sizes = (length.round().long() // 2 * 2 + 1).tolist()
    largest = max(sizes)
    kernels = torch.zeros(len(x), largest, largest, device=x.device, dtype=x.dtype)
    for size in set(sizes):
        rows = [i for i, s in enumerate(sizes) if s == size]
        pad = (largest - size) // 2
        k = kornia.filters.get_motion_kernel2d(size, angle[rows], direction[rows])  # (n, size, size)
        kernels[rows] = F.pad(k.to(x.dtype), (pad, pad, pad, pad))
    return kornia.filters.filter2d(x, kernels, border_type="reflect")


def downsample(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Shrink each image by its ``factor`` (antialiased bicubic) and scale it back to its size."""
    h, w = x.shape[-2:]
    out = []
    for image, f in zip(x, factor.tolist()):
        small = F.interpolate(image[None], size=(max(1, round(h / f)), max(1, round(w / f))), mode="bicubic",
                              antialias=True, align_corners=False)
        out.append(F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False))
    return torch.cat(out)


def gaussian_noise(x: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add zero-mean Gaussian noise with each image's ``std``."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + _per_sample(std, x) * noise


def poisson_noise(x: torch.Tensor, peak: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shot noise: count ``Poisson(x * peak)`` photons and scale back; a lower ``peak`` is noisier."""
    peak = _per_sample(peak, x)
    return torch.poisson(x.clamp(min=0) * peak, generator=generator) / peak


def jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress each image at its ``quality`` (kornia's differentiable codec); gray images
    go through as RGB."""
    channels = x.shape[1]
    rgb = x if channels == 3 else x[:, :1].expand(-1, 3, -1, -1)
    out = kornia.enhance.jpeg_codec_differentiable(rgb.clamp(0, 1), quality)
    return out if channels == 3 else out.mean(1, keepdim=True)


def hole_mask(shape: tuple[int, int, int], count: torch.Tensor, generator: torch.Generator | None,
              device: torch.device) -> torch.Tensor:
    """Random boxes and thick strokes, ``count`` of them per image (1 = hole).

    Boxes are 10-30 % of the image side; strokes are straight segments up to half
    the side long and 3-8 % of it thick.

    Shape:
        ``shape = (B, H, W)``, ``count (B,)`` -> ``(B, 1, H, W)`` float.
    """
    b, h, w = shape
    n = int(count.max())
    side = float(min(h, w))
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None]  # (h, 1)
    xs = torch.arange(w, device=device, dtype=torch.float32)[None, :]  # (1, w)

    def draw(*size: int) -> torch.Tensor:
        return torch.rand(b, n, *size, generator=generator, device=device)

    # 1. shape parameters for n shapes per image                      (b, n, ...)
    centre = draw(2) * torch.tensor([h, w], device=device)
    half = (0.05 + 0.10 * draw(2)) * side
    angle = draw() * 2 * math.pi
    length = draw() * 0.5 * side
    thickness = (0.015 + 0.025 * draw()) * side
    is_box = draw() < 0.5
    active = torch.arange(n, device=device)[None, :] < count[:, None]  # (b, n)
    # 2. rasterise every shape on the grid                            (b, n, h, w)
    dy, dx = ys - centre[..., 0, None, None], xs - centre[..., 1, None, None]
    box = (dy.abs() <= half[..., 0, None, None]) & (dx.abs() <= half[..., 1, None, None])
    along = dx * angle.cos()[..., None, None] + dy * angle.sin()[..., None, None]
    across = -dx * angle.sin()[..., None, None] + dy * angle.cos()[..., None, None]
    stroke = (along.abs() <= length[..., None, None] / 2) & (across.abs() <= thickness[..., None, None])
    shapes = torch.where(is_box[..., None, None], box, stroke) & active[..., None, None]
    # 3. union over the shapes                                        (b, 1, h, w)
    return shapes.any(1, keepdim=True).float()


_ORDER: list[tuple[str, Callable[..., torch.Tensor]]] = [
    ("gaussian_blur", lambda x, s, g: gaussian_blur(x, s)),
    ("motion_blur", lambda x, s, g: motion_blur(
        x, s, torch.rand(len(x), generator=g, device=x.device) * 360,
        torch.rand(len(x), generator=g, device=x.device) * 2 - 1)),
    ("downsample", lambda x, s, g: downsample(x, s)),
    ("gaussian_noise", gaussian_noise),
    ("poisson_noise", poisson_noise),
    ("jpeg", lambda x, s, g: jpeg(x, s)),
]


def degrade(clean: torch.Tensor, cfg: RestoreConfig, generator: torch.Generator | None = None,
            spacing: tuple[float, ...] | list[float] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Degrade a clean batch as ``cfg`` says.

    Each degradation with ``p > 0`` picks each image with probability ``p``; an image
    that none picked gets one of them at random, so no image stays clean (a clean
    input teaches nothing, and its PSNR would be infinite).

    Args:
        clean: ``(B, C, H, W)`` images in [0, 1], C = 1 or 3; or ``(B, C, Z, Y, X)`` volumes.
        cfg: which degradations, how often and how strong.
        generator: the source of every random number, on ``clean``'s device; None uses the global RNG.
        spacing: volumes: the ``(z, y, x)`` voxel size in µm that turns the PSF's sigmas into voxels
            (:func:`psf_sigmas`); None: 1 µm voxels.

    Returns:
        The degraded batch in [0, 1], holes filled with mid-gray, and the ``(B, 1, H, W)``
        hole mask (1 = hole) when ``cfg.inpaint.p > 0``, else None.

    Raises:
        ConfigError: volumes with a degradation that has no 3D meaning (:func:`check_volume_degradations`).
    """
    b, device = len(clean), clean.device
    order = _ORDER
    if clean.ndim == 5:  # volumes: the blur is the anisotropic PSF
        check_volume_degradations(cfg)
        order = [(name, (lambda x, s, g: gaussian_blur(x, psf_sigmas(s, spacing, cfg.psf_axial_ratio)))
                  if name == "gaussian_blur" else apply) for name, apply in _ORDER if name in VOLUME_DEGRADATIONS]
    if cfg.second_order.enabled:  # Real-ESRGAN's pipeline in place of the single degradations
        x = second_order(clean, cfg.second_order, generator)
        if cfg.inpaint.p == 0:
            return x, None
        chosen = torch.rand(b, generator=generator, device=device) < cfg.inpaint.p
        return add_holes(x, chosen, _uniform(b, cfg.inpaint.low, cfg.inpaint.high, generator, device), generator)
    steps = [(name, apply) for name, apply in order if getattr(cfg, name).p > 0]
    names = [name for name, _ in steps] + (["inpaint"] if cfg.inpaint.p > 0 else [])
    if not names:
        return clean, None
    # 1. which images each degradation picks, and at which strength            (d, b)
    specs: list[Degradation] = [getattr(cfg, name) for name in names]
    p = torch.tensor([spec.p for spec in specs], device=device)
    chosen = torch.rand(len(names), b, generator=generator, device=device) < p[:, None]
    fallback = torch.randint(len(names), (b,), generator=generator, device=device)
    chosen |= ~chosen.any(0) & (torch.arange(len(names), device=device)[:, None] == fallback)
    strength = torch.stack([_uniform(b, spec.low, spec.high, generator, device, spec.log_uniform) for spec in specs])
    # 2. degrade the whole batch at each step, keep the chosen images (a batch op beats gathering)
    x = clean
    for d, (name, apply) in enumerate(steps):
        x = torch.where(_per_sample(chosen[d], x), apply(x, strength[d], generator).clamp(0, 1), x)
    if cfg.inpaint.p == 0:
        return x, None
    # 3. holes in the chosen images                                             (b, 1, h, w)
    return add_holes(x, chosen[-1], strength[-1], generator)


def add_holes(x: torch.Tensor, chosen: torch.Tensor, count: torch.Tensor,
              generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Holes (mid-gray) in the ``chosen (B,)`` images of ``x``, ``count (B,)`` shapes each (rounded to a
    whole number); returns the holed batch and the ``(B, 1, H, W)`` mask (1 = hole)."""
    mask = hole_mask((len(x), *x.shape[-2:]), count.round().long(), generator, x.device)
    mask = mask * chosen[:, None, None, None]
    return x * (1 - mask) + 0.5 * mask, mask
