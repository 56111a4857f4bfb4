"""A layout model: new label maps drawn from statistics fitted to real ones, for ``synthesize --layouts``.

Deforming the few real label maps (``--augment-labels``) gives bent copies of the
same layouts. This model instead takes the real maps apart and puts new scenes
together from the pieces:

- **objects**: every real instance, with its own shape (from ``instances/`` maps, or
  the connected components of each class), kept per class;
- **scene contents**: the class list of a real map drawn at random, so object
  counts per map and which classes appear together follow the real maps;
- **geometry**: each object is a real instance of its class, flipped, rotated by any
  angle and scaled by ``scale_range``, pasted at a new position; a new object
  overlaps earlier ones by at most ``max_overlap`` of its area and touches one with
  the probability of touching measured on the real maps (``touch_fraction``);
- **the class map's rule for touching objects of one class**: where the real maps
  never let two instances of one class touch (the built-in data carves a 1 px
  background gap; maps without instance maps cannot show it either), the drawn maps
  carve the same gap, so connected components stay the instances.

``sample`` returns a class map and its instance map, both ``(H, W)`` int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..data.labels import instances_from_labels

_CROSS = ndimage.generate_binary_structure(2, 1)
_SQUARE = np.ones((3, 3), bool)


@dataclass
class LayoutModel:
    """Objects, scene contents and touching statistics of real label maps; see the module docstring.

    Attributes:
        shapes: per class id, the binary masks (cropped to their box) of its real instances.
        scenes: per real map, the class id of each object, largest first (painted back to front).
        sizes: per real map, its ``(H, W)``.
        touch_fraction: share of real objects that touch another object.
        same_class_gap: carve a 1 px background line where two objects of one class touch.
        background: the class id of the background (0).
        scale_range: objects are scaled by a factor drawn log-uniformly from it.
        max_overlap: the largest share of a new object's area that may cover earlier objects.
        min_inside: the share of a new object's area that must fall inside the map.
    """

    shapes: dict[int, list[np.ndarray]]
    scenes: list[list[int]]
    sizes: list[tuple[int, int]]
    touch_fraction: float
    same_class_gap: bool
    background: int = 0
    scale_range: tuple[float, float] = (0.8, 1.25)
    max_overlap: float = 0.15
    attempts: int = 40  # placements tried per object before it is left out
    min_inside: float = 0.85  # the share of an object's area that must fall inside the map
    classes: list[int] = field(default_factory=list)

    @classmethod
    def fit(cls, label_maps: list[np.ndarray], instance_maps: list[np.ndarray | None] | None = None,
            background: int = 0, **options) -> "LayoutModel":
        """Fit to real ``(H, W)`` class maps, with their instance maps where there are any (else connected components).

        Raises:
            ValueError: when the maps hold no object (no pixel other than ``background``).
        """
        instance_maps = instance_maps or [None] * len(label_maps)
        shapes: dict[int, list[np.ndarray]] = {}
        scenes, sizes, touching, total, gap = [], [], 0, 0, True
        for labels, instances in zip(label_maps, instance_maps):
            labels = np.asarray(labels, np.int64)
            given = instances is not None
            instances = np.asarray(instances, np.int64) if given else instances_from_labels(labels)
            instances = np.where(labels == background, 0, instances)
            if given and _same_class_touch(labels, instances, background):
                gap = False
            scene = []
            for index, box in enumerate(ndimage.find_objects(instances), start=1):
                if box is None:
                    continue
                mask = instances[box] == index
                cls_id = int(np.bincount(labels[box][mask]).argmax())
                shapes.setdefault(cls_id, []).append(mask)
                scene.append((int(mask.sum()), cls_id))
                grown = ndimage.binary_dilation(instances == index, _SQUARE)
                touching += bool(np.any((instances[grown] != index) & (instances[grown] > 0)))
                total += 1
            scenes.append([c for _, c in sorted(scene, reverse=True)])
            sizes.append(labels.shape)
        if total == 0:
            raise ValueError(f"the {len(label_maps)} label map(s) hold no object (every pixel is class {background})")
        # objects cut by the image border are kept: large objects are cut more often, so leaving them out would
        # bias the sizes down (a cut object pasted inside the map shows its straight edge)
        return cls(shapes, scenes, sizes, touching / total, gap, background, classes=sorted(shapes), **options)

    def sample(self, rng: np.random.Generator, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A new ``(labels, instances)`` pair; ``size`` defaults to that of the real map whose contents are drawn."""
        # 1. the contents of a real map: its objects' classes, largest first
        j = int(rng.integers(len(self.scenes)))
        h, w = size or self.sizes[j]
        labels = np.full((h, w), self.background, np.int64)
        instances = np.zeros((h, w), np.int64)
        # 2. each object: a real shape of its class, transformed, placed, painted behind the earlier ones (so they
        #    keep their shapes and a new one loses at most max_overlap of its own)
        for cls_id in self.scenes[j]:
            masks = self.shapes[cls_id]
            mask = self._transform(masks[int(rng.integers(len(masks)))], rng)
            spot = self._place(mask, instances, rng)
            if spot is None:
                continue
            top, left = spot
            window = _window(mask, top, left, h, w)
            if window is None:
                continue
            (ys, xs), (my, mx) = window
            painted = mask[my, mx] & (instances[ys, xs] == 0)
            labels[ys, xs][painted] = cls_id
            instances[ys, xs][painted] = instances.max() + 1
        # 3. the real maps' rule for objects of one class that touch
        if self.same_class_gap:
            labels, instances = _carve_gaps(labels, instances, self.background)
        return labels, instances

    def _transform(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Flip, rotate by any angle and scale a shape (nearest neighbour), cropped to its box."""
        if rng.random() < 0.5:
            mask = mask[:, ::-1]
        lo, hi = np.log(self.scale_range[0]), np.log(self.scale_range[1])
        scale = float(np.exp(rng.uniform(lo, hi)))
        out = ndimage.zoom(mask.astype(np.uint8), scale, order=0)
        out = ndimage.rotate(out, float(rng.uniform(0, 360)), order=0, reshape=True) > 0
        if not out.any():
            return mask
        rows, cols = np.nonzero(out)
        return out[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]

    def _place(self, mask: np.ndarray, occupied: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
        """A top-left corner where ``mask`` covers at most ``max_overlap`` of itself with earlier objects and,
        with probability ``touch_fraction``, touches one."""
        h, w = occupied.shape
        mh, mw = mask.shape
        area = mask.sum()
        taken = occupied > 0
        want_touch = taken.any() and rng.random() < self.touch_fraction
        near_ys, near_xs = (np.nonzero(ndimage.binary_dilation(taken, _SQUARE, iterations=max(mh, mw) // 2 + 1)
                                       & ~taken) if want_touch else (np.empty(0, int), np.empty(0, int)))
        fallback = None  # a spot that fits but does not touch as wished, if no better one is found
        for _ in range(self.attempts):
            if len(near_ys):  # centred next to an earlier object
                k = int(rng.integers(len(near_ys)))
                top, left = int(near_ys[k]) - mh // 2, int(near_xs[k]) - mw // 2
            else:  # anywhere with the object's centre inside the map
                top, left = int(rng.integers(h)) - mh // 2, int(rng.integers(w)) - mw // 2
            window = _window(mask, top, left, h, w)
            if window is None:
                continue
            (rows, cols), (mask_rows, mask_cols) = window
            inside = mask[mask_rows, mask_cols]
            if inside.sum() < self.min_inside * area:  # too much of it outside the map
                continue
            if (taken[rows, cols] & inside).sum() > self.max_overlap * area:
                continue
            grown = ndimage.binary_dilation(np.pad(inside, 1), _SQUARE)
            around = np.pad(taken, 1)[rows.start: rows.stop + 2, cols.start: cols.stop + 2]
            if bool((grown & around).any()) == want_touch:
                return top, left
            fallback = fallback or (top, left)
        return fallback


def _window(mask: np.ndarray, top: int, left: int, h: int, w: int):
    """The slices of the map and of ``mask`` where ``mask`` placed at ``(top, left)`` overlaps the map."""
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + mask.shape[0], h), min(left + mask.shape[1], w)
    if y1 <= y0 or x1 <= x0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


def _same_class_touch(labels: np.ndarray, instances: np.ndarray, background: int) -> bool:
    """Whether two different instances of one class are 4-neighbours anywhere."""
    for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                 ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        same = (labels[a] == labels[b]) & (labels[a] != background)
        if np.any(same & (instances[a] != instances[b]) & (instances[a] > 0) & (instances[b] > 0)):
            return True
    return False


def _carve_gaps(labels: np.ndarray, instances: np.ndarray, background: int) -> tuple[np.ndarray, np.ndarray]:
    """Set to background the pixels of an object that touch (8-neighbours, the connectivity of
    :func:`~pix2pix_unet.data.labels.instances_from_labels`) a later object of the same class."""
    labels, instances = labels.copy(), instances.copy()
    carve = np.zeros(labels.shape, bool)
    for cls in np.unique(labels[labels != background]):
        own = labels == cls
        # the largest id of this class among each pixel's 8-neighbours (and itself)
        later = ndimage.maximum_filter(np.where(own, instances, 0), footprint=_SQUARE, mode="constant", cval=0)
        carve |= own & (later > instances) & (instances > 0)
    labels[carve] = background
    instances[carve] = 0
    return labels, instances


__all__ = ["LayoutModel"]
