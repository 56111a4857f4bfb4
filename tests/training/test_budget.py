"""The time budget: durations, the steps that fit, and a budgeted run that ends inside its budget."""

from __future__ import annotations

import time

import pytest
import yaml

from pix2pix_unet.training.budget import RESERVE_EVALS, SAFETY, parse_duration, steps_that_fit, warmup_steps


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("1.5h", 5400), ("15", 900), (" 2 min", 120)])
def test_durations_are_read_in_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "15 days", "m"])
def test_a_bad_duration_names_itself(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_duration(text)


def test_the_steps_that_fit_pay_for_evaluations_checkpoints_and_the_reserve():
    # 100 s budget, 10 s spent, 10 steps done; 0.1 s a step, 1 s an evaluation every 10 steps
    fit = steps_that_fit(100.0, 10.0, 10, step_s=0.1, eval_s=1.0, eval_every=10)
    left = SAFETY * 100.0 - 10.0 - RESERVE_EVALS * 1.0
    assert fit == 10 + int(left / (0.1 + 1.0 / 10))
    # a budget already spent never takes back steps that were taken
    assert steps_that_fit(10.0, 50.0, 7, step_s=0.1, eval_s=1.0, eval_every=10) == 7
    # checkpoints cost their share too
    assert steps_that_fit(100.0, 10.0, 10, 0.1, 1.0, 10, checkpoint_s=2.0, checkpoint_every=10) < fit


def test_the_warm_up_is_short_when_steps_are_slow():
    assert warmup_steps(900.0, 0.05) == 12
    assert warmup_steps(30.0, 2.0) == 4


@pytest.mark.slow
def test_a_budgeted_run_ends_inside_its_budget_and_records_its_steps(tmp_path):
    from pix2pix_unet.cli import train_main
    from tests.planner.test_planner import write_nuclei

    write_nuclei(tmp_path / "data", n=3)
    budget = 30.0
    start = time.perf_counter()
    assert train_main(["--task", "segment", "--data", str(tmp_path / "data"), "--output-dir", str(tmp_path / "run"),
                       "--budget", f"{budget:g}s", "--no-wandb", "generator.in_channels=1"]) == 0
    took = time.perf_counter() - start
    assert took <= 1.1 * budget, f"a {budget:g} s budget took {took:.1f} s"
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["budget_s"] is None and 4 <= cfg["max_steps"] < 1_000_000  # fixed: a resume trains to it
    assert (tmp_path / "run" / "checkpoints" / f"step_{cfg['max_steps']:08d}").is_dir()


@pytest.mark.slow
def test_a_slow_warm_up_is_corrected_upwards_by_later_refits(tmp_path, monkeypatch):
    """The warm-up's steps run slow (first allocations, a busy moment): the later refits, timed on faster steps,
    raise max_steps again. Each refit may only lower the steps it can take if it is capped by the user's own."""
    import json

    from pix2pix_unet.cli import train_main
    from pix2pix_unet.training import loop
    from tests.planner.test_planner import write_nuclei

    real_step, calls = loop.train_step, [0]

    def slow_at_first(*args, **kwargs):
        calls[0] += 1
        if calls[0] <= 6:
            time.sleep(1.0)  # far slower than the tiny steps after it, even on a busy machine
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", slow_at_first)
    write_nuclei(tmp_path / "data", n=3)
    assert train_main(["--task", "segment", "--data", str(tmp_path / "data"), "--output-dir", str(tmp_path / "run"),
                       "--budget", "25s", "--no-wandb", "generator.in_channels=1", "data.crop_size=32",
                       "generator.depth=3", "generator.base_channels=4", "generator.max_channels=16",
                       "batch_size=2"]) == 0
    fits = [row["budget/max_steps"] for row in map(json.loads, (tmp_path / "run" / "metrics.jsonl").open())
            if "budget/max_steps" in row]
    # a later refit raised the steps; on a busy machine the deadline may still end the run early, and the
    # record and the saved config then both say where it ended
    assert len(fits) >= 2 and max(fits[1:]) > fits[0], fits
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["max_steps"] == fits[-1]
