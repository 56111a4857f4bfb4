"""Training: the step, the loop, checkpoints, samples and logging.

``train`` is loaded on first use: the loop drives the tasks (``pix2pix_unet.tasks``),
which build on the step, so importing the step must not import the loop.
"""

from __future__ import annotations

from typing import Any

from .step import train_step


def __getattr__(name: str) -> Any:
    if name == "train":
        from .loop import train

        return train
    raise AttributeError(name)


__all__ = ["train", "train_step"]
