"""Process setup that Accelerate leaves to the caller, and splitting predict/synthesize work over processes."""

from __future__ import annotations

import itertools
import os
import pickle
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence, TypeVar

import torch

T = TypeVar("T")


def cpu_only_processes() -> bool:
    """True when this is one of several launched processes on a machine without an accelerator.

    Accelerate only turns such processes into a gloo process group when told to
    use the CPU; otherwise each would silently train alone and write the same
    files. This makes ``accelerate launch --multi_gpu --num_processes 2`` (or
    ``torchrun --nproc_per_node 2``) train as one run on a CPU-only machine.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    accelerators = getattr(torch, "accelerator", None)
    if accelerators is not None:
        return not accelerators.is_available()
    return not torch.cuda.is_available()


@dataclass(frozen=True)
class Shard:
    """This process's share of a job split over ``count`` launched processes: items ``index, index + count, ...``.

    Strided rather than contiguous, so images sorted by name (often by size or plate) spread evenly.
    """

    index: int = 0
    count: int = 1

    def take(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index:: self.count])

    @property
    def main(self) -> bool:
        return self.index == 0


def process_shard() -> tuple[Shard, torch.device]:
    """This process's :class:`Shard` and device under ``accelerate launch`` / ``torchrun`` / ``srun``.

    One process alone gets ``Shard(0, 1)``. Accelerate's ``PartialState`` joins launched processes (over
    gloo on a machine without an accelerator, see :func:`cpu_only_processes`) and gives each its device.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard(), torch.device("cpu")
    from accelerate import PartialState

    state = PartialState(cpu=cpu_only_processes())
    return Shard(state.process_index, state.num_processes), state.device


@contextmanager
def launched_processes() -> Iterator[tuple[Shard, torch.device]]:
    """:func:`process_shard` for the length of a command, with the process group torn down when it ends.

    Launched predict and synthesize used to abort now and then at exit (SIGABRT, "terminate called without
    an active exception"): a gloo worker thread was still releasing the tensors of the last all-gather, which
    for tensors made in Python needs the GIL, and a thread that asks for the GIL while Python finalises is
    ended inside a C++ destructor. Two changes remove that: :func:`gather` no longer hands Python tensors to
    gloo, and the group is torn down before the interpreter exits. On a normal exit, including a command's
    own error returns (the commands make their errors collective, so every process gets there), every
    process meets at a final barrier and then destroys the group (a command whose main process works on
    alone after its last collective calls :func:`end_process_group` there, so the others do not wait for
    it). On an uncaught exception the others may never reach that barrier: the group is destroyed without
    it, and the launcher ends the other processes. (An error that strikes one process alone before a
    command's own barrier, predict's planning barrier say, still leaves the others waiting there until the
    group's timeout.)

    Yields:
        this process's shard and device, as :func:`process_shard` returns them.
    """
    shard, device = process_shard()
    try:
        yield shard, device
    except BaseException:
        end_process_group(wait=False)
        raise
    end_process_group(wait=True)


def end_process_group(wait: bool = True) -> None:
    """Destroy the process group of launched processes, after a barrier with ``wait``; nothing without a group
    (one process, or a group already ended).

    Destroying joins the group's threads only once nothing else refers to it (torch modules imported after
    the group was made keep it in default arguments), which is why :func:`gather` keeps Python tensors away
    from those threads. Accelerate's ``PartialState`` is reset too, so a later :func:`process_shard` in this
    interpreter joins afresh instead of finding a group that is gone.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_initialized():
        return
    from accelerate import PartialState

    if wait:
        PartialState().wait_for_everyone()
    torch.distributed.destroy_process_group()
    PartialState._reset_state()


_gathers = itertools.count()  # each process gathers in the same order, so the n-th gathers match


def gather(values: list[T]) -> list[T]:
    """Every process's ``values``, concatenated in process order (just ``values`` in one process).

    The few small reports predict and synthesize exchange go through the process group's key-value store, not a
    gloo all-gather: a gloo worker thread releases an all-gather's tensors after the callers have moved on, and
    for tensors made in Python that needs the GIL, so one still at it when the interpreter exits aborts the
    process. The store is read and written by the calling thread alone.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return values
    from torch.distributed import distributed_c10d

    rank, count = torch.distributed.get_rank(), torch.distributed.get_world_size()
    store = distributed_c10d._get_default_store()  # the one init_process_group made; no public getter
    prefix = f"pix2pix_unet/gather/{next(_gathers)}/"
    store.set(f"{prefix}{rank}", pickle.dumps(values))
    every = store.multi_get([f"{prefix}{r}" for r in range(count)])  # waits for each, up to the group's timeout
    return [value for blob in every for value in pickle.loads(blob)]


def barrier() -> None:
    """Wait until every launched process gets here (nothing in one process): a plan made from the files on disk
    must be made by all before any of them writes."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()
