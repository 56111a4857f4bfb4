"""The Hugging Face Hub, the reading half: ``hf://ORG/NAME`` / ``from_pretrained("ORG/NAME")`` as a local folder.

A leaf below the models; pushing (``pix2pix-unet push``, model cards) is :mod:`pix2pix_unet.publish`.

A Hub repo holds a generator export (``model.safetensors`` + ``config.json``, what
:meth:`~pix2pix_unet.models.Generator.from_pretrained` reads) with a model card (``README.md``: task, data,
validation metrics, the sample grid, the command that trained it), the run's ``config.yaml``, ``metrics.json`` and
``sample_grid.png``, and optionally the bioimage.io package. Loading goes through ``huggingface_hub``'s
``snapshot_download``, so the Hub's cache, ``HF_HUB_OFFLINE=1``, ``HF_HOME`` and tokens work as everywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

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

    from .version import __version__

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


__all__ = ["HF_PREFIX", "HubError", "download", "looks_like_repo_id", "resolve_checkpoint", "split_reference"]
