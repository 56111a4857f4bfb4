"""The package's layers: every import points down the order in pyproject.toml's import-linter contract
(docs/code-layout.md), imports inside functions included, so a cycle cannot come back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_imports_point_only_down_the_layers() -> None:
    pytest.importorskip("importlinter")
    run = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                          "lint_imports_command()"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 kept, 0 broken" in run.stdout


def test_every_module_is_in_a_layer() -> None:
    """A new top-level module or package must be placed in the order, or the contract would not see it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    layers = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
                 ["layers"])
    package = ROOT / "pix2pix_unet"
    tops = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    tops |= {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert tops <= layers, f"not in any layer: {sorted(tops - layers)}"
