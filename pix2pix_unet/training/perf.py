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
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..config import CompileMode, PerfConfig
from ..models import Discriminator


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


def plan(cfg: PerfConfig, device: torch.device) -> SpeedPlan:
    """Decide every automatic (None) option of ``cfg`` for ``device`` (see the module docstring for why)."""
    on_cuda, on_cpu = device.type == "cuda", device.type == "cpu"
    return SpeedPlan(
        generator_channels_last=cfg.channels_last if cfg.channels_last is not None else on_cuda,
        discriminator_channels_last=cfg.channels_last if cfg.channels_last is not None else on_cuda or on_cpu,
        compile=cfg.compile if cfg.compile is not None else on_cuda,
        compile_mode=cfg.compile_mode,
        fused_adam=cfg.fused_adam,
        cudnn_benchmark=cfg.cudnn_benchmark and on_cuda,
        small_conv_gemm=cfg.small_conv_gemm and on_cpu,
        keep_freed_memory=cfg.keep_freed_memory and on_cpu,
    )


def speed_up(generator: nn.Module, discriminator: nn.Module | None, speed: SpeedPlan) -> None:
    """Apply the plan to the nets and the process, in place.

    ``nn.Module.compile`` keeps state_dict keys and types, so checkpoints and
    exports do not depend on these options.
    """
    for module, channels_last in ((generator, speed.generator_channels_last),
                                  (discriminator, speed.discriminator_channels_last)):
        if module is None:
            continue
        if channels_last:
            module.to(memory_format=torch.channels_last)
        if speed.compile:
            for part in compile_targets(module):
                part.compile(mode=speed.compile_mode.value)
    if speed.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if speed.keep_freed_memory:
        keep_freed_memory()


def compile_targets(module: nn.Module) -> list[nn.Module]:
    """The parts of ``module`` to compile: a :class:`Discriminator`'s per-scale nets, since both its
    ``forward`` and its ``features`` (used by the generator loss) call them; anything else whole."""
    if isinstance(module, Discriminator):
        return list(module.scales)
    return [module]


def adam(params: Iterable[nn.Parameter] | list[dict], lr: float, betas: tuple[float, float],
         speed: SpeedPlan) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where asked (supported on CPU and CUDA); ``params`` may be
    parameter groups, each with its own ``lr``."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=speed.fused_adam or None)


# --------------------------------------------------------------------------- the process's allocator

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse instead of returning it to the kernel.

    Both thresholds are needed: raising only the trim threshold makes glibc's
    dynamic mmap threshold fall back and every step faults *more*. Affects the
    whole process for its lifetime; training holds the same memory every step
    anyway. Returns False (and does nothing) where there is no glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


# --------------------------------------------------------------------------- small convolutions as GEMM

GEMM_MAX_PIXELS = 16 * 16  # input h * w at or below which a CPU conv goes to im2col + GEMM


@contextlib.contextmanager
def _onednn_off() -> Iterator[None]:
    """Only the oneDNN switch (``torch.backends.mkldnn.flags`` also resets its TF32 and determinism settings)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


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
