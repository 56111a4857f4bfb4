"""The docs: the site builds with ``mkdocs build --strict``, the README's links resolve, and every
``pix2pix-unet`` / ``python train_gan.py`` command in a code block parses with the real CLI.

The command check is generic: each command runs through :func:`pix2pix_unet.cli.main`
with argparse stopped right after parsing (no training, no prediction), so a
command added later is checked the day its docs are. A flag the parser does not
know, a bad choice, a missing required option or an unknown subcommand fails.
Training commands also go through ``load_config`` with their ``KEY=VALUE``
overrides (unknown keys, bad values), and inference flags through
``InferenceConfig`` validation.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pix2pix_unet import cli
from pix2pix_unet.cli.commands import inference_config
from pix2pix_unet.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LAUNCHERS = {"python", "python3", "accelerate", "torchrun", "srun", "mpirun", "env", "nice", "time"}
NOT_SHELL = {"python", "py", "yaml", "yml", "json", "toml", "text", "html"}  # fenced blocks that hold no commands


@dataclass(frozen=True)
class Command:
    """One documented command: where it is and its argv after ``pix2pix-unet`` (``train`` for train_gan.py)."""

    source: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.source}: {shlex.join(self.argv)}"


def shell_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, logical line)`` of every fenced block that may hold shell commands, with ``\\``
    continuations joined."""
    lines, fence, block_ok, pending, start = [], None, False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        opened = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
        if fence is None:
            if opened:
                fence, block_ok = opened.group(1), opened.group(2).lower() not in NOT_SHELL
            continue
        if stripped.startswith(fence):
            fence = None
            continue
        if not block_ok:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append((start, pending + stripped))
        pending = ""
    return lines


def commands_in(path: Path, root: Path = ROOT) -> list[Command]:
    """The ``pix2pix-unet`` and ``train_gan.py`` commands of ``path``'s code blocks (after ``&&``/``;``, and
    behind ``accelerate launch`` too)."""
    found = []
    for number, line in shell_lines(path.read_text()):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue  # not shell: an error message with an apostrophe
        parts: list[list[str]] = [[]]
        for token in tokens:
            parts.append([]) if token in ("&&", ";", "||", "|") else parts[-1].append(token)
        for part in parts:
            argv = cli_argv(part)
            if argv is not None:
                found.append(Command(f"{path.relative_to(root)}:{number}", argv))
    return found


def cli_argv(tokens: list[str]) -> tuple[str, ...] | None:
    """The argv after ``pix2pix-unet`` in a shell command, also behind a launcher (``srun pix2pix-unet ...``,
    ``accelerate launch -m pix2pix_unet.cli ...``, ``accelerate launch ... train_gan.py ...``), or None."""
    if "install" in tokens or not tokens:
        return None  # pip install pix2pix-unet
    launched = tokens[0] in LAUNCHERS  # else only a command that starts with pix2pix-unet
    for i, token in enumerate(tokens if launched else tokens[:1]):
        if token == "pix2pix-unet" or token.endswith("/pix2pix-unet"):
            return tuple(tokens[i + 1:])
        if token == "-m" and tokens[i + 1: i + 2] in (["pix2pix_unet.cli"], ["pix2pix_unet"]):
            return tuple(tokens[i + 2:])
        if i > 0 and Path(token).name == "train_gan.py":
            return ("train", *tokens[i + 1:])
    return None


class Parsed(Exception):
    """Raised instead of running a command, once argparse has parsed it."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__()
        self.namespace = namespace


@contextlib.contextmanager
def parse_only():
    """Every ``ArgumentParser`` parses as usual (errors exit 2), then stops the command."""
    plain, intermixed = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_intermixed_args

    def stop(original):
        def parse(self, args=None, namespace=None):
            raise Parsed(original(self, args, namespace))
        return parse

    argparse.ArgumentParser.parse_args = stop(plain)
    argparse.ArgumentParser.parse_intermixed_args = stop(intermixed)
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_intermixed_args = plain, intermixed


def check(command: Command) -> str | None:
    """None if ``command`` parses and its config keys and values are valid, else why not."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), parse_only():
        try:
            code = cli.main(list(command.argv))
        except Parsed as parsed:
            namespace = parsed.namespace
        except SystemExit as exit_:
            if exit_.code == 0:
                return None  # --help
            return f"argparse refused it (exit {exit_.code}): {err.getvalue().strip().splitlines()[-1:]}"
        else:
            return f"pix2pix-unet exited {code} without parsing: {err.getvalue().strip()}"
    try:
        if command.argv[0] == "train":
            # --resume reads the run's config.yaml and --config a file the docs only name: check the rest
            namespace.resume = False
            if namespace.config is not None and not Path(namespace.config).is_file():
                namespace.config = None
            cli.config_from_args(namespace)
        elif hasattr(namespace, "tile"):
            inference_config(namespace)
    except (ConfigError, ValueError) as error:
        return f"config: {error}"
    return None


DOCUMENTED = [c for path in DOCS for c in commands_in(path)]


def test_the_docs_hold_the_commands_of_every_subcommand():
    """The extraction finds the commands (a broken parser of the docs would check nothing)."""
    assert len(DOCUMENTED) >= 60, len(DOCUMENTED)
    assert {c.argv[0] for c in DOCUMENTED} >= {"train", "predict", "evaluate", "export", "synthesize", "demo"}
    assert any(c.source.startswith("README.md") for c in DOCUMENTED)


def test_every_documented_command_parses():
    failures = [f"{c}\n    -> {why}" for c in DOCUMENTED if (why := check(c)) is not None]
    assert not failures, "commands in the docs that the CLI refuses:\n" + "\n".join(failures)


@pytest.mark.parametrize("argv, why", [
    (["predict", "--checkpoint", "r", "--input", "a", "--output", "b", "--tiles", "64"], "argparse refused"),
    (["predict", "--checkpoint", "r", "--input", "a"], "argparse refused"),  # --output is required
    (["export", "--checkpoint", "r", "--format", "tflite", "g.tfl"], "argparse refused"),
    (["predict", "--checkpoint", "r", "--input", "a", "--output", "b", "--tile", "64", "--overlap", "64"],
     "overlap=64 must be in"),
    (["train", "generator.colour=red"], "unknown config key 'generator.colour'"),
    (["train", "--task", "segment", "segment.intensity=log"], "segment.intensity"),
    (["train", "--maxsteps", "10"], "argparse refused"),
    (["serve", "--checkpoint", "r"], "exited 2 without parsing"),
])
def test_the_checker_refuses_what_the_cli_refuses(argv, why):
    assert why in (check(Command("test", tuple(argv))) or "")


def test_commands_are_found_behind_continuations_chains_and_launchers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\npip install x && python train_gan.py --max-steps 5 \\\n    ema=true  # note\n"
                    "accelerate launch --num_processes 2 train_gan.py --batch-size 4\n"
                    "srun accelerate launch --machine_rank 0 -m pix2pix_unet.cli predict --checkpoint r\n"
                    "pip install pix2pix-unet && python datasets/make_synthetic.py --out d\n```\n"
                    "```python\npix2pix-unet predict --not-checked\n```\n"
                    "```\npix2pix-unet export --checkpoint r --format onnx g.onnx\n```\n")
    argvs = [c.argv for c in commands_in(page, tmp_path)]
    assert argvs == [("train", "--max-steps", "5", "ema=true"), ("train", "--batch-size", "4"),
                     ("predict", "--checkpoint", "r"),
                     ("export", "--checkpoint", "r", "--format", "onnx", "g.onnx")]


# --------------------------------------------------------------------------- links and the site


def anchors_of(path: Path) -> set[str]:
    """The heading anchors of a page, as GitHub and the site (pymdownx's GitHub-style slugs) make them."""
    slugify = pytest.importorskip("pymdownx.slugs").slugify(case="lower")
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {slugify(m.group(1).strip(), "-") for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_readme_links_reach_existing_pages_and_headings():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert len(links) >= 15
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        page = ROOT / target if target else ROOT / "README.md"
        assert page.exists(), f"README.md links to {link}: {page} does not exist"
        if anchor:
            assert anchor in anchors_of(page), f"README.md links to {link}: no heading with that anchor"


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: a broken link or anchor, a page missing from the nav, a docstring
    mkdocstrings cannot read all fail it."""
    pytest.importorskip("mkdocs", reason="the docs extra: pip install '.[docs]'")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "WARNING" not in result.stderr, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "tasks" / "index.html").read_text()
    assert "task_from_export" in api and "SegmentTask" in api  # the reference is built from the docstrings
    assert (tmp_path / "site" / "images" / "builtin_step600.png").is_file()
