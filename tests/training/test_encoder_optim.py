"""A pretrained encoder's own learning rate and freeze (``optim.encoder_lr_factor``, ``optim.freeze_encoder_steps``):
in the optimiser, and in a real training run from a weights file."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from pix2pix_unet.cli import train_main
from pix2pix_unet.config import ConfigError, OptimConfig, UNetConfig, from_dict, load_config
from pix2pix_unet.models import build_generator
from pix2pix_unet.training.loop import frozen_for, generator_param_groups, linear_decay
from tests.conftest import TINY

timm = pytest.importorskip("timm")

TINY_ENCODER = {"preset": "resnet34-unet", "encoder": {"name": "resnet18"}, "depth": 3, "base_channels": 8,
                "max_channels": 32}


@pytest.mark.slow
def test_the_encoder_group_moves_at_its_factor_of_the_rate():
    torch.manual_seed(0)
    net = build_generator(from_dict(UNetConfig, TINY_ENCODER))
    groups = generator_param_groups(net, 1e-3, OptimConfig(encoder_lr_factor=0.1))
    assert [g["name"] for g in groups] == ["generator", "encoder"]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    opt = torch.optim.Adam(groups, lr=1e-3)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    net(torch.randn(2, 3, 32, 32)).square().mean().backward()
    opt.step()
    # Adam's first step moves each weight with a gradient by its group's lr (m / sqrt(v) = sign(g))
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in net.named_parameters()}
    encoder = max(v for n, v in moved.items() if n.startswith("encoder."))
    decoder = max(v for n, v in moved.items() if not n.startswith("encoder."))
    assert encoder == pytest.approx(1e-4, rel=1e-3) and decoder == pytest.approx(1e-3, rel=1e-3)


def test_frozen_for_holds_the_rate_at_zero_then_follows_the_schedule():
    schedule = linear_decay(10, 0.5)
    rule = frozen_for(3, schedule)
    assert [rule(s) for s in range(10)] == [0.0, 0.0, 0.0] + [schedule(s) for s in range(3, 10)]


def test_encoder_options_need_an_encoder():
    with pytest.raises(ConfigError, match=r"optim.freeze_encoder_steps=5 apply to a pretrained encoder, but "
                                          r"generator.architecture=unet has none"):
        load_config(None, ["optim.freeze_encoder_steps=5"])
    with pytest.raises(ConfigError, match=r"optim.encoder_lr_factor=-1.0 must be >= 0"):
        load_config(None, ["generator.preset=resnet34-unet", "optim.encoder_lr_factor=-1"])


@pytest.mark.slow
def test_training_keeps_the_loaded_encoder_frozen_then_trains_it_at_its_rate(tmp_path):
    """Weights from a file; 2 frozen steps, then 2 at 0.1 x lr_g: the step-2 checkpoint still holds the file's
    encoder weights (the decoder has moved), the step-4 one does not; the logs show both rates."""
    torch.manual_seed(0)
    weights = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet18").state_dict().items()}, str(weights))
    out = tmp_path / "run"
    assert train_main([
        "--output-dir", str(out), "--max-steps", "4", "--no-wandb", "sample_every=100", "checkpoint_every=2",
        "keep_checkpoints=3", "data.builtin_train=6", "data.builtin_val=2", "data.builtin_size=36", *TINY,
        "generator.preset=resnet34-unet", "generator.encoder.name=resnet18", f"generator.encoder.weights={weights}",
        "optim.freeze_encoder_steps=2", "optim.encoder_lr_factor=0.1", "optim.decay_start=1.0",
    ]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: (r["train/lr_g"], r["train/lr_encoder"]) for r in rows if "train/lr_encoder" in r}
    # the rate logged at step s is the one the next update uses (0 for both at max_steps: the schedule's end)
    assert lrs == {1: (2e-4, 0.0), 2: (2e-4, pytest.approx(2e-5)), 3: (2e-4, pytest.approx(2e-5)), 4: (0.0, 0.0)}

    file = load_file(str(weights))
    states = {step: load_file(str(out / "checkpoints" / f"step_{step:08d}" / "model.safetensors"))
              for step in (2, 4)}
    encoder_keys = [k for k in states[2] if k.startswith("encoder.model.") and "running" not in k
                    and "num_batches" not in k]
    assert encoder_keys and all(torch.equal(states[2][k], file[k.removeprefix("encoder.model.")])
                                for k in encoder_keys)
    assert any(not torch.equal(states[4][k], states[2][k]) for k in encoder_keys)
    assert not torch.equal(states[4]["head.0.weight"], states[2]["head.0.weight"])
