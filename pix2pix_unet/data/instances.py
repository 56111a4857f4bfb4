"""Instance mode of ``task=segment``: touching objects come out as separate instances.

Training targets add a *border* class to the label map (``border_targets``): the
pixels of an object next to another object or to background, as in the U-Net
paper's gaps and the StarDist/Cellpose-era practice. The generator learns
background / class interiors / border. Post-processing (``instances_from_probs``)
turns its probabilities into instance ids by a seeded watershed:

1. the foreground is where the background probability is below ``1 - prob``;
2. seeds are the connected components of the interior probability above ``seed``
   (a foreground component without a seed is a seed of its own);
3. the seeds flood the foreground over the inverted interior probability
   (``skimage.segmentation.watershed``), so the border class separates them;
4. objects under ``min_size`` pixels are dropped and the ids made 1..N.

The three thresholds are tuned on the validation split at the end of training
(``tune_thresholds``: a grid search on object F1 at IoU 0.5, as StarDist's
``optimize_thresholds`` does), saved in the export and used by ``predict``.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from scipy import ndimage
from skimage.segmentation import find_boundaries, watershed


@dataclass(frozen=True)
class InstanceThresholds:
    """Post-processing thresholds: foreground and seed probabilities, and the smallest object kept (px)."""

    prob: float = 0.5
    seed: float = 0.7
    min_size: int = 8

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


PROB_GRID = (0.3, 0.4, 0.5, 0.6, 0.7)
SEED_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_SIZE_GRID = (0, 8, 16, 32, 48, 64)


def border_targets(labels: np.ndarray, instances: np.ndarray, border_class: int) -> np.ndarray:
    """``labels`` with every object's border pixels set to ``border_class``.

    A border pixel belongs to an object and has a face neighbour (4 in 2D, 6 in 3D)
    outside it (another object or background), so two touching objects are parted
    by a 2-px line (a 2-voxel sheet in a volume).

    Shape:
        ``(H, W)`` class ids, ``(H, W)`` instance ids (0 = background) -> ``(H, W)`` int64;
        ``(Z, Y, X)`` alike.
    """
    border = find_boundaries(instances, connectivity=1, mode="inner", background=0) & (instances > 0)
    out = labels.astype(np.int64, copy=True)
    out[border] = border_class
    return out


def border_distance(instances: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Each object's Euclidean distance to its own border (another object, background or the image edge),
    divided by its largest, so every object peaks at 1; 0 on background.

    Args:
        instances: instance ids, 2D or 3D.
        spacing: the pixel or voxel size along each axis (e.g. ``(z, y, x)`` in µm), so distances in
            anisotropic volumes are measured in space rather than in voxels; None for square pixels.

    Shape:
        ``(H, W)`` or ``(Z, Y, X)`` instance ids -> the same, float32 in [0, 1].
    """
    if spacing is not None and len(spacing) != instances.ndim:
        raise ValueError(f"spacing {tuple(spacing)} has {len(spacing)} values for {instances.ndim}-d instances")
    padded = np.pad(instances, 1)  # the image edge counts as border
    out = np.zeros(padded.shape, np.float32)
    for k, box in enumerate(ndimage.find_objects(padded), start=1):
        if box is None:
            continue
        window = tuple(slice(s.start - 1, s.stop + 1) for s in box)  # a ring of other pixels around it
        inside = padded[window] == k
        d = ndimage.distance_transform_edt(inside, sampling=spacing)
        out[window][inside] = d[inside] / d.max()
    return out[(slice(1, -1),) * out.ndim]


def class_map(logits: torch.Tensor, border_class: int) -> torch.Tensor:
    """Class ids from instance-mode logits ``(K + 1, H, W)``: a border pixel takes its best object class."""
    best = logits.argmax(0)
    objects = logits[1:border_class].argmax(0) + 1
    return torch.where(best == border_class, objects, best)


def instance_maps(probs: np.ndarray, border_class: int, prob: float,
                  distance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1 and 2's inputs, voxel by voxel: the foreground ``(H, W)`` (bool) and the interior score
    ``(H, W)`` (float32) the seeds are cut from and the flooding follows, from softmax probabilities
    ``(K + 1, H, W)`` (a volume: ``(K + 1, Z, Y, X)``), or the predicted ``distance`` in place of the interior
    probability. Computed per block of a volume too large to hold as probabilities."""
    foreground = probs[0] < 1 - prob
    interior = probs[1:border_class].sum(0) if distance is None else distance
    return foreground, np.asarray(interior, np.float32)


def instances_from_probs(probs: np.ndarray, border_class: int, th: InstanceThresholds,
                         distance: np.ndarray | None = None) -> np.ndarray:
    """Instance ids ``(H, W)`` (0 = background, 1..N) from softmax probabilities ``(K + 1, H, W)``; for a
    volume, ``(Z, Y, X)`` from ``(K + 1, Z, Y, X)`` (components and seeds are face-connected).

    With ``distance`` (the predicted normalised distance to the border, ``segment.distance_head``) the
    seeds and the flooding use it in place of the interior probability.
    """
    return instances_from_maps(*instance_maps(probs, border_class, th.prob, distance), th)


def instances_from_maps(foreground: np.ndarray, interior: np.ndarray, th: InstanceThresholds,
                        dtype: np.dtype | type | None = np.int64) -> np.ndarray:
    """:func:`instances_from_probs` from its voxel-wise maps (:func:`instance_maps`), ids in ``dtype`` (None:
    uint16, or uint32 past 65535 objects)."""
    return _drop_small(_flood_maps(foreground, interior, th.seed), th.min_size, dtype)


def _flood(probs: np.ndarray, border_class: int, prob: float, seed: float,
           distance: np.ndarray | None = None) -> np.ndarray:
    """Steps 1-3 of the module docstring: the watershed labels before the size filter."""
    return _flood_maps(*instance_maps(probs, border_class, prob, distance), seed)


def _flood_maps(foreground: np.ndarray, interior: np.ndarray, seed: float) -> np.ndarray:
    """Steps 2 and 3 (int32 labels), one foreground component at a time inside its bounding box.

    The flooding never crosses the mask, so each component's watershed is the whole one's there, ids
    included (the seeds are labelled once, over the whole image); only the memory differs: the watershed's
    working copies (float64 and padded) are a box's, not a 512 x 512 x 200 volume's (about 1 GB). Each
    component's labels overwrite its own seeds in place, so a volume costs the seed and component labels."""
    labels, count = ndimage.label(interior > seed)  # int32: the seeds, then each component's flooding
    labels[~foreground] = 0
    components, _ = ndimage.label(foreground)
    for k, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        mask = components[box] == k
        region = labels[box]  # a view: only this component's voxels are read and written
        seeds = np.where(mask, region, 0)
        if not seeds.any():  # a foreground component that holds no seed is an object of its own
            region[mask] = count + k
            continue
        region[mask] = watershed(-interior[box], seeds, mask=mask)[mask]
    return labels


def _drop_small(labels: np.ndarray, min_size: int, dtype: np.dtype | type | None = np.int64) -> np.ndarray:
    """Objects under ``min_size`` pixels dropped and the ids made 1..N in their order (relabel_sequential's),
    through one lookup table, so a volume's labels are copied once, into ``dtype`` (None: the smaller of
    uint16 and uint32 that holds N)."""
    sizes = np.bincount(labels.ravel()) if labels.size else np.zeros(1, np.int64)
    kept = sizes >= max(min_size, 1)
    kept[0] = False
    count = int(kept.sum())
    if dtype is None:
        dtype = np.uint16 if count <= np.iinfo(np.uint16).max else np.uint32
    lut = np.zeros(len(sizes), dtype)
    lut[kept] = np.arange(1, count + 1)
    return lut[labels]


def tune_thresholds(probs: Iterable[np.ndarray], truths: list[np.ndarray], border_class: int,
                    fixed: dict[str, float | None] | None = None,
                    distances: list[np.ndarray] | None = None) -> tuple[InstanceThresholds, float]:
    """The thresholds with the best object F1 at IoU 0.5 over a set, and that F1.

    Every combination of :data:`PROB_GRID`, :data:`SEED_GRID` and :data:`MIN_SIZE_GRID`
    is tried (the first best one wins ties); ``fixed`` pins any of ``prob``, ``seed``,
    ``min_size`` to a value instead (None leaves it tuned).

    Args:
        probs: softmax probabilities ``(K + 1, H, W)`` per image.
        truths: the true instance maps.
        distances: the predicted distance maps, with ``segment.distance_head``.
    """
    from ..metrics.instance import match_counts

    fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
    grids = {"prob": PROB_GRID, "seed": SEED_GRID, "min_size": MIN_SIZE_GRID}
    grids = {k: (fixed[k],) if k in fixed else v for k, v in grids.items()}
    totals: dict[tuple, np.ndarray] = {}
    for i, (p, truth) in enumerate(zip(probs, truths)):
        distance = distances[i] if distances is not None else None
        for prob, seed in itertools.product(grids["prob"], grids["seed"]):
            flooded = _flood(p, border_class, prob, seed, distance)
            for min_size in grids["min_size"]:
                counts = match_counts(_drop_small(flooded, int(min_size)), truth, taus=(0.5,))[0]
                key = (prob, seed, min_size)
                totals[key] = totals.get(key, 0) + counts
    def f1(c: np.ndarray) -> float:
        tp, fp, fn = c[:3]
        return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)

    best = max(totals, key=lambda k: f1(totals[k]))  # max keeps the first of equals
    return InstanceThresholds(float(best[0]), float(best[1]), int(best[2])), f1(totals[best])


def outlines(instances: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the outline pixels of every instance (for overlays)."""
    return find_boundaries(instances, connectivity=1, mode="inner", background=0) & (instances > 0)


__all__ = ["InstanceThresholds", "border_distance", "border_targets", "class_map", "instance_maps",
           "instances_from_maps", "instances_from_probs", "outlines", "tune_thresholds"]
