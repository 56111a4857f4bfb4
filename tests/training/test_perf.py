"""The speed options change no results: the optimised step matches a plain eager step, the CPU
kernels match the default ones, and the GPU code paths (compile, channels_last, bf16 autocast,
fused Adam) run on CPU."""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from pix2pix_unet.cli import train_main
from pix2pix_unet.config import (
    CompileMode, LossConfig, LrScaling, PatchGANConfig, PerfConfig, Switch, UNetConfig, from_dict,
)
from pix2pix_unet.models import Discriminator, UNet
from pix2pix_unet.runtime import backends
from pix2pix_unet.runtime.backends import backend_flags, freed_memory_is_kept, freed_memory_kept
from pix2pix_unet.training import perf
from pix2pix_unet.training.loop import batch_scaled_lr, loader_workers
from pix2pix_unet.training.perf import SmallConvolutionsAsGemm, adam, compile_targets, plan, speed_up
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
@pytest.mark.parametrize("cfg", [PerfConfig(small_conv_gemm=Switch.ON, keep_freed_memory=Switch.ON),
                                 PerfConfig(channels_last=True),
                                 PerfConfig(channels_last=False, fused_adam=False, small_conv_gemm=False)],
                         ids=["cpu-options-on", "channels_last", "all-off"])
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
    off = plan(PerfConfig(channels_last=False, compile=False), torch.device("cuda"))
    assert not (off.generator_channels_last or off.discriminator_channels_last or off.compile)
    assert plan(PerfConfig(channels_last=True), CPU).generator_channels_last


def test_cpu_options_are_measured_when_auto_and_kept_as_set_otherwise(monkeypatch):
    monkeypatch.setattr(perf, "can_keep_freed_memory", lambda: True)
    auto, cpu = PerfConfig(), plan(PerfConfig(), CPU)
    assert not (cpu.small_conv_gemm or cpu.keep_freed_memory)  # off until measured
    assert perf.measured_options(auto, cpu, CPU) == ["keep_freed_memory", "small_conv_gemm"]
    assert perf.measured_options(auto, cpu, CPU, autocast=True) == ["keep_freed_memory"]  # GEMM steps aside
    assert perf.measured_options(auto, plan(auto, torch.device("cuda")), torch.device("cuda")) == []
    compiled = PerfConfig(compile=True)
    assert perf.measured_options(compiled, plan(compiled, CPU), CPU) == []
    set_ = PerfConfig(small_conv_gemm=Switch.ON, keep_freed_memory=Switch.OFF)
    assert perf.measured_options(set_, plan(set_, CPU), CPU) == []
    assert plan(set_, CPU).small_conv_gemm and not plan(set_, CPU).keep_freed_memory
    assert not plan(set_, torch.device("cuda")).small_conv_gemm  # CPU only, even when on
    monkeypatch.setattr(perf, "can_keep_freed_memory", lambda: False)  # no glibc: nothing to measure there
    assert perf.measured_options(auto, cpu, CPU) == ["small_conv_gemm"]
    # old runs' config.yaml hold booleans
    assert from_dict(PerfConfig, {"small_conv_gemm": True, "keep_freed_memory": False}) == set_
    assert PerfConfig(small_conv_gemm=True, keep_freed_memory=False) == set_


# --------------------------------------------------------------------------- the measurement: decision logic


def test_candidates_visit_every_combination_changing_one_option_at_a_time():
    settings = perf.candidates(["keep_freed_memory", "small_conv_gemm"])
    assert [tuple(c.values()) for c in settings] == [(False, False), (False, True), (True, True), (True, False)]
    three = perf.candidates(["a", "b", "c"])
    assert len({tuple(c.values()) for c in three}) == 8 and three[0] == {"a": False, "b": False, "c": False}
    assert all(sum(x != y for x, y in zip(p.values(), q.values())) == 1 for p, q in zip(three, three[1:]))
    assert [c["a"] for c in three] == [False] * 4 + [True] * 4  # the first option switches once
    assert perf.candidates([]) == [{}]


def test_the_best_time_wins_and_a_tie_keeps_the_earlier():
    # other work on the machine only adds time: a slow sample (5.0) does not count against a setting
    assert perf.fastest([[0.50, 0.52, 0.51], [0.47, 0.49, 5.0], [0.48, 0.60, 0.61]]) == 1
    assert perf.fastest([[0.3, 0.3], [0.3, 0.3]]) == 0
    assert perf.fastest([[0.40, 0.45], [0.40]]) == 0


class FakeClock:
    """A clock that each sample advances by its setting's made-up step time."""

    def __init__(self, step_s: dict[str, float]) -> None:
        self.now, self.step_s, self.calls = 0.0, step_s, []

    def __call__(self) -> float:
        return self.now

    def sample(self, setting: str) -> float:
        self.calls.append(setting)
        self.now += self.step_s[setting]
        return self.step_s[setting]


def test_measure_interleaves_the_settings_and_keeps_to_its_budget():
    clock = FakeClock({"a": 1.0, "b": 2.0, "c": 0.5})
    times = perf.measure(["a", "b", "c"], clock.sample, rounds=3, min_rounds=2, budget_s=100, clock=clock)
    assert clock.calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]  # every other round backwards
    assert times == [[1.0] * 3, [2.0] * 3, [0.5] * 3]
    clock = FakeClock({"a": 1.0, "b": 2.0, "c": 0.5})
    times = perf.measure(["a", "b", "c"], clock.sample, rounds=5, min_rounds=2, budget_s=6.0, clock=clock)
    assert [len(t) for t in times] == [2, 2, 2]  # 7 s after two rounds: over the budget, no third
    clock = FakeClock({"a": 1.0, "b": 2.0, "c": 0.5})
    times = perf.measure(["a", "b", "c"], clock.sample, budget_s=3.0, clock=clock)  # the defaults
    assert [len(t) for t in times] == [1, 1, 1]  # one round is always timed; 3.5 s: no second


class FakeAccelerator:
    num_processes, is_main_process = 1, True

    def __init__(self) -> None:
        self.printed: list[str] = []

    def print(self, text: str) -> None:
        self.printed.append(text)


def test_decision_is_the_fastest_setting_recorded_and_reused_on_resume(tmp_path):
    step_ms = {(False, False): 50, (False, True): 40, (True, True): 30, (True, False): 45}
    samples: list[tuple[bool, bool]] = []

    @contextlib.contextmanager
    def sampler():
        def sample(options):
            key = (options["keep_freed_memory"], options["small_conv_gemm"])
            samples.append(key)
            torch.rand(3)  # a measurement that draws from the global RNG must not shift the run's draws
            return step_ms[key] / 1000
        yield sample

    acc, speed = FakeAccelerator(), plan(PerfConfig(), CPU)
    options = ["keep_freed_memory", "small_conv_gemm"]
    rng = torch.get_rng_state()
    decision = perf.decide_cpu_options(acc, speed, options, tmp_path, sampler, reuse=False, rounds=2)
    chosen = decision.speed
    assert torch.equal(torch.get_rng_state(), rng)
    assert chosen.keep_freed_memory and chosen.small_conv_gemm and chosen.discriminator_channels_last
    assert len(samples) == 8
    assert "perf auto: keep_freed_memory=on small_conv_gemm=on" in acc.printed[-1] and "30.0" in acc.printed[-1]
    record = json.loads((tmp_path / perf.PERF_RECORD).read_text())
    assert record == decision.record and record["chosen"] == {"keep_freed_memory": True, "small_conv_gemm": True}
    assert {json.dumps(r["options"], sort_keys=True): r["best_ms"] for r in record["candidates"]} == {
        json.dumps({"keep_freed_memory": k, "small_conv_gemm": g}, sort_keys=True): v
        for (k, g), v in step_ms.items()}

    def must_not_measure():
        raise AssertionError("a resumed run measured again")

    again = perf.decide_cpu_options(acc, speed, options, tmp_path, must_not_measure, reuse=True)
    assert again.speed == chosen and "as measured at the start of the run" in acc.printed[-1]
    # explicit settings are never measured, nor read back
    assert perf.decide_cpu_options(acc, speed, [], tmp_path, must_not_measure, reuse=False).speed == speed


def test_step_sampler_times_copies_and_leaves_the_nets_alone(tmp_path):
    from pix2pix_unet.config import load_config
    from pix2pix_unet.tasks import build_task
    from pix2pix_unet.tasks.base import RandomCrops
    from tests.conftest import write_pairs

    task = build_task(load_config(overrides=[*TINY, f"data.path={write_pairs(tmp_path / 'p', 4)}"]))
    train_set, _, cfg = task.build_datasets()
    train_set = RandomCrops(train_set, cfg.data.crop_size, cfg.seed)
    g, d = nets()
    g.train()
    before = [t.clone() for t in (*g.state_dict().values(), *d.state_dict().values())]
    speed = plan(PerfConfig(), CPU)
    batch = functools.partial(perf.first_batch, task, train_set, 2)
    with perf.step_sampler(Accelerator(cpu=True), g, d, batch, cfg.loss, speed, objective=task) as sample:
        times = [sample(c) for c in perf.candidates(list(perf.MEASURED))]
        assert freed_memory_is_kept() == backends.can_keep_freed_memory()  # the last candidate keeps it
    assert all(t > 0 for t in times) and not freed_memory_is_kept()
    after = [*g.state_dict().values(), *d.state_dict().values()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(p.grad is None for p in (*g.parameters(), *d.parameters()))


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


# --------------------------------------------------------------------------- process-wide switches, scoped


@pytest.mark.skipif(not backends.can_keep_freed_memory(), reason="glibc malloc")
def test_keep_freed_memory_takes_effect_on_glibc_for_the_block_only():
    with freed_memory_kept() as kept:
        assert kept and freed_memory_is_kept()
    assert not freed_memory_is_kept()


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, what: int, value: int) -> int:
        self.calls.append(("mallopt", what, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch) -> FakeLibc:
    fake = FakeLibc()
    monkeypatch.setattr(backends, "_libc", lambda: fake)
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    return fake


KEEP = [("mallopt", -3, 1 << 30), ("mallopt", -1, 2**31 - 1)]
RESTORE = [("mallopt", -3, 128 * 1024), ("mallopt", -1, 128 * 1024), ("malloc_trim", 0)]


def test_freed_memory_kept_sets_once_and_restores_glibcs_values_on_leaving_the_outermost_block(libc):
    with backend_flags(keep_freed_memory=True):
        with freed_memory_kept(), backend_flags(keep_freed_memory=False):
            assert libc.calls == KEEP
        assert libc.calls == KEEP and freed_memory_is_kept()
    assert libc.calls == KEEP + RESTORE and not freed_memory_is_kept()


def test_freed_memory_kept_restores_the_users_own_thresholds(libc, monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576:glibc.malloc.tcache_count=0")
    with pytest.raises(RuntimeError), freed_memory_kept():
        raise RuntimeError("the run failed")
    assert libc.calls == KEEP + [("mallopt", -3, 65536), ("mallopt", -1, 1048576), ("malloc_trim", 0)]


def test_cudnn_benchmark_is_set_for_the_block_and_put_back():
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with backend_flags(cudnn_benchmark=True):
            assert torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.benchmark is False
        with pytest.raises(ValueError), backend_flags(cudnn_benchmark=True):
            raise ValueError
        assert torch.backends.cudnn.benchmark is False
        with backend_flags():  # nothing asked, nothing touched
            assert torch.backends.cudnn.benchmark is False
        assert plan(PerfConfig(), torch.device("cuda")).cudnn_benchmark
    finally:
        torch.backends.cudnn.benchmark = before


def process_flags() -> tuple:
    return (torch.backends.cudnn.benchmark, torch.backends.mkldnn.enabled, freed_memory_is_kept(),
            torch.get_num_threads())


@pytest.mark.slow
def test_auto_measures_once_records_the_choice_and_changes_no_result(pair_folder, tmp_path, libc, capsys):
    """A CPU run with perf.*=auto times its step with each setting, writes the choice to perf.json and
    leaves the process's switches as they were; a resume reuses the choice; the same run with the chosen
    options set explicitly gives the very same losses (the measurement ran on copies, the RNG put back)."""
    flags = process_flags()
    common = ["--data", str(pair_folder), "--no-wandb", *TINY, "sample_every=100", "checkpoint_every=2"]
    auto = tmp_path / "auto"
    assert train_main([*common, "--output-dir", str(auto), "--max-steps", "3"]) == 0
    assert process_flags() == flags
    assert libc.calls[-3:] == RESTORE  # malloc's thresholds held for the run (if chosen), then put back
    record = json.loads((auto / perf.PERF_RECORD).read_text())
    assert record["measured"] == ["keep_freed_memory", "small_conv_gemm"] and len(record["candidates"]) == 4
    assert all(len(r["step_ms"]) >= 1 and 0 < r["best_ms"] <= r["median_ms"] for r in record["candidates"])
    chosen = record["chosen"]
    assert "perf auto: " in capsys.readouterr().out

    explicit = tmp_path / "explicit"
    options = [f"perf.{k}={'on' if v else 'off'}" for k, v in chosen.items()]
    assert train_main([*common, "--output-dir", str(explicit), "--max-steps", "3", *options]) == 0
    assert not (explicit / perf.PERF_RECORD).exists()

    def losses(run: Path) -> list[dict]:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k.startswith("train/") and k != "train/images_per_s"}
                for r in rows if "train/g_total" in r]

    assert losses(auto) == losses(explicit) and len(losses(auto)) == 3

    # a resumed run takes the recorded choice instead of measuring again
    capsys.readouterr()
    assert train_main([*common, "--output-dir", str(auto), "--max-steps", "4", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "as measured at the start of the run" in out and "perf auto: " not in out
    assert process_flags() == flags


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
