"""What a denoiser removed, judged without a clean image: the residual (input - output) against the noise level
estimated from the input, and how correlated the residual is from pixel to pixel.

A denoiser that removes about the noise it should leaves a residual whose standard deviation is near the input's
estimated noise sigma (scikit-image's wavelet estimate) and whose neighbouring pixels are uncorrelated. A ratio well
over 1 means it removed structure too; a neighbour correlation well above 0 means the removed part is not white,
as when the input's noise itself is correlated (demosaicing, compression, resampling), where blind-spot and zero-shot
methods fail.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.restoration import estimate_sigma

CORRELATED = 0.25  # neighbour correlation of the residual above which the noise is reported as correlated


def neighbour_correlation(x: np.ndarray) -> float:
    """The mean correlation of ``x (C, H, W)`` with itself shifted by one pixel, across and down (0 for white
    noise, near 1 for a smooth image)."""
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    var = float((x * x).mean())
    if var == 0:
        return 0.0
    across = float((x[..., :, 1:] * x[..., :, :-1]).mean())
    down = float((x[..., 1:, :] * x[..., :-1, :]).mean())
    return (across + down) / (2 * var)


def residual_diagnostics(noisy: torch.Tensor, denoised: torch.Tensor) -> dict[str, float]:
    """Residual statistics of one ``(C, H, W)`` pair on the same scale.

    Returns:
        ``residual_std``; ``estimated_sigma`` of the input (mean over channels); their ``sigma_ratio``;
        ``residual_correlation`` (:func:`neighbour_correlation`); ``correlated``: 1.0 when that correlation is
        over ``CORRELATED``, else 0.0.
    """
    x = noisy.detach().float().cpu().numpy()
    residual = x - denoised.detach().float().cpu().numpy()
    sigma = float(np.mean(estimate_sigma(x, channel_axis=0)))
    std = float(residual.std())
    correlation = neighbour_correlation(residual)
    return {"residual_std": std, "estimated_sigma": sigma, "sigma_ratio": std / sigma if sigma > 0 else float("inf"),
            "residual_correlation": correlation, "correlated": float(correlation > CORRELATED)}


__all__ = ["CORRELATED", "neighbour_correlation", "residual_diagnostics"]
