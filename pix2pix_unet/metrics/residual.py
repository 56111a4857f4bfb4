"""What a denoiser removed, judged without a clean image: the residual (input - output) against the noise level
estimated from the input, and how correlated the residual is from pixel to pixel.

A denoiser that removes about the noise it should leaves a residual whose standard deviation is near the input's
estimated noise sigma (scikit-image's wavelet estimate) and whose neighbouring pixels are uncorrelated. A ratio well
over 1 means it removed structure too; a neighbour correlation well above 0 means the removed part is not white.

Whether the input's own noise is independent from pixel to pixel is read from the input alone
(:func:`noise_scale_ratio`): noise correlated between neighbours (demosaicing, compression, resampling) is kept by
blind-spot and zero-shot methods, which cannot tell it from signal.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.restoration import estimate_sigma

STRUCTURED = 0.25  # neighbour correlation of the residual above which it is reported as holding structure
# the noise-scale ratio above which the input's noise is reported as correlated: chosen on scikit-image's four
# colour photos (independent Gaussian or Poisson noise of sigma 1-50/255 gave 1.0-2.1; Gaussian noise blurred by 1 px
# 4.0-5.5); on McMaster18's first 6 photos independent noise gave 1.0-1.8 and correlated 3.4-5.6
CORRELATED = 2.5
KEPT = 0.3  # residual std over the estimated noise sigma under which the output is reported as keeping the noise
NOISY = 0.01  # estimated sigma ([0, 1] scale, 2.5/255) above which an input counts as noisy for that report


def noise_scale_ratio(x: np.ndarray) -> float:
    """How the noise level of ``x (C, H, W)`` changes over 2 x 2-binned pixels: twice the wavelet noise estimate
    of the binned image over that of the image. Independent noise halves when 4 pixels are averaged (a ratio
    near 1); noise correlated between neighbours does not (well over 1). Fine texture also raises it a little.
    A volume ``(C, Z, Y, X)`` is binned in each (y, x) plane."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w].astype(np.float64)
    fine = float(np.mean(estimate_sigma(x, channel_axis=0)))
    binned = x.reshape(*x.shape[:-2], h // 2, 2, w // 2, 2).mean(axis=(-3, -1))
    coarse = float(np.mean(estimate_sigma(binned, channel_axis=0)))
    return 2 * coarse / fine if fine > 0 else 0.0


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


def input_noise(noisy: torch.Tensor) -> dict[str, float]:
    """What the input alone says of its noise, ``(C, H, W)``: ``estimated_sigma`` (the mean over channels of
    scikit-image's wavelet estimate) and ``noise_scale_ratio`` (:func:`noise_scale_ratio`; 1.0 under 16 px)."""
    x = noisy.detach().float().cpu().numpy()
    return {"estimated_sigma": float(np.mean(estimate_sigma(x, channel_axis=0))),
            "noise_scale_ratio": noise_scale_ratio(x) if min(x.shape[-2:]) >= 16 else 1.0}


def residual_diagnostics(noisy: torch.Tensor, denoised: torch.Tensor,
                         noise: dict[str, float] | None = None) -> dict[str, float]:
    """Residual statistics of one ``(C, H, W)`` pair on the same scale; ``noise`` is the input's
    :func:`input_noise` when already known (a validation image seen before), else it is measured.

    Returns:
        ``residual_std``; ``estimated_sigma`` of the input (mean over channels); their ``sigma_ratio``;
        ``residual_correlation`` (:func:`neighbour_correlation`) and ``structured``: 1.0 when it is over
        ``STRUCTURED``; the input's ``noise_scale_ratio`` and ``correlated``: 1.0 when it is over ``CORRELATED``;
        ``kept``: 1.0 when the input is noisy (sigma over ``NOISY``) and under ``KEPT`` of its noise was removed.
    """
    noise = noise or input_noise(noisy)
    residual = (noisy.detach().float() - denoised.detach().float()).cpu().numpy()
    sigma, ratio = noise["estimated_sigma"], noise["noise_scale_ratio"]
    std = float(residual.std())
    correlation = neighbour_correlation(residual)
    kept = sigma > NOISY and std < KEPT * sigma
    return {"residual_std": std, "estimated_sigma": sigma, "sigma_ratio": std / sigma if sigma > 0 else float("inf"),
            "residual_correlation": correlation, "structured": float(correlation > STRUCTURED and not kept),
            "noise_scale_ratio": ratio, "correlated": float(ratio > CORRELATED), "kept": float(kept)}


def residual_warnings(name: str, d: dict[str, float]) -> list[str]:
    """The warnings :func:`residual_diagnostics`' flags call for, naming the file ``name``."""
    warnings = []
    if d.get("kept"):
        warnings.append(f"{name}: the output keeps most of the input's noise (removed std {d['residual_std']:.4f} vs "
                        f"estimated noise sigma {d['estimated_sigma']:.4f}, ratio {d['sigma_ratio']:.2f}): the model "
                        "is near the identity")
    if d["correlated"]:
        warnings.append(f"{name}: its noise looks correlated between neighbouring pixels (the noise level falls only "
                        f"{d['noise_scale_ratio']:.1f}x less than independent noise would over 2 x 2 pixels): "
                        "self-supervised and zero-shot denoisers keep such noise (from demosaicing, compression or "
                        "resampling) as if it were signal")
    if d.get("structured"):
        warnings.append(f"{name}: what was removed is correlated between neighbouring pixels (correlation "
                        f"{d['residual_correlation']:.2f}): structure may have been removed with the noise")
    return warnings


__all__ = ["CORRELATED", "KEPT", "NOISY", "STRUCTURED", "residual_warnings", "input_noise", "neighbour_correlation",
           "noise_scale_ratio", "residual_diagnostics"]
