"""Process setup that Accelerate leaves to the caller, and splitting predict/synthesize work over processes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

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


def gather(values: list[T]) -> list[T]:
    """Every process's ``values``, concatenated in process order (just ``values`` in one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return values
    from accelerate.utils import gather_object

    return list(gather_object(values))


def barrier() -> None:
    """Wait until every launched process gets here (nothing in one process): a plan made from the files on disk
    must be made by all before any of them writes."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()
