"""``pix2pix-unet demo``: a Gradio page for trying a trained generator in a browser.

An uploaded file takes the path ``predict`` takes, through the task rebuilt from
the export (:func:`~pix2pix_unet.predict.predict_files`). The task decodes the
file (8/16-bit PNG or TIFF, the intensity rule, one-hot label maps, hole masks)
and writes the outputs. The page shows a preview and offers predict's files for
download, so a downloaded label map is byte for byte what ``predict`` writes.

======================= ============================== ==========================================
generator               upload                         shown
======================= ============================== ==========================================
translate               an image                       before/after slider; the output image
translate (index)       a class-id label map           label colours / generated image slider
segment                 an image                       the class (or instance outline) overlay;
                                                       the label map [and instance map]
restore                 a degraded image [+ hole mask] before/after slider; the restored image
======================= ============================== ==========================================

The page's options are predict's: device, precision, tiling and TTA. Gradio is
an optional dependency (``pip install 'pix2pix-unet[demo]'``), imported only when
a page is built.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import ConfigError, InferenceConfig, MixedPrecision
from .predict import InputFile, predict_files
from .runtime import best_device
from .io import display_rgb8, palette, read_image, read_label_map
from .models import Generator
from .tasks import TaskBase, generator_task

if TYPE_CHECKING:
    import gradio

DEMO_API = "/predict"  # the endpoint name gradio_client calls
# Small images (a 72-px tile) fill the preview, pixels kept sharp; the files are untouched.
CSS = "#view img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }"


class DemoError(ValueError):
    """An upload or option the demo cannot run; the message names the file or value (shown on the page)."""


@dataclass
class DemoResult:
    """One run of the demo: previews as ``(H, W, 3)`` uint8, and the files predict wrote.

    ``before`` is the input as shown (label colours for a label map), ``after``
    the output as shown (segment: the overlay predict writes with ``--overlay``).
    """

    before: np.ndarray
    after: np.ndarray
    files: list[Path]
    device: str
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def info(self) -> str:
        """The line the page shows under the result."""
        names = ", ".join(p.name for p in self.files)
        lines = [f"{names} on {self.device} in {self.seconds:.2f} s"]
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])


def available_devices() -> list[str]:
    """The devices this machine offers: each CUDA device, then mps, then cpu (the first is the default,
    as in predict)."""
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices + ["cpu"]


def shared_span(image: np.ndarray) -> tuple[float, float] | None:
    """The 0.5th-99.5th percentile span of a non-8-bit image (the stretch of :func:`display_rgb8`), else None."""
    if image.dtype == np.uint8:
        return None
    low, high = np.percentile(image, [0.5, 99.5])
    return float(low), float(high)


class DemoModel:
    """A generator export and its task, run on uploaded files as ``predict`` runs them.

    Args:
        checkpoint: a run folder or a generator export folder.
        workdir: where each run's input copy and outputs go (default: a new temporary folder).
        keep_runs: the newest runs kept in ``workdir``; older ones are deleted, so a page that
            stays up does not fill the disk (the page has its own copies of what it shows).
    """

    def __init__(self, checkpoint: str | Path, workdir: str | Path | None = None, keep_runs: int = 16) -> None:
        self.checkpoint = Path(checkpoint)
        self.generator = Generator.from_pretrained(self.checkpoint)
        self.task: TaskBase = generator_task(self.generator)
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="pix2pix-demo-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep_runs = keep_runs
        self._runs: list[Path] = []

    @property
    def label_input(self) -> bool:
        """Whether the generator takes class-id label maps (translate with ``labels.format=index``)."""
        return self.task.label_input

    @property
    def title(self) -> str:
        return f"pix2pix-unet {self.task.display_name}: {self.checkpoint}"

    def inference_config(self, precision: str, tile: int, tile_above_mp: float, tta: bool) -> InferenceConfig:
        """predict's :class:`InferenceConfig` from the page's options.

        Raises:
            DemoError: a bad option (a tile that is not a multiple of the UNet's factor ...), named.
        """
        try:
            cfg = InferenceConfig(tile=int(tile), overlap=min(InferenceConfig().overlap, int(tile) // 4),
                                  tile_above_mp=float(tile_above_mp), precision=MixedPrecision(precision),
                                  tta=bool(tta))
            cfg.validate("demo")
        except (ConfigError, ValueError) as err:
            raise DemoError(str(err)) from None
        factor = self.generator.config.factor
        if cfg.tile % factor:
            raise DemoError(f"tile {cfg.tile} must be a multiple of the generator's 2**depth = {factor}")
        return cfg

    def run(self, upload: str | Path, mask: str | Path | None = None, *, device: str | None = None,
            precision: str = "no", tile: int = InferenceConfig.tile,
            tile_above_mp: float = InferenceConfig.tile_above_mp, tta: bool = False) -> DemoResult:
        """Predict one uploaded file (and its hole mask, for an inpainting generator).

        Raises:
            DemoError: no file, a file predict could not read or run (its reason, naming the
                file), a missing hole mask, or a bad option.
        """
        if not upload:
            raise DemoError("upload an image first" if not self.label_input else "upload a label map first")
        cfg = self.inference_config(precision, tile, tile_above_mp, tta)
        if self.task.needs_mask and not mask:
            raise DemoError(f"{self.checkpoint} is an inpainting generator: upload a hole mask too "
                            "(non-zero = hole)")
        run_dir = self.new_run()
        # 1. the upload under its own name, as predict's input folder (and the mask under the same name)
        source = Path(upload)
        inputs = run_dir / "input"
        inputs.mkdir()
        local = Path(shutil.copy(source, inputs / source.name))
        masks = None
        if mask:
            masks = run_dir / "mask"
            masks.mkdir()
            shutil.copy(mask, masks / (local.stem + Path(mask).suffix))
        # 2. predict, as the command runs it
        try:
            target = torch.device(device) if device else best_device()
        except RuntimeError as err:
            raise DemoError(f"device {device!r}: {err}") from None
        overlays = run_dir / "overlay" if self.task.writes_overlays else None
        start = time.perf_counter()
        try:
            summary = predict_files(self.generator, self.task, [InputFile(local, Path(local.name))],
                                    run_dir / "output", cfg, device=target, overlay_dir=overlays, masks=masks,
                                    progress=False)
        except (ValueError, RuntimeError, FileNotFoundError) as err:
            raise DemoError(str(err).replace(str(local), source.name)) from None
        seconds = time.perf_counter() - start
        if summary.failed:
            raise DemoError("; ".join(reason.replace(str(local), source.name) for _, reason in summary.failed))
        # 3. previews of what was read and written
        written = [p for p in summary.written if overlays is None or overlays not in p.parents]
        before, after = self.previews(local, written, overlays)
        warnings = [w.replace(str(local), source.name) for w in summary.warnings]
        return DemoResult(before, after, written, str(target), seconds, warnings)

    def new_run(self) -> Path:
        """A fresh folder for one run in ``workdir``, after deleting all but the newest ``keep_runs - 1``."""
        while len(self._runs) >= max(self.keep_runs, 1):
            shutil.rmtree(self._runs.pop(0), ignore_errors=True)
        self._runs.append(Path(tempfile.mkdtemp(prefix="run-", dir=self.workdir)))
        return self._runs[-1]

    def previews(self, local: Path, written: list[Path], overlays: Path | None) -> tuple[np.ndarray, np.ndarray]:
        """``(before, after)`` pictures: an image input and output share one intensity stretch, so a
        16-bit before/after pair compares like with like."""
        if self.label_input:
            ids = read_label_map(local)
            before = palette(max(self.task.num_classes, int(ids.max()) + 1))[ids].astype(np.uint8)
            return before, display_rgb8(read_image(written[0]))
        image = read_image(local)
        if overlays is not None:
            return display_rgb8(image), display_rgb8(read_image(overlays / f"{local.stem}.png"))
        span = shared_span(image.pixels)
        return display_rgb8(image, span), display_rgb8(read_image(written[0]), span)


# --------------------------------------------------------------------------- the page


def build_app(model: DemoModel) -> "gradio.Blocks":
    """The Gradio page of ``model``: an upload, predict's options, the preview and the downloads.

    Its one endpoint, :data:`DEMO_API`, takes ``(file, mask, device, precision, tile,
    tile_above_mp, tta)`` and returns ``(preview, files, info)``. The preview is a
    ``(before, after)`` slider, or for segment the overlay.
    """
    import gradio as gr

    defaults = InferenceConfig()
    segment = model.task.writes_overlays  # the preview is the overlay, not a before/after slider
    suffixes = [".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"]

    def predict(upload: str | None, mask: str | None, device: str, precision: str, tile: float,
                tile_above_mp: float, tta: bool) -> tuple[Any, list[str], str]:
        try:
            result = model.run(upload, mask, device=device, precision=precision, tile=int(tile),
                               tile_above_mp=tile_above_mp, tta=tta)
        except DemoError as err:
            raise gr.Error(str(err)) from None
        for warning in result.warnings:
            gr.Warning(warning)
        view = result.after if segment else (result.before, result.after)
        return view, [str(p) for p in result.files], result.info()

    # no calls home unless the user opts in with GRADIO_ANALYTICS_ENABLED=True (read here, not set for the process)
    analytics = os.environ.get("GRADIO_ANALYTICS_ENABLED") == "True"
    with gr.Blocks(title="pix2pix-unet demo", analytics_enabled=analytics) as app:
        gr.Markdown(f"### {model.title}")
        with gr.Row():
            with gr.Column():
                what = "label map (palette PNG or 8/16-bit class ids)" if model.label_input else \
                    "image (8/16-bit PNG or TIFF, JPEG)"
                upload = gr.File(label=what, file_types=suffixes, elem_id="upload")
                mask = gr.File(label="hole mask (non-zero = hole)", file_types=suffixes, elem_id="mask",
                               visible=model.task.needs_mask)
                with gr.Accordion("options", open=False):
                    devices = available_devices()
                    device = gr.Dropdown(devices, value=devices[0], label="device")
                    precision = gr.Dropdown([m.value for m in MixedPrecision], value=defaults.precision.value,
                                            label="precision (bf16/fp16 autocast; fp16 needs CUDA)")
                    tile = gr.Number(defaults.tile, precision=0, label="tile side (a multiple of 2**depth)")
                    tile_above = gr.Number(defaults.tile_above_mp,
                                           label="tile images above this many megapixels (0 tiles all)")
                    tta = gr.Checkbox(defaults.tta, label="TTA: average the 8 flips/rotations (8x slower)")
                run = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                if segment:
                    view = gr.Image(label="overlay", format="png", type="numpy", height=420, elem_id="view")
                else:
                    view = gr.ImageSlider(label="before / after", format="png", type="numpy", height=420,
                                          elem_id="view")
                what = "label map" + (" and instance map" if segment and model.task.instance_mode else "") \
                    if segment else "output"
                files = gr.File(label=f"download: {what}, as predict writes it", file_count="multiple",
                                elem_id="files")
                info = gr.Textbox(label="run", interactive=False, elem_id="info")
        run.click(predict, [upload, mask, device, precision, tile, tile_above, tta], [view, files, info],
                  api_name=DEMO_API.strip("/"))
    return app


def launch(model: DemoModel, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           block: bool = True) -> "gradio.Blocks":
    """Build and serve ``model``'s page; with ``block=False`` return once it is up (tests)."""
    app = build_app(model)
    app.queue(default_concurrency_limit=1)  # one generator: runs take turns
    app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block, quiet=not block,
               allowed_paths=[str(model.workdir)], footer_links=["api"], css=CSS)
    return app


__all__ = ["DEMO_API", "DemoError", "DemoModel", "DemoResult", "available_devices", "build_app", "launch"]
