"""What every task gives the training loop: datasets, the training batch, its losses, evaluation.

The loop (``training/loop.py``) is the same for every task; it asks the task for

1. ``build_datasets()``: train and validation sets, checked up front. This also
   settles what the data decides (``num_classes``), so ``task.cfg`` is read after it:
   the run's config with the generator's channels and head set for the task;
2. ``train_batch(batch)``: (generator input, target) on the device, augmented;
3. ``discriminator_losses`` / ``generator_losses``: the objective ``train_step`` minimises
   (:class:`~pix2pix_unet.training.step.Objective`);
4. ``evaluate(generator, val_set, device)``: validation metrics plus sample-grid rows;
5. ``export_metadata()``: what a generator export must carry for predict/synthesize.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import MetricMode, Task, TrainConfig
from ..training.loop import Evaluation
from ..training.step import Objective


class TrainingTask(Objective, Protocol):
    """The interface the training loop uses (see the module docstring for the order of calls)."""

    cfg: TrainConfig

    def build_datasets(self) -> tuple[Dataset, Dataset]: ...

    def to(self, device: torch.device | str) -> "TrainingTask": ...

    def train_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]: ...

    def evaluate(self, generator: nn.Module, dataset: Dataset, device: torch.device) -> Evaluation: ...

    def export_metadata(self) -> dict[str, Any]: ...


class TaskBase:
    """Plumbing shared by the tasks: the (resolved) config and the device-side augmentation.

    Args:
        cfg: the run's config; tasks replace ``self.cfg`` with a resolved copy in ``build_datasets``.
    """

    kind: ClassVar[Task]
    best: ClassVar[tuple[str, MetricMode]] = ("val/l1", MetricMode.MIN)  # the task's own `best_metric`

    def __init__(self, cfg: TrainConfig) -> None:
        # A run that keeps the default `best_metric` gets the task's: val/l1 is not measured by every task.
        default = TrainConfig()
        if (cfg.best_metric, cfg.best_mode) == (default.best_metric, default.best_mode):
            cfg = dataclasses.replace(cfg, best_metric=self.best[0], best_mode=self.best[1])
        self.cfg = cfg
        self.augment: nn.Module = nn.Identity()  # set by build_datasets; runs on the batch's device

    def to(self, device: torch.device | str) -> "TaskBase":
        self.augment = self.augment.to(device)
        return self

    def export_metadata(self) -> dict[str, Any]:
        """``task`` and ``num_classes`` (None without classes) for the generator export's config.json."""
        return {"task": self.kind.value, "num_classes": None}
