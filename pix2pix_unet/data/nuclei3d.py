"""Built-in fluorescence-like nuclei in 3D: small anisotropic 16-bit stacks and their instance maps.

The volume counterpart of :mod:`.nuclei`, small enough (32 x 96 x 96 voxels by
default) to train a 3D U-Net on a CPU in minutes. Every volume is generated
deterministically from ``(index, seed, spec)``, in micrometres first and voxels
last, so the anisotropy of a confocal stack (z sampled 4x coarser than y and x by
default) is in the data rather than in the shapes:

1. Nuclei are ellipsoids of varied size and elongation (semi-axes ``r * a``,
   ``r``, ``r / a``), turned by a uniformly random rotation. More than half are
   placed against an earlier nucleus, at a little less than the sum of their mean
   radii in a random 3D direction, so nuclei touch and overlap; a later nucleus
   occludes the part of an earlier one it covers, so each voxel belongs to one
   nucleus.
2. Only each nucleus' largest face-connected piece is kept, and nuclei under
   ``min_voxels`` or mostly hidden (less than ``min_visible`` left) are dropped,
   so every instance is one connected, compact piece that a watershed must split
   from its neighbours.
3. The image is rendered from the final instance map: a per-nucleus brightness
   (log-uniform), a dome profile and a faint chromatin texture, under uneven
   lateral illumination and a signal loss with depth (scattering), blurred by an
   anisotropic Gaussian PSF (longer along z, as every microscope's is), over a
   background; then shot noise (Poisson, in photons of ``gain`` counts) and
   camera read noise (Gaussian).

Values span a few hundred to about 20000 counts of 65535.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..volume_io import write_volume
from .nuclei import largest_pieces
from .synthetic import VAL_INDEX_OFFSET

__all__ = ["REFERENCE_VOLUME", "Nuclei3DSpec", "make_nuclei_volume", "write_nuclei_volumes"]

REFERENCE_VOLUME: float = 64.0 * 48.0 * 48.0
"""``Nuclei3DSpec.count`` is the number of nuclei drawn in this many µm³ (the default volume's extent)."""


@dataclass(frozen=True)
class Nuclei3DSpec:
    """Parameters of the built-in nuclei volumes; lengths in micrometres, intensities in counts.

    Attributes:
        shape: ``(z, y, x)`` voxels of a volume (z >= 4, y and x >= 16).
        spacing: ``(z, y, x)`` voxel size in µm; written with the files.
        count: ``(low, high)`` nuclei drawn per :data:`REFERENCE_VOLUME` µm³, scaled
            by the volume's extent (at least one). Some are dropped after occlusion.
        radius: ``(low, high)`` of a nucleus' middle semi-axis.
        max_aspect: largest ratio of the long to the short semi-axis (>= 1).
        touching: share of nuclei placed against an earlier one (in [0, 1]).
        brightness: ``(low, high)`` peak counts of a nucleus above the background,
            drawn log-uniformly.
        background: ``(low, high)`` of a volume's background level.
        illumination: relative lateral fall-off of the excitation at the darkest
            point (in [0, 1)).
        attenuation: relative loss of signal from the first slice to the last (in [0, 1)).
        texture: relative amplitude of the chromatin texture inside nuclei (>= 0).
        psf_sigma: ``(along z, across)`` standard deviations of the Gaussian PSF in µm.
        gain: counts per detected photon; shot noise is Poisson in photons (> 0).
        read_noise: standard deviation of the Gaussian camera noise (>= 0).
        min_voxels: nuclei with fewer visible voxels are dropped (>= 1).
        min_visible: nuclei with less than this share of their voxels in the volume
            left visible are dropped (in [0, 1]).

    Raises:
        ValueError: a field out of range; the message names it and its value.
    """

    shape: tuple[int, int, int] = (32, 96, 96)
    spacing: tuple[float, float, float] = (2.0, 0.5, 0.5)
    count: tuple[int, int] = (80, 120)
    radius: tuple[float, float] = (3.0, 4.5)
    max_aspect: float = 1.6
    touching: float = 0.7
    brightness: tuple[float, float] = (3000.0, 20000.0)
    background: tuple[float, float] = (200.0, 500.0)
    illumination: float = 0.3
    attenuation: float = 0.3
    texture: float = 0.12
    psf_sigma: tuple[float, float] = (1.6, 0.3)
    gain: float = 4.0
    read_noise: float = 6.0
    min_voxels: int = 40
    min_visible: float = 0.5

    def __post_init__(self) -> None:
        if (not isinstance(self.shape, tuple) or len(self.shape) != 3
                or not all(isinstance(n, numbers.Integral) for n in self.shape)
                or self.shape[0] < 4 or min(self.shape[1:]) < 16):
            raise ValueError(f"Nuclei3DSpec.shape must be (z, y, x) ints with z >= 4 and y, x >= 16, "
                             f"got {self.shape!r}")
        if (not isinstance(self.spacing, tuple) or len(self.spacing) != 3
                or not all(isinstance(v, numbers.Real) and math.isfinite(v) and v > 0 for v in self.spacing)):
            raise ValueError(f"Nuclei3DSpec.spacing must be three positive numbers (z, y, x) in µm, "
                             f"got {self.spacing!r}")
        if not isinstance(self.min_voxels, numbers.Integral) or self.min_voxels < 1:
            raise ValueError(f"Nuclei3DSpec.min_voxels must be an int >= 1, got {self.min_voxels!r}")
        for name, lowest in (("count", 0), ("radius", 0.1), ("brightness", 0.0), ("background", 0.0),
                             ("psf_sigma", 0.0)):
            value = getattr(self, name)
            ordered = name != "psf_sigma"  # the two sigmas are (z, across), not (low, high)
            if (not isinstance(value, tuple) or len(value) != 2 or not all(math.isfinite(v) for v in value)
                    or min(value) < lowest or (ordered and value[0] > value[1])
                    or (name == "count" and value[1] < 1)):
                what = "a pair of numbers >= 0" if not ordered else f"a (low, high) pair with {lowest} <= low <= high"
                raise ValueError(f"Nuclei3DSpec.{name} must be {what}, got {value!r}")
        ranges = {"max_aspect": (1.0, math.inf), "touching": (0.0, 1.0), "illumination": (0.0, 0.99),
                  "attenuation": (0.0, 0.99), "texture": (0.0, 1.0), "read_noise": (0.0, math.inf),
                  "min_visible": (0.0, 1.0)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not low <= value <= high or not math.isfinite(value):
                raise ValueError(f"Nuclei3DSpec.{name} must be a finite number in [{low}, {high}], got {value!r}")
        if not isinstance(self.gain, numbers.Real) or not 0 < self.gain < math.inf:
            raise ValueError(f"Nuclei3DSpec.gain must be a finite number > 0, got {self.gain!r}")

    @property
    def extent(self) -> np.ndarray:
        """``(z, y, x)`` size of a volume in µm."""
        return np.asarray(self.shape, np.float64) * np.asarray(self.spacing, np.float64)


@dataclass(frozen=True)
class _Nucleus:
    centre: np.ndarray  # (3,) z, y, x in µm
    rotation: np.ndarray  # (3, 3): columns are the semi-axes' directions
    semi_axes: np.ndarray  # (3,) µm
    brightness: float


def _rng(index: int, seed: int) -> np.random.Generator:
    """An independent generator per ``(seed, index)``, so volumes can be made in any order."""
    if index < 0:
        raise IndexError(f"volume index must be >= 0, got {index}")
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, index, 0x6E756333]))


def _rotation(quaternion: np.ndarray) -> np.ndarray:
    """The rotation of a (not necessarily unit) quaternion; of a Gaussian 4-vector, uniformly random."""
    w, x, y, z = quaternion / np.linalg.norm(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _place(rng: np.random.Generator, spec: Nuclei3DSpec) -> list[_Nucleus]:
    """Nuclei back to front (a later one occludes an earlier one)."""
    extent = spec.extent
    scale = float(np.prod(extent)) / REFERENCE_VOLUME
    n = max(1, round(int(rng.integers(spec.count[0], spec.count[1] + 1)) * scale))
    # a fixed number of draws per nucleus keeps the random stream independent of the choices made
    uniform, normal = rng.random((n, 9)), rng.standard_normal((n, 7))
    nuclei: list[_Nucleus] = []
    for i in range(n):
        r_u, aspect_u, bright_u, touch_u, partner_u, gap_u, *position_u = uniform[i]
        radius = spec.radius[0] + r_u * (spec.radius[1] - spec.radius[0])
        aspect = math.sqrt(1 + aspect_u * (spec.max_aspect - 1))
        semi_axes = np.array([radius * aspect, radius, radius / aspect])
        low, high = spec.brightness
        brightness = low * (high / low) ** bright_u if low > 0 else bright_u * high
        if nuclei and touch_u < spec.touching:
            partner = nuclei[int(partner_u * len(nuclei))]
            direction = normal[i, 4:] / np.linalg.norm(normal[i, 4:])
            distance = (radius + partner.semi_axes.mean()) * (0.75 + 0.25 * gap_u)  # a little overlap
            centre = np.clip(partner.centre + distance * direction, 0.0, extent)
        else:
            centre = np.asarray(position_u) * extent
        nuclei.append(_Nucleus(centre, _rotation(normal[i, :4]), semi_axes, brightness))
    return nuclei


def _rasterize(nuclei: list[_Nucleus], spec: Nuclei3DSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance ids ``1..n`` (later nuclei on top), each voxel's squared ellipsoidal radius in its owner
    (0 at the centre, 1 at the rim), and each nucleus' voxels in the volume before occlusion (by id)."""
    shape, spacing = np.asarray(spec.shape), np.asarray(spec.spacing)
    instances = np.zeros(spec.shape, np.int32)
    depth = np.ones(spec.shape, np.float32)
    drawn = np.zeros(len(nuclei) + 1, np.int64)
    for i, nucleus in enumerate(nuclei, start=1):
        reach = nucleus.semi_axes.max() + spacing  # µm, per axis
        low = np.maximum(0, np.floor((nucleus.centre - reach) / spacing)).astype(int)
        high = np.minimum(shape, np.ceil((nucleus.centre + reach) / spacing) + 1).astype(int)
        if np.any(low >= high):
            continue
        box = tuple(slice(a, b) for a, b in zip(low, high))
        grid = np.stack(np.meshgrid(*(np.arange(a, b) * s for a, b, s in zip(low, high, spacing)),
                                    indexing="ij"), axis=-1)  # (z, y, x, 3) µm
        q = ((((grid - nucleus.centre) @ nucleus.rotation) / nucleus.semi_axes) ** 2).sum(-1)
        inside = q <= 1
        instances[box][inside] = i
        depth[box][inside] = q[inside]
        drawn[i] = inside.sum()
    return instances, depth, drawn


def _excitation(rng: np.random.Generator, spec: Nuclei3DSpec) -> np.ndarray:
    """``(z, y, x)`` relative signal: a radial lateral field, 1 at a random centre and ``1 - illumination``
    at its darkest, times a linear loss with depth to ``1 - attenuation`` at the last slice."""
    z, y, x = spec.shape
    cy, cx = rng.uniform(-0.5, 1.5, 2) * (y, x)
    yy, xx = np.ogrid[:y, :x]
    d2 = ((yy - cy) ** 2 + (xx - cx) ** 2).astype(np.float32)
    lateral = 1 - spec.illumination * d2 / d2.max()
    with_depth = 1 - spec.attenuation * np.linspace(0.0, 1.0, z, dtype=np.float32)
    return with_depth[:, None, None] * lateral[None]


def make_nuclei_volume(index: int, seed: int = 0,
                       spec: Nuclei3DSpec = Nuclei3DSpec()) -> tuple[np.ndarray, np.ndarray]:
    """One volume, deterministically in ``(index, seed, spec)``.

    Args:
        index: volume number (>= 0); the validation split starts at ``VAL_INDEX_OFFSET``.
        seed: dataset seed.
        spec: what the volumes look like.

    Returns:
        ``(image, instances)``, both ``spec.shape`` ``(Z, Y, X)``: uint16 counts, and
        int32 instance ids ``1..n`` (0 = background), each instance one
        face-connected piece of at least ``spec.min_voxels`` voxels.

    Raises:
        IndexError: a negative index.
    """
    rng = _rng(index, seed)
    nuclei = _place(rng, spec)
    instances, depth, drawn = _rasterize(nuclei, spec)
    instances, kept = largest_pieces(instances, drawn, spec.min_voxels, spec.min_visible)
    background = rng.uniform(*spec.background)
    field = _excitation(rng, spec)
    spacing = np.asarray(spec.spacing)
    texture = ndimage.gaussian_filter(rng.standard_normal(spec.shape).astype(np.float32), 0.6 / spacing)
    texture /= texture.std() + 1e-6

    peak = np.asarray([0.0] + [nuclei[k - 1].brightness for k in kept], np.float32)  # by new id
    dome = 1 - 0.35 * depth  # brighter centres, as a stained nucleus is thickest there
    signal = peak[instances] * dome * (1 + spec.texture * texture).clip(min=0) * field
    sigma = np.asarray([spec.psf_sigma[0], spec.psf_sigma[1], spec.psf_sigma[1]]) / spacing  # voxels
    signal = ndimage.gaussian_filter(signal, sigma) if sigma.max() > 0 else signal
    # the background (autofluorescence, out-of-focus light) sees part of the excitation too
    expected = background * (0.5 + 0.5 * field) + signal
    counts = spec.gain * rng.poisson(expected / spec.gain) + rng.normal(0.0, spec.read_noise, expected.shape)
    image = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    return image, instances.astype(np.int32)


def write_nuclei_volumes(root: str | Path, num_train: int, num_val: int, seed: int = 0,
                         spec: Nuclei3DSpec = Nuclei3DSpec()) -> Path:
    """Write the volumes as a 3D label-map dataset; returns ``root``.

    Layout (ImageJ hyperstacks carrying ``spec.spacing``)::

        root/{train,val}/images/v000.tif     16-bit gray counts
        root/{train,val}/labels/v000.tif     8-bit class ids, 0 background, 1 nucleus
        root/{train,val}/instances/v000.tif  16-bit instance ids

    Train volume ``i`` is ``make_nuclei_volume(i, seed, spec)``, validation volume ``i``
    is ``make_nuclei_volume(VAL_INDEX_OFFSET + i, seed, spec)``, as in the 2D built-in data.

    Raises:
        ValueError: a negative count, ``num_train`` beyond ``VAL_INDEX_OFFSET``, or a
            volume with more instances than 16 bits hold.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f"volume counts must be >= 0, got num_train={num_train}, num_val={num_val}")
    if num_train > VAL_INDEX_OFFSET:
        raise ValueError(f"num_train must be <= {VAL_INDEX_OFFSET}, got {num_train}")
    root = Path(root)
    for split, count, offset in (("train", num_train, 0), ("val", num_val, VAL_INDEX_OFFSET)):
        for i in range(count):
            image, instances = make_nuclei_volume(offset + i, seed, spec)
            if instances.max() > np.iinfo(np.uint16).max:
                raise ValueError(f"volume {offset + i} holds {instances.max()} nuclei, more than uint16 ids hold")
            name = f"v{i:03d}.tif"
            write_volume(root / split / "images" / name, image, spec.spacing)
            write_volume(root / split / "labels" / name, (instances > 0).astype(np.uint8), spec.spacing)
            write_volume(root / split / "instances" / name, instances.astype(np.uint16), spec.spacing)
    return root
