"""Export a trained generator as ONNX with dynamic batch, height and width, or as a safetensors folder.

The ONNX graph keeps the UNet's pad-to-multiple and crop, so it takes any size
whose sides exceed half of ``2 ** depth`` (the padding is a reflection, which
cannot reach further than the image). Its ``metadata_props`` carry the export's
``config.json`` under the key ``pix2pix_unet``.
"""

from __future__ import annotations

import contextlib
import copy
import io as stdio
import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import to_dict
from ..models import Generator
from ..tasks import TaskBase

ONNX_METADATA_KEY = "pix2pix_unet"


def for_export(generator: Generator) -> Generator:
    """``generator`` on the CPU in eval mode without touching the caller's model: the model itself where it is
    already so, else a copy.

    Each parameter and buffer is copied straight to the CPU (a model on a GPU takes
    no second copy there) and keeps its ``requires_grad``; the caller's model keeps
    its device, mode and gradients.
    """
    tensors = list(itertools.chain(generator.parameters(), generator.buffers()))
    if not generator.training and all(t.device.type == "cpu" for t in tensors):
        return generator
    memo: dict[int, torch.Tensor] = {}
    for t in tensors:
        on_cpu = t.detach().to("cpu", copy=True)
        memo[id(t)] = nn.Parameter(on_cpu, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else on_cpu
    return copy.deepcopy(generator, memo).eval()


def _metadata(generator: Generator, task: TaskBase) -> dict:
    """The export's ``config.json``: its task's contract (decoding, intensity rule, classes ...) and architecture."""
    meta = dict(getattr(generator, "metadata", None) or {})
    meta.update(task.describe())
    meta["generator"] = to_dict(generator.config)
    return meta


def example_input(generator: Generator, batch: int = 1, seed: int = 0, grow: tuple[int, ...] = (1, 1, 2),
                  extra: tuple[int, ...] = (1, 5, 3)) -> torch.Tensor:
    """A seeded input whose sides are not multiples of the padding factors, so the padding path is traced:
    ``grow * factor + extra`` per spatial axis (the last two for 2D; a volume's three for ``dims=3``)."""
    factors = getattr(generator.config, "axis_factors", (generator.config.factor,) * 2)
    sizes = [g * f + e for g, f, e in zip(grow[-len(factors):], factors, extra[-len(factors):])]
    rng = torch.Generator().manual_seed(seed)
    return torch.rand(batch, generator.config.in_channels, *sizes, generator=rng) * 2 - 1


def spatial_axes(generator: Generator) -> list[str]:
    """The names of the input's spatial axes in the ONNX graph: ``height, width``, and ``depth`` first for a
    3D generator."""
    return (["depth"] if getattr(generator.config, "dims", 2) == 3 else []) + ["height", "width"]


def export_onnx(generator: Generator, task: TaskBase, path: str | Path) -> Path:
    """Write ``generator`` as an ONNX file with dynamic ``batch``, ``height`` and ``width`` (and ``depth`` for a
    3D generator).

    The graph maps the task's decoded input (``[-1, 1]`` by the recorded intensity
    rule; one-hot label maps; image + hole mask) to the generator's raw output;
    the metadata key :data:`ONNX_METADATA_KEY` holds the task's contract as JSON.
    Needs the ``export`` extra (onnx, onnxscript).
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = for_export(generator)
    # torch.onnx narrates each stage on stdout; keep it quiet unless it fails (the error carries the story)
    with warnings.catch_warnings(), contextlib.redirect_stdout(stdio.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            generator, (example_input(generator),), str(path), dynamo=True, external_data=False,
            dynamic_shapes={"x": {0: "batch", **dict(enumerate(spatial_axes(generator), start=2))}},
            input_names=["input"], output_names=["output"],
        )
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(_metadata(generator, task))
    onnx.save(model, str(path))
    return path


def export_safetensors(generator: Generator, task: TaskBase, path: str | Path) -> Path:
    """Write a ``save_pretrained`` folder (``model.safetensors`` + ``config.json``) at ``path``."""
    meta = {k: v for k, v in _metadata(generator, task).items() if k not in ("generator", "version")}
    return generator.save_pretrained(path, **meta)


def onnx_max_difference(generator: Generator, path: str | Path, inputs: torch.Tensor | None = None) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's outputs on ``inputs``.

    ``inputs`` defaults to a batch of 2 at an odd size other than the one traced.
    """
    import onnxruntime

    if inputs is None:
        inputs = example_input(generator, batch=2, seed=1, grow=(2, 2, 1), extra=(3, 7, 9))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0]
    with torch.no_grad():
        reference = for_export(generator)(inputs).numpy()
    if ours.shape != reference.shape:
        raise ValueError(f"ONNX output shape {ours.shape} differs from PyTorch's {reference.shape}")
    return float(np.abs(ours - reference).max())


__all__ = ["ONNX_METADATA_KEY", "example_input", "export_onnx", "export_safetensors", "for_export",
           "onnx_max_difference", "spatial_axes"]
