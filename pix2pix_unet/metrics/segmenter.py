"""The segmenter score of a label -> image generator (the pix2pix paper's "FCN score").

A segmenter trained on real pairs (a ``task=segment`` export) segments the generated
images; its mIoU against the label maps the images were generated from says whether
the images carry their labels. On the real images themselves it is the segmenter's
own mIoU, the ceiling a generator can reach; noise scores near chance.

The generated images are quantised to 8 bits and decoded by the segmenter's own
codec (its channels and intensity rule), as if written by ``synthesize`` and read
back, and scored with the one copy of the metrics (:mod:`~pix2pix_unet.metrics.segment`);
the segmenter itself is :class:`~pix2pix_unet.tasks.segment.Segmenter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from .segment import confusion_matrix, segmentation_scores
from .wrapped import WrappedMeter


class Judge(Protocol):
    """A trained segmenter used as a judge (:class:`~pix2pix_unet.tasks.segment.Segmenter`)."""

    num_classes: int

    def classes(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor: ...


def segmenter_confusion(segmenter: Judge, images: torch.Tensor, labels: torch.Tensor,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """``(K, K)`` confusion of the segmenter's classes on ``images (B, C, H, W)`` against ``labels (B, H, W)``."""
    return confusion_matrix(segmenter.classes(images, device), labels.cpu(), segmenter.num_classes)


def segmenter_score(segmenter: Judge, images: torch.Tensor, labels: torch.Tensor,
                    device: torch.device | str = "cpu") -> dict[str, float]:
    """mIoU, pixel accuracy, Dice and per-class IoU of the segmenter on ``images`` against ``labels``."""
    return segmentation_scores(segmenter_confusion(segmenter, images, labels, device))


@dataclass
class SegmenterScoreMeter(WrappedMeter):
    """Wraps a translate task's meter and adds ``seg_miou`` and ``seg_pixel_acc``: the segmenter's scores on
    the generated images against the (one-hot) input label maps, from one confusion matrix over the set."""

    inner: object
    segmenter: Judge
    device: torch.device | str = "cpu"
    confusion: torch.Tensor | None = field(default=None)

    def update(self, outputs: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor,
               names: list[str]) -> list[dict[str, float]]:
        rows = self.inner.update(outputs, target, inputs, names)
        labels = inputs.argmax(1).cpu()  # (b, h, w) the label maps the images were generated from
        predicted = self.segmenter.classes(outputs, self.device)
        k = self.segmenter.num_classes
        for row, pred, ids in zip(rows, predicted, labels):
            confusion = confusion_matrix(pred, ids, k)
            self.confusion = confusion if self.confusion is None else self.confusion + confusion
            row["seg_miou"] = segmentation_scores(confusion)["miou"]
        return rows

    def summary(self) -> dict[str, float]:
        metrics = dict(self.inner.summary())
        if self.confusion is not None:
            scores = segmentation_scores(self.confusion)
            metrics.update(seg_miou=scores["miou"], seg_pixel_acc=scores["pixel_acc"])
        return metrics


__all__ = ["Judge", "SegmenterScoreMeter", "segmenter_confusion", "segmenter_score"]
