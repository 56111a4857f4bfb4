"""The classical restorers a learned one has to beat, run on the same inputs.

:func:`nlm` is scikit-image's non-local means (what a user reaches for against
noise); for down-sampling the classical answer, bicubic up-sampling, is the
degraded input itself (:func:`~pix2pix_unet.data.degrade.downsample` scales back
up bicubically). Validation scores the baseline once per image and logs it beside
the model (``val/psnr_classical``).
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from skimage.restoration import denoise_nl_means, estimate_sigma

from ..config import RestoreConfig


def nlm(images: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Non-local means of each image (fast mode, 5x5 patches within 13x13, ``h = 0.8 sigma`` as scikit-image
    advises), with the noise ``sigma`` (on the [0, 1] scale) estimated per image when not given.

    Shape:
        ``(B, C, H, W)`` in [0, 1] -> the same.
    """
    out = []
    for image in images.detach().float().cpu():
        array = rearrange(image, "c h w -> h w c").numpy().astype(np.float64)
        s = sigma if sigma is not None else float(estimate_sigma(array, channel_axis=-1, average_sigmas=True))
        s = max(s, 1e-4)
        denoised = denoise_nl_means(array, patch_size=5, patch_distance=6, h=0.8 * s, sigma=s, fast_mode=True,
                                    channel_axis=-1)
        denoised = denoised.reshape(array.shape)  # one channel comes back without its axis
        out.append(torch.from_numpy(rearrange(denoised, "h w c -> c h w").astype(np.float32)))
    return torch.stack(out).clamp(0, 1).to(images.device)


def classical_for(cfg: RestoreConfig) -> str | None:
    """The baseline validation scores for these degradations: ``"nlm"`` when noise is among them, else None
    (for down-sampling alone, the input already is the bicubic baseline)."""
    noisy = cfg.gaussian_noise.p > 0 or cfg.poisson_noise.p > 0 or cfg.second_order.enabled
    return "nlm" if noisy else None


BASELINES = {"nlm": nlm}
