"""What every generator architecture shares: the registry that builds one from its config, and the export.

A generator is an ``nn.Module`` whose ``config`` is a :class:`~pix2pix_unet.config.UNetConfig`; the config's
``architecture`` picks the class. Each architecture module registers its class with :func:`register`, so the
training loop, predict, evaluate and export build and load every architecture the same way::

    net = build_generator(config)                  # from a config
    net = Generator.from_pretrained("runs/demo")   # from an export: the class its config.json names
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import Architecture, ConfigError, UNetConfig, from_dict, to_dict

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"

GENERATORS: dict[Architecture, type["Generator"]] = {}

G = TypeVar("G", bound="type[Generator]")


def register(architecture: Architecture) -> Callable[[G], G]:
    """Class decorator: ``build_generator`` builds this class for ``config.architecture == architecture``."""

    def add(cls: G) -> G:
        GENERATORS[architecture] = cls
        return cls

    return add


def build_generator(config: UNetConfig, pretrained: bool = True) -> "Generator":
    """The generator ``config.architecture`` names, built from ``config``.

    ``pretrained``: load the pretrained parts the config names (a timm encoder's ``encoder.weights``);
    off where a checkpoint's weights come next anyway (``from_pretrained``, resuming).
    """
    try:
        cls = GENERATORS[config.architecture]
    except KeyError:
        raise ConfigError(
            f"generator.architecture={config.architecture.value!r} has no registered class "
            f"(registered: {sorted(a.value for a in GENERATORS)})"
        ) from None
    model = cls(config)
    if pretrained:
        model.load_pretrained_parts()
    return model


class Generator(nn.Module):
    """Base of every generator: holds its ``config`` and writes/reads the export folder.

    Subclasses take one :class:`UNetConfig` in ``__init__`` and map ``(B, in_channels, H, W)`` to
    ``(B, out_channels, H, W)`` for any ``H, W``.
    """

    config: UNetConfig

    def check_input(self, x: torch.Tensor, what: str = "input") -> None:
        """Raise, naming the expected and the given shape, unless ``x`` is ``(B, in_channels, H, W)``
        (``dims=3``: ``(B, in_channels, D, H, W)``)."""
        dims = getattr(self.config, "dims", 2)
        if x.ndim != 2 + dims or x.shape[1] != self.config.in_channels:
            axes = "H, W" if dims == 2 else "D, H, W"
            kind = "" if x.ndim == 2 + dims else (" (a volume given to a 2D model)" if x.ndim == 5 else
                                                 " (an image given to a 3D model)" if x.ndim == 4 else "")
            raise ValueError(f"{type(self).__name__} expects (B, {self.config.in_channels}, {axes}) {what}, "
                             f"got shape {tuple(x.shape)}{kind}")

    def load_pretrained_parts(self) -> None:
        """Load the pretrained weights the config names into a freshly built model; none by default."""

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """The pretrained encoder's parameters, which train at their own rate (``optim.encoder_lr_factor``,
        ``optim.freeze_encoder_steps``); none by default."""
        return iter(())

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps of ``x``, finest first (CUT's PatchNCE compares them between input and
        output); an architecture without this hook cannot train with it."""
        raise NotImplementedError(f"generator.architecture={self.config.architecture.value} does not expose its "
                                  "encoder features (PatchNCE needs them); use architecture=unet")

    def save_pretrained(self, directory: str | Path, **metadata: Any) -> Path:
        """Write ``model.safetensors`` and ``config.json`` (architecture + ``metadata``) to ``directory``."""
        from ..version import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME))
        meta = {"version": __version__, "generator": to_dict(self.config), **metadata}
        (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "Generator":
        """Load a generator written by :meth:`save_pretrained`; ``path`` is its folder or a run folder.

        The class is the one the export's ``generator.architecture`` names (``unet`` for exports that
        predate the field), whichever class this is called on. ``path`` may also name a Hugging Face Hub repo,
        ``ORG/NAME`` or ``hf://ORG/NAME[@revision]``, fetched with ``snapshot_download`` (:mod:`pix2pix_unet.hub`).
        """
        from ..hub import HubError, download, looks_like_repo_id

        if looks_like_repo_id(path):
            try:
                path = download(str(path))
            except HubError as err:
                raise FileNotFoundError(f"{path} is neither a local folder nor a Hugging Face Hub repo that could "
                                        f"be fetched ({err})") from err
        directory = resolve_export_dir(path)
        meta = json.loads((directory / CONFIG_NAME).read_text())
        # every weight is in the export: a pretrained encoder's original file is not needed, nor read
        model = build_generator(from_dict(UNetConfig, meta["generator"], "generator"), pretrained=False)
        model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
        model.metadata = meta
        model.export_dir = directory
        return model.eval()


def generator_from_kwargs(**config: Any) -> "Generator":
    """The generator a ``UNetConfig`` given as keyword arguments describes, untrained.

    The architecture callable of bioimage.io packages (``pytorch_state_dict`` weights name
    ``pix2pix_unet.models.generator.generator_from_kwargs`` with the config as ``kwargs``).
    """
    return build_generator(from_dict(UNetConfig, config, "generator"))


def load_weights(model: "Generator", path: str | Path) -> "Generator":
    """Copy the weights of the export at ``path`` into ``model`` (``init_from``: fine-tuning).

    Raises:
        ConfigError: when the export's architecture or a weight's shape differs from ``model``'s, naming it.
    """
    directory = resolve_export_dir(path)
    state = load_file(str(directory / WEIGHTS_NAME))
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and v.shape != own[k].shape]
    missing = sorted(set(own) ^ set(state))
    if wrong or missing:
        raise ConfigError(f"init_from={path}: its generator does not fit this one ("
                          + "; ".join(wrong[:3] + [f"keys only in one: {missing[:3]}"] * bool(missing))
                          + "); use the same generator preset, channels and classes")
    model.load_state_dict(state)
    return model


def resolve_export_dir(path: str | Path) -> Path:
    """Accept an export folder, a run folder (``run/checkpoints/generator``) or its ``checkpoints`` folder."""
    path = Path(path)
    for candidate in (path, path / "generator", path / "checkpoints" / "generator"):
        if (candidate / WEIGHTS_NAME).is_file() and (candidate / CONFIG_NAME).is_file():
            return candidate
    raise FileNotFoundError(
        f"no generator export ({WEIGHTS_NAME} + {CONFIG_NAME}) found at {path}, {path / 'generator'} "
        f"or {path / 'checkpoints' / 'generator'}"
    )


def pad_to_multiple(x: torch.Tensor, factor: int | tuple[int, ...]) -> torch.Tensor:
    """Pad the end of each spatial axis of ``x`` (``(B, C, H, W)`` or ``(B, C, D, H, W)``) to a multiple of
    ``factor`` (one for all, or one per spatial axis).

    Reflection where the image is large enough (no hard edge for the convs to
    see), replication otherwise.
    """
    size = x.shape[2:]
    factors = (factor,) * len(size) if isinstance(factor, int) else tuple(factor)
    if len(factors) != len(size):
        raise ValueError(f"{len(factors)} padding factors {factors} for {len(size)} spatial axes {tuple(size)}")
    pads = [(-n) % f for n, f in zip(size, factors)]
    if not any(pads):
        return x
    mode = "reflect" if all(p < n for p, n in zip(pads, size)) else "replicate"
    flat = [v for p in reversed(pads) for v in (0, p)]  # F.pad lists the last axis first
    return F.pad(x, flat, mode=mode)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["Generator", "GENERATORS", "register", "build_generator", "generator_from_kwargs", "load_weights",
           "resolve_export_dir",
           "count_parameters",
           "pad_to_multiple",
           "WEIGHTS_NAME", "CONFIG_NAME"]
