"""The lr schedule's shapes and the optimiser choice (optim.decay, optim.weight_decay)."""

from __future__ import annotations

import math

import pytest
import torch

from pix2pix_unet.config import ConfigError, LrDecay, load_config
from pix2pix_unet.training.loop import linear_decay
from pix2pix_unet.training.perf import adam, plan


@pytest.mark.parametrize("shape", list(LrDecay))
def test_the_lr_holds_then_decays_to_zero(shape):
    rule = linear_decay(100, 0.4, shape)
    assert [rule(s) for s in (0, 39)] == [1.0, 1.0]
    assert rule(100) == pytest.approx(0.0, abs=1e-12)
    decay = [rule(s) for s in range(40, 101)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))  # never rises again
    halfway = rule(70)  # halfway down the decay both shapes are at one half
    assert halfway == pytest.approx(0.5)
    quarter = rule(55)  # a quarter into it: the line is at 3/4, the cosine above it
    expected = 0.75 if shape is LrDecay.LINEAR else 0.5 * (1 + math.cos(math.pi / 4))
    assert quarter == pytest.approx(expected)


def test_weight_decay_gives_adamw_and_a_negative_one_is_named():
    net = torch.nn.Linear(2, 2)
    speed = plan(load_config(None, []).perf, torch.device("cpu"))
    assert type(adam(net.parameters(), 1e-3, (0.9, 0.999), speed)) is torch.optim.Adam
    opt = adam(net.parameters(), 1e-3, (0.9, 0.999), speed, weight_decay=0.01)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.01
    with pytest.raises(ConfigError, match=r"optim.weight_decay=-0.1 must be >= 0"):
        load_config(None, ["optim.weight_decay=-0.1"])
