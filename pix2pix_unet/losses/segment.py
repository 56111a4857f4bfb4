"""Segmentation losses as pure functions of per-class logits and class ids.

The hybrid objective of ``task=segment``: cross-entropy for per-pixel calibration,
soft Dice for overlap (insensitive to how much of the image a class covers), and
cross-entropy weighted by the U-Net weight map for the thin gaps between objects.
An optional per-pixel ``confidence`` in [0, 1] scales each pixel's share of every term
(FreeMask-style down-weighting of synthetic pixels a real-trained segmenter disagrees with).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import SegmentConfig


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1.0,
                   confidence: torch.Tensor | None = None) -> torch.Tensor:
    """``1 - mean over classes of (2 |P n G| + s) / (|P| + |G| + s)`` with softmax probabilities ``P``.

    Sums run over the whole batch, so a class absent from one image does not count
    as a perfect score there; ``smooth`` keeps a class absent from the batch at 1.
    With ``confidence``, each pixel counts in the sums with that weight.

    Shape:
        ``logits (B, K, H, W)``, ``labels (B, H, W)``, ``confidence (B, H, W)`` -> scalar (volumes:
        ``(B, K, D, H, W)`` and ``(B, D, H, W)``).
    """
    probs = logits.float().softmax(1)  # (b, k, h, w)
    target = F.one_hot(labels.long(), logits.shape[1]).movedim(-1, 1).float()  # (b, k, h, w) or (b, k, d, h, w)
    if confidence is not None:
        probs, target = probs * confidence[:, None], target * confidence[:, None]
    axes = (0, *range(2, probs.ndim))  # the batch and every spatial axis (2D or 3D)
    intersection = (probs * target).sum(axes)  # (k,)
    total = probs.sum(axes) + target.sum(axes)  # (k,)
    return 1.0 - ((2 * intersection + smooth) / (total + smooth)).mean()


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``weight(x) * CE(x)``: the U-Net paper's weighted energy.

    Shape:
        ``logits (B, K, H, W)``, ``labels (B, H, W)``, ``weight (B, H, W)`` -> scalar.
    """
    return (F.cross_entropy(logits.float(), labels, reduction="none") * weight).mean()


def segmentation_losses(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                        cfg: SegmentConfig, confidence: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The weighted hybrid loss and its parts (``g_seg`` = weighted sum).

    ``confidence (B, H, W)`` in [0, 1] (None: 1 everywhere): the cross-entropy becomes the
    confidence-weighted mean, the Dice sums weigh each pixel by it, and it multiplies the
    U-Net weight map; a pixel of confidence 0 has no effect on the loss.
    """
    if confidence is None:
        ce = F.cross_entropy(logits.float(), labels)
    else:
        per_pixel = F.cross_entropy(logits.float(), labels, reduction="none")  # (b, h, w)
        ce = (per_pixel * confidence).sum() / confidence.sum().clamp_min(1e-6)
        weight = weight * confidence
    dice = soft_dice_loss(logits, labels, confidence=confidence)
    boundary = weighted_cross_entropy(logits, labels, weight)
    total = cfg.ce_weight * ce + cfg.dice_weight * dice + cfg.boundary_weight * boundary
    return {"g_seg": total, "g_ce": ce, "g_dice": dice, "g_boundary": boundary}


def deep_supervision_losses(heads: list[torch.Tensor], labels: torch.Tensor, weight: torch.Tensor,
                            cfg: SegmentConfig, confidence: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Deep supervision: ``g_seg = sum_k w_k * hybrid loss of head k``, with ``w = cfg.deep_weights``
    (default ``1 / len(heads)`` each, the UNet++ paper's average).

    Also returns each head's hybrid loss (``g_seg_head0`` ...) and the weighted parts (``g_ce`` ...).

    Shape:
        ``heads: n x (B, K, H, W)``, ``labels (B, H, W)``, ``weight (B, H, W)`` -> scalars.
    """
    weights = cfg.deep_weights if cfg.deep_weights is not None else [1.0 / len(heads)] * len(heads)
    if len(weights) != len(heads):
        raise ValueError(f"segment.deep_weights={cfg.deep_weights} has {len(weights)} weights for {len(heads)} heads")
    per_head = [segmentation_losses(logits, labels, weight, cfg, confidence) for logits in heads]
    losses = {key: sum(w * parts[key] for w, parts in zip(weights, per_head)) for key in per_head[0]}
    return {**losses, **{f"g_seg_head{i}": parts["g_seg"] for i, parts in enumerate(per_head)}}
