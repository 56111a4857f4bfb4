"""Segmentation metrics as pure functions: a confusion matrix and the scores it gives, and
object-level F1 (predicted objects are the connected components of each predicted
class, see :func:`~pix2pix_unet.tasks.labels.instances_from_labels`).
"""

from __future__ import annotations

import numpy as np
import torch


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
    """``(tp, fp, fn)`` when an object pair with IoU above ``threshold`` counts as found.

    With a threshold of at least 0.5 an object can overlap at most one partner that
    much, so the matching is unique without any assignment step.

    Args:
        pred_objects / true_objects: ``(H, W)`` object ids, 0 for background.
    """
    pred_ids, pred_flat = np.unique(pred_objects, return_inverse=True)
    true_ids, true_flat = np.unique(true_objects, return_inverse=True)
    n_pred, n_true = len(pred_ids), len(true_ids)
    # joint histogram: overlap[i, j] = pixels in predicted object i and true object j
    overlap = np.bincount(pred_flat.ravel() * n_true + true_flat.ravel(), minlength=n_pred * n_true)
    overlap = overlap.reshape(n_pred, n_true)
    pred_fg, true_fg = pred_ids != 0, true_ids != 0
    overlap = overlap[pred_fg][:, true_fg]
    area_pred = np.bincount(pred_flat.ravel(), minlength=n_pred)[pred_fg]
    area_true = np.bincount(true_flat.ravel(), minlength=n_true)[true_fg]
    iou = overlap / (area_pred[:, None] + area_true[None, :] - overlap).clip(min=1)
    tp = int((iou > threshold).sum())
    return tp, int(pred_fg.sum()) - tp, int(true_fg.sum()) - tp


def f1_score(tp: int, fp: int, fn: int) -> float:
    """``2 tp / (2 tp + fp + fn)``; 1 when there is nothing to find and nothing was found."""
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
