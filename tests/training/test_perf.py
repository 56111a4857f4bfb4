"""The speed options change no results: the optimised step matches a plain eager step, and the
GPU code paths (compile, channels_last, bf16 autocast, fused Adam) run on CPU."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from pix2pix_unet.cli import train_main
from pix2pix_unet.config import LossConfig, PatchGANConfig, PerfConfig, UNetConfig
from pix2pix_unet.models import Discriminator, UNet
from pix2pix_unet.training.perf import adam, compile_enabled, resolve, speed_up_modules, to_memory_format
from pix2pix_unet.training.step import train_step
from tests.conftest import TINY

_spec = importlib.util.spec_from_file_location(
    "reference_step", Path(__file__).resolve().parents[2] / "benchmarks" / "reference_step.py"
)
reference_step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_step)


def nets(seed: int = 0) -> tuple[UNet, Discriminator]:
    torch.manual_seed(seed)
    g = UNet(UNetConfig(depth=3, base_channels=8, max_channels=32, dropout=0.0))  # dropout off: no RNG to align
    d = Discriminator(3, 3, PatchGANConfig(base_channels=8, n_layers=2))
    return g, d


@pytest.mark.parametrize("perf", [PerfConfig(channels_last=True, fused_adam=True, compile=False),
                                  PerfConfig(channels_last=False, fused_adam=False, compile=False)],
                         ids=["channels_last+fused", "plain-options"])
def test_optimised_step_matches_plain_eager_step(perf):
    g, d = nets()
    plain = reference_step.ReferenceStep(copy.deepcopy(g), copy.deepcopy(d))
    speed_up_modules([g, d], perf, torch.device("cpu"))
    opt_g, opt_d = adam(g.parameters(), 2e-4, (0.5, 0.999), perf), adam(d.parameters(), 2e-4, (0.5, 0.999), perf)
    acc = Accelerator(cpu=True)
    torch.manual_seed(1)
    for _ in range(3):
        x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
        ours = train_step(acc, g, d, opt_g, opt_d, to_memory_format(x, perf), to_memory_format(y, perf), LossConfig())
        ref = plain(x, y)
        for key in ("d_total", "g_gan", "g_l1", "g_total"):
            assert ours[key].item() == pytest.approx(ref[key], rel=1e-4, abs=1e-5), key
    for (name, a), b in zip(g.state_dict().items(), plain.generator.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_compiled_step_matches_eager_on_cpu():
    """torch.compile (inductor, CPU) gives the same losses as eager for two steps."""
    eager_g, eager_d = nets()
    comp_g, comp_d = copy.deepcopy(eager_g), copy.deepcopy(eager_d)
    perf = PerfConfig(channels_last=True, compile=True)
    assert compile_enabled(perf, torch.device("cpu"))
    speed_up_modules([comp_g, comp_d], perf, torch.device("cpu"))
    acc = Accelerator(cpu=True)
    runs = []
    for g, d in ((eager_g, eager_d), (comp_g, comp_d)):
        opt_g, opt_d = adam(g.parameters(), 2e-4, (0.5, 0.999), perf), adam(d.parameters(), 2e-4, (0.5, 0.999), perf)
        torch.manual_seed(1)
        losses = []
        for _ in range(2):
            x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
            losses.append(train_step(acc, g, d, opt_g, opt_d, x, y, LossConfig())["g_total"].item())
        runs.append(losses)
    assert runs[1] == pytest.approx(runs[0], rel=1e-4)
    # compiling in place keeps the state_dict keys, so checkpoints do not depend on the option
    assert list(comp_g.state_dict()) == list(eager_g.state_dict())


def test_automatic_options_are_cuda_only():
    assert not compile_enabled(PerfConfig(), torch.device("cpu"))
    assert compile_enabled(PerfConfig(), torch.device("cuda"))
    assert not compile_enabled(PerfConfig(compile=False), torch.device("cuda"))
    assert resolve(PerfConfig(), torch.device("cuda")) == PerfConfig(channels_last=True, compile=True, fused_adam=True)
    assert resolve(PerfConfig(), torch.device("cpu")) == PerfConfig(channels_last=False, compile=False, fused_adam=True)
    assert resolve(PerfConfig(channels_last=True), torch.device("cpu")).channels_last


def test_bf16_autocast_trains_on_cpu(pair_folder, tmp_path):
    run = tmp_path / "bf16"
    assert train_main(["--data", str(pair_folder), "--output-dir", str(run), "--max-steps", "2", "--no-wandb",
                       "--mixed-precision", "bf16", "perf.channels_last=true", *TINY]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "train/g_total" in x]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["train/g_total"])) for r in rows)
