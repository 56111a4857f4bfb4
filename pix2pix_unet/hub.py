"""The Hugging Face Hub: ``pix2pix-unet push`` and loading ``hf://ORG/NAME`` / ``from_pretrained("ORG/NAME")``.

A Hub repo holds a generator export (``model.safetensors`` + ``config.json``, what
:meth:`~pix2pix_unet.models.Generator.from_pretrained` reads) with a model card (``README.md``: task, data,
validation metrics, the sample grid, the command that trained it), the run's ``config.yaml``, ``metrics.json`` and
``sample_grid.png``, and optionally the bioimage.io package. Loading goes through ``huggingface_hub``'s
``snapshot_download``, so the Hub's cache, ``HF_HUB_OFFLINE=1``, ``HF_HOME`` and tokens work as everywhere else.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

HF_PREFIX = "hf://"
# ORG/NAME, as the Hub spells repo ids, with an optional @revision
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


class HubError(RuntimeError):
    """A Hub repo could not be fetched or pushed; the message names the repo and the reason."""


def split_reference(reference: str) -> tuple[str, str | None]:
    """``"ORG/NAME@rev"`` (an ``hf://`` prefix allowed) -> ``("ORG/NAME", "rev")``."""
    ref = reference[len(HF_PREFIX):] if reference.startswith(HF_PREFIX) else reference
    if not _REPO_ID.match(ref):
        raise HubError(f"{reference!r} is not a Hugging Face Hub repo id (ORG/NAME, optionally @REVISION)")
    repo_id, _, revision = ref.partition("@")
    return repo_id, revision or None


def download(reference: str) -> Path:
    """The local folder of the Hub repo ``reference`` (``hf://ORG/NAME[@rev]`` or ``ORG/NAME``), fetched with
    ``snapshot_download`` (from the cache alone under ``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    from . import __version__

    repo_id, revision = split_reference(reference)
    try:
        return Path(snapshot_download(repo_id, revision=revision, library_name="pix2pix-unet",
                                      library_version=__version__))
    except (LocalEntryNotFoundError, RepositoryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        reason = " ".join(str(err).split())[:400]
        raise HubError(f"cannot fetch Hugging Face Hub repo {repo_id}"
                       f"{f' at revision {revision}' if revision else ''}: {type(err).__name__}: {reason}") from err


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """A ``--checkpoint`` value as a local folder: ``hf://ORG/NAME[@rev]`` is downloaded, paths pass through."""
    if isinstance(checkpoint, str) and checkpoint.startswith(HF_PREFIX):
        return download(checkpoint)
    return Path(checkpoint)


def looks_like_repo_id(path: str | Path) -> bool:
    """Whether ``path``, which is not a local folder, could name a Hub repo (``ORG/NAME``)."""
    text = str(path)
    return text.startswith(HF_PREFIX) or (not Path(text).exists() and bool(_REPO_ID.match(text))
                                          and not text.startswith((".", "/", "~")))


# --------------------------------------------------------------------------- push


def model_card(generator: Any, record: Any, repo_id: str, files: list[str], licence: str) -> "ModelCard":
    """The repo's ``README.md``: metadata for the Hub, then task, data, metrics, samples, how to load and retrain.

    ``record`` is the export's :class:`~pix2pix_unet.bioimageio_export.RunRecord`.
    """
    import yaml
    from huggingface_hub import ModelCard, ModelCardData

    meta = getattr(generator, "metadata", None) or {}
    task = meta.get("task", "translate")
    cfg = generator.config
    pipeline = "image-segmentation" if task == "segment" else "image-to-image"
    data = ModelCardData(library_name="pix2pix-unet", license=licence.lower(), pipeline_tag=pipeline,
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
        "## Task", "", _task_text(meta), "",
        "## Data", "",
        (("Trained on the built-in synthetic data" if data_path == "builtin" else
          f"Trained on `{data_path}` (`data.path` of the run's `config.yaml`, on the machine that trained it)")
         + "; the metrics below are on its validation split, files the model did not train on." if data_path else
         "The export was pushed without its run folder, so the training data is not recorded here."), "",
        "## Validation metrics", "",
        *(["| metric | value |", "| --- | --- |", metrics] if metrics else ["Not recorded (no run folder)."]), "",
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


def _task_text(meta: dict[str, Any]) -> str:
    task = meta.get("task", "translate")
    if task == "segment":
        return (f"Image -> {meta.get('num_classes')} class label map (intensity rule `{meta.get('intensity')}`"
                + ("; instance maps by watershed" if meta.get("instance_mode") else "") + ").")
    if task == "restore":
        return f"Degraded image -> clean image (intensity rule `{meta.get('intensity')}`)."
    if meta.get("label_format") == "index":
        return f"Label map ({meta.get('num_classes')} classes) -> image."
    return f"Image -> image ({meta.get('direction', 'AtoB')})."


def stage(checkpoint: str | Path, folder: Path, repo_id: str, licence: str = "MIT",
          bioimageio: bool = False) -> list[Path]:
    """Write what ``push`` uploads into ``folder`` (which must not exist or be empty); returns the files.

    Raises:
        FileNotFoundError: no generator export at ``checkpoint``.
        FileExistsError: ``folder`` holds files.
    """
    from .bioimageio_export import RunRecord
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
        (folder / "metrics.json").write_text(json.dumps({"step": record.step, **record.metrics}, indent=2))
    if record.sample_grid is not None:
        shutil.copy(record.sample_grid, folder / "sample_grid.png")
    if bioimageio:
        from .export import export_bioimageio
        from .tasks import generator_task

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


__all__ = ["HF_PREFIX", "HubError", "download", "looks_like_repo_id", "model_card", "resolve_checkpoint",
           "split_reference", "stage", "upload"]
