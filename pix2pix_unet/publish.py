"""Publishing to the Hugging Face Hub: ``pix2pix-unet push``, its staging folder and the model card.

A Hub repo holds a generator export (``model.safetensors`` + ``config.json``, what
:meth:`~pix2pix_unet.models.Generator.from_pretrained` reads) with a model card (``README.md``: task, data,
the run's figures and which files they come from, the sample grid, the command that trained it), the run's
``config.yaml``, ``metrics.json`` and ``sample_grid.png``, and optionally the bioimage.io package. Loading is :mod:`pix2pix_unet.hub`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .hub import resolve_checkpoint, split_reference
from .tasks import generator_task


def model_card(generator: Any, record: Any, repo_id: str, files: list[str], licence: str) -> "ModelCard":
    """The repo's ``README.md``: metadata for the Hub, then task, data, metrics, samples, how to load and retrain.

    ``record`` is the export's :class:`~pix2pix_unet.export.bioimageio.RunRecord`.
    """
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    meta = getattr(generator, "metadata", None) or {}
    described = generator_task(generator)
    task = described.kind.value
    cfg = generator.config
    data = ModelCardData(library_name="pix2pix-unet", license=licence.lower(), pipeline_tag=described.pipeline_tag,
                         tags=["pix2pix", "unet", "gan", task])
    run_cfg = yaml.safe_load(record.config_yaml.read_text()) if record.config_yaml is not None else {}
    data_path = (run_cfg.get("data") or {}).get("path", "builtin") if run_cfg else None
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(record.metrics.items()))
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {repo_id}", "",
        f"A pix2pix-unet **{task}** generator: a UNet (architecture `{cfg.architecture.value}`) of depth {cfg.depth} "
        f"({cfg.in_channels} -> {cfg.out_channels} channels), trained for {meta.get('step', '?')} steps"
        + (" (EMA weights)" if meta.get("ema") else "") + ".", "",
        "## Task", "", described.summary(), "",
        "## Data", "",
        (("Trained on the built-in synthetic data" if data_path == "builtin" else
          f"Trained on `{data_path}` (`data.path` of the run's `config.yaml`, on the machine that trained it)")
         + f"; the metrics below are {record.source}." if data_path else
         "The export was pushed without its run folder, so the training data is not recorded here."), "",
        "## Metrics", "",
        *([f"Step {record.step}, {record.source}."
           + (f" The exported weights are the best checkpoint by {record.chosen_by}." if record.chosen_by else ""),
           "", "| metric | value |", "| --- | --- |", metrics] if metrics else ["Not recorded (no run folder)."]), "",
    ]
    if "sample_grid.png" in files:
        lines += ["## Samples", "", "Rows of input | output | target from the validation split:", "",
                  "![samples](sample_grid.png)", ""]
    lines += [
        "## Use", "", "```bash", "pip install pix2pix-unet",
        f"pix2pix-unet predict --checkpoint hf://{repo_id} --input IMAGES/ --output OUT/", "```", "",
        "```python", "from pix2pix_unet import from_pretrained", "",
        f'generator = from_pretrained("{repo_id}")  # a torch.nn.Module in eval mode', "```", "",
    ]
    if any(f.endswith(".zip") for f in files):
        zips = [f for f in files if f.endswith(".zip")]
        lines += [f"`{zips[0]}` is a bioimage.io model package for Fiji (deepImageJ), ilastik, QuPath and napari.",
                  ""]
    if record.config_yaml is not None:
        lines += ["## Training", "", "The run's full configuration is `config.yaml`; this retrains it:", "",
                  "```bash", "pix2pix-unet train --config config.yaml", "```", ""]
    return ModelCard("\n".join(lines))


def stage(checkpoint: str | Path, folder: Path, repo_id: str, licence: str = "MIT",
          bioimageio: bool = False) -> list[Path]:
    """Write what ``push`` uploads into ``folder`` (which must not exist or be empty); returns the files.

    Raises:
        FileNotFoundError: no generator export at ``checkpoint``.
        FileExistsError: ``folder`` holds files.
    """
    from .export.bioimageio import RunRecord
    from .models import Generator
    from .models.generator import CONFIG_NAME, WEIGHTS_NAME

    split_reference(repo_id)
    generator = Generator.from_pretrained(resolve_checkpoint(checkpoint))
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; choose an empty --stage folder")
    folder.mkdir(parents=True, exist_ok=True)
    export_dir = Path(generator.export_dir)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        shutil.copy(export_dir / name, folder / name)
    record = RunRecord.of(generator)
    if record.config_yaml is not None:
        shutil.copy(record.config_yaml, folder / "config.yaml")
    if record.metrics:
        (folder / "metrics.json").write_text(json.dumps({"step": record.step, "source": record.source,
                                                         "chosen_by": record.chosen_by, "metrics": record.metrics},
                                                        indent=2))
    if record.sample_grid is not None:
        shutil.copy(record.sample_grid, folder / "sample_grid.png")
    if bioimageio:
        from .export import export_bioimageio

        export_bioimageio(generator, generator_task(generator), folder / "bioimageio.zip", licence=licence)
    files = sorted(p.name for p in folder.iterdir())
    model_card(generator, record, repo_id, files + ["README.md"], licence).save(folder / "README.md")
    return sorted(folder.iterdir())


def upload(folder: Path, repo_id: str, private: bool = False, message: str | None = None,
           api: Any = None) -> str:
    """Create the repo if needed and upload ``folder`` with ``HfApi.upload_folder``; returns the commit URL."""
    from huggingface_hub import HfApi

    api = api or HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                             commit_message=message or "pix2pix-unet push: generator export and model card")
    return str(getattr(info, "commit_url", info))


__all__ = ["model_card", "stage", "upload"]
