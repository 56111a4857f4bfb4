"""Which files a run trained on, which it held out, and which of those it tuned on: ``split.json``.

Every run writes ``split.json`` in its run folder and beside its generator export::

    {
      "data": "/abs/path/of/data.path",   (or "builtin")
      "seed": 0,
      "held_out": "folders",              (train/ + val/ or test/; or "val_fraction=0.1", or "builtin")
      "train":  [{"image": "train/images/a.png", "labels": "train/labels/a.png"}, ...],
      "val":    [...],                    the held-out (validation) examples
      "tune":   [...],                    of "val": what is tuned after training is tuned on these
      "report": [...],                    of "val": the figures a run reports (metrics.json) come from these
      "tuned": "the instance thresholds", what is tuned on "tune" (null: nothing, and "tune" is empty)
      "tuned_on_reported": false,         true when one validation example had to serve both
      "skipped": [...]                    bad files left out (data.skip_bad)
    }

An entry names an example's files by role (``A``/``B`` or ``AB`` for pairs; ``image``, ``labels``,
``instances``, ``confidence`` for label maps; ``clean`` for restore), relative to ``data``; for the built-in
data, which has no files, it is the example's index (``{"index": 3}``), from which ``builtin_kind``, ``seed``
and ``builtin_size`` make it again.

Validation examples are split in two when the task tunes something on them after training
(:meth:`~pix2pix_unet.tasks.base.TaskBase.tunes`; segment's instance thresholds): a seeded half, rounded
up, to tune on, the rest to report on (:func:`tune_and_report`). With nothing to tune, all of them are
report files. ``pix2pix-unet evaluate`` reads the record (:func:`roles_of`) to score only the files a model
neither trained nor was tuned on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..config import DataConfig

SPLIT_NAME = "split.json"
BUILTIN = "builtin"

Entry = dict[str, Any]  # one example: {role: relative path} or {"index": n}


class ExampleSubset(Dataset):
    """The examples ``indices`` of ``base``, with ``base``'s attributes (``has_instances`` ...), its
    ``source`` and ``example_files``."""

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        self.base, self.indices = base, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getattr__(self, name: str) -> Any:
        if name in ("base", "indices"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, index: int) -> Any:
        return self.base[self.indices[index]]

    def source(self, index: int) -> Any:
        return self.base.source(self.indices[index]) if hasattr(self.base, "source") else str(index)

    def example_files(self) -> list[dict[str, Any]]:
        files = self.base.example_files()
        return [files[i] for i in self.indices]


def tune_and_report(count: int, seed: int) -> tuple[list[int], list[int]]:
    """Indices of ``count`` validation examples to tune on and to report on: a seeded half, rounded up (the
    thresholds a user keeps come from the tuning files; the report only describes them), and the rest. With one example there is no rest: both are ``[0]`` (the figures are then tuned on, and say so)."""
    if count < 1:
        raise ValueError(f"no validation example to tune on (count={count})")
    if count == 1:
        return [0], [0]
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + 1)).tolist()
    tune = (count + 1) // 2
    return sorted(order[:tune]), sorted(order[tune:])


def _entries(dataset: Dataset, root: Path | None) -> list[Entry]:
    """``dataset.example_files()`` with paths relative to ``root``, as POSIX strings."""
    return [{role: value if isinstance(value, int) else _relative(Path(value), root) for role, value in ex.items()}
            for ex in dataset.example_files()]


def _relative(path: Path, root: Path | None) -> str:
    if root is None:
        return str(path.resolve())
    return Path(os.path.relpath(path.resolve(), root)).as_posix()


def split_record(data: DataConfig, seed: int, train: Dataset, val: Dataset, tune: list[int], report: list[int],
                 task: str, tuned: str | None = None) -> dict[str, Any]:
    """What ``split.json`` holds (see the module docstring) for the run's ``train`` and ``val`` datasets, the
    ``tune``/``report`` indices into ``val`` and what is tuned (``tuned``: "the instance thresholds")."""
    builtin = data.path == BUILTIN
    root = None if builtin else Path(data.path).resolve()
    val_entries = _entries(val, root)
    record: dict[str, Any] = {"task": task, "data": BUILTIN if builtin else str(root), "seed": seed}
    if builtin:
        record.update(held_out=BUILTIN, builtin_kind=data.builtin_kind.value, builtin_size=data.builtin_size)
    else:
        folders = all(str(v).split("/")[0] in ("val", "test") for e in val_entries for v in e.values())
        record["held_out"] = "folders" if folders else f"val_fraction={data.val_fraction}"
    record.update(
        train=_entries(train, root), val=val_entries, tune=[val_entries[i] for i in tune],
        report=[val_entries[i] for i in report], tuned=tuned, tuned_on_reported=bool(set(tune) & set(report)),
        skipped=[_relative(Path(bad.path), root) for bad in getattr(train, "skipped", [])],
    )
    return record


def write_split(path: Path, record: dict[str, Any]) -> Path:
    path.write_text(json.dumps(record, indent=2))
    return path


def read_split(folder: Path | str) -> dict[str, Any] | None:
    """The ``split.json`` of a run or export folder, or None when it has none (exports of older versions)."""
    path = Path(folder) / SPLIT_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def _files(record: dict[str, Any], key: str) -> set[Path]:
    root = Path(record["data"])
    return {(root / value).resolve() for entry in record.get(key, []) for role, value in entry.items()
            if role != "index"}


def roles_of(record: dict[str, Any], examples: list[dict[str, Any]]) -> list[str | None]:
    """For each example (``{role: path}``, as ``example_files`` gives them) what the run of ``record`` used it
    for: ``"train"`` when any of its files trained the model, else ``"tune"`` when any was tuned on, else
    ``"report"`` for a held-out file the run reported on, else None (a file the run never read).

    Files are compared by their resolved paths, so only the files of the run's own data folder are known.
    """
    if record.get("data") == BUILTIN:
        return [None] * len(examples)
    known = {key: _files(record, key) for key in ("train", "tune", "report")}
    roles: list[str | None] = []
    for example in examples:
        paths = {Path(p).resolve() for role, p in example.items() if role != "index"}
        roles.append(next((key for key in ("train", "tune", "report") if paths & known[key]), None))
    return roles


__all__ = ["SPLIT_NAME", "ExampleSubset", "read_split", "roles_of", "split_record", "tune_and_report",
           "write_split"]
