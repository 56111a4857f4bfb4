"""The segmenter score of a label -> image generator (the pix2pix paper's "FCN score").

A segmenter trained on real pairs (a ``task=segment`` export) segments the generated
images; its mIoU against the label maps the images were generated from says whether
the images carry their labels. On the real images themselves it is the segmenter's
own mIoU, the ceiling a generator can reach; noise scores near chance.

The generated images are quantised to 8 bits and decoded by the segmenter's own
codec (its channels and intensity rule), as if written by ``synthesize`` and read
back, and scored with the one copy of the metrics (:mod:`~pix2pix_unet.tasks.segment_metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, InferenceConfig
from ..inference import run_generator
from ..io import ImageFile, from_tensor
from .segment import SegmentTask
from .segment_metrics import confusion_matrix, segmentation_scores


@dataclass
class Segmenter:
    """A trained segmenter used as a judge: its generator and its task (codec, classes)."""

    generator: torch.nn.Module
    task: SegmentTask
    source: Path

    @classmethod
    def load(cls, path: str | Path) -> "Segmenter":
        """The segment export at ``path`` (an export or run folder); an error says what else it is."""
        from ..models import Generator
        from . import generator_task

        generator = Generator.from_pretrained(path)
        task = generator_task(generator)
        if not isinstance(task, SegmentTask):
            raise ConfigError(f"{path} is a {task.kind.value} generator, not a segmenter (train one with "
                              "--task segment on real pairs)")
        return cls(generator.eval(), task, Path(path))

    @property
    def num_classes(self) -> int:
        return int(self.task.num_classes)

    def to(self, device: torch.device | str) -> "Segmenter":
        self.generator = self.generator.to(device)
        return self

    @torch.no_grad()
    def logits(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(B, C, H, W)`` images in [-1, 1] (8-bit units) -> the segmenter's outputs ``(B, K', H, W)`` (CPU)."""
        # 1. as 8-bit pixels decoded by the segmenter's codec                    (b, c_seg, h, w)
        codec = self.task.input_codec
        batch = torch.stack([codec.from_pixels(ImageFile(from_tensor(image.float().cpu(), np.dtype(np.uint8))))
                             .tensor for image in images])
        # 2. its outputs: class logits (+ a border class in instance mode, + a distance map)
        return run_generator(self.generator, batch, InferenceConfig(batch_size=len(batch)), device)

    def classes(self, images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(B, C, H, W)`` images in [-1, 1] (8-bit units) -> ``(B, H, W)`` predicted class ids (CPU)."""
        return torch.stack([self.task.classes(logit) for logit in self.logits(images, device)])

    def agreement(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The segmenter's classes ``(B, H, W)`` on ``images``, and per pixel its confidence in ``labels (B, H, W)``:
        1 where its class is the label, else its softmax probability of the label's class (FreeMask-style
        down-weighting of the pixels it disagrees with)."""
        outputs = self.logits(images, device)
        predicted = torch.stack([self.task.classes(output) for output in outputs])  # (b, h, w)
        probs = outputs[:, : self.task.out_classes].float().softmax(1)  # (b, k', h, w)
        ids = labels.cpu().long()
        of_label = probs.gather(1, ids[:, None])[:, 0]  # (b, h, w)
        return predicted, torch.where(predicted == ids, torch.ones_like(of_label), of_label)


def segmenter_confusion(segmenter: Segmenter, images: torch.Tensor, labels: torch.Tensor,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """``(K, K)`` confusion of the segmenter's classes on ``images (B, C, H, W)`` against ``labels (B, H, W)``."""
    return confusion_matrix(segmenter.classes(images, device), labels.cpu(), segmenter.num_classes)


def segmenter_score(segmenter: Segmenter, images: torch.Tensor, labels: torch.Tensor,
                    device: torch.device | str = "cpu") -> dict[str, float]:
    """mIoU, pixel accuracy, Dice and per-class IoU of the segmenter on ``images`` against ``labels``."""
    return segmentation_scores(segmenter_confusion(segmenter, images, labels, device))


@dataclass
class SegmenterScoreMeter:
    """Wraps a translate task's meter and adds ``seg_miou`` and ``seg_pixel_acc``: the segmenter's scores on
    the generated images against the (one-hot) input label maps, from one confusion matrix over the set."""

    inner: object
    segmenter: Segmenter
    device: torch.device | str = "cpu"
    confusion: torch.Tensor | None = field(default=None)

    @property
    def key(self) -> str:
        return self.inner.key

    @property
    def higher_is_better(self) -> bool:
        return self.inner.higher_is_better

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


__all__ = ["Segmenter", "SegmenterScoreMeter", "segmenter_confusion", "segmenter_score"]
