"""NaN or inf in a loss or gradient: the update is skipped and counted; too many in a row stop the run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from pix2pix_unet.cli import train_main
from pix2pix_unet.config import LossConfig, PatchGANConfig, UNetConfig
from pix2pix_unet.models import Discriminator, UNet
from pix2pix_unet.losses import objective as objective_module
from pix2pix_unet.training.faults import EXIT_DIVERGED, all_finite
from pix2pix_unet.training.step import train_step
from tests.conftest import TINY

# the faults are counted in calls of the L1 loss: no speed measurement may call it first (perf auto times steps)
NO_MEASURING = ["perf.small_conv_gemm=off", "perf.keep_freed_memory=off"]


def tiny_setup():
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True)
    g = UNet(UNetConfig(depth=2, base_channels=4, max_channels=8))
    d = Discriminator(3, 3, PatchGANConfig(base_channels=4, n_layers=1))
    opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
    g, d, opt_g, opt_d = accelerator.prepare(g, d, opt_g, opt_d)
    return accelerator, g, d, opt_g, opt_d


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def unchanged(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_all_finite():
    assert all_finite([torch.ones(3), torch.tensor(2.0)])
    assert not all_finite([torch.ones(3), torch.tensor([1.0, math.nan])])
    assert not all_finite([torch.tensor([-math.inf])])
    assert all_finite([torch.tensor([3e38, -3e38])])  # large but finite: no overflow in the check


def test_a_nan_batch_changes_nothing():
    """NaN inputs make every loss NaN: neither net, nor its optimiser, nor its BatchNorm statistics change."""
    accelerator, g, d, opt_g, opt_d = tiny_setup()
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    train_step(accelerator, g, d, opt_g, opt_d, x, y, LossConfig())  # one good step, so Adam has state
    g_before, d_before = snapshot(g), snapshot(d)
    x[0, 0, 0, 0] = math.nan
    losses = train_step(accelerator, g, d, opt_g, opt_d, x, y, LossConfig())
    assert losses["skipped"].item() == 1.0 and losses["g_total"].isnan()
    assert unchanged(g, g_before) and unchanged(d, d_before)  # weights and running statistics
    assert all(int(s["step"]) == 1 for s in opt_g.state_dict()["state"].values())  # no Adam step taken
    assert all(p.grad is None for p in g.parameters())  # the bad gradients were dropped


def test_an_inf_gradient_with_finite_losses_skips_only_that_update():
    accelerator, g, d, opt_g, opt_d = tiny_setup()
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    g_before, d_before = snapshot(g), snapshot(d)
    head = list(g.parameters())[-1]
    handle = head.register_hook(lambda grad: grad * math.inf)  # G's gradient overflows, its losses do not
    losses = train_step(accelerator, g, d, opt_g, opt_d, x, y, LossConfig())
    handle.remove()
    assert all(torch.isfinite(v).all() for k, v in losses.items() if k != "skipped")
    assert losses["skipped"].item() == 1.0
    assert unchanged(g, g_before) and not opt_g.state_dict()["state"]  # G: no update at all
    first_d_weight = next(k for k in d_before if k.endswith("weight"))
    assert not torch.equal(d.state_dict()[first_d_weight], d_before[first_d_weight])  # D was updated


def nan_at_step_2_and_from_step_5(monkeypatch) -> None:
    """Make the L1 loss NaN at the 2nd call and from the 5th on (one call per step)."""
    calls = {"n": 0}
    real_l1 = objective_module.l1_loss

    def l1_with_faults(fake, real):
        calls["n"] += 1
        loss = real_l1(fake, real)
        return loss * math.nan if calls["n"] == 2 or calls["n"] >= 5 else loss

    monkeypatch.setattr(objective_module, "l1_loss", l1_with_faults)


@pytest.mark.slow
def test_bad_steps_are_skipped_counted_and_a_streak_stops_the_run(pair_folder, tmp_path, monkeypatch, capsys):
    """One isolated NaN step is survived; then NaN from step 5 on stops the run after max_bad_steps=3 in a row."""
    nan_at_step_2_and_from_step_5(monkeypatch)
    run = tmp_path / "run"
    code = train_main(["--data", str(pair_folder), "--output-dir", str(run), "--no-wandb", "--max-steps", "20",
                       "checkpoint_every=3", "sample_every=100", "max_bad_steps=3", *TINY, *NO_MEASURING])
    captured = capsys.readouterr()
    assert code == EXIT_DIVERGED, captured.err
    assert "stopped at step 7: 3 steps in a row had a NaN or inf loss or gradient" in captured.err, captured.err
    assert "4 skipped steps in this run" in captured.err
    assert f"{run / 'checkpoints' / 'step_00000006'}; continue from it with --resume" in captured.err
    assert "step 2: NaN or inf loss or gradient, update skipped (1 in a row" in captured.out

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "train/bad_steps" in x]
    assert [(r["step"], r["train/bad_steps"]) for r in rows] == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 2), (6, 3), (7, 4)]
    # checkpoints at 3 and 6 (step 6 was skipped, so it holds step 4's weights); none when the streak stopped the
    # run at 7; every weight and statistic in them finite
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["generator", "step_00000003", "step_00000006"]
    for path in [run / "checkpoints" / "step_00000006" / "model.safetensors",
                 run / "checkpoints" / "generator" / "model.safetensors"]:
        assert all(torch.isfinite(t).all() for t in load_file(path).values())


def fused_setup():
    accelerator, g, d, _, _ = tiny_setup()
    opt_g, opt_d = torch.optim.Adam(g.parameters(), fused=True), torch.optim.Adam(d.parameters(), fused=True)
    opt_g, opt_d = accelerator.prepare(opt_g, opt_d)
    return accelerator, g, d, opt_g, opt_d


def test_with_fused_adam_a_nan_batch_is_skipped_on_the_device():
    """The default optimiser gets the verdict as its found_inf flag: same outcome, no host sync."""
    accelerator, g, d, opt_g, opt_d = fused_setup()
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    train_step(accelerator, g, d, opt_g, opt_d, x, y, LossConfig())
    g_before, d_before = snapshot(g), snapshot(d)
    x[0, 0, 0, 0] = math.nan
    losses = train_step(accelerator, g, d, opt_g, opt_d, x, y, LossConfig())
    assert losses["skipped"].item() == 1.0
    assert unchanged(g, g_before) and unchanged(d, d_before)
    for opt in (opt_g, opt_d):
        assert all(int(s["step"]) == 1 for s in opt.state_dict()["state"].values())  # the step count taken back
        assert not hasattr(opt.optimizer, "found_inf")  # the flag does not outlive the step
    losses = train_step(accelerator, g, d, opt_g, opt_d, torch.rand(2, 3, 16, 16), y, LossConfig())
    assert losses["skipped"].item() == 0.0 and not unchanged(g, g_before)


def test_with_fused_adam_the_step_never_reads_a_tensor_on_the_host(monkeypatch):
    accelerator, g, d, opt_g, opt_d = fused_setup()
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)

    def sync(*args, **kwargs):
        raise AssertionError("host sync in the training step")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, sync)
    losses = train_step(accelerator, g, d, opt_g, opt_d, x, y, LossConfig())
    monkeypatch.undo()
    assert losses["skipped"].item() == 0.0


@pytest.mark.slow
def test_skipped_updates_are_read_when_logging_or_saving(pair_folder, tmp_path, monkeypatch, capsys):
    """With log_every=4 the flags stay on the device between log and checkpoint steps; the streak of steps
    5-7 is found at the step-8 log, and each skipped step is still named."""
    nan_at_step_2_and_from_step_5(monkeypatch)
    run = tmp_path / "run"
    code = train_main(["--data", str(pair_folder), "--output-dir", str(run), "--no-wandb", "--max-steps", "20",
                       "checkpoint_every=3", "sample_every=100", "max_bad_steps=3", *TINY, *NO_MEASURING,
                       "log_every=4"])
    captured = capsys.readouterr()
    assert code == EXIT_DIVERGED, captured.err
    assert "stopped at step 8: 3 steps in a row had a NaN or inf loss or gradient" in captured.err, captured.err
    for step in (2, 5, 6, 7):
        assert f"step {step}: NaN or inf loss or gradient, update skipped" in captured.out
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "train/bad_steps" in x]
    assert [(r["step"], r["train/bad_steps"]) for r in rows] == [(4, 1), (8, 4)]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["generator", "step_00000003", "step_00000006"]
