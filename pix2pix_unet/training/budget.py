"""A time budget: how many steps fit, from a short warm-up measured on this machine.

``--budget 15m`` trains for as many steps as end, with validation, the final
tuning and the export, inside 15 minutes of wall time from the start of the run.
The first steps of the run are the warm-up: they are timed, the steps that fit
are counted from them, and ``max_steps`` is fixed there (the learning-rate
schedule then stretches over those steps; ``config.yaml`` records them, so a
resumed run keeps them). Should the steps later run slower than measured (a
busy machine), the run ends early at the step that still leaves the end its
reserve, rather than overrun.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

WARMUP_STEPS = 12  # steps timed before deciding; the first SKIP are allocation and caching
SKIP = 2
WARMUP_SHARE = 0.1  # ... or fewer, when 12 steps would take more than this share of the budget
RESERVE_EVALS = 3  # the final evaluation, the tuning after it and the export, in units of one evaluation
SAFETY = 0.92  # the steps are counted to end here, so a slower stretch later still ends inside the budget

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"1.5h"`` or ``"15"`` (minutes).

    Raises:
        ValueError: the text is not such a duration, or not positive; names it.
    """
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--budget {text!r}: give a positive duration such as 90s, 15m or 1.5h")
    unit = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, None: 60}[match.group(2)]
    return float(match.group(1)) * unit


@dataclass(frozen=True)
class BudgetDecision:
    """What the warm-up measured and the steps it fixed."""

    budget_s: float
    elapsed_s: float
    step_s: float
    eval_s: float
    max_steps: int
    reserve_s: float = 0.0  # kept for the end of the run: the final evaluation, tuning, checkpoint and export

    def summary(self) -> str:
        return (f"budget {self.budget_s:.0f} s: {self.elapsed_s:.1f} s spent on setup and the warm-up, "
                f"{self.step_s * 1000:.0f} ms a step, {self.eval_s:.1f} s an evaluation -> max_steps="
                f"{self.max_steps}")


def steps_that_fit(budget_s: float, elapsed_s: float, done: int, step_s: float, eval_s: float,
                   eval_every: int, checkpoint_s: float = 0.0, checkpoint_every: int = 0) -> int:
    """The step count (from 0) that ends inside ``budget_s``: ``done`` steps already taken in ``elapsed_s``,
    each further step costs ``step_s`` plus its share of the periodic evaluations and checkpoints, and the end
    keeps ``RESERVE_EVALS`` evaluations and ``1 - SAFETY`` of the budget in reserve. At least ``done`` (never fewer than already taken)."""
    per_step = step_s + eval_s / max(1, eval_every) + (checkpoint_s / checkpoint_every if checkpoint_every else 0.0)
    left = SAFETY * budget_s - elapsed_s - RESERVE_EVALS * eval_s - checkpoint_s
    return done + max(0, math.floor(left / per_step)) if per_step > 0 else done


def warmup_steps(budget_s: float, first_step_s: float) -> int:
    """How many steps the warm-up times: ``WARMUP_STEPS``, fewer when they would eat ``WARMUP_SHARE`` of the
    budget (at least ``SKIP + 2``)."""
    return max(SKIP + 2, min(WARMUP_STEPS, int(WARMUP_SHARE * budget_s / max(first_step_s, 1e-6))))


__all__ = ["BudgetDecision", "parse_duration", "steps_that_fit", "warmup_steps"]
