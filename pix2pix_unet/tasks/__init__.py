"""Tasks: what the generator learns, each with its own data handling, losses, metrics and samples.

``TASKS`` maps the config's ``task`` to its class; the training loop talks to a
task only through :class:`~pix2pix_unet.tasks.base.TrainingTask`.

========== ============================== =========================================
task       generator                      data
========== ============================== =========================================
translate  image / one-hot labels -> image A/ + B/, or labels/ + images/ (format=index)
segment    image -> per-class logits      images/ (or B/) + labels/ [+ instances/]
restore    degraded image -> clean image  a folder of clean images
========== ============================== =========================================
"""

from __future__ import annotations

from ..config import Task, TrainConfig
from .base import TaskBase, TrainingTask
from .restore import RestoreTask
from .segment import SegmentTask
from .translate import TranslateTask

TASKS: dict[Task, type[TaskBase]] = {
    Task.TRANSLATE: TranslateTask,
    Task.SEGMENT: SegmentTask,
    Task.RESTORE: RestoreTask,
}


def build_task(cfg: TrainConfig) -> TrainingTask:
    """The task ``cfg.task`` names, set up with ``cfg``."""
    return TASKS[cfg.task](cfg)


__all__ = ["TASKS", "TaskBase", "TrainingTask", "build_task", "RestoreTask", "SegmentTask", "TranslateTask"]
