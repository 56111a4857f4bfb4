"""The classical methods a learned one has to beat, run on the same inputs.

:func:`nlm` is scikit-image's non-local means (what a user reaches for against
noise); for down-sampling the classical answer, bicubic up-sampling, is the
degraded input itself (:func:`~pix2pix_unet.data.degrade.downsample` scales back
up bicubically). Validation scores the baseline once per image and logs it beside
the model (``val/psnr_classical``); volumes get non-local means in 3D. :func:`gaussian`
is the plainest smoothing, which the volume denoising benchmark also compares with.

:func:`classical_instances_3d` is the classical nuclei segmentation of a volume
(Otsu, then a distance-transform watershed), which 3D instance segmentation is
compared with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from einops import rearrange
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.restoration import denoise_nl_means, estimate_sigma
from skimage.segmentation import relabel_sequential, watershed

from ..config import RestoreConfig


NLM_WINDOWS = {2: (5, 6), 3: (3, 3)}  # (patch side, search radius) in pixels / voxels; 3D's cost grows with the cube


def nlm(images: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Non-local means of each image (fast mode, 5x5 patches within 13x13, ``h = 0.8 sigma`` as scikit-image
    advises), with the noise ``sigma`` (on the [0, 1] scale) estimated per image when not given.

    Volumes are denoised in 3D, with 3x3x3 patches within 7x7x7 (the 2D windows in 3D take about 8x as long:
    7 s for a 32 x 96 x 96 volume on one CPU core, against 0.9 s).

    Shape:
        ``(B, C, H, W)`` or ``(B, C, Z, Y, X)`` in [0, 1] -> the same.
    """
    patch, distance = NLM_WINDOWS[images.ndim - 2]
    out = []
    for image in images.detach().float().cpu():
        array = rearrange(image, "c ... -> ... c").numpy().astype(np.float64)
        s = sigma if sigma is not None else float(estimate_sigma(array, channel_axis=-1, average_sigmas=True))
        s = max(s, 1e-4)
        denoised = denoise_nl_means(array, patch_size=patch, patch_distance=distance, h=0.8 * s, sigma=s,
                                    fast_mode=True, channel_axis=-1)
        denoised = denoised.reshape(array.shape)  # one channel comes back without its axis
        out.append(torch.from_numpy(rearrange(denoised, "... c -> c ...").astype(np.float32)))
    return torch.stack(out).clamp(0, 1).to(images.device)


def gaussian(images: torch.Tensor, sigma: Sequence[float]) -> torch.Tensor:
    """Each image or volume smoothed by a Gaussian of ``sigma`` per spatial axis (pixels or voxels; for a
    volume, ``(z, y, x)``): the simplest denoiser, which a learned one should beat by a margin.

    Shape:
        ``(B, C, H, W)`` or ``(B, C, Z, Y, X)`` in [0, 1] -> the same.
    """
    if len(sigma) != images.ndim - 2:
        raise ValueError(f"gaussian takes one sigma per spatial axis ({images.ndim - 2}), got {list(sigma)}")
    array = images.detach().float().cpu().numpy()
    out = ndimage.gaussian_filter(array, [0, 0, *sigma], mode="reflect")
    return torch.from_numpy(out).clamp(0, 1).to(images.device)


def classical_for(cfg: RestoreConfig) -> str | None:
    """The baseline validation scores for these degradations: ``"nlm"`` when noise is among them, else None
    (for down-sampling alone, the input already is the bicubic baseline)."""
    noisy = cfg.gaussian_noise.p > 0 or cfg.poisson_noise.p > 0 or cfg.second_order.enabled
    return "nlm" if noisy else None


BASELINES = {"nlm": nlm}


def classical_instances_3d(volume: np.ndarray, spacing: Sequence[float], smooth: float = 0.5,
                           min_separation: float = 2.5, min_volume: float = 30.0) -> np.ndarray:
    """Nuclei in a volume the classical way: Gaussian smoothing, an Otsu foreground, and a watershed on
    its distance transform seeded at the transform's local maxima; the baseline a 3D model has to beat.

    Every length is in micrometres and turned into voxels per axis, so anisotropic voxels (z sampled
    coarser than y and x) are handled: the distance transform is measured in space
    (``sampling=spacing``) and seeds must be ``min_separation`` apart in space.

    Args:
        volume: ``(Z, Y, X)`` intensities (or ``(Z, Y, X, 1)``), any dtype.
        spacing: ``(z, y, x)`` voxel size in µm.
        smooth: standard deviation of the Gaussian smoothing before the threshold.
        min_separation: seeds closer than this (an ellipsoidal neighbourhood) are one object's.
        min_volume: objects smaller than this many µm³ are dropped.

    Returns:
        ``(Z, Y, X)`` int64 instance ids, 0 background, 1..N.

    Raises:
        ValueError: a volume of another shape, or a spacing that is not three positive numbers.
    """
    array = np.asarray(volume)
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    sampling = np.asarray(spacing, np.float64)
    if array.ndim != 3 or min(array.shape) < 2:
        raise ValueError(f"classical_instances_3d takes a (Z, Y, X) volume, got shape {array.shape}")
    if sampling.shape != (3,) or not np.all(np.isfinite(sampling) & (sampling > 0)):
        raise ValueError(f"spacing must be three positive numbers (z, y, x) in µm, got {spacing!r}")
    image = ndimage.gaussian_filter(array.astype(np.float32), smooth / sampling)
    if image.max() <= image.min():
        return np.zeros(array.shape, np.int64)
    mask = image > threshold_otsu(image)
    distance = ndimage.distance_transform_edt(mask, sampling=sampling)
    reach = min_separation / sampling  # voxels per axis
    grid = np.ogrid[tuple(slice(-int(r), int(r) + 1) for r in reach)]
    footprint = sum((g / r) ** 2 for g, r in zip(grid, reach)) <= 1
    peaks = peak_local_max(distance, footprint=footprint, labels=ndimage.label(mask)[0], exclude_border=False)
    seeds = np.zeros(mask.shape, bool)
    seeds[tuple(peaks.T)] = True
    markers = ndimage.label(seeds, structure=np.ones((3, 3, 3)))[0]  # a plateau's maxima are one seed
    labels = watershed(-distance, markers, mask=mask)
    sizes = np.bincount(labels.ravel()) * float(np.prod(sampling))
    small = sizes < min_volume
    small[0] = False
    return relabel_sequential(np.where(small[labels], 0, labels))[0].astype(np.int64)


__all__ = ["BASELINES", "classical_for", "classical_instances_3d", "gaussian", "nlm"]
