"""Process setup that Accelerate leaves to the caller."""

from __future__ import annotations

import os

import torch


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
