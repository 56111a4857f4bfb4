"""The U-Net paper's weight map (Ronneberger et al., 2015, eq. 2) for touching objects.

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

``d1`` and ``d2`` are the distances to the nearest and the second nearest object;
the border term is given to background pixels, so the thin gaps that separate
touching objects weigh up to ``w_c + w0`` and are learned. ``w_c`` balances the
class frequencies of the image.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

CUTOFF_SIGMAS = 4.0
"""Distances are computed only this many sigmas around each object: beyond, the
border term is below ``w0 * exp(-8)``, i.e. 0.03 % of ``w0``."""


def class_balance_weights(labels: np.ndarray) -> np.ndarray:
    """``w_c(x)``: ``N / (K * n_c)`` for a pixel of class ``c`` (``n_c`` pixels of it, ``K`` classes
    present, ``N`` pixels), so every present class has the same total weight and the mean is 1."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    per_class = labels.size / (len(classes) * counts)
    return per_class[inverse.reshape(labels.shape)].astype(np.float32)


def border_weights(instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0,
                   sampling: tuple[float, ...] | None = None) -> np.ndarray:
    """``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` on background pixels, 0 on objects.

    Args:
        instances: ``(H, W)`` (or ``(D, H, W)``) instance ids, 0 for background.
        w0: the border term's peak.
        sigma: its width, in pixels (of the finest axis).
        sampling: the voxel size per axis, relative or absolute (anisotropic volumes); distances are measured
            in units of the finest axis. None: 1 on every axis.

    Returns:
        float32 of ``instances``' shape; all 0 with fewer than two objects (there is no second distance).
    """
    ids = np.unique(instances)
    ids = ids[ids != 0]
    shape = instances.shape
    if len(ids) < 2:
        return np.zeros(shape, np.float32)
    scale = np.ones(len(shape)) if sampling is None else np.asarray(sampling, float) / min(sampling)
    margins = [math.ceil(CUTOFF_SIGMAS * sigma / s) for s in scale]
    d1 = np.full(shape, np.inf)
    d2 = np.full(shape, np.inf)
    boxes = ndimage.find_objects(np.where(np.isin(instances, ids), instances, 0))
    for k in ids:
        box = boxes[k - 1]
        # 1. a window around the object: pixels farther than the margin contribute ~0
        window = tuple(slice(max(0, b.start - m), min(n, b.stop + m)) for b, m, n in zip(box, margins, shape))
        # 2. Euclidean distance to this object (0 on it); exact inside the window
        d = ndimage.distance_transform_edt(instances[window] != k, sampling=scale)
        # 3. keep the two smallest distances per pixel
        a, b = d1[window], d2[window]
        d2[window] = np.minimum(b, np.maximum(a, d))
        d1[window] = np.minimum(a, d)
    term = w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    return np.where(instances == 0, term, 0.0).astype(np.float32)


def unet_weight_map(instances: np.ndarray, labels: np.ndarray | None = None, *, w0: float = 10.0,
                    sigma: float = 5.0, class_balance: bool = True,
                    sampling: tuple[float, ...] | None = None) -> np.ndarray:
    """The U-Net weight map of one image.

    Args:
        instances: ``(H, W)`` instance ids (0 = background); touching objects have different ids.
        labels: ``(H, W)`` class ids for ``w_c``; None balances object against background.
        w0, sigma: the border term (10 and 5 px in the paper).
        class_balance: ``w_c`` from the class frequencies; 1 everywhere if False.
        sampling: volumes: the voxel size per axis (:func:`border_weights`).

    Returns:
        ``(H, W)`` float32 weights.

    Examples:
        >>> inst = np.zeros((1, 7), np.int64); inst[0, :3] = 1; inst[0, 4:] = 2
        >>> float(unet_weight_map(inst, class_balance=False)[0, 3])  # the 1-px gap: d1 = d2 = 1
        10.23...
    """
    if labels is None:
        labels = (instances > 0).astype(np.int64)
    if labels.shape != instances.shape:
        raise ValueError(f"labels {labels.shape} and instances {instances.shape} differ in shape")
    base = class_balance_weights(labels) if class_balance else np.ones(labels.shape, np.float32)
    return base + border_weights(instances, w0, sigma, sampling)
