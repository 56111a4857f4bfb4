"""Shared fixtures: tiny configs, tiny datasets written to disk (no downloads) and tiny trained runs.

``trained_runs`` trains each distinct tiny run once per session (under xdist: once per worker) and
``tiny_data`` writes each distinct tiny dataset once per session, so modules that need the same run
share it. Both hand out shared folders: a test that changes one copies it first.

Every test that asks for ``trained_runs`` (directly or through another fixture) trains through the
CLI, so it is marked ``slow`` here; ``python -m pytest -m "not slow" -q`` leaves them out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_unet.cli import train_main

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _same_global_random_state() -> None:
    """Every test starts from the same torch and numpy random state, whether it runs alone or after others: its
    random weights and data (torch.rand, np.random) must not depend on which tests ran before it. (Python's
    ``random`` is left alone: test_kill_resume draws its kill steps from it on purpose, a new seed each run.)"""
    np.random.seed(0)
    torch.manual_seed(0)


SPEED_PX_PER_S = 400e3  # a pix2pix U-Net training step on one core of the project's 2-core CPU


@pytest.fixture(autouse=True)
def _same_measured_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan sizes crops and batches from the generator's speed measured on the machine (planner/probe.py).
    Tests that train through the CLI would then plan differently on a faster or a busier machine; they all see
    the same speed instead. The probe itself is tested in tests/planner/test_planner.py."""
    import pix2pix_unet.planner as planner

    monkeypatch.setattr(planner, "pixels_per_second", lambda *args, **kwargs: SPEED_PX_PER_S)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator of the test's own (a module-level one would hand each test other numbers depending on
    which tests drew from it first)."""
    return np.random.default_rng(0)


# Overrides that make a training run tiny: 32-px images, a 3-level UNet, a 2-layer PatchGAN. These runs test
# contracts under the settings they name, so the planner (tests/planner) stays out of them: plan=false.
TINY = [
    "generator.depth=3", "generator.base_channels=8", "generator.max_channels=32",
    "discriminator.base_channels=8", "discriminator.n_layers=2",
    "batch_size=2", "data.crop_size=32", "log_every=1", "plan=false",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a trained run trains through the CLI (unless another test trained it first): slow."""
    for item in items:
        if "trained_runs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_data(writer, *args, **kwargs)``: a folder that ``writer(folder, *args, **kwargs)`` filled.

    Written once per session for each distinct writer and arguments; later calls return the same
    folder, so runs trained on it are shared too (``trained_runs`` caches by the data path).
    """
    made: dict[tuple, Path] = {}

    def get(writer: Callable[..., object], *args: object, **kwargs: object) -> Path:
        key = (writer, repr(args), repr(sorted(kwargs.items())))
        if key not in made:
            folder = tmp_path_factory.mktemp(re.sub(r"\W", "_", f"data_{writer.__name__}")) / "data"
            writer(folder, *args, **kwargs)
            made[key] = folder
        return made[key]

    return get


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``trained_runs(*args, steps=2)``: the folder of a tiny run the real CLI trained.

    The run is ``train_main`` with ``--max-steps steps``, no W&B, one sample grid and one checkpoint at
    the last step, the :data:`TINY` overrides, then ``args`` (``--task``, ``--data``, more overrides;
    later overrides win). It is trained once per session for each distinct ``args`` and ``steps``, so
    the folder is shared: copy it before changing it. A run on data written under a test's own
    ``tmp_path`` is that test's alone.
    """
    made: dict[tuple[str, ...], Path] = {}

    def get(*args: str | Path, steps: int = 2) -> Path:
        key = (*map(str, args), f"steps={steps}")
        if key not in made:
            out = tmp_path_factory.mktemp("run") / "run"
            code = train_main(["--output-dir", str(out), "--max-steps", str(steps), "--no-wandb",
                               f"sample_every={steps}", f"checkpoint_every={steps}", *TINY, *map(str, args)])
            assert code == 0, f"training failed with exit code {code}: {key}"
            made[key] = out
        return made[key]

    return get


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
