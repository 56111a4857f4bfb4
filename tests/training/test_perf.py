"""The speed options change no results: the optimised step matches a plain eager step, the CPU
kernels match the default ones, and the GPU code paths (compile, channels_last, bf16 autocast,
fused Adam) run on CPU."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from pix2pix_unet.cli import train_main
from pix2pix_unet.config import CompileMode, LossConfig, LrScaling, PatchGANConfig, PerfConfig, UNetConfig, from_dict
from pix2pix_unet.models import Discriminator, UNet
from pix2pix_unet.training import perf
from pix2pix_unet.training.loop import batch_scaled_lr, loader_workers
from pix2pix_unet.training.perf import SmallConvolutionsAsGemm, adam, compile_targets, keep_freed_memory, plan, speed_up
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


CPU = torch.device("cpu")


@pytest.mark.slow
@pytest.mark.parametrize("cfg", [PerfConfig(), PerfConfig(channels_last=True),
                                 PerfConfig(channels_last=False, fused_adam=False, small_conv_gemm=False)],
                         ids=["cpu-defaults", "channels_last", "all-off"])
def test_optimised_step_matches_plain_eager_step(cfg):
    g, d = nets()
    plain = reference_step.ReferenceStep(copy.deepcopy(g), copy.deepcopy(d))
    speed = plan(cfg, CPU)
    speed_up(g, d, speed)
    opt_g, opt_d = adam(g.parameters(), 2e-4, (0.5, 0.999), speed), adam(d.parameters(), 2e-4, (0.5, 0.999), speed)
    acc = Accelerator(cpu=True)
    torch.manual_seed(1)
    for _ in range(3):
        x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
        with speed.kernels():
            ours = train_step(acc, g, d, opt_g, opt_d, speed.batch(x), speed.batch(y), LossConfig())
        ref = plain(x, y)
        for key in ("d_total", "g_gan", "g_l1", "g_total"):
            assert ours[key].item() == pytest.approx(ref[key], rel=1e-4, abs=1e-5), key
    for (name, a), b in zip(g.state_dict().items(), plain.generator.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


@pytest.mark.slow
@pytest.mark.parametrize("mode", [CompileMode.DEFAULT, CompileMode.REDUCE_OVERHEAD])
def test_compiled_step_matches_eager_on_cpu(mode):
    """torch.compile (inductor, CPU) gives the same losses as eager for two steps. The CUDA graph mode
    (reduce-overhead) runs on CPU too, where it has no graphs to capture."""
    eager_g, eager_d = nets()
    comp_g, comp_d = copy.deepcopy(eager_g), copy.deepcopy(eager_d)
    speed = plan(PerfConfig(channels_last=True, compile=True, compile_mode=mode), CPU)
    assert speed.compile
    speed_up(comp_g, comp_d, speed)
    # D is compiled per scale, so the generator update (through D.features) runs compiled too
    assert compile_targets(comp_d) == list(comp_d.scales)
    assert all(part._compiled_call_impl is not None for part in [comp_g, *comp_d.scales])
    acc = Accelerator(cpu=True)
    runs = []
    for g, d in ((eager_g, eager_d), (comp_g, comp_d)):
        opt_g, opt_d = adam(g.parameters(), 2e-4, (0.5, 0.999), speed), adam(d.parameters(), 2e-4, (0.5, 0.999), speed)
        torch.manual_seed(1)
        losses = []
        for _ in range(2):
            x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
            losses.append(train_step(acc, g, d, opt_g, opt_d, x, y, LossConfig())["g_total"].item())
        runs.append(losses)
    assert runs[1] == pytest.approx(runs[0], rel=1e-4)
    # compiling in place keeps the state_dict keys, so checkpoints do not depend on the option
    assert list(comp_g.state_dict()) == list(eager_g.state_dict())


def test_automatic_choices_per_device():
    cuda, cpu = plan(PerfConfig(), torch.device("cuda")), plan(PerfConfig(), CPU)
    assert cuda.generator_channels_last and cuda.discriminator_channels_last and cuda.compile and cuda.fused_adam
    assert cuda.cudnn_benchmark and not cpu.cudnn_benchmark
    assert not (cuda.small_conv_gemm or cuda.keep_freed_memory)  # CPU-only measures
    assert not cpu.generator_channels_last and cpu.discriminator_channels_last and not cpu.compile
    assert cpu.small_conv_gemm and cpu.keep_freed_memory
    off = plan(PerfConfig(channels_last=False, compile=False), torch.device("cuda"))
    assert not (off.generator_channels_last or off.discriminator_channels_last or off.compile)
    assert plan(PerfConfig(channels_last=True), CPU).generator_channels_last


def _spy_routes(monkeypatch) -> list[int]:
    calls = []
    apply = perf._GemmConvolution.apply
    monkeypatch.setattr(perf._GemmConvolution, "apply", lambda *a: calls.append(1) or apply(*a))
    return calls


@pytest.mark.parametrize("conv", [
    dict(fn=F.conv2d, w=(16, 8, 4, 4), kw=dict(stride=2, padding=1)),
    dict(fn=F.conv2d, w=(16, 4, 3, 3), kw=dict(padding=2, dilation=2, groups=2), bias=True),
    dict(fn=F.conv_transpose2d, w=(8, 16, 4, 4), kw=dict(stride=2, padding=1)),
    dict(fn=F.conv_transpose2d, w=(8, 16, 3, 3), kw=dict(stride=2, padding=1, output_padding=1), bias=True),
], ids=["conv-s2", "conv-dilated-groups-bias", "convT-s2", "convT-output-padding-bias"])
def test_small_convolutions_as_gemm_match_the_default_kernels(conv, monkeypatch):
    calls = _spy_routes(monkeypatch)
    torch.manual_seed(0)
    x = torch.randn(2, 8, 8, 8)
    w = torch.randn(*conv["w"]) * 0.1
    b = torch.randn(w.shape[1] if conv["fn"] is F.conv_transpose2d else w.shape[0]) if conv.get("bias") else None
    results = []
    for mode in (SmallConvolutionsAsGemm(), perf.contextlib.nullcontext()):
        leaves = [t.clone().requires_grad_(True) for t in (x, w) + ((b,) if b is not None else ())]
        with mode:
            out = conv["fn"](leaves[0], leaves[1], leaves[2] if b is not None else None, **conv["kw"])
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out.detach()] + [t.grad for t in leaves])
    assert calls == [1]
    for ours, default in zip(*results):
        assert ours.shape == default.shape
        assert torch.allclose(ours, default, rtol=1e-4, atol=1e-5), (ours - default).abs().max()


def test_small_convolutions_as_gemm_leave_other_convolutions_alone(monkeypatch):
    calls = _spy_routes(monkeypatch)
    w = torch.randn(4, 3, 3, 3)
    with SmallConvolutionsAsGemm(max_pixels=16 * 16):
        F.conv2d(torch.randn(1, 3, 32, 32), w, padding=1)  # bigger than 16x16
        F.conv2d(torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last),
                 w.contiguous(memory_format=torch.channels_last), padding=1)  # NHWC stays with oneDNN
        F.conv2d(torch.randn(1, 3, 8, 8), w, padding="same")
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts only through F.conv2d itself
            hidden = F.conv2d(torch.randn(1, 3, 8, 8), w, padding=1)  # bf16, into a conv with float32 weights
            assert F.conv2d(hidden, torch.randn(4, 4, 3, 3), padding=1).dtype == torch.bfloat16
        assert not calls
        F.conv2d(torch.randn(1, 3, 8, 8), w, padding=1)
    assert calls == [1]
    F.conv2d(torch.randn(1, 3, 8, 8), w, padding=1)  # outside the context
    assert calls == [1]


@pytest.mark.slow
def test_gemm_kernels_run_the_pix2pix_preset_unchanged(monkeypatch):
    """On the real preset (inner layers at 16x16 and below) the output and every gradient match the default kernels."""
    calls = _spy_routes(monkeypatch)
    torch.manual_seed(0)
    g = UNet(from_dict(UNetConfig, {"preset": "pix2pix", "dropout": 0.0}))
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    runs = []
    for mode in (SmallConvolutionsAsGemm(), perf.contextlib.nullcontext()):
        g.zero_grad(set_to_none=True)
        with mode:
            out = g(x)
        out.square().mean().backward()
        runs.append([out.detach()] + [p.grad.clone() for p in g.parameters()])
    assert len(calls) == 9  # 4 encoder convs (16, 8, 4, 2 px) and 5 decoder convs (1, 2, 4, 8, 16 px)
    for ours, default in zip(*runs):
        assert torch.allclose(ours, default, rtol=1e-3, atol=1e-5), (ours - default).abs().max()


@pytest.mark.skipif(not perf.sys.platform.startswith("linux"), reason="glibc malloc")
def test_keep_freed_memory_takes_effect_on_glibc():
    assert keep_freed_memory()


@pytest.mark.slow
def test_bf16_autocast_trains_on_cpu(pair_folder, tmp_path):
    run = tmp_path / "bf16"
    assert train_main(["--data", str(pair_folder), "--output-dir", str(run), "--max-steps", "2", "--no-wandb",
                       "--mixed-precision", "bf16", "perf.channels_last=true", *TINY]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "train/g_total" in x]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["train/g_total"])) for r in rows)


def test_batch_scaled_learning_rate():
    assert batch_scaled_lr(2e-4, 64, 1, LrScaling.NONE) == 2e-4
    assert batch_scaled_lr(2e-4, 64, 1, LrScaling.SQRT) == pytest.approx(1.6e-3)
    assert batch_scaled_lr(2e-4, 16, 4, LrScaling.LINEAR) == pytest.approx(8e-4)


@pytest.mark.slow
def test_training_applies_lr_scaling_to_the_global_batch(pair_folder, tmp_path):
    run = tmp_path / "scaled"
    # TINY trains batches of 2 with grad_accum 1: the global batch is 4 with grad_accum=2, so sqrt scaling doubles
    assert train_main(["--data", str(pair_folder), "--output-dir", str(run), "--max-steps", "2", "--no-wandb",
                       *TINY, "grad_accum=2", "optim.lr_scaling=sqrt", "optim.base_batch_size=1",
                       "optim.lr_g=1e-4", "optim.decay_start=1.0"]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "train/lr_g" in x]
    assert rows[0]["train/lr_g"] == pytest.approx(2e-4)


def test_loader_workers_default_to_decoding_processes_only_with_cuda():
    assert loader_workers(None, processes=1, on_cuda=False, cores=16) == 0  # a CPU run keeps its cores
    assert loader_workers(None, processes=1, on_cuda=True, cores=16) == 8
    assert loader_workers(None, processes=4, on_cuda=True, cores=16) == 3  # one core each for the 4 trainers
    assert loader_workers(None, processes=8, on_cuda=True, cores=8) == 1
    assert loader_workers(2, processes=1, on_cuda=True, cores=16) == 2  # as asked


def test_ema_update_matches_averaged_model_without_its_device_copy():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from pix2pix_unet.training.loop import ema_update

    g, _ = nets()
    ours, torchs = (AveragedModel(g, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True) for _ in range(2))
    for step in range(3):
        with torch.no_grad():
            for t in (*g.parameters(), *g.buffers()):
                t.add_(1 + step)  # num_batches_tracked (int64) too
        ema_update(ours, g)
        torchs.update_parameters(g)
        for (name, a), b in zip(ours.state_dict().items(), torchs.state_dict().values()):
            assert torch.equal(a, b), (step, name)
    assert int(ours.n_averaged) == 3
