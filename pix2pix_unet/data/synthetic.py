"""Built-in procedural paired dataset (label map <-> rendered "photo").

The dataset lets the toolkit train out of the box without any download. Every
sample is generated deterministically from ``(index, seed, spec)``:

1. A scene of geometric objects is sampled in normalised ``[0, 1]`` coordinates
   (so the same index/seed gives the same layout at 64 px and at 256 px). Objects
   are painted back to front, so they overlap and occlude each other, and about
   half of them are placed against an earlier object so that contacts are common.
2. The scene is rasterised into a class map (``labels``) and an instance map
   (``instances``). Where two *same-class* instances touch, a one-pixel
   background gap is carved so that the boundary is visible in the class map
   itself; instances of *different* classes keep touching.
3. The photo is rendered from the class map alone (:func:`render_photo`): a
   per-class colour, shading and texture that depend only on the distance to the
   nearest label change, dark outlines along every label boundary (membrane-like
   lines between touching objects), one fixed global lighting gradient, a slight
   blur and mild Gaussian noise. Because nothing in the clean render depends on
   absolute position (except the gentle global gradient) or on hidden state, the
   label map determines the photo up to the noise, so both label->photo and
   photo->label are learnable.

Classes (ids are fixed; ``num_classes`` just limits which ones are drawn):

====  ==========  ========  ==================================================
id    shape       palette   photo appearance
====  ==========  ========  ==================================================
0     background  black     light beige, dark rim next to objects
1     ellipse     red       pink "cell", dome shading, dark purple nucleus
2     rectangle   green     blue, concentric bands following the outline
3     triangle    blue      golden, bright rim highlight
4     ring        yellow    green tube, strong dome across the band
5     blob        magenta   orange-red, bright rim and darker "crater" centre
6     cross       cyan      cyan, fine concentric bands
7     diamond     white     lime, dome shading with light core
====  ==========  ========  ==================================================
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import relabel_sequential
from torch.utils.data import Dataset

from ..io import PALETTE

__all__ = [
    "NUM_CLASSES",
    "NUM_CLASSES_MAX",
    "PALETTE",
    "VAL_INDEX_OFFSET",
    "SyntheticSpec",
    "SyntheticPairs",
    "colorize",
    "make_sample",
    "render_photo",
    "write_dataset",
]

NUM_CLASSES: int = 5
"""Default number of classes: background + ellipse, rectangle, triangle, ring."""

NUM_CLASSES_MAX: int = int(PALETTE.shape[0])
"""Largest supported ``num_classes`` (one palette colour per class)."""

VAL_INDEX_OFFSET: int = 1_000_000
"""Index offset used for the validation split so it never overlaps training."""

# Photo base colours per class. Deliberately *different* from PALETTE so that
# label->photo is a real mapping rather than a copy.
_PHOTO_COLORS: torch.Tensor = torch.tensor(
    [
        [0.90, 0.86, 0.77],  # 0 background: beige
        [0.92, 0.52, 0.66],  # 1 ellipse: pink
        [0.20, 0.36, 0.90],  # 2 rectangle: blue
        [0.96, 0.76, 0.22],  # 3 triangle: gold
        [0.30, 0.74, 0.36],  # 4 ring: green
        [0.90, 0.38, 0.18],  # 5 blob: orange-red
        [0.36, 0.88, 0.90],  # 6 cross: light cyan
        [0.68, 0.88, 0.18],  # 7 diamond: lime
    ],
    dtype=torch.float32,
)
_NUCLEUS_COLOR: torch.Tensor = torch.tensor([0.38, 0.14, 0.45], dtype=torch.float32)
_PHOTO_COLORS_NP: np.ndarray = _PHOTO_COLORS.numpy()
_NUCLEUS_COLOR_NP: np.ndarray = _NUCLEUS_COLOR.numpy()
_PALETTE_NP: np.ndarray = PALETTE.numpy()

# Object shape per class id (index 0 unused). Shapes are rasterised in
# normalised coordinates by _rasterize_object.
_SHAPES: tuple[str, ...] = (
    "background",
    "ellipse",
    "rectangle",
    "triangle",
    "ring",
    "blob",
    "cross",
    "diamond",
)

# Distances below are expressed in pixels of a 64 px image and scaled by
# size / 64, so the look is the same at every resolution.
_REF_SIZE: float = 64.0
_DIST_MAX: float = 12.0  # distance transform is exact up to this, clipped beyond


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of the procedural dataset.

    Attributes:
        size: Height and width of every sample in pixels (>= 16).
        num_classes: Number of classes including background (class 0); object
            classes are ``1 .. num_classes - 1``. Must be in ``[2, NUM_CLASSES_MAX]``.
        min_objects: Minimum number of objects drawn per scene (>= 0). Tiny
            fully-occluded remnants are dropped, so a scene can end up with fewer.
        max_objects: Maximum number of objects drawn per scene (>= min_objects).
        noise_std: Standard deviation of the additive Gaussian pixel noise of the
            photo (>= 0), on the [0, 1] intensity scale.

    Raises:
        ValueError: If a field is out of range; the message names the value.
    """

    size: int = 64
    num_classes: int = NUM_CLASSES
    min_objects: int = 4
    max_objects: int = 10
    noise_std: float = 0.03

    def __post_init__(self) -> None:
        if not isinstance(self.size, numbers.Integral) or self.size < 16:
            raise ValueError(f"SyntheticSpec.size must be an int >= 16, got {self.size!r}")
        if not isinstance(self.num_classes, numbers.Integral) or not 2 <= self.num_classes <= NUM_CLASSES_MAX:
            raise ValueError(
                f"SyntheticSpec.num_classes must be an int in [2, {NUM_CLASSES_MAX}], "
                f"got {self.num_classes!r}"
            )
        if not isinstance(self.min_objects, numbers.Integral) or self.min_objects < 0:
            raise ValueError(
                f"SyntheticSpec.min_objects must be an int >= 0, got {self.min_objects!r}"
            )
        # 16-bit instance PNGs bound the number of instances.
        if (
            not isinstance(self.max_objects, numbers.Integral)
            or self.max_objects < self.min_objects
            or self.max_objects > 65535
        ):
            raise ValueError(
                "SyntheticSpec.max_objects must be an int in "
                f"[min_objects={self.min_objects}, 65535], got {self.max_objects!r}"
            )
        if not isinstance(self.noise_std, numbers.Real) or not 0 <= self.noise_std < math.inf:
            raise ValueError(
                f"SyntheticSpec.noise_std must be a finite number >= 0, got {self.noise_std!r}"
            )


@dataclass(frozen=True)
class _Object:
    """One object of a scene, in normalised [0, 1] image coordinates."""

    cls: int
    cx: float
    cy: float
    radius: float  # nominal extent, used for placement against neighbours
    angle: float
    params: tuple[float, ...]  # shape-specific parameters


# --------------------------------------------------------------------------- #
# Scene sampling and rasterisation
# --------------------------------------------------------------------------- #


def _rng(index: int, seed: int) -> np.random.Generator:
    """Independent generator per (seed, index) so samples can be made in any order."""
    if index < 0:
        raise IndexError(f"sample index must be >= 0, got {index}")
    # SeedSequence needs non-negative entropy; fold negative seeds into uint64.
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, index]))


def _sample_scene(rng: np.random.Generator, spec: SyntheticSpec) -> list[_Object]:
    """Draws the list of objects (back to front) for one scene."""
    n = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    objects: list[_Object] = []
    for _ in range(n):
        cls = int(rng.integers(1, spec.num_classes))
        radius = float(rng.uniform(0.10, 0.21))
        angle = float(rng.uniform(0.0, 2.0 * math.pi))
        # Draw a fixed number of shape parameters so that the random stream does
        # not depend on the class drawn (keeps scenes stable across num_classes
        # as much as possible).
        raw = rng.uniform(0.0, 1.0, size=6)
        # Place against an existing object most of the time: produces touching and
        # overlapping objects, which is what makes segmentation non-trivial.
        if objects and rng.random() < 0.55:
            other = objects[int(rng.integers(len(objects)))]
            direction = rng.uniform(0.0, 2.0 * math.pi)
            dist = (other.radius + radius) * rng.uniform(0.6, 0.95)
            cx = other.cx + dist * math.cos(direction)
            cy = other.cy + dist * math.sin(direction)
        else:
            cx, cy = (float(v) for v in rng.uniform(0.05, 0.95, size=2))
        objects.append(_Object(cls, cx, cy, radius, angle, tuple(float(v) for v in raw)))
    return objects


def _rasterize_object(obj: _Object, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Boolean mask of ``obj`` evaluated at pixel centres ``(xs, ys)``.

    Args:
        obj: The object, in normalised coordinates.
        xs: (H, W) normalised x coordinates of pixel centres.
        ys: (H, W) normalised y coordinates of pixel centres.

    Returns:
        (H, W) boolean mask.
    """
    # Object-local, rotated coordinates.
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    dx, dy = xs - obj.cx, ys - obj.cy
    u = c * dx + s * dy
    v = -s * dx + c * dy
    r = obj.radius
    p = obj.params
    shape = _SHAPES[obj.cls]
    if shape == "ellipse":
        a, b = r, r * (0.6 + 0.4 * p[0])
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape == "rectangle":
        a, b = r * (0.8 + 0.2 * p[0]), r * (0.4 + 0.4 * p[1])
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    if shape == "triangle":
        inradius = 0.6 * r
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            t = 2.0 * math.pi * k / 3.0
            inside &= u * math.cos(t) + v * math.sin(t) <= inradius
        return inside
    if shape == "ring":
        outer = r * (0.9 + 0.2 * p[0])
        # Keep the band at least ~2.5 px at 64 px so the ring survives the blur.
        width = max(0.04, 0.35 * outer)
        rho = np.sqrt(u**2 + v**2)
        return (rho <= outer) & (rho >= outer - width)
    if shape == "blob":
        # Smooth star-convex shape from a few low-order harmonics of the radius.
        phi = np.arctan2(v, u)
        rad = 1.0 + 0.18 * np.cos(2 * phi + 6.28 * p[0]) + 0.12 * np.cos(3 * phi + 6.28 * p[1])
        rad += 0.08 * np.cos(5 * phi + 6.28 * p[2])
        return np.sqrt(u**2 + v**2) <= r * rad
    if shape == "cross":
        arm, half_w = r, r * (0.28 + 0.1 * p[0])
        au, av = np.abs(u), np.abs(v)
        return ((au <= arm) & (av <= half_w)) | ((au <= half_w) & (av <= arm))
    if shape == "diamond":
        a, b = 1.1 * r, r * (0.5 + 0.3 * p[0])
        return np.abs(u) / a + np.abs(v) / b <= 1.0
    raise AssertionError(f"unknown shape {shape!r}")  # pragma: no cover


def _rasterize_scene(
    objects: list[_Object], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Paints objects back to front and post-processes the instance map.

    Returns:
        ``(labels, instances)`` as (H, W) int64 arrays; instance ids are
        consecutive ``1..K`` in painting order.
    """
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size
    xs, ys = np.meshgrid(coords, coords, indexing="xy")
    labels = np.zeros((size, size), dtype=np.int64)
    instances = np.zeros((size, size), dtype=np.int64)
    for k, obj in enumerate(objects, start=1):
        mask = _rasterize_object(obj, xs, ys)
        labels[mask] = obj.cls
        instances[mask] = k

    # Carve a 1 px background gap where two instances of the same class touch
    # (8-connectivity), removing the pixels of the one painted first (the one
    # underneath): a pixel goes when a 3x3 maximum over its class's instance ids
    # finds a later one. Without it, two touching cells would merge into one blob
    # in the class map while the photo shows two, i.e. the photo would not be a
    # function of the labels.
    carve = np.zeros_like(labels, dtype=bool)
    for cls in np.unique(labels[labels > 0]):
        own = labels == cls
        later = ndimage.maximum_filter(np.where(own, instances, 0), size=3, mode="constant", cval=0)
        carve |= own & (later > instances)
    labels[carve] = 0
    instances[carve] = 0

    # Drop tiny pieces (remnants of mostly occluded objects, slivers left by the
    # carving): they are unlearnable noise for both directions of the task.
    min_pixels = max(3, round(8 * (size / _REF_SIZE) ** 2))
    # 8-connected pieces of each instance id (occlusion can cut one object in several)
    pieces = connected_components(instances, background=0, connectivity=2)
    drop = (np.bincount(pieces.ravel()) < min_pixels)[pieces] & (pieces > 0)
    labels[drop] = 0
    instances[drop] = 0
    # Renumber surviving instances consecutively, keeping painting order.
    return labels, relabel_sequential(instances)[0]


# --------------------------------------------------------------------------- #
# Photo rendering
# --------------------------------------------------------------------------- #


def _distance_to_other_label(labels: np.ndarray, dmax: int) -> np.ndarray:
    """Euclidean distance from each pixel to the nearest pixel of another label.

    Exact (pixel centre to pixel centre) and clipped at ``dmax``. Pixels outside
    the image are *not* treated as a boundary, so an object cut by the frame (or
    by a random crop) is not darkened along the frame edge.

    Args:
        labels: (H, W) integer class map.
        dmax: Truncation distance in pixels.

    Returns:
        (H, W) float32 distances in ``[1, dmax]``.
    """
    dist = np.full(labels.shape, np.float32(dmax))
    present = np.unique(labels)
    if len(present) > 1:  # one label everywhere: no other label at any distance
        for value in present:
            own = labels == value
            dist[own] = ndimage.distance_transform_edt(own)[own]
    return np.minimum(dist, np.float32(dmax))


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Cubic smoothstep from 0 (``x <= lo``) to 1 (``x >= hi``)."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _render_photo_np(
    labels: np.ndarray, noise_std: float, rng: np.random.Generator | None
) -> np.ndarray:
    """numpy implementation of :func:`render_photo`, returns (3, H, W) float32.

    Written in numpy rather than torch on purpose: the arrays are tiny, and
    torch's intra-op thread pool makes such small ops 20x slower when the CPU
    is busy (e.g. with the training loop running next to the data generator).
    """
    h, w = labels.shape
    scale = max(h, w) / _REF_SIZE
    dmax = max(2, math.ceil(_DIST_MAX * scale))
    dist = _distance_to_other_label(labels, dmax)
    # ``t``: distance from the label boundary in 64-px units, 0 at the edge.
    t = (dist - np.float32(0.5)) / np.float32(scale)

    def is_cls(c: int) -> np.ndarray:
        return (labels == c).astype(np.float32)

    obj = (labels > 0).astype(np.float32)
    color = _PHOTO_COLORS_NP[labels].transpose(2, 0, 1)  # (3, H, W), a copy

    # Shape-dependent shading: a dome rising from the object outline.
    dome = np.sqrt(np.clip(t / 5.0, 0.0, 1.0))
    shade = 1.0 + obj * (0.28 * dome - 0.22)
    # Class-specific textures, all functions of the boundary distance so they
    # follow the object instead of the image grid.
    shade += is_cls(2) * 0.14 * np.cos(2.0 * np.pi * t / 3.0)  # concentric bands
    shade += is_cls(4) * (0.25 * np.sqrt(np.clip(t / 1.5, 0.0, 1.0)) - 0.1)  # tube
    shade += is_cls(5) * (0.15 - 0.3 * _smoothstep(t, 1.0, 4.0))  # rim, dark crater
    shade += is_cls(6) * 0.1 * np.cos(2.0 * np.pi * t / 1.6)  # fine bands
    shade += is_cls(7) * 0.2 * _smoothstep(t, 2.5, 4.0)  # light core
    color = color * shade

    # Cell nucleus: a dark blob where the cell is thick enough.
    nucleus = is_cls(1) * _smoothstep(t, 3.0, 4.0)
    color = color * (1.0 - nucleus) + _NUCLEUS_COLOR_NP[:, None, None] * nucleus
    # Triangle rim highlight, just inside the dark outline so both stay visible.
    rim = is_cls(3) * _smoothstep(t, 0.3, 0.9) * (1.0 - _smoothstep(t, 1.6, 2.6))
    color = color * (1.0 - 0.5 * rim) + 0.5 * rim

    # Dark outlines on both sides of every label boundary: membranes between
    # touching objects, rims around isolated ones, and the carved gap between
    # same-class neighbours. Strongest on the background side.
    edge = np.exp(-(((dist - 1.0) / (0.8 * scale)) ** 2))
    strength = np.where(labels == 0, np.float32(0.6), np.float32(0.4))
    color = color * (1.0 - strength * edge)

    # One fixed global lighting gradient (light from the top-left), identical
    # for every image so that it is learnable rather than a nuisance variable.
    ys = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    color = (color * (1.0 - 0.04 * (xs + ys))).astype(np.float32)

    # A slight blur, per channel (reflect padding without repeating the edge pixel).
    sigma = 0.5 * scale
    color = ndimage.gaussian_filter(color, sigma=(0, sigma, sigma), mode="mirror", truncate=2.5)
    if noise_std > 0:
        assert rng is not None
        color += np.float32(noise_std) * rng.standard_normal(size=(3, h, w), dtype=np.float32)
    return np.clip(color, 0.0, 1.0, out=color)


def render_photo(
    labels: torch.Tensor | np.ndarray,
    noise_std: float = 0.0,
    rng: np.random.Generator | None = None,
) -> torch.Tensor:
    """Renders the "photo" of a class map.

    The clean render is a pure function of ``labels``; only the additive noise
    (if ``noise_std > 0``) is random. Texture and shading are defined relative to
    the objects (via the distance to the nearest label change), never in
    absolute image coordinates, except for one fixed, gentle lighting gradient.

    Args:
        labels: (H, W) integer class ids in ``[0, NUM_CLASSES_MAX)``.
        noise_std: Standard deviation of additive Gaussian noise.
        rng: Generator for the noise; required when ``noise_std > 0``.

    Returns:
        (3, H, W) float32 photo in ``[0, 1]`` (CPU tensor).

    Raises:
        ValueError: If ``labels`` has the wrong shape or out-of-range ids, or
            noise is requested without a generator.
    """
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels).astype(np.int64, copy=False)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES_MAX):
        raise ValueError(
            f"labels must be in [0, {NUM_CLASSES_MAX}), got range "
            f"[{labels.min()}, {labels.max()}]"
        )
    if noise_std > 0 and rng is None:
        raise ValueError("rng is required when noise_std > 0")
    return torch.from_numpy(_render_photo_np(labels, noise_std, rng))


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def colorize(labels: torch.Tensor) -> torch.Tensor:
    """Maps class ids to palette colours.

    Args:
        labels: (H, W) or (B, H, W) integer class ids in ``[0, NUM_CLASSES_MAX)``.

    Returns:
        (3, H, W) or (B, 3, H, W) float32 colours in ``[0, 1]``.

    Raises:
        ValueError: If the shape is wrong or an id has no palette colour.
    """
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels must be (H, W) or (B, H, W), got shape {tuple(labels.shape)}")
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= NUM_CLASSES_MAX):
        raise ValueError(
            f"labels must be in [0, {NUM_CLASSES_MAX}), got range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    rgb = PALETTE.to(labels.device)[labels]  # (..., H, W, 3)
    return rgb.movedim(-1, -3).contiguous()


def make_sample(
    index: int, seed: int = 0, spec: SyntheticSpec = SyntheticSpec()
) -> dict[str, torch.Tensor]:
    """Generates one paired sample, deterministically in ``(index, seed, spec)``.

    Args:
        index: Sample index (>= 0).
        seed: Dataset seed.
        spec: Dataset parameters.

    Returns:
        Dict with
        ``'labels'`` (H, W) int64 class ids in ``[0, num_classes)``,
        ``'instances'`` (H, W) int64 instance ids (0 = background, 1..K objects
        in painting order; touching objects have different ids; same-class
        instances are always separated by a 1 px background gap, so only
        different-class instances are ever adjacent),
        ``'label_rgb'`` (3, H, W) float32 ``PALETTE[labels]``, and
        ``'photo'`` (3, H, W) float32 rendered photo in ``[0, 1]``.

    Raises:
        IndexError: If ``index`` is negative.
    """
    rng = _rng(int(index), int(seed))
    objects = _sample_scene(rng, spec)
    labels, instances = _rasterize_scene(objects, spec.size)
    # Everything stays in numpy until the end (see _render_photo_np for why).
    photo = _render_photo_np(labels, spec.noise_std, rng)
    label_rgb = np.ascontiguousarray(_PALETTE_NP[labels].transpose(2, 0, 1))
    return {
        "labels": torch.from_numpy(labels),
        "instances": torch.from_numpy(instances),
        "label_rgb": torch.from_numpy(label_rgb),
        "photo": torch.from_numpy(photo),
    }


class SyntheticPairs(Dataset):
    """Lazily generated paired dataset (picklable, so DataLoader workers work).

    Args:
        num_samples: Number of samples.
        seed: Dataset seed.
        spec: Dataset parameters.
        index_offset: Added to the item index before generation; e.g. use
            ``VAL_INDEX_OFFSET`` for a validation split that matches the one
            written by :func:`write_dataset`.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int = 0,
        spec: SyntheticSpec = SyntheticSpec(),
        index_offset: int = 0,
    ) -> None:
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        if index_offset < 0:
            raise ValueError(f"index_offset must be >= 0, got {index_offset}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.spec = spec
        self.index_offset = int(index_offset)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i < 0:
            i += self.num_samples  # support negative indexing like a sequence
        if not 0 <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for {self.num_samples} samples")
        return make_sample(i + self.index_offset, self.seed, self.spec)


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float [0, 1] -> (H, W, 3) uint8."""
    return (img.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def write_dataset(
    root: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    spec: SyntheticSpec = SyntheticSpec(),
) -> Path:
    """Writes the dataset to disk in the toolkit's folder format.

    Layout, for ``split`` in ``train`` and ``val``::

        root/split/A/00000.png          colourised label map, RGB 8-bit
        root/split/B/00000.png          photo, RGB 8-bit
        root/split/labels/00000.png     class ids, 8-bit 'L'
        root/split/instances/00000.png  instance ids, 16-bit 'I;16'

    Training sample ``i`` is ``make_sample(i, seed, spec)``; validation sample
    ``i`` is ``make_sample(VAL_INDEX_OFFSET + i, seed, spec)``, so the splits
    never overlap.

    Args:
        root: Output directory (created if needed).
        num_train: Number of training samples (``<= VAL_INDEX_OFFSET``).
        num_val: Number of validation samples.
        seed: Dataset seed.
        spec: Dataset parameters.

    Returns:
        ``root`` as a :class:`Path`.

    Raises:
        ValueError: If a count is negative or ``num_train`` is too large.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train and num_val must be >= 0, got {num_train}, {num_val}")
    if num_train > VAL_INDEX_OFFSET:
        raise ValueError(f"num_train must be <= {VAL_INDEX_OFFSET}, got {num_train}")
    root = Path(root)
    for split, count, offset in (("train", num_train, 0), ("val", num_val, VAL_INDEX_OFFSET)):
        dirs = {name: root / split / name for name in ("A", "B", "labels", "instances")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            sample = make_sample(offset + i, seed, spec)
            name = f"{i:05d}.png"
            Image.fromarray(_to_uint8(sample["label_rgb"])).save(dirs["A"] / name)
            Image.fromarray(_to_uint8(sample["photo"])).save(dirs["B"] / name)
            Image.fromarray(sample["labels"].numpy().astype(np.uint8)).save(
                dirs["labels"] / name
            )
            Image.fromarray(sample["instances"].numpy().astype(np.uint16)).save(
                dirs["instances"] / name
            )
    return root
