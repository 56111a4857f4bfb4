"""Image metrics as pure functions: L1, PSNR and SSIM of outputs against targets, per image.

The one implementation validation (``task.evaluate``) and ``pix2pix-unet evaluate``
both use; images in [-1, 1] are scored mapped to [0, 1].
"""

from __future__ import annotations

import kornia.metrics
import torch


def image_scores(output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image L1 (in [-1, 1] units), PSNR (dB, peak 1) and SSIM (11-px Gaussian window; volumes: an
    11-voxel cubic one, smaller along an axis of fewer than 6 voxels).

    Shape:
        ``(B, C, H, W)`` or ``(B, C, Z, Y, X)`` each -> ``{"l1": (B,), "psnr": (B,), "ssim": (B,)}``.
    """
    output, target = output.float(), target.float()
    l1 = (output - target).abs().flatten(1).mean(1)
    a, b = output.clamp(-1, 1).add(1).div(2), target.clamp(-1, 1).add(1).div(2)
    psnr = torch.stack([kornia.metrics.psnr(x, y, max_val=1.0) for x, y in zip(a, b)])
    if output.ndim == 5:  # volumes: a cubic window, no wider than the reflection padding allows on a thin axis
        window = min(11, 2 * min(a.shape[2:]) - 1)  # odd either way
        ssim = kornia.metrics.ssim3d(a, b, window_size=window, max_val=1.0).flatten(1).mean(1)
    else:
        ssim = kornia.metrics.ssim(a, b, window_size=11, max_val=1.0).flatten(1).mean(1)
    return {"l1": l1, "psnr": psnr, "ssim": ssim}
