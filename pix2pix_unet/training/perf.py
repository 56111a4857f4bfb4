"""Speed options for one device: decided once from :class:`~pix2pix_unet.config.PerfConfig`,
then applied to the nets, optimisers, batches and the process.

None of them changes the maths beyond floating-point rounding
(``tests/training/test_perf.py`` checks the optimised step against a plain eager
one). What is automatic was chosen by measurement (``benchmarks/bench_train.py``,
pix2pix preset, 256 px, batch 1, fp32, 2-core x86 CPU):

* fused Adam: one kernel per optimiser step instead of a Python loop over
  tensors; 33 ms instead of 97 ms per step for the generator's 54 M parameters.
* keep freed memory: glibc's ``malloc`` hands every block above 128 KiB back to
  the kernel when it is freed, so each step page-faults its ~300 MB of
  gradients and activations in again (70-90 k faults, ~100 ms of system time
  per step). Raising the mmap and trim thresholds keeps them for reuse: 0
  faults, 542 ms instead of 581 ms per plain step, 30 MB more resident memory.
  A process-wide setting, held only for the run (``runtime/backends.py``).
* channels-last: on CPU only the discriminator gains (443 vs 464 ms per step
  with the others on); the generator loses, because BatchNorm's backward is
  slow in NHWC. With CUDA, both nets (tensor cores want NHWC).
* small convolutions as GEMM: oneDNN reorders each weight on every call, which
  dominates a conv whose input is 16x16 or smaller (the pix2pix U-Net's inner
  layers, with 512-1024 channels and 4-16 MB weights). Computing those with
  im2col + GEMM is 2-3x faster per layer and 27 ms per step (416 vs 443 ms).
* ``torch.compile``: with CUDA only; on this CPU inductor made the step 1.16x slower.
  The discriminator's per-scale PatchGANs are compiled rather than its wrapper,
  so the generator update (which calls ``Discriminator.features``) runs compiled
  too. ``compile_mode=reduce-overhead`` adds CUDA graphs.
* cuDNN autotuning (``torch.backends.cudnn.benchmark``), with CUDA: the shapes
  repeat every step, so timing each conv's algorithms once pays off at once.

The GPU choices follow common practice and are not yet measured here: no GPU
was available to this project's benchmark runs (docs/performance.md).

The two CPU options, small convolutions as GEMM and keeping freed memory, gain
different amounts on different CPUs (tuned on one 2-core Xeon, the step was
0.70x the plain eager one there but 0.84x on an AMD EPYC). So by default
(``auto``) a CPU run measures them instead of assuming: :func:`decide_cpu_options`
times a few of the run's own training steps, at its batch and crop size, with
each combination, interleaved, and keeps the fastest (6 steps in all where a
step takes over ~0.6 s, more rounds within ~3 s for quicker steps, at most 15
steps). The steps run on copies
of the nets with the global RNG put back afterwards, so the choice changes the
speed and nothing else. The choice and the times are printed and written to the
run folder's ``perf.json``; a resumed run reuses them. ``on``/``off`` skip the
measurement.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.data import Dataset, default_collate

from ..config import CompileMode, LossConfig, PerfConfig, Switch
from ..losses.objective import Objective
from ..models import Discriminator
from ..runtime.backends import backend_flags, can_keep_freed_memory, switched
from ..tasks import TaskBase
from .step import train_step


@dataclass(frozen=True)
class SpeedPlan:
    """:class:`PerfConfig` decided for one device: what :func:`plan` turned on."""

    generator_channels_last: bool
    discriminator_channels_last: bool
    compile: bool
    compile_mode: CompileMode
    fused_adam: bool
    cudnn_benchmark: bool  # CUDA only
    small_conv_gemm: bool  # CPU only
    keep_freed_memory: bool  # CPU only

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """A batch tensor in the generator's memory format."""
        if self.generator_channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def kernels(self) -> contextlib.AbstractContextManager:
        """Context for the forward passes: routes small convolutions to GEMM where the plan says so."""
        return SmallConvolutionsAsGemm() if self.small_conv_gemm else contextlib.nullcontext()

    def flags(self) -> contextlib.AbstractContextManager:
        """The plan's process-wide switches (cuDNN autotuning, malloc keeping freed memory), held for the block
        of the run and put back as they were after it (an off plan leaves the process's setting alone)."""
        return backend_flags(cudnn_benchmark=True if self.cudnn_benchmark else None,
                             keep_freed_memory=self.keep_freed_memory)


# the CPU options that `auto` measures; malloc's first, since switching it costs a step (candidates())
MEASURED = ("keep_freed_memory", "small_conv_gemm")


def plan(cfg: PerfConfig, device: torch.device) -> SpeedPlan:
    """Decide every automatic option of ``cfg`` for ``device`` (see the module docstring for why).

    The CPU options set to ``auto`` come out off here; :func:`decide_cpu_options`
    measures them (:func:`measured_options` names them).
    """
    on_cuda, on_cpu = device.type == "cuda", device.type == "cpu"
    return SpeedPlan(
        generator_channels_last=cfg.channels_last if cfg.channels_last is not None else on_cuda,
        discriminator_channels_last=cfg.channels_last if cfg.channels_last is not None else on_cuda or on_cpu,
        compile=cfg.compile if cfg.compile is not None else on_cuda,
        compile_mode=cfg.compile_mode,
        fused_adam=cfg.fused_adam,
        cudnn_benchmark=cfg.cudnn_benchmark and on_cuda,
        small_conv_gemm=cfg.small_conv_gemm is Switch.ON and on_cpu,
        keep_freed_memory=cfg.keep_freed_memory is Switch.ON and on_cpu,
    )


def measured_options(cfg: PerfConfig, speed: SpeedPlan, device: torch.device, autocast: bool = False) -> list[str]:
    """The options of :data:`MEASURED` that ``cfg`` leaves to a measurement on ``device``.

    Only on a CPU, and only those that can make a difference there: none under
    ``torch.compile``, which runs its own kernels and allocations (they stay off);
    not the GEMM route under autocast, which it steps aside for; not malloc's
    thresholds without glibc.
    """
    if device.type != "cpu" or speed.compile:
        return []
    effective = {"small_conv_gemm": not autocast, "keep_freed_memory": can_keep_freed_memory()}
    return [name for name in MEASURED if getattr(cfg, name) is Switch.AUTO and effective[name]]


def speed_up(generator: nn.Module, discriminator: nn.Module | None, speed: SpeedPlan) -> None:
    """Apply the plan to the nets, in place; its process-wide switches are :meth:`SpeedPlan.flags`.

    ``nn.Module.compile`` keeps state_dict keys and types, so checkpoints and
    exports do not depend on these options.
    """
    for module, channels_last in ((generator, speed.generator_channels_last),
                                  (discriminator, speed.discriminator_channels_last)):
        if module is None:
            continue
        if channels_last and not any(p.ndim == 5 for p in module.parameters()):  # 3D nets: not measured, kept
            module.to(memory_format=torch.channels_last)
        if speed.compile:
            for part in compile_targets(module):
                part.compile(mode=speed.compile_mode.value)


def compile_targets(module: nn.Module) -> list[nn.Module]:
    """The parts of ``module`` to compile: a :class:`Discriminator`'s per-scale nets, since both its
    ``forward`` and its ``features`` (used by the generator loss) call them; anything else whole."""
    if isinstance(module, Discriminator):
        return list(module.scales)
    return [module]


def adam(params: Iterable[nn.Parameter] | list[dict], lr: float, betas: tuple[float, float],
         speed: SpeedPlan, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam (AdamW, with decoupled ``weight_decay`` > 0), fused into one kernel per step where asked (supported
    on CPU and CUDA); ``params`` may be parameter groups, each with its own ``lr``."""
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=speed.fused_adam or None)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=speed.fused_adam or None)


# --------------------------------------------------------------------------- measured at the start of a CPU run

PERF_RECORD = "perf.json"  # in the run folder: the options measured, their step times and the choice


def candidates(options: Sequence[str]) -> list[dict[str, bool]]:
    """Every on/off combination of ``options``, all off first, in Gray-code order: neighbours differ in one
    option, and the first option changes least often (put the one whose switch costs most first).

    Examples:
        >>> [tuple(c.values()) for c in candidates(["a", "b"])]
        [(False, False), (False, True), (True, True), (True, False)]
    """
    combos: list[list[bool]] = [[]]
    for _ in options:  # each pass puts a new outermost bit in front (reflected binary code)
        combos = [[False, *c] for c in combos] + [[True, *c] for c in reversed(combos)]
    return [dict(zip(options, c)) for c in combos]


def fastest(times: Sequence[Sequence[float]]) -> int:
    """Index of the candidate whose best (lowest) time is lowest; the earlier one on a tie.

    The best, not the median: other work on the machine only ever adds time to a
    step, so with a few samples each the best is the least disturbed estimate of
    what a setting costs (as ``timeit`` reports).

    Examples:
        >>> fastest([[0.50, 0.52, 0.90], [0.47, 0.49, 2.48]])
        1
    """
    best = [min(t) for t in times]
    return best.index(min(best))


def measure(settings: Sequence[Any], sample: Callable[[Any], float], *, rounds: int = 3, min_rounds: int = 1,
            budget_s: float = 3.0, clock: Callable[[], float] = time.perf_counter) -> list[list[float]]:
    """``sample(setting)`` (seconds) for each setting, interleaved: one of each per round, so that a change
    in the machine's load reaches every setting alike; every other round runs backwards, so a round starts
    where the last one ended. Stops after ``rounds`` rounds, or after the first ``min_rounds`` once
    ``budget_s`` is spent. One list of times per setting."""
    times: list[list[float]] = [[] for _ in settings]
    start = clock()
    for done in range(rounds):
        if done >= min_rounds and clock() - start > budget_s:
            break
        order = list(enumerate(settings))
        for i, setting in order[::-1] if done % 2 else order:
            times[i].append(sample(setting))
    return times


def first_batch(task: TaskBase, train_set: Dataset, batch_size: int) -> tuple[torch.Tensor, Any]:
    """(inputs, target) of the run's first ``batch_size`` training examples, as ``task.train_batch`` augments
    them (drawing from the global RNG: call it where that is put back)."""
    examples = [train_set[i % len(train_set)] for i in range(batch_size)]
    return task.train_batch(default_collate(examples))


@contextlib.contextmanager
def step_sampler(accelerator: Accelerator, generator: nn.Module, discriminator: nn.Module | None,
                 batch: Callable[[], tuple[torch.Tensor, Any]], loss: LossConfig, speed: SpeedPlan, *,
                 objective: Objective | None = None, d_steps: int = 1, betas: tuple[float, float] = (0.5, 0.999),
                 clock: Callable[[], float] = time.perf_counter) -> Iterator[Callable[[dict[str, bool]], float]]:
    """Yields ``sample(options)``: seconds of one training step with ``options`` applied to ``speed``.

    The steps (:func:`~pix2pix_unet.training.step.train_step` with ``objective``)
    run on copies of the nets, so the run's own start is untouched (BatchNorm
    statistics included), with throwaway optimisers, on the batch ``batch()``
    returns (:func:`first_batch`). One untimed step first warms everything up (the
    optimisers' state, the first touch of each buffer). malloc's setting changes
    only when a sample asks for another one, and a switch to keeping freed memory
    is followed by an untimed step that fills the kept pool, which every later
    step of such a run reuses.
    """
    inputs, target = batch()
    inputs = speed.batch(inputs)
    target = speed.batch(target) if isinstance(target, torch.Tensor) else target
    g = copy.deepcopy(generator)
    d = copy.deepcopy(discriminator) if discriminator is not None else None
    opt_g = adam(g.parameters(), 1e-4, betas, speed)
    opt_d = adam(d.parameters(), 1e-4, betas, speed) if d is not None else None

    def one() -> None:
        train_step(accelerator, g, d, opt_g, opt_d, inputs, target, loss, d_steps=d_steps, objective=objective)

    allocator = contextlib.ExitStack()
    kept = False

    def sample(options: dict[str, bool]) -> float:
        nonlocal allocator, kept
        setting = dataclasses.replace(speed, **options)
        with setting.kernels():
            if setting.keep_freed_memory != kept:
                allocator.close()
                allocator, kept = contextlib.ExitStack(), setting.keep_freed_memory
                if kept:
                    allocator.enter_context(backend_flags(keep_freed_memory=True))
                    one()
            start = clock()
            one()
            return clock() - start

    with speed.kernels():
        one()
    try:
        yield sample
    finally:
        allocator.close()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _label(options: dict[str, bool]) -> str:
    return " ".join(f"{k}={'on' if v else 'off'}" for k, v in options.items())


@dataclass(frozen=True)
class CpuDecision:
    """What :func:`decide_cpu_options` settled: the plan, and (when it measured or reused one) the record of
    ``perf.json``: the options measured, the choice, the step times of each combination."""

    speed: SpeedPlan
    record: dict | None = None


def decide_cpu_options(accelerator: Accelerator, speed: SpeedPlan, options: Sequence[str], run_dir: Path | None,
                       make_sampler: Callable[[], contextlib.AbstractContextManager], *, reuse: bool,
                       rounds: int = 3, min_rounds: int = 1, budget_s: float = 3.0) -> CpuDecision:
    """``speed`` with each of ``options`` (left to ``auto``) set by measurement, or as a resumed run chose.

    With ``reuse`` (a resumed run) the choice in ``run_dir/perf.json`` is kept.
    Otherwise ``make_sampler()`` (:func:`step_sampler`) times every on/off
    combination, interleaved (:func:`measure`: one round, and more up to ``rounds``
    while the rounds so far took under ``budget_s``; with two options and a step of
    over ``budget_s / 5`` that is 6 steps in all), the fastest wins (:func:`fastest`), and the choice and the times are printed and written to
    ``perf.json`` (when there is a ``run_dir``). With several processes the main
    one's choice holds for all. The global RNG is put back afterwards, so the run's
    results do not depend on the measurement, only its speed.
    """
    if not options:
        return CpuDecision(speed)
    path = run_dir / PERF_RECORD if run_dir is not None else None
    if reuse and path is not None and path.is_file():
        record = json.loads(path.read_text())
        saved = record.get("chosen", {})
        if all(name in saved for name in options):
            chosen = {name: bool(saved[name]) for name in options}
            accelerator.print(f"perf: {_label(chosen)}, as measured at the start of the run ({path})")
            return CpuDecision(dataclasses.replace(speed, **chosen), record)
    settings = candidates(options)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), make_sampler() as sample:
        times = measure(settings, sample, rounds=rounds, min_rounds=min_rounds, budget_s=budget_s)
    took = time.perf_counter() - start
    chosen = settings[fastest(times)]
    if accelerator.num_processes > 1:
        chosen = broadcast_object_list([chosen])[0]
    rows = [{"options": s, "step_ms": [round(1000 * t, 2) for t in ts], "best_ms": round(1000 * min(ts), 2),
             "median_ms": round(1000 * statistics.median(ts), 2)} for s, ts in zip(settings, times)]
    accelerator.print(f"perf auto: {_label(chosen)} (measured in {took:.1f} s; best ms per training step of "
                      f"{len(times[0])} interleaved: "
                      + ", ".join(f"{_label(r['options'])} {r['best_ms']:.1f}" for r in rows) + ")")
    record = {"device": "cpu", "cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "measured": list(options), "chosen": chosen, "seconds": round(took, 2), "candidates": rows}
    if path is not None and accelerator.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
    return CpuDecision(dataclasses.replace(speed, **chosen), record)


# --------------------------------------------------------------------------- small convolutions as GEMM

GEMM_MAX_PIXELS = 16 * 16  # input h * w at or below which a CPU conv goes to im2col + GEMM


def _onednn_off() -> contextlib.AbstractContextManager:
    """Only the oneDNN switch (``torch.backends.mkldnn.flags`` also resets its TF32 and determinism settings)."""
    return switched(torch.backends.mkldnn, "enabled", False)


class _GemmConvolution(torch.autograd.Function):
    """``aten.convolution`` and its backward with oneDNN off, so ATen's im2col + GEMM kernels run.

    The backend is chosen again in the backward pass from the global flags, so
    the backward has to be under the same flags as the forward: hence a
    Function of its own.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, dilation, transposed, output_padding, groups)
        ctx.bias_sizes = None if bias is None else list(bias.shape)
        with _onednn_off():
            return torch.ops.aten.convolution(x, weight, bias, *ctx.conv)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        with _onednn_off():
            grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad.contiguous(), x, weight, ctx.bias_sizes, *ctx.conv, mask
            )
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def _pair(v: int | tuple[int, ...] | list[int]) -> list[int]:
    return [v, v] if isinstance(v, int) else list(v)


class SmallConvolutionsAsGemm(TorchFunctionMode):
    """While active, 2-D convolutions of contiguous CPU inputs of at most ``max_pixels`` go to im2col + GEMM.

    Everything else (CUDA tensors, channels-last or bigger inputs, string
    padding, autocast, tracing, export and compilation) goes through untouched. Only the
    forward passes need to run inside: the backward goes the same way by itself.

    Examples:
        >>> with SmallConvolutionsAsGemm():
        ...     fake = generator(inputs)
    """

    def __init__(self, max_pixels: int = GEMM_MAX_PIXELS) -> None:
        super().__init__()
        self.max_pixels = max_pixels

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d or func is F.conv_transpose2d:
            routed = self._route(func, *args, **kwargs)
            if routed is not None:
                return routed
        return func(*args, **kwargs)

    def _route(self, func, x, weight, bias=None, stride=1, padding=0, *rest, **kw) -> torch.Tensor | None:
        if (
            x.device.type != "cpu" or x.ndim != 4 or isinstance(padding, str)
            or x.shape[-2] * x.shape[-1] > self.max_pixels
            or not (x.is_contiguous() and weight.is_contiguous())
            or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
            or torch.is_autocast_enabled("cpu")  # aten.convolution would skip autocast's casts
        ):
            return None
        if func is F.conv2d:  # (input, weight, bias, stride, padding, dilation, groups)
            names, transposed = ("dilation", "groups"), False
            defaults = {"dilation": 1, "groups": 1}
        else:  # (input, weight, bias, stride, padding, output_padding, groups, dilation)
            names, transposed = ("output_padding", "groups", "dilation"), True
            defaults = {"output_padding": 0, "groups": 1, "dilation": 1}
        opts = {**defaults, **dict(zip(names, rest)), **kw}
        return _GemmConvolution.apply(
            x, weight, bias, _pair(stride), _pair(padding), _pair(opts["dilation"]), transposed,
            _pair(opts["output_padding"]) if transposed else [0, 0], opts["groups"],
        )
