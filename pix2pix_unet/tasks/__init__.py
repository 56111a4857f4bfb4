"""Tasks: what the generator learns; each task is one object from file to file.

``TASKS`` maps the config's ``task`` to its class (:class:`~pix2pix_unet.tasks.base.TaskBase`):
decoding files, losses, metrics, writing outputs and what the export records.
Training builds a task from its config (:func:`build_task`); ``predict``,
``evaluate``, ``synthesize`` and ``export`` rebuild it from the generator export
alone (:func:`task_from_export`).

========== ============================== =========================================
task       generator                      data
========== ============================== =========================================
translate  image / one-hot labels -> image A/ + B/, or labels/ + images/ (format=index)
segment    image -> per-class logits      images/ (or B/) + labels/ [+ instances/]
restore    degraded image -> clean image  a folder of clean images
========== ============================== =========================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Task, TrainConfig, to_dict
from .base import SCHEMA_VERSION, Evaluation, ExportError, TaskBase
from .restore import RestoreTask
from .segment import SegmentTask
from .translate import TranslateTask
from .unpaired import UnpairedTask

TASKS: dict[Task, type[TaskBase]] = {
    Task.TRANSLATE: TranslateTask,
    Task.SEGMENT: SegmentTask,
    Task.RESTORE: RestoreTask,
    Task.UNPAIRED: UnpairedTask,
}


def build_task(cfg: TrainConfig) -> TaskBase:
    """The task ``cfg.task`` names, set up with ``cfg`` (call ``build_datasets()`` before the rest)."""
    return TASKS[cfg.task](cfg)


def task_from_export(meta: dict[str, Any], source: str | Path = "<export>") -> TaskBase:
    """The task a generator export's ``config.json`` describes (exports without a task are ``translate``).

    Raises:
        ExportError: an unknown task or schema version, or a field the task needs is missing; names it.
    """
    version = meta.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ExportError(f"{source}: config.json has schema version {version!r}; this version of pix2pix-unet "
                          f"reads up to {SCHEMA_VERSION} (upgrade it)")
    try:
        kind = Task(meta.get("task") or Task.TRANSLATE.value)
    except ValueError:
        raise ExportError(f"{source}: config.json names task {meta.get('task')!r}; known tasks: "
                          f"{[t.value for t in Task]}") from None
    return TASKS[kind].from_export(meta, source)


def generator_task(generator: Any) -> TaskBase:
    """The task of a generator loaded with ``Generator.from_pretrained`` (its export's metadata)."""
    meta = dict(getattr(generator, "metadata", None) or {})
    meta.setdefault("generator", to_dict(generator.config))
    return task_from_export(meta, getattr(generator, "export_dir", "<generator>"))


__all__ = ["TASKS", "Evaluation", "ExportError", "TaskBase", "build_task", "generator_task", "task_from_export",
           "RestoreTask", "SegmentTask", "TranslateTask"]
