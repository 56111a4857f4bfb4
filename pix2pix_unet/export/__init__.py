"""Exports a user runs elsewhere: ONNX (:mod:`.onnx`), a safetensors folder, a bioimage.io package
(:mod:`.bioimageio`, for Fiji, ilastik, QuPath and napari).

Every exporter runs the generator on the CPU in eval mode, from a copy unless the caller's model already is so
(:func:`.onnx.for_export`): the caller's model keeps its device, mode, frozen parameters and BatchNorm statistics.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Callable

from .bioimageio import PackageError, RunRecord, export_bioimageio
from .onnx import ONNX_METADATA_KEY, example_input, export_onnx, export_safetensors, onnx_max_difference


class ExportFormat(str, enum.Enum):
    ONNX = "onnx"
    SAFETENSORS = "safetensors"
    BIOIMAGEIO = "bioimageio"


EXPORTERS: dict[ExportFormat, Callable[..., Path]] = {
    ExportFormat.ONNX: export_onnx,
    ExportFormat.SAFETENSORS: export_safetensors,
    ExportFormat.BIOIMAGEIO: export_bioimageio,
}

__all__ = ["EXPORTERS", "ExportFormat", "ONNX_METADATA_KEY", "PackageError", "RunRecord", "example_input",
           "export_bioimageio", "export_onnx", "export_safetensors", "onnx_max_difference"]
