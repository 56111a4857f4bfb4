"""Process-wide switches, set for one block of work and put back when it ends.

cuDNN autotuning (``torch.backends.cudnn.benchmark``) and glibc ``malloc``'s
thresholds belong to the whole process, not to a model. A training, predict or
evaluate run that wants one enters :func:`backend_flags` around its own work, so
a process that goes on to do something else (a notebook, a test suite, a server
that trains and then predicts) finds them as they were.

Examples:
    >>> with backend_flags(cudnn_benchmark=True, keep_freed_memory=True):
    ...     pass  # the run
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
import threading
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def backend_flags(*, cudnn_benchmark: bool | None = None, keep_freed_memory: bool = False) -> Iterator[None]:
    """Set the process-wide switches a run asked for, and restore them on leaving, however it is left.

    Args:
        cudnn_benchmark: the value of ``torch.backends.cudnn.benchmark`` inside; None leaves it alone.
        keep_freed_memory: glibc ``malloc`` keeps freed memory inside (:func:`freed_memory_kept`); False
            leaves the allocator alone (it does not turn off an enclosing block's setting).
    """
    with contextlib.ExitStack() as scope:
        if cudnn_benchmark is not None:
            # torch.backends.cudnn.flags() would also reset `enabled`, `deterministic` and TF32: only this one
            scope.enter_context(switched(torch.backends.cudnn, "benchmark", cudnn_benchmark))
        if keep_freed_memory:
            scope.enter_context(freed_memory_kept())
        yield


@contextlib.contextmanager
def switched(owner: object, name: str, value: object) -> Iterator[None]:
    """``owner.name`` set to ``value`` inside, and restored on leaving however it is left: one switch alone,
    where torch's ``flags()`` context managers reset their neighbours too."""
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


# --------------------------------------------------------------------------- glibc malloc

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
_KEEP_MMAP, _KEEP_TRIM = 1 << 30, 2**31 - 1
_GLIBC_INITIAL = 128 * 1024  # both thresholds' values at start (DEFAULT_MMAP_THRESHOLD_MIN, DEFAULT_TRIM_THRESHOLD)

_lock = threading.Lock()
_holders = 0  # blocks inside freed_memory_kept(): the outermost sets and restores
_kept = False  # whether the thresholds are raised now


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None where there is none (other systems, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _initial(variable: str, tunable: str) -> int:
    """A threshold's value before any ``mallopt``: the environment's, if the user set one, else glibc's default."""
    value = os.environ.get(variable)
    for item in os.environ.get("GLIBC_TUNABLES", "").replace(":", " ").split():
        name, _, setting = item.partition("=")
        if name == f"glibc.malloc.{tunable}":
            value = setting
    try:
        return int(value) if value else _GLIBC_INITIAL
    except ValueError:
        return _GLIBC_INITIAL


def _mallopt(libc: ctypes.CDLL, mmap_threshold: int, trim_threshold: int) -> bool:
    # mmap first: raising only the trim threshold makes the dynamic mmap threshold fall back (more faults)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                        trim_threshold))


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Inside, glibc's ``malloc`` keeps freed memory for reuse instead of returning it to the kernel.

    By default glibc hands every block above 128 KiB back when it is freed, so a
    training step page-faults its gradients and activations in again each time
    (training/perf.py has the figures). Raising the mmap and trim thresholds keeps
    them. Yields whether that took effect (False, and nothing done, without glibc).

    On leaving the outermost such block, the thresholds go back to their values at
    start (glibc's 128 KiB, or what ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``
    or ``GLIBC_TUNABLES`` set) and the kept memory is returned (``malloc_trim``).
    glibc has no way to read the thresholds, nor to turn its dynamic mmap threshold
    back on once they are set: those initial values are the state put back.
    """
    global _holders, _kept
    with _lock:
        _holders += 1
        if _holders == 1:
            libc = _libc()
            _kept = libc is not None and _mallopt(libc, _KEEP_MMAP, _KEEP_TRIM)
        kept = _kept
    try:
        yield kept
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _kept:
                libc = _libc()
                _mallopt(libc, _initial("MALLOC_MMAP_THRESHOLD_", "mmap_threshold"),
                         _initial("MALLOC_TRIM_THRESHOLD_", "trim_threshold"))
                libc.malloc_trim(0)
                _kept = False


def can_keep_freed_memory() -> bool:
    """Whether :func:`freed_memory_kept` can take effect here (glibc's ``mallopt`` is there)."""
    return _libc() is not None


def freed_memory_is_kept() -> bool:
    """Whether a :func:`freed_memory_kept` block is active and took effect."""
    return _kept


def return_freed_memory(force: bool = False) -> None:
    """Hand memory that is free inside malloc back to the kernel (``malloc_trim``), unless a
    :func:`freed_memory_kept` block keeps it (``force``: even then, at the end of a stage whose blocks will not
    be reused); nothing without glibc.

    Without it, a process that frees large blocks keeps much of them: glibc raises its mmap threshold to each
    freed mmapped block's size (up to 32 MiB), so later blocks of that size come from the heap, and freed heap
    memory goes back only from its top. Volume prediction calls it after each window, whose activations are
    hundreds of MB (docs/volumes.md has the figures).
    """
    libc = _libc()
    if libc is not None and (force or not _kept):
        libc.malloc_trim(0)


__all__ = ["backend_flags", "can_keep_freed_memory", "freed_memory_is_kept", "freed_memory_kept",
           "return_freed_memory", "switched"]
