"""Built-in fluorescence-like nuclei: dim 16-bit gray tiles and their instance maps.

``data.builtin_kind=nuclei`` trains ``task=segment`` on these, and
``datasets/make_synthetic.py --kind nuclei`` writes them as files. Every tile is
generated deterministically from ``(index, seed, spec)``:

1. Nuclei are elliptical, of varied size, elongation and angle. More than half
   are placed against an earlier nucleus, at a little less than the sum of their
   radii, so nuclei touch and overlap; a later nucleus occludes the part of an
   earlier one it covers, so each pixel belongs to one nucleus.
2. Occlusion can cut a nucleus in pieces: only its largest 4-connected piece is
   kept (the rest becomes background), and nuclei under ``min_area`` pixels or
   mostly hidden (less than ``min_visible`` of them left) are dropped, so every
   instance is one connected, compact piece.
3. The image is rendered from the final instance map: a per-nucleus brightness
   (log-uniform, 4x between the dimmest and the brightest), a dome profile and a
   faint chromatin texture, blurred by the microscope's PSF (a Gaussian), under
   uneven illumination (a radial fall-off from a random centre), over a dim
   background of 100-300 counts; then shot noise (Poisson, in photons of
   ``gain`` counts) and camera read noise (Gaussian).

Values stay in a small part of the 16-bit range (about 100 .. 3000 of 65535),
as in real widefield fluorescence, which is what ``segment.intensity=image``
is for.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .. import io
from .synthetic import VAL_INDEX_OFFSET

__all__ = ["REFERENCE_AREA", "NucleiSpec", "make_nuclei", "write_nuclei"]

REFERENCE_AREA: int = 72 * 72
"""``NucleiSpec.count`` is the number of nuclei drawn on this many pixels; larger tiles get more."""


@dataclass(frozen=True)
class NucleiSpec:
    """Parameters of the built-in nuclei tiles; lengths in pixels, intensities in counts.

    Attributes:
        size: height and width of a tile (>= 16).
        count: ``(low, high)`` nuclei drawn per :data:`REFERENCE_AREA` pixels, scaled
            by the tile's area (at least one). Some are dropped after occlusion.
        radius: ``(low, high)`` of a nucleus' mean semi-axis.
        max_aspect: largest ratio of the long to the short semi-axis (>= 1).
        touching: share of nuclei placed against an earlier one (in [0, 1]).
        brightness: ``(low, high)`` peak counts of a nucleus above the background,
            drawn log-uniformly (dim and bright nuclei in one tile).
        background: ``(low, high)`` of a tile's background level.
        illumination: relative fall-off of the excitation at the tile's darkest
            point (in [0, 1); 0 is even illumination).
        texture: relative amplitude of the chromatin texture inside nuclei (>= 0).
        blur: standard deviation of the Gaussian PSF (>= 0).
        gain: counts per detected photon; shot noise is Poisson in photons (> 0).
        read_noise: standard deviation of the Gaussian camera noise (>= 0).
        min_area: nuclei with fewer visible pixels are dropped (>= 1).
        min_visible: nuclei occluded so much that less than this share of their
            pixels in the tile stays visible are dropped (no thin crescents; in [0, 1]).

    Raises:
        ValueError: a field out of range; the message names it and its value.
    """

    size: int = 72
    count: tuple[int, int] = (6, 14)
    radius: tuple[float, float] = (4.5, 8.5)
    max_aspect: float = 1.6
    touching: float = 0.6
    brightness: tuple[float, float] = (500.0, 2000.0)
    background: tuple[float, float] = (100.0, 300.0)
    illumination: float = 0.35
    texture: float = 0.12
    blur: float = 1.0
    gain: float = 2.0
    read_noise: float = 5.0
    min_area: int = 20
    min_visible: float = 0.6

    def __post_init__(self) -> None:
        if not isinstance(self.size, numbers.Integral) or self.size < 16:
            raise ValueError(f"NucleiSpec.size must be an int >= 16, got {self.size!r}")
        if not isinstance(self.min_area, numbers.Integral) or self.min_area < 1:
            raise ValueError(f"NucleiSpec.min_area must be an int >= 1, got {self.min_area!r}")
        for name, lowest in (("count", 0), ("radius", 1.0), ("brightness", 0.0), ("background", 0.0)):
            value = getattr(self, name)
            if (not isinstance(value, tuple) or len(value) != 2 or not all(math.isfinite(v) for v in value)
                    or not lowest <= value[0] <= value[1] or (name == "count" and value[1] < 1)):
                raise ValueError(f"NucleiSpec.{name} must be a (low, high) pair with {lowest} <= low <= high, "
                                 f"got {value!r}")
        ranges = {"max_aspect": (1.0, math.inf), "touching": (0.0, 1.0), "illumination": (0.0, 0.99),
                  "texture": (0.0, 1.0), "blur": (0.0, math.inf), "read_noise": (0.0, math.inf),
                  "min_visible": (0.0, 1.0)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not low <= value <= high or not math.isfinite(value):
                raise ValueError(f"NucleiSpec.{name} must be a finite number in [{low}, {high}], got {value!r}")
        if not isinstance(self.gain, numbers.Real) or not 0 < self.gain < math.inf:
            raise ValueError(f"NucleiSpec.gain must be a finite number > 0, got {self.gain!r}")


def _rng(index: int, seed: int) -> np.random.Generator:
    """An independent generator per ``(seed, index)``, so tiles can be made in any order."""
    if index < 0:
        raise IndexError(f"tile index must be >= 0, got {index}")
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, index, 0x6E75636C]))


def _place(rng: np.random.Generator, spec: NucleiSpec) -> np.ndarray:
    """``(n, 6)`` nuclei back to front: ``cy, cx, semi-axis along, semi-axis across, angle, brightness``."""
    size = spec.size
    n = max(1, round(int(rng.integers(spec.count[0], spec.count[1] + 1)) * size * size / REFERENCE_AREA))
    # a fixed number of draws per nucleus keeps the random stream independent of the choices made
    draws = rng.random((n, 8))
    nuclei = np.zeros((n, 6))
    for i, (r_u, aspect_u, angle_u, bright_u, touch_u, partner_u, dir_u, gap_u) in enumerate(draws):
        radius = spec.radius[0] + r_u * (spec.radius[1] - spec.radius[0])
        aspect = math.sqrt(1 + aspect_u * (spec.max_aspect - 1))
        low, high = spec.brightness
        brightness = low * (high / low) ** bright_u if low > 0 else bright_u * high
        if i and touch_u < spec.touching:
            j = int(partner_u * i)
            direction = 2 * math.pi * dir_u
            distance = (radius + nuclei[j, 2:4].mean()) * (0.75 + 0.25 * gap_u)  # a little overlap
            cy = nuclei[j, 0] + distance * math.sin(direction)
            cx = nuclei[j, 1] + distance * math.cos(direction)
            cy, cx = min(max(cy, 0.0), size - 1.0), min(max(cx, 0.0), size - 1.0)
        else:
            cy, cx = dir_u * size, gap_u * size
        nuclei[i] = cy, cx, radius * aspect, radius / aspect, math.pi * angle_u, brightness
    return nuclei


def _rasterize(nuclei: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance ids ``1..n`` (later nuclei on top), each pixel's squared elliptical radius in its owner,
    and each nucleus' area in the tile before occlusion (``(n + 1,)``, by id)."""
    instances = np.zeros((size, size), np.int32)
    depth = np.ones((size, size), np.float32)  # 0 at a nucleus' centre, 1 at its rim
    drawn = np.zeros(len(nuclei) + 1, np.int64)
    for i, (cy, cx, along, across, angle, _) in enumerate(nuclei, start=1):
        reach = along + 1
        y0, y1 = max(0, int(cy - reach)), min(size, int(cy + reach) + 2)
        x0, x1 = max(0, int(cx - reach)), min(size, int(cx + reach) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        cos, sin = math.cos(angle), math.sin(angle)
        q = ((dx * cos + dy * sin) / along) ** 2 + ((dy * cos - dx * sin) / across) ** 2
        inside = q <= 1
        instances[y0:y1, x0:x1][inside] = i
        depth[y0:y1, x0:x1][inside] = q[inside]
        drawn[i] = inside.sum()
    return instances, depth, drawn


def largest_pieces(instances: np.ndarray, drawn: np.ndarray, min_size: int,
                   min_visible: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep each instance's largest face-connected piece (2D or 3D), drop those under ``min_size`` pixels or
    under ``min_visible`` of their ``drawn`` size, renumber 1..m.

    Returns the new map and, for each kept instance, its old id.
    """
    cleaned = np.zeros_like(instances)
    kept = []
    for old, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        mask = instances[box] == old
        pieces, count = ndimage.label(mask)
        if count > 1:
            mask = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
        size = int(mask.sum())
        if size < min_size or size < min_visible * drawn[old]:
            continue
        kept.append(old)
        cleaned[box][mask] = len(kept)
    return cleaned, np.asarray(kept, np.int64)


def _illumination(rng: np.random.Generator, size: int, fall_off: float) -> np.ndarray:
    """A radial excitation field, 1 at a random centre (maybe off the tile), ``1 - fall_off`` at its darkest."""
    cy, cx = rng.uniform(-0.5, 1.5, 2) * size
    yy, xx = np.ogrid[:size, :size]
    d2 = ((yy - cy) ** 2 + (xx - cx) ** 2).astype(np.float32)
    return 1 - fall_off * d2 / d2.max()


def make_nuclei(index: int, seed: int = 0, spec: NucleiSpec = NucleiSpec()) -> tuple[np.ndarray, np.ndarray]:
    """One tile, deterministically in ``(index, seed, spec)``.

    Args:
        index: tile number (>= 0); the validation split starts at ``VAL_INDEX_OFFSET``.
        seed: dataset seed.
        spec: what the tiles look like.

    Returns:
        ``(image, instances)``, both ``(size, size)`` uint16: counts, and instance ids
        ``1..n`` (0 = background), each instance one 4-connected piece of at least
        ``spec.min_area`` pixels.

    Raises:
        IndexError: a negative index.
    """
    rng = _rng(index, seed)
    size = spec.size
    nuclei = _place(rng, spec)
    instances, depth, drawn = _rasterize(nuclei, size)
    instances, kept = largest_pieces(instances, drawn, spec.min_area, spec.min_visible)
    background = rng.uniform(*spec.background)
    field = _illumination(rng, size, spec.illumination)
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 1.2)
    texture /= texture.std() + 1e-6

    peak = np.concatenate([[0.0], nuclei[kept - 1, 5]]).astype(np.float32)  # by new id
    dome = 1 - 0.35 * depth  # brighter centres, as a stained nucleus is thickest there
    signal = peak[instances] * dome * (1 + spec.texture * texture).clip(min=0)
    signal = ndimage.gaussian_filter(signal * field, spec.blur) if spec.blur > 0 else signal * field
    # the background (autofluorescence, out-of-focus light) sees part of the illumination too
    expected = background * (0.5 + 0.5 * field) + signal
    counts = spec.gain * rng.poisson(expected / spec.gain) + rng.normal(0.0, spec.read_noise, expected.shape)
    image = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    return image, instances.astype(np.uint16)


def write_nuclei(root: str | Path, num_train: int, num_val: int, seed: int = 0,
                 spec: NucleiSpec = NucleiSpec()) -> Path:
    """Write the tiles as a label-map dataset that ``task=segment`` reads; returns ``root``.

    Layout::

        root/{train,val}/images/00000.tif     16-bit gray counts
        root/{train,val}/labels/00000.png     palette PNG, 0 background, 1 nucleus
        root/{train,val}/instances/00000.png  16-bit instance ids

    Train tile ``i`` is ``make_nuclei(i, seed, spec)``, validation tile ``i`` is
    ``make_nuclei(VAL_INDEX_OFFSET + i, seed, spec)``, as in the built-in data.

    Raises:
        ValueError: a negative count, or ``num_train`` beyond ``VAL_INDEX_OFFSET``.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f"tile counts must be >= 0, got num_train={num_train}, num_val={num_val}")
    if num_train > VAL_INDEX_OFFSET:
        raise ValueError(f"num_train must be <= {VAL_INDEX_OFFSET}, got {num_train}")
    root = Path(root)
    for split, count, offset in (("train", num_train, 0), ("val", num_val, VAL_INDEX_OFFSET)):
        for i in range(count):
            image, instances = make_nuclei(offset + i, seed, spec)
            name = f"{i:05d}"
            io.write_image(root / split / "images" / f"{name}.tif", image)
            io.write_label_map(root / split / "labels" / f"{name}.png", (instances > 0).astype(np.uint8), 2)
            io.write_image(root / split / "instances" / f"{name}.png", instances)
    return root
