"""Segmentation metrics as pure functions: a confusion matrix and the scores it gives, and
object-level F1 (predicted objects are the connected components of each predicted
class, see :func:`~pix2pix_unet.data.labels.instances_from_labels`). The instance
matching itself lives in :mod:`~pix2pix_unet.metrics.instance`.
"""

from __future__ import annotations

import numpy as np
import torch

from .instance import match_counts


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K, K)`` int64 counts, rows = true class, columns = predicted class.

    Shape:
        ``pred``, ``target``: ``(...)`` class ids of the same shape.
    """
    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def segmentation_scores(confusion: torch.Tensor) -> dict[str, float]:
    """Pixel accuracy, per-class IoU, mean IoU and mean Dice from a confusion matrix.

    Classes that appear in neither the targets nor the predictions (no union) are
    left out of the means and get no ``iou_<k>`` entry.
    """
    cm = confusion.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp  # tp + fp + fn
    present = union > 0
    iou = tp[present] / union[present]
    dice = 2 * tp[present] / (union[present] + tp[present])
    scores = {
        "pixel_acc": (tp.sum() / cm.sum()).item(),
        "miou": iou.mean().item(),
        "dice": dice.mean().item(),
    }
    for k, value in zip(present.nonzero().flatten().tolist(), iou.tolist()):
        scores[f"iou_{k}"] = value
    return scores


def object_matches(pred_objects: np.ndarray, true_objects: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` when an object pair with IoU of at least ``threshold`` counts as found.

    :func:`~pix2pix_unet.metrics.instance.match_counts` at one threshold:
    one-to-one matching, unique for thresholds of at least 0.5.

    Args:
        pred_objects / true_objects: ``(H, W)`` object ids, 0 for background.
    """
    tp, fp, fn, _ = match_counts(pred_objects, true_objects, (threshold,))[0]
    return int(tp), int(fp), int(fn)


def f1_score(tp: int, fp: int, fn: int) -> float:
    """``2 tp / (2 tp + fp + fn)``; 1 when there is nothing to find and nothing was found."""
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
