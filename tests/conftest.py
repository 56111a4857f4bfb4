"""Shared fixtures: tiny configs and tiny datasets written to disk (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _same_global_random_state() -> None:
    """Every test starts from the same torch and numpy random state, whether it runs alone or after others: its
    random weights and data (torch.rand, np.random) must not depend on which tests ran before it. (Python's
    ``random`` is left alone: test_kill_resume draws its kill steps from it on purpose, a new seed each run.)"""
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator of the test's own (a module-level one would hand each test other numbers depending on
    which tests drew from it first)."""
    return np.random.default_rng(0)


# Overrides that make a training run tiny: 32-px images, a 3-level UNet, a 2-layer PatchGAN.
TINY = [
    "generator.depth=3", "generator.base_channels=8", "generator.max_channels=32",
    "discriminator.base_channels=8", "discriminator.n_layers=2",
    "batch_size=2", "data.crop_size=32", "log_every=1",
]


def write_pairs(root: Path, n: int, size: int = 36, seed: int = 0, layout: str = "AB") -> Path:
    """Write ``n`` random but learnable pairs (B is a colour-inverted A) as A/ + B/ folders or aligned images."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        a = np.zeros((size, size, 3), np.uint8)
        for _ in range(3):
            y, x = rng.integers(0, size - 8, 2)
            a[y : y + 8, x : x + 8] = rng.integers(0, 255, 3)
        b = 255 - a
        if layout == "AB":
            (root / "A").mkdir(parents=True, exist_ok=True)
            (root / "B").mkdir(parents=True, exist_ok=True)
            Image.fromarray(a).save(root / "A" / f"{i:03d}.png")
            Image.fromarray(b).save(root / "B" / f"{i:03d}.png")
        else:
            root.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.concatenate([a, b], axis=1)).save(root / f"{i:03d}.png")
    return root


@pytest.fixture
def pair_folder(tmp_path: Path) -> Path:
    """A dataset with train/ and val/ splits of A/ + B/ pairs, 36 px."""
    write_pairs(tmp_path / "data" / "train", 8, seed=0)
    write_pairs(tmp_path / "data" / "val", 2, seed=1)
    return tmp_path / "data"


def smooth(rng: np.random.Generator, h: int, w: int, c: int = 3) -> np.ndarray:
    """``(h, w, c)`` float in [0, 1]: random low-frequency structure (bicubic from a 5x5 grid) plus a box."""
    grid = torch.from_numpy(rng.random((1, c, 5, 5))).float()
    img = torch.nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)[0]
    img = img.clamp(0, 1).permute(1, 2, 0).numpy()
    y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
    img[y: y + 10, x: x + 10] = rng.random(c)
    return img


def quantise(unit: np.ndarray, dtype, low: float = 0, high: float | None = None) -> np.ndarray:
    """Values in [0, 1] as integers of ``dtype`` between ``low`` and ``high`` (default: the dtype's maximum)."""
    high = np.iinfo(dtype).max if high is None else high
    return np.rint(low + np.clip(unit, 0, 1) * (high - low)).astype(dtype)
