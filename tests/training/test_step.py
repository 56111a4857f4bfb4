"""The training step with the discriminator variants: WGAN-GP, feature matching, multi-scale, D steps per G step."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator

from pix2pix_unet import from_pretrained
from pix2pix_unet.cli import train_main
from pix2pix_unet.config import GanLoss, LossConfig, Norm, PatchGANConfig, Skip, UNetConfig
from pix2pix_unet.models import Discriminator, UNet
from pix2pix_unet.training.step import train_step
from tests.conftest import TINY


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    g = UNet(UNetConfig(depth=2, base_channels=4, max_channels=8))
    d = Discriminator(3, 3, PatchGANConfig(base_channels=4, n_layers=2, num_scales=2, norm=Norm.INSTANCE,
                                           spectral_norm=True))
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3)
    batch = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    return g, d, opt_g, opt_d, batch


def _adam_step(opt: torch.optim.Optimizer) -> int:
    return int(next(iter(opt.state.values()))["step"])


def test_wgan_gp_feature_matching_and_two_d_steps():
    g, d, opt_g, opt_d, (x, y) = _setup()
    cfg = LossConfig(gan=GanLoss.WGAN_GP, fm_weight=10.0, gp_weight=10.0)
    losses = train_step(Accelerator(cpu=True), g, d, opt_g, opt_d, x, y, cfg, d_steps=2)
    assert set(losses) == {"d_total", "d_real", "d_fake", "d_gp", "g_total", "g_gan", "g_l1", "g_fm", "skipped"}
    assert losses["skipped"].item() == 0.0  # every update was finite and applied
    assert all(torch.isfinite(v) and not v.requires_grad for v in losses.values())
    assert losses["d_gp"] > 0 and losses["g_fm"] > 0
    wasserstein = losses["d_fake"] - losses["d_real"]
    assert losses["d_total"].item() == pytest.approx((wasserstein + 10.0 * losses["d_gp"]).item(), rel=1e-4, abs=1e-5)
    assert losses["g_total"].item() == pytest.approx(
        (losses["g_gan"] + 100.0 * losses["g_l1"] + 10.0 * losses["g_fm"]).item(), rel=1e-4)
    assert _adam_step(opt_d) == 2 and _adam_step(opt_g) == 1
    assert all(p.requires_grad for p in d.parameters())  # D unfrozen again for the next step


def test_gradient_penalty_changes_the_discriminator_update():
    def d_after_step(gp_weight: float) -> list[torch.Tensor]:
        g, d, opt_g, opt_d, (x, y) = _setup(seed=1)
        torch.manual_seed(5)  # the same interpolates in both runs
        cfg = LossConfig(gan=GanLoss.WGAN_GP, gp_weight=gp_weight)
        train_step(Accelerator(cpu=True), g, d, opt_g, opt_d, x, y, cfg)
        return [p.detach().clone() for p in d.parameters()]

    without, with_gp = d_after_step(0.0), d_after_step(10.0)
    assert any(not torch.allclose(a, b) for a, b in zip(without, with_gp))


@pytest.mark.slow
def test_training_run_with_every_discriminator_option(pair_folder, tmp_path):
    run = tmp_path / "run"
    assert train_main([
        "--data", str(pair_folder), "--output-dir", str(run), "--max-steps", "3", "--no-wandb", *TINY,
        "generator.skip=attention", "generator.bottleneck=aspp", "generator.aspp_rates=[1, 2]",
        "generator.spectral_norm=true", "discriminator.num_scales=2", "discriminator.spectral_norm=true",
        "discriminator.norm=instance", "loss.gan=wgan-gp", "loss.fm_weight=10", "optim.d_steps_per_g=2",
        "optim.lr_d=0.0004", "sample_every=3", "checkpoint_every=3",
    ]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/d_gp" in r]
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all(r["train/d_gp"] > 0 and r["train/g_fm"] > 0 for r in train), train
    # optimizer.bin is G's Adam, optimizer_1.bin D's: two D updates per G update
    state = run / "checkpoints" / "step_00000003"
    steps = [{int(s["step"]) for s in torch.load(state / name, weights_only=False)["state"].values()}
             for name in ("optimizer.bin", "optimizer_1.bin")]
    assert steps == [{3}, {6}]
    g = from_pretrained(run)
    assert g.config.skip is Skip.ATTENTION and g.config.spectral_norm
    assert g(torch.randn(1, 3, 27, 35)).shape == (1, 3, 27, 35)
