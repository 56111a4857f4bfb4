"""``task=restore``'s settings: the single degradations, Real-ESRGAN's second-order pipeline and its
stages, and the restoration objective (:class:`RestoreConfig`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from .base import ConfigError, _positive
from .enums import Intensity, PixelLoss, SelfSupervised


@dataclass
class Degradation:
    """One degradation of ``task=restore``: applied to a sample with probability ``p``, at a strength
    drawn uniformly from ``[low, high]`` for each sample. ``p=0`` turns it off."""

    p: float = 0.0
    low: float = 0.0
    high: float = 0.0
    # strengths uniform in their logarithm (as often 0.01-0.02 as 0.04-0.08: weak ones are not under-served);
    # needs low > 0
    log_uniform: bool = False
    bounds: ClassVar[tuple[float, float]] = (0.0, math.inf)  # what low and high may be

    def validate(self, where: str) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"{where}.p={self.p} must be in [0, 1]")
        lo, hi = self.bounds
        for name in ("low", "high"):
            if not lo <= getattr(self, name) <= hi:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be in [{lo}, {hi}]")
        if self.low > self.high:
            raise ConfigError(f"{where}.low={self.low} is above high={self.high}")
        if self.log_uniform and self.low <= 0:
            raise ConfigError(f"{where}.log_uniform needs low > 0, got low={self.low}")


@dataclass
class GaussianNoise(Degradation):
    """Additive noise; strength = its standard deviation on the [0, 1] intensity scale."""

    p: float = 0.5
    low: float = 0.01
    high: float = 0.08


@dataclass
class PoissonNoise(Degradation):
    """Shot noise; strength = photons at full intensity (fewer is noisier)."""

    p: float = 0.25
    low: float = 30.0
    high: float = 300.0
    bounds: ClassVar[tuple[float, float]] = (1.0, math.inf)


@dataclass
class GaussianBlur(Degradation):
    """Strength = the blur sigma in pixels; for volumes (``generator.dims=3``), the PSF's lateral sigma in µm
    (the voxel size's unit), its axial sigma ``restore.psf_axial_ratio`` times that."""

    p: float = 0.4
    low: float = 0.5
    high: float = 1.5
    bounds: ClassVar[tuple[float, float]] = (0.1, 10.0)


@dataclass
class MotionBlur(Degradation):
    """Strength = the length of the (odd-sized) kernel in pixels; the angle is random."""

    p: float = 0.2
    low: float = 3.0
    high: float = 7.0
    bounds: ClassVar[tuple[float, float]] = (3.0, 31.0)


@dataclass
class Jpeg(Degradation):
    """Strength = the JPEG quality (lower is worse)."""

    p: float = 0.4
    low: float = 30.0
    high: float = 90.0
    bounds: ClassVar[tuple[float, float]] = (1.0, 100.0)


@dataclass
class Downsample(Degradation):
    """Super-resolution: shrink by this factor (antialiased) and scale back up (bicubic)."""

    p: float = 0.2
    low: float = 1.5
    high: float = 3.0
    bounds: ClassVar[tuple[float, float]] = (1.0, 16.0)


@dataclass
class Inpaint(Degradation):
    """Holes to fill: strength = the number of random strokes and boxes. The hole mask is given
    to the generator as an extra input channel (only when ``p > 0``)."""

    p: float = 0.0
    low: float = 1.0
    high: float = 4.0
    bounds: ClassVar[tuple[float, float]] = (1.0, 32.0)


# --------------------------------------------------------------------------- second-order degradation


def _check_p(key: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ConfigError(f"{key}={value!r} must be a probability in [0, 1]")


def _check_range(key: str, values: list[float], lo: float, hi: float) -> None:
    """``values`` is a ``[low, high]`` pair with ``lo <= low <= high <= hi``."""
    if not (isinstance(values, list) and len(values) == 2 and all(isinstance(v, (int, float)) for v in values)):
        raise ConfigError(f"{key}={values!r} must be a [low, high] pair of numbers")
    low, high = values
    if not (lo <= low <= hi and lo <= high <= hi):
        raise ConfigError(f"{key}={values} must lie in [{lo}, {hi}]")
    if low > high:
        raise ConfigError(f"{key}={values}: low={low} is above high={high}")


def _check_probs(key: str, values: list[float], names: tuple[str, ...]) -> None:
    """``values`` holds one probability per name, summing to 1."""
    if not (isinstance(values, list) and len(values) == len(names)):
        raise ConfigError(f"{key}={values!r} must hold {len(names)} probabilities ({', '.join(names)})")
    for name, value in zip(names, values):
        _check_p(f"{key}[{name}]", value)
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ConfigError(f"{key}={values} must sum to 1, not {sum(values):g}")


@dataclass
class BlurStage:
    """A blur of the second-order degradation: each sample gets its own kernel, a Gaussian,
    generalized Gaussian or plateau shape (isotropic, or anisotropic at a random angle) or,
    with ``sinc_p``, a sinc (ringing) kernel. Kernels are zero-padded to 21 x 21 px."""

    p: float = 1.0  # chance that a sample is blurred at this stage
    kernel_size: list[int] = field(default_factory=lambda: [7, 21])  # [low, high] odd kernel side, px
    # chances of iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso kernels
    kernel_probs: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_p: float = 0.1  # chance of a sinc kernel instead (cutoff pi/3..pi rad/px below 13 px, pi/5..pi from 13)
    sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])  # [low, high] kernel std along each axis, px
    betag: list[float] = field(default_factory=lambda: [0.5, 4.0])  # [low, high] generalized Gaussian shape, 1 = Gauss
    betap: list[float] = field(default_factory=lambda: [1.0, 2.0])  # [low, high] plateau shape, higher = flatter top

    KERNEL_TYPES: ClassVar[tuple[str, ...]] = (
        "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso",
    )
    MAX_KERNEL: ClassVar[int] = 21  # every kernel is zero-padded to this side, as Real-ESRGAN's

    def validate(self, where: str) -> None:
        _check_p(f"{where}.p", self.p)
        _check_range(f"{where}.kernel_size", self.kernel_size, 3, self.MAX_KERNEL)
        if any(not isinstance(s, int) or s % 2 == 0 for s in self.kernel_size):
            raise ConfigError(f"{where}.kernel_size={self.kernel_size} must be odd integers")
        _check_probs(f"{where}.kernel_probs", self.kernel_probs, self.KERNEL_TYPES)
        _check_p(f"{where}.sinc_p", self.sinc_p)
        _check_range(f"{where}.sigma", self.sigma, 0.05, 20.0)
        _check_range(f"{where}.betag", self.betag, 0.05, 20.0)
        _check_range(f"{where}.betap", self.betap, 0.05, 20.0)


@dataclass
class SecondBlurStage(BlurStage):
    """The second-order blur: applied to 80 % of the samples, with smaller kernels."""

    p: float = 0.8  # chance that a sample is blurred at this stage
    sigma: list[float] = field(default_factory=lambda: [0.2, 1.5])  # [low, high] kernel std along each axis, px


@dataclass
class ResizeStage:
    """A random resize of the second-order degradation: up, down or kept, then area, bilinear or
    bicubic interpolation at random."""

    probs: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])  # chances of up, down, keep
    # [low, high] resize factor: down draws from [low, 1], up from [1, high]
    factor: list[float] = field(default_factory=lambda: [0.15, 1.5])

    CHOICES: ClassVar[tuple[str, ...]] = ("up", "down", "keep")

    def validate(self, where: str) -> None:
        _check_probs(f"{where}.probs", self.probs, self.CHOICES)
        _check_range(f"{where}.factor", self.factor, 0.01, 16.0)
        if not self.factor[0] <= 1.0 <= self.factor[1]:
            raise ConfigError(f"{where}.factor={self.factor} must hold 1 (down draws from [low, 1], up from [1, high])")


@dataclass
class SecondResizeStage(ResizeStage):
    """The second-order resize, relative to the working size ``(H / scale, W / scale)``."""

    probs: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.3])  # chances of up, down, keep
    # [low, high] resize factor: down draws from [low, 1], up from [1, high]
    factor: list[float] = field(default_factory=lambda: [0.3, 1.2])


@dataclass
class NoiseStage:
    """Noise of the second-order degradation: Gaussian, else Poisson (shot) noise; the same on every
    channel ("gray") with ``gray_p``, which is all a one-channel image gets."""

    p: float = 1.0  # chance that a sample gets noise at this stage (Real-ESRGAN: always)
    gaussian_p: float = 0.5  # chance the noise is Gaussian, else Poisson
    sigma: list[float] = field(default_factory=lambda: [1.0, 30.0])  # [low, high] Gaussian std, 0-255 scale
    poisson_scale: list[float] = field(default_factory=lambda: [0.05, 3.0])  # [low, high] factor on the shot noise
    gray_p: float = 0.4  # chance the noise is one field shared by all channels

    def validate(self, where: str) -> None:
        _check_p(f"{where}.p", self.p)
        _check_p(f"{where}.gaussian_p", self.gaussian_p)
        _check_range(f"{where}.sigma", self.sigma, 0.0, 255.0)
        _check_range(f"{where}.poisson_scale", self.poisson_scale, 0.0, 100.0)
        _check_p(f"{where}.gray_p", self.gray_p)


@dataclass
class SecondNoiseStage(NoiseStage):
    """The second-order noise: a little weaker."""

    sigma: list[float] = field(default_factory=lambda: [1.0, 25.0])  # [low, high] Gaussian std, 0-255 scale
    poisson_scale: list[float] = field(default_factory=lambda: [0.05, 2.5])  # [low, high] factor on the shot noise


@dataclass
class JpegStage:
    """JPEG compression of the second-order degradation, at a quality drawn per sample."""

    p: float = 1.0  # chance that a sample is compressed at this stage (Real-ESRGAN: always)
    quality: list[float] = field(default_factory=lambda: [30.0, 95.0])  # [low, high] JPEG quality, 1-100

    def validate(self, where: str) -> None:
        _check_p(f"{where}.p", self.p)
        _check_range(f"{where}.quality", self.quality, 1.0, 100.0)


@dataclass
class FinalStage:
    """The last step: [resize to the working size + sinc] and the second JPEG, in a random order."""

    sinc_p: float = 0.8  # chance of the final sinc filter (cutoff pi/3..pi rad/px), else none
    kernel_size: list[int] = field(default_factory=lambda: [7, 21])  # [low, high] odd sinc kernel side, px
    resize_first_p: float = 0.5  # chance of [resize + sinc] then JPEG, else JPEG then [resize + sinc]

    def validate(self, where: str) -> None:
        _check_p(f"{where}.sinc_p", self.sinc_p)
        _check_range(f"{where}.kernel_size", self.kernel_size, 3, BlurStage.MAX_KERNEL)
        if any(not isinstance(s, int) or s % 2 == 0 for s in self.kernel_size):
            raise ConfigError(f"{where}.kernel_size={self.kernel_size} must be odd integers")
        _check_p(f"{where}.resize_first_p", self.resize_first_p)


@dataclass
class SecondOrderConfig:
    """Real-ESRGAN's second-order degradation (Wang et al. 2021) for ``task=restore``, with its
    published defaults: blur, resize, noise, JPEG, then blur, resize, noise and the final
    [resize + sinc] / JPEG pair. Its second half works at ``(H / scale, W / scale)`` as
    Real-ESRGAN's x``scale`` models do; the result is resized back to the clean image's size.
    Every sample draws its own kernels and parameters (:mod:`pix2pix_unet.data.second_order`).
    """

    enabled: bool = False  # degrade with this pipeline (how often is decided by the restore task)
    scale: int = 4  # the working size after the second order is (H / scale, W / scale), px
    blur1: BlurStage = field(default_factory=BlurStage)  # first-order blur
    resize1: ResizeStage = field(default_factory=ResizeStage)  # first-order resize, relative to (H, W)
    noise1: NoiseStage = field(default_factory=NoiseStage)  # first-order noise
    jpeg1: JpegStage = field(default_factory=JpegStage)  # first-order JPEG
    blur2: SecondBlurStage = field(default_factory=SecondBlurStage)  # second-order blur
    resize2: SecondResizeStage = field(default_factory=SecondResizeStage)  # relative to (H / scale, W / scale)
    noise2: SecondNoiseStage = field(default_factory=SecondNoiseStage)  # second-order noise
    jpeg2: JpegStage = field(default_factory=JpegStage)  # second-order JPEG, ordered with the final sinc
    final: FinalStage = field(default_factory=FinalStage)  # final sinc and the order of the last two steps

    def validate(self, where: str = "restore.second_order") -> None:
        if not (isinstance(self.scale, int) and self.scale >= 1):
            raise ConfigError(f"{where}.scale={self.scale!r} must be an integer >= 1")
        for f in dataclasses.fields(self):
            stage = getattr(self, f.name)
            if dataclasses.is_dataclass(stage):
                stage.validate(f"{where}.{f.name}")


PLANAR_DEGRADATIONS = ("motion_blur", "downsample", "jpeg", "inpaint")
"""Degradations made in 2D only (a motion streak, a resize, JPEG, drawn holes): off by default for volumes
(:data:`~pix2pix_unet.config.presets.VOLUME_DEFAULTS`), refused when a volume run turns them on."""


@dataclass
class RestoreConfig:
    """``task=restore``: degradations made on the fly on the device, in this order.

    Validation degrades with the fixed ``val_seed``, so its numbers are comparable
    from one evaluation (and one run) to the next.
    """

    gaussian_blur: GaussianBlur = field(default_factory=GaussianBlur)
    motion_blur: MotionBlur = field(default_factory=MotionBlur)
    downsample: Downsample = field(default_factory=Downsample)
    gaussian_noise: GaussianNoise = field(default_factory=GaussianNoise)
    poisson_noise: PoissonNoise = field(default_factory=PoissonNoise)
    jpeg: Jpeg = field(default_factory=Jpeg)
    inpaint: Inpaint = field(default_factory=Inpaint)
    # Real-ESRGAN's second-order pipeline; enabled, it degrades every image in place of the ones above
    # (holes, with inpaint.p > 0, still come last)
    second_order: SecondOrderConfig = field(default_factory=SecondOrderConfig)
    # volumes: the blur is a Gaussian PSF, this many times longer along z than across (widefield and confocal
    # PSFs are about 3x as long axially as laterally); its sigmas in µm become voxels by the voxel size
    psf_axial_ratio: float = 3.0
    val_seed: int = 1234
    # how file values map to the model's [-1, 1] and back (as segment.intensity); `range` suits dim 16-bit
    # microscopy: the degradation strengths are then relative to [intensity_min, intensity_max]
    intensity: Intensity = Intensity.DTYPE
    intensity_min: float = 0.0  # used by intensity=range
    intensity_max: float = 255.0
    # the model and its objective: PSNR first, the GAN and perceptual terms opt-in
    residual: bool = True  # output = input + G(input) (sets generator.residual); off under self_supervised=blind_spot,
    # where the input's path around the net would hand the output each hidden pixel's own value
    pixel_loss: PixelLoss = PixelLoss.CHARBONNIER  # to the clean image, on the [0, 1] scale
    charbonnier_eps: float = 1e-3
    gan_weight: float = 0.0  # PatchGAN term (loss.gan's kind); 0.01 is pix2pix's 1:100 to the pixel loss
    perceptual_weight: float = 0.0  # L1 between VGG16 features (relu1_2 ... relu4_3) of output and clean image
    vgg_weights: str | None = None  # torchvision's vgg16 state dict; None: the torch hub cache's vgg16-397923af.pth
    # learn from noisy images alone (the folder holds noisy images; the degradations above are not used);
    # checkpoints are chosen by the masked-pixel loss on held-out noisy files (val/self_mse), no clean image needed
    self_supervised: SelfSupervised = SelfSupervised.NONE
    neighbour_gamma: float = 2.0  # Neighbor2Neighbor's regulariser weight: 2 for synthetic noise, 1 for real
    blind_spot_fraction: float = 0.005  # blind_spot: the share of each crop's pixels masked (N2V's 0.2 % on larger crops)

    def for_volumes(self) -> RestoreConfig:
        """This config with the :data:`PLANAR_DEGRADATIONS` off (a volume's defaults)."""
        return dataclasses.replace(self, **{name: dataclasses.replace(getattr(self, name), p=0.0)
                                           for name in PLANAR_DEGRADATIONS})

    def degradations(self) -> dict[str, Degradation]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), Degradation)}

    def validate(self, where: str = "restore") -> None:
        for name, degradation in self.degradations().items():
            degradation.validate(f"{where}.{name}")
        self.second_order.validate(f"{where}.second_order")
        _positive(self, where, "charbonnier_eps", "psf_axial_ratio")
        if self.intensity_max <= self.intensity_min:
            raise ConfigError(
                f"{where}.intensity_max={self.intensity_max} must be above intensity_min={self.intensity_min}"
            )
        if self.self_supervised is not SelfSupervised.NONE:
            extra = [name for name in ("gan_weight", "perceptual_weight") if getattr(self, name) > 0]
            if extra or self.inpaint.p > 0:
                raise ConfigError(f"{where}.self_supervised={self.self_supervised.value} learns from noisy images "
                                  f"alone; it cannot be combined with {', '.join(extra) or 'inpaint.p > 0'}")
        if not 0.0 < self.blind_spot_fraction <= 0.5:
            raise ConfigError(f"{where}.blind_spot_fraction={self.blind_spot_fraction} must be in (0, 0.5]")
        for name in ("gan_weight", "perceptual_weight", "neighbour_gamma"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be >= 0")
