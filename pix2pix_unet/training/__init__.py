"""Training: the step, the loop, checkpoints, samples and logging."""

from .loop import train
from .step import train_step

__all__ = ["train", "train_step"]
