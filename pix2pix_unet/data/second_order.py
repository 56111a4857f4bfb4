"""Real-ESRGAN's second-order degradation (Wang et al. 2021) for ``task=restore``.

The pipeline, with the published defaults of
:class:`~pix2pix_unet.config.SecondOrderConfig`:

1. first order at the clean size ``(H, W)``: blur with a random kernel, resize
   (up, down or kept), Gaussian or Poisson noise, JPEG;
2. second order: blur (80 % of the samples), resize relative to the working size
   ``(H / scale, W / scale)``, noise;
3. final: [resize to the working size + sinc filter] and JPEG, in a random order;
4. our tasks restore to the same size, so the result is resized back (bicubic) to
   ``(H, W)`` and rounded to 8 bits.

Unlike Real-ESRGAN, which draws one resize and one blur decision per batch, every
sample draws its own kernels and parameters: its sizes then differ between the
first resize and the last, so that part runs one sample at a time. Every random
number comes from ``generator`` (the global RNG when it is None), drawn in a fixed
order, so a seeded generator gives the same batch every time. Values are clamped to
[0, 1] after every stage.

Kernels follow BasicSR's ``random_mixed_kernels`` and ``circular_lowpass_kernel``:
with the quadratic form ``q = c^T Sigma^-1 c`` of the pixel offset ``c``, a Gaussian
is ``exp(-q / 2)``, a generalized Gaussian ``exp(-q^beta / 2)`` (``beta = 1`` is the
Gaussian) and a plateau ``1 / (1 + q^beta)``.
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple

import kornia
import torch
import torch.nn.functional as F

from ..config import BlurStage, FinalStage, JpegStage, NoiseStage, ResizeStage, SecondOrderConfig

KERNEL = BlurStage.MAX_KERNEL  # every kernel is zero-padded to KERNEL x KERNEL, as Real-ESRGAN's
RESIZE_MODES = ("area", "bilinear", "bicubic")  # drawn uniformly for every resize
_GRAY = (0.299, 0.587, 0.114)  # RGB -> luma weights for gray Poisson noise (torchvision's)


class KernelType(enum.IntEnum):
    """The kernel mixture, in the order of ``BlurStage.kernel_probs``; even members are isotropic."""

    ISO = 0
    ANISO = 1
    GENERALIZED_ISO = 2
    GENERALIZED_ANISO = 3
    PLATEAU_ISO = 4
    PLATEAU_ANISO = 5


# --------------------------------------------------------------------------- kernels


def _batch(*values: torch.Tensor | float) -> list[torch.Tensor]:
    """Float tensors of one shape ``(n,)`` from scalars and ``(n,)`` tensors."""
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), None)
    tensors = [torch.atleast_1d(torch.as_tensor(v, dtype=torch.float32, device=device)) for v in values]
    return list(torch.broadcast_tensors(*tensors))


def _offsets(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Column (x) and row (y) offsets from the centre of a ``size x size`` kernel, each ``(size, size)``."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size={size} must be a positive odd integer")
    r = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    return x, y


def _quadratic_form(size: int, sigma_x: torch.Tensor | float, sigma_y: torch.Tensor | float,
                    angle: torch.Tensor | float) -> torch.Tensor:
    """``c^T Sigma^-1 c`` for every offset ``c``, Sigma with stds ``sigma_x, sigma_y`` rotated by ``angle``.

    Shape:
        parameters ``(n,)`` or scalars -> ``(n, size, size)``.
    """
    sigma_x, sigma_y, angle = _batch(sigma_x, sigma_y, angle)
    x, y = _offsets(size, sigma_x.device)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    # 1. offsets in the kernel's own axes                               (n, size, size)
    u = cos * x + sin * y
    v = -sin * x + cos * y
    # 2. Mahalanobis distance squared
    return (u / sigma_x[:, None, None]) ** 2 + (v / sigma_y[:, None, None]) ** 2


def _normalise(kernel: torch.Tensor) -> torch.Tensor:
    return kernel / kernel.sum((-2, -1), keepdim=True)


def gaussian_kernel(size: int, sigma_x: torch.Tensor | float, sigma_y: torch.Tensor | float,
                    angle: torch.Tensor | float) -> torch.Tensor:
    """Anisotropic Gaussian kernels summing to 1.

    Args:
        size: odd kernel side, px.
        sigma_x: std along the kernel's first axis, px.
        sigma_y: std along its second axis, px (``sigma_y = sigma_x`` is isotropic).
        angle: rotation of the first axis from the image's x (column) axis, radians.

    Shape:
        parameters ``(n,)`` or scalars -> ``(n, size, size)``.
    """
    return _normalise(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, angle)))


def generalized_gaussian_kernel(size: int, sigma_x: torch.Tensor | float, sigma_y: torch.Tensor | float,
                                angle: torch.Tensor | float, beta: torch.Tensor | float) -> torch.Tensor:
    """Generalized Gaussian kernels ``exp(-q^beta / 2)`` summing to 1; ``beta = 1`` is the Gaussian,
    a lower ``beta`` has heavier tails, a higher one a flatter top.

    Args as :func:`gaussian_kernel`, plus ``beta`` the shape exponent.

    Shape:
        parameters ``(n,)`` or scalars -> ``(n, size, size)``.
    """
    q = _quadratic_form(size, sigma_x, sigma_y, angle)
    (beta,) = _batch(beta)
    return _normalise(torch.exp(-0.5 * q ** beta.to(q.device)[:, None, None]))


def plateau_kernel(size: int, sigma_x: torch.Tensor | float, sigma_y: torch.Tensor | float,
                   angle: torch.Tensor | float, beta: torch.Tensor | float) -> torch.Tensor:
    """Plateau-shaped kernels ``1 / (1 + q^beta)`` summing to 1: a flat top and heavy tails.

    Args as :func:`gaussian_kernel`, plus ``beta`` the shape exponent.

    Shape:
        parameters ``(n,)`` or scalars -> ``(n, size, size)``.
    """
    q = _quadratic_form(size, sigma_x, sigma_y, angle)
    (beta,) = _batch(beta)
    return _normalise(1.0 / (1.0 + q ** beta.to(q.device)[:, None, None]))


def sinc_kernel(size: int, cutoff: torch.Tensor | float) -> torch.Tensor:
    """Circular low-pass (2-D sinc) kernels summing to 1: ``cutoff J1(cutoff r) / (2 pi r)``.

    They pass the frequencies within a disc of radius ``cutoff`` (radians per pixel, at most
    pi) and ring at edges. At ``cutoff = pi`` the disc fills the band up to its corners, so the
    filter leaves all but the most diagonal frequencies alone (it is not a delta: the corners of
    the band are cut).

    Shape:
        ``cutoff (n,)`` or a scalar -> ``(n, size, size)``.
    """
    (cutoff,) = _batch(cutoff)
    x, y = _offsets(size, cutoff.device)
    r = torch.sqrt(x**2 + y**2)  # (size, size)
    w = cutoff[:, None, None]
    kernel = w * torch.special.bessel_j1(w * r) / (2 * math.pi * r.clamp(min=1e-12))
    kernel = torch.where(r == 0, w**2 / (4 * math.pi), kernel)  # the limit at r = 0
    return _normalise(kernel)


def _impulse(n: int, device: torch.device) -> torch.Tensor:
    """The identity kernel, ``(n, KERNEL, KERNEL)``."""
    kernel = torch.zeros(n, KERNEL, KERNEL, device=device)
    kernel[:, KERNEL // 2, KERNEL // 2] = 1.0
    return kernel


def _cut_to(kernel: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Zero each ``(KERNEL, KERNEL)`` kernel outside its centred ``size x size`` square and renormalise:
    the kernel as built at that size, then zero-padded."""
    x, y = _offsets(KERNEL, kernel.device)
    half = (size // 2)[:, None, None]
    inside = (x.abs() <= half) & (y.abs() <= half)  # (n, KERNEL, KERNEL)
    return _normalise(kernel * inside)


# --------------------------------------------------------------------------- random draws


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _chance(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) < p


def _pick(n: int, probs: list[float], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """An index into ``probs`` per sample, ``(n,)`` long."""
    weights = torch.tensor(probs, dtype=torch.float32, device=device)
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def _odd_size(n: int, sizes: list[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """An odd size from ``[low, high]`` per sample, each equally likely, ``(n,)`` long."""
    low, high = sizes
    return low + 2 * torch.randint((high - low) // 2 + 1, (n,), generator=generator, device=device)


def _shape_exponent(n: int, bounds: list[float], generator: torch.Generator | None,
                    device: torch.device) -> torch.Tensor:
    """Real-ESRGAN's beta: when ``[low, high]`` straddles 1, below and above 1 are equally likely."""
    low, high = bounds
    if not low < 1.0 < high:
        return _uniform(n, low, high, generator, device)
    below, above = _uniform(n, low, 1.0, generator, device), _uniform(n, 1.0, high, generator, device)
    return torch.where(_chance(n, 0.5, generator, device), below, above)


def _is(kind: torch.Tensor, *types: KernelType) -> torch.Tensor:
    """Whether each sample's kernel type is one of ``types``, ``(n,)`` bool."""
    return torch.isin(kind, torch.tensor([int(t) for t in types], device=kind.device))


def random_blur_kernel(n: int, cfg: BlurStage, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """One random blur kernel per sample, as Real-ESRGAN draws them.

    Each sample draws an odd size in ``cfg.kernel_size``, then with ``cfg.sinc_p`` a sinc
    kernel (cutoff in [pi/3, pi] below 13 px, [pi/5, pi] from 13 px), else a type from
    ``cfg.kernel_probs`` with stds in ``cfg.sigma`` (both equal for the isotropic types),
    an angle in [-pi, pi] and shape exponents in ``cfg.betag`` / ``cfg.betap``.
    ``cfg.p`` is not drawn here: whether a sample is blurred at all is the caller's choice.

    Args:
        n: number of kernels.
        cfg: the blur stage's ranges.
        generator: the source of every random number, on ``device``; None uses the global RNG.
        device: where the kernels are made.

    Returns:
        ``(n, 21, 21)`` kernels, each summing to 1 and zero outside its sampled centred size.
    """
    device = torch.device(device)
    # 1. every sample's draws                                            (n,)
    size = _odd_size(n, cfg.kernel_size, generator, device)
    kind = _pick(n, cfg.kernel_probs, generator, device)
    sigma_x = _uniform(n, *cfg.sigma, generator, device)
    sigma_y = _uniform(n, *cfg.sigma, generator, device)
    angle = _uniform(n, -math.pi, math.pi, generator, device)
    beta_g = _shape_exponent(n, cfg.betag, generator, device)
    beta_p = _shape_exponent(n, cfg.betap, generator, device)
    is_sinc = _chance(n, cfg.sinc_p, generator, device)
    wide = torch.where(size < 13, math.pi / 3, math.pi / 5)  # BasicSR: lower cutoffs only on larger kernels
    cutoff = wide + (math.pi - wide) * torch.rand(n, generator=generator, device=device)
    # 2. isotropic types use one std and no rotation; a Gaussian is a generalized one with beta = 1
    iso = _is(kind, KernelType.ISO, KernelType.GENERALIZED_ISO, KernelType.PLATEAU_ISO)
    sigma_y = torch.where(iso, sigma_x, sigma_y)
    angle = torch.where(iso, torch.zeros_like(angle), angle)
    generalized = _is(kind, KernelType.GENERALIZED_ISO, KernelType.GENERALIZED_ANISO)
    beta_g = torch.where(generalized, beta_g, torch.ones_like(beta_g))
    # 3. every family at full size, each sample keeps its own             (n, 21, 21)
    kernel = generalized_gaussian_kernel(KERNEL, sigma_x, sigma_y, angle, beta_g)
    plateau = _is(kind, KernelType.PLATEAU_ISO, KernelType.PLATEAU_ANISO)[:, None, None]
    kernel = torch.where(plateau, plateau_kernel(KERNEL, sigma_x, sigma_y, angle, beta_p), kernel)
    kernel = torch.where(is_sinc[:, None, None], sinc_kernel(KERNEL, cutoff), kernel)
    # 4. cut to the sampled size
    return _cut_to(kernel, size)


def _final_sinc_kernel(n: int, cfg: FinalStage, generator: torch.Generator | None,
                       device: torch.device) -> torch.Tensor:
    """The final sinc filter: an odd size in ``cfg.kernel_size``, a cutoff in [pi/3, pi], ``(n, 21, 21)``."""
    size = _odd_size(n, cfg.kernel_size, generator, device)
    cutoff = _uniform(n, math.pi / 3, math.pi, generator, device)
    return _cut_to(sinc_kernel(KERNEL, cutoff), size)


class _Resize(NamedTuple):
    factor: torch.Tensor  # (n,) relative to the stage's reference size
    mode: torch.Tensor  # (n,) index into RESIZE_MODES


class _Noise(NamedTuple):
    apply: torch.Tensor  # (n,) bool
    gaussian: torch.Tensor  # (n,) bool, else Poisson
    sigma: torch.Tensor  # (n,) Gaussian std on the [0, 1] scale
    scale: torch.Tensor  # (n,) Poisson noise factor
    gray: torch.Tensor  # (n,) bool


class _Jpeg(NamedTuple):
    apply: torch.Tensor  # (n,) bool
    quality: torch.Tensor  # (n,)


def _draw_resize(n: int, cfg: ResizeStage, generator: torch.Generator | None, device: torch.device) -> _Resize:
    way = _pick(n, cfg.probs, generator, device)  # 0 up, 1 down, 2 keep
    up = _uniform(n, 1.0, cfg.factor[1], generator, device)
    down = _uniform(n, cfg.factor[0], 1.0, generator, device)
    factor = torch.where(way == 0, up, torch.where(way == 1, down, torch.ones_like(up)))
    return _Resize(factor, torch.randint(len(RESIZE_MODES), (n,), generator=generator, device=device))


def _draw_noise(n: int, cfg: NoiseStage, generator: torch.Generator | None, device: torch.device) -> _Noise:
    return _Noise(
        apply=_chance(n, cfg.p, generator, device),
        gaussian=_chance(n, cfg.gaussian_p, generator, device),
        sigma=_uniform(n, *cfg.sigma, generator, device) / 255,
        scale=_uniform(n, *cfg.poisson_scale, generator, device),
        gray=_chance(n, cfg.gray_p, generator, device),
    )


def _draw_jpeg(n: int, cfg: JpegStage, generator: torch.Generator | None, device: torch.device) -> _Jpeg:
    return _Jpeg(_chance(n, cfg.p, generator, device), _uniform(n, *cfg.quality, generator, device))


# --------------------------------------------------------------------------- operations


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Filter each image with its own kernel (correlation, reflect border).

    A kernel wider than reflect padding allows on a small image is cropped to fit and renormalised.

    Shape:
        ``x (B, C, H, W)``, ``kernel (B, k, k)`` or ``(1, k, k)``, k odd -> ``(B, C, H, W)``.
    """
    fit = 2 * (min(x.shape[-2:]) - 1) + 1  # reflect padding must stay below the image size
    if kernel.shape[-1] > fit:
        cut = (kernel.shape[-1] - fit) // 2
        kernel = _normalise(kernel[:, cut : cut + fit, cut : cut + fit])
    return kornia.filters.filter2d(x, kernel.to(x.dtype), border_type="reflect")


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize to ``size`` with ``mode`` (area, bilinear or bicubic; no antialiasing, as Real-ESRGAN).

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, *size)``.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode={mode!r} is not one of {RESIZE_MODES}")
    corners = None if mode == "area" else False
    return F.interpolate(x, size=size, mode=mode, align_corners=corners)


def gaussian_noise(x: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Add zero-mean Gaussian noise of each image's ``sigma`` ([0, 1] scale); where ``gray``, one
    noise field shared by all channels.

    Shape:
        ``x (B, C, H, W)``, ``sigma (B,)``, ``gray (B,)`` bool -> ``(B, C, H, W)``.
    """
    b, c, h, w = x.shape
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)  # (b, c, h, w)
    if c > 1:
        mono = torch.randn((b, 1, h, w), generator=generator, device=x.device, dtype=x.dtype)
        noise = torch.where(gray[:, None, None, None], mono.expand_as(noise), noise)
    return x + sigma.to(x.dtype)[:, None, None, None] * noise


def _shot_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """BasicSR's Poisson noise of 8-bit images: ``Poisson(x * v) / v - x`` with ``v`` the number of
    gray levels each image uses, rounded up to a power of 2.

    Shape:
        ``(B, C, H, W)`` -> ``(B, C, H, W)``.
    """
    levels = (x.clamp(0, 1) * 255).round()  # (b, c, h, w)
    x = levels / 255
    used = torch.zeros(len(x), 256, device=x.device, dtype=x.dtype)
    used.scatter_(1, levels.flatten(1).long(), 1.0)  # (b, 256): which levels each image uses
    v = (2 ** torch.log2(used.sum(1)).ceil())[:, None, None, None]
    return torch.poisson(x * v, generator=generator) / v - x


def poisson_noise(x: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Add shot noise times each image's ``scale``; where ``gray``, the noise of its luma, shared by
    all channels.

    Shape:
        ``x (B, C, H, W)``, ``scale (B,)``, ``gray (B,)`` bool -> ``(B, C, H, W)``.
    """
    noise = _shot_noise(x, generator)  # (b, c, h, w)
    if x.shape[1] == 3:
        luma = (x * torch.tensor(_GRAY, device=x.device, dtype=x.dtype)[:, None, None]).sum(1, keepdim=True)
        noise = torch.where(gray[:, None, None, None], _shot_noise(luma, generator).expand_as(noise), noise)
    return x + scale.to(x.dtype)[:, None, None, None] * noise


def jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress each image at its ``quality`` (kornia's codec, which pads any size to a multiple
    of 16 and crops back); gray images go through as RGB and are averaged back.

    Shape:
        ``x (B, C, H, W)``, C = 1 or 3, ``quality (B,)`` -> ``(B, C, H, W)``.
    """
    channels = x.shape[1]
    rgb = x if channels == 3 else x.expand(-1, 3, -1, -1)
    out = kornia.enhance.jpeg_codec_differentiable(rgb.clamp(0, 1), quality.to(x.dtype))
    return out if channels == 3 else out.mean(1, keepdim=True)


# --------------------------------------------------------------------------- pipeline


def _noise(x: torch.Tensor, draw: _Noise, i: int, generator: torch.Generator | None) -> torch.Tensor:
    """Sample ``i``'s noise, as drawn (``draw`` on the CPU), on ``x (1, C, h, w)``."""
    if not draw.apply[i]:
        return x
    gray = draw.gray[i : i + 1].to(x.device)
    if draw.gaussian[i]:
        return gaussian_noise(x, draw.sigma[i : i + 1].to(x.device), gray, generator).clamp(0, 1)
    return poisson_noise(x, draw.scale[i : i + 1].to(x.device), gray, generator).clamp(0, 1)


def _jpeg(x: torch.Tensor, draw: _Jpeg, i: int) -> torch.Tensor:
    """Sample ``i``'s JPEG, as drawn (``draw`` on the CPU), on ``x (1, C, h, w)``."""
    return jpeg(x, draw.quality[i : i + 1].to(x.device)).clamp(0, 1) if draw.apply[i] else x


def _scaled(size: tuple[int, int], factor: float) -> tuple[int, int]:
    return max(1, int(size[0] * factor)), max(1, int(size[1] * factor))


def second_order(clean: torch.Tensor, cfg: SecondOrderConfig,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Degrade a clean batch with Real-ESRGAN's second-order pipeline, every sample its own way.

    Args:
        clean: ``(B, C, H, W)`` images in [0, 1], C = 1 or 3.
        cfg: the stages' probabilities and ranges, and the working ``scale``.
        generator: the source of every random number, on ``clean``'s device; None uses the global RNG.

    Returns:
        The degraded ``(B, C, H, W)`` batch in [0, 1], on the 8-bit grid (multiples of 1/255).

    Example:
        >>> clean = torch.rand(4, 3, 64, 64)
        >>> second_order(clean, SecondOrderConfig(), torch.Generator().manual_seed(0)).shape
        torch.Size([4, 3, 64, 64])
    """
    if clean.ndim != 4 or clean.shape[1] not in (1, 3):
        raise ValueError(f"second_order needs a (B, C, H, W) batch with C = 1 or 3, got shape {tuple(clean.shape)}")
    b, device = len(clean), clean.device
    full = tuple(clean.shape[-2:])  # (H, W)
    work = (max(1, full[0] // cfg.scale), max(1, full[1] // cfg.scale))  # (H / scale, W / scale)
    # 1. every random choice but the noise fields, drawn in a fixed order, then read on the host
    blurred1 = _chance(b, cfg.blur1.p, generator, device)
    kernel1 = random_blur_kernel(b, cfg.blur1, generator, device)  # (b, 21, 21)
    resize1 = _draw_resize(b, cfg.resize1, generator, device)
    noise1 = _draw_noise(b, cfg.noise1, generator, device)
    jpeg1 = _draw_jpeg(b, cfg.jpeg1, generator, device)
    blurred2 = _chance(b, cfg.blur2.p, generator, device)
    kernel2 = random_blur_kernel(b, cfg.blur2, generator, device)  # (b, 21, 21)
    resize2 = _draw_resize(b, cfg.resize2, generator, device)
    noise2 = _draw_noise(b, cfg.noise2, generator, device)
    jpeg2 = _draw_jpeg(b, cfg.jpeg2, generator, device)
    sinc = _chance(b, cfg.final.sinc_p, generator, device)
    kernel3 = _final_sinc_kernel(b, cfg.final, generator, device)  # (b, 21, 21)
    mode3 = torch.randint(len(RESIZE_MODES), (b,), generator=generator, device=device)
    resize_first = _chance(b, cfg.final.resize_first_p, generator, device)
    resize1, noise1, jpeg1, resize2, noise2, jpeg2 = (
        type(d)(*(t.cpu() for t in d)) for d in (resize1, noise1, jpeg1, resize2, noise2, jpeg2))
    blurred2, sinc, mode3, resize_first = (t.tolist() for t in (blurred2, sinc, mode3, resize_first))
    # 2. first blur, the whole batch at once                                       (b, c, H, W)
    x = clean
    if bool(blurred1.any()):
        kernel1 = torch.where(blurred1[:, None, None], kernel1, _impulse(b, device))
        x = blur(x, kernel1).clamp(0, 1)
    # 3. the rest one sample at a time: its sizes are its own                      (1, c, h, w)
    out = []
    for i in range(b):
        y = x[i : i + 1]
        # 3a. first order: resize (relative to (H, W)), noise, JPEG
        y = resize(y, _scaled(full, float(resize1.factor[i])), RESIZE_MODES[resize1.mode[i]]).clamp(0, 1)
        y = _jpeg(_noise(y, noise1, i, generator), jpeg1, i)
        # 3b. second order: blur, resize (relative to the working size), noise
        if blurred2[i]:
            y = blur(y, kernel2[i : i + 1]).clamp(0, 1)
        y = resize(y, _scaled(work, float(resize2.factor[i])), RESIZE_MODES[resize2.mode[i]]).clamp(0, 1)
        y = _noise(y, noise2, i, generator)
        # 3c. [resize to the working size + sinc] and JPEG, in the drawn order    (1, c, *work)
        if not resize_first[i]:
            y = _jpeg(y, jpeg2, i)
        y = resize(y, work, RESIZE_MODES[mode3[i]]).clamp(0, 1)
        if sinc[i]:
            y = blur(y, kernel3[i : i + 1]).clamp(0, 1)
        if resize_first[i]:
            y = _jpeg(y, jpeg2, i)
        out.append(y)
    # 4. back to the clean size, on the 8-bit grid                                 (b, c, H, W)
    x = torch.cat(out)
    if work != full:
        x = F.interpolate(x, size=full, mode="bicubic", align_corners=False)
    return (x.clamp(0, 1) * 255).round() / 255
