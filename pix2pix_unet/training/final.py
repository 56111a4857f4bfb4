"""The end of a run: which weights the export holds, what is tuned and on which files, and the run's figures.

Once the last step is checkpointed, :func:`finish`

1. takes the export's weights (``export``): the best checkpoint by ``best_metric`` (its ``generator/``) with
   ``export=best``, else, or when no checkpoint was measured, the last step's (:func:`choose_export`);
2. lets the task tune what it tunes (segment's instance thresholds) with those weights on the ``tune`` files of
   ``split.json``;
3. evaluates them, so tuned, on the ``report`` files: the run's figures, written to ``metrics.json`` and to the
   last ``metrics.jsonl`` row (``final/*``), each saying which files they come from;
4. writes ``checkpoints/generator`` from them, with what was tuned and ``split.json``.

The ``val/*`` rows logged during training are the whole validation split with the task's untuned settings; the
best checkpoint is chosen on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import ExportWeights
from ..data.split import BUILTIN, ExampleSubset
from ..models import Generator
from ..models.generator import WEIGHTS_NAME
from ..tasks import TaskBase
from .checkpoint import GENERATOR_DIR, BestRule, best_checkpoint, read_meta

FINAL_NAME = "metrics.json"  # in the run folder: the figures of the export's weights on the report files


@dataclass(frozen=True)
class ExportChoice:
    """Where the export's weights come from: a checkpoint's ``generator/`` (None: the live weights), their
    step, what they are (best or last) and, for the run's summary, why."""

    source: Path | None
    step: int
    kind: ExportWeights
    why: str


def choose_export(root: Path, rule: BestRule, wanted: ExportWeights, step: int) -> ExportChoice:
    """The weights ``checkpoints/generator`` holds at ``step``: with ``export=best`` the best checkpoint's under
    ``root`` (ties: the newer), else the live ones; the live ones too when no checkpoint was measured or the best
    one has no ``generator/`` (saved by an older version)."""
    if wanted is ExportWeights.LAST:
        return ExportChoice(None, step, ExportWeights.LAST, "the last step (export=last)")
    winner = best_checkpoint(root, rule)
    if winner is None:
        return ExportChoice(None, step, ExportWeights.LAST,
                            f"the last step: no checkpoint was measured by {rule.metric}")
    if not (winner / GENERATOR_DIR / WEIGHTS_NAME).is_file():
        return ExportChoice(None, step, ExportWeights.LAST,
                            f"the last step: the best checkpoint {winner.name} has no {GENERATOR_DIR}/ (older version)")
    meta = read_meta(winner)
    value = rule.value(winner)
    return ExportChoice(winner / GENERATOR_DIR, int(meta.get("step", winner.name.removeprefix("step_"))),
                        ExportWeights.BEST, f"the best by {rule.metric} ({rule.mode.value}: {value:.4f})")


def lost_gain(history: list[tuple[int, float]], rule: BestRule) -> str | None:
    """A warning when a run's last validation lost more than half of what it had gained over its first one
    (``history``: ``(step, value)`` of ``rule.metric``, oldest first): the run diverged or collapsed, and the
    last weights are not its trained ones. None when it did not, or with fewer than 3 validations."""
    if len(history) < 3:
        return None
    first, last = history[0][1], history[-1][1]
    best_step, best = history[0]
    for step, value in history:
        if rule.better(value, best):
            best_step, best = step, value
    gain, loss = abs(best - first), abs(best - last)
    if gain == 0 or not rule.better(best, last) or loss <= 0.5 * gain:
        return None
    return (f"{rule.metric} was {best:.4g} at step {best_step} but {last:.4g} at the last step {history[-1][0]} "
            f"(it started at {first:.4g}): the run lost {loss / gain:.0%} of its gain, so it diverged or collapsed. "
            "Check the loss curves; export=best keeps the best checkpoint, a lower optim.lr_g may train steadily")


def load_chosen(choice: ExportChoice) -> Generator:
    """The generator of a checkpoint's ``generator/``, on the CPU. Building it draws initial weights; the global
    RNG is put back, so a run that exports mid-way trains on exactly as one resumed from that checkpoint."""
    with torch.random.fork_rng(devices=[]):
        return Generator.from_pretrained(choice.source)


def figures_source(count: int, builtin: bool, tuned: str | None, tuned_on_reported: bool) -> str:
    """Which examples a run's figures come from, as a phrase (``on 5 held-out files not used for ...``)."""
    noun = "built-in example" if builtin else "file"
    what = f"{count} held-out {noun}{'s' if count != 1 else ''}"
    if tuned is None:
        return f"on {what} not used for training"
    if tuned_on_reported:
        return (f"on {what} not used for training but also used for tuning {tuned} (the only validation "
                f"{noun}): tuned on, so optimistic")
    return f"on {what} not used for training or for tuning {tuned}"


@dataclass
class FinalReport:
    """What :func:`finish` settled: the export, what was tuned, the figures and where they come from."""

    choice: ExportChoice
    metrics: dict[str, float]  # no prefix, as evaluate's metrics.json
    source: str  # figures_source(...)
    count: int
    tuned: dict[str, float] | None
    tuned_on_reported: bool
    rows: list[dict[str, Any]] = field(default_factory=list)


def finish(task: TaskBase, live: nn.Module, val: Dataset, tune: list[int], report: list[int],
           split: dict[str, Any], choice: ExportChoice, rule: BestRule, run_dir: Path,
           device: torch.device | str) -> tuple[FinalReport, nn.Module]:
    """Steps 2-3 of the module docstring for the weights of ``choice`` (``live`` when it names no checkpoint):
    tune on ``val``'s ``tune`` examples, evaluate on its ``report`` examples, write ``run_dir/metrics.json``.

    Returns the report and the net it measured (what the export is to hold).
    """
    net = live if choice.source is None else load_chosen(choice).to(device)
    tuned_what = task.tunes(val) if tune else None
    tuned = task.tune(net, ExampleSubset(val, tune), device) if tuned_what else None
    result = task.evaluate(net, ExampleSubset(val, report), device, report=True)
    on_reported = bool(tuned_what) and bool(set(tune) & set(report))
    builtin = split.get("data") == BUILTIN
    source = figures_source(len(report), builtin, tuned_what, on_reported)
    final = FinalReport(choice, result.metrics, source, len(report), tuned, on_reported, result.rows)
    noun = "built-in examples" if builtin else "files"
    chosen_by = (f"{rule.metric} ({rule.mode.value}) on all {len(val)} validation {noun}, the reported ones among them"
                 if choice.kind is ExportWeights.BEST else None)
    (run_dir / FINAL_NAME).write_text(json.dumps({
        "step": choice.step, "export": choice.kind.value, "chosen_by": chosen_by, "source": source,
        "files": "report", "count": len(report), "tuned": tuned, "tuned_on": len(tune) if tuned_what else 0,
        "tuned_on_reported": on_reported, "metrics": result.metrics, "per_image": result.rows,
    }, indent=2))
    return final, net


__all__ = ["FINAL_NAME", "ExportChoice", "FinalReport", "choose_export", "figures_source", "finish", "load_chosen",
           "lost_gain"]
