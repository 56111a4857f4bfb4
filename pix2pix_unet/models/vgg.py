"""Frozen VGG16 features for the perceptual losses (``restore.perceptual_weight``, translate's ``loss.vgg_weight``).

The weights come from a local file, never from the network: torchvision's
``vgg16-397923af.pth`` (a full VGG16 state dict, or only its ``features.*``), as a
``.pth`` or ``.safetensors`` file. Without a path, the torch hub cache is looked in,
where ``torchvision.models.vgg16(weights="DEFAULT")`` leaves the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import ConfigError

VGG16_FILE = "vgg16-397923af.pth"
LAYERS = (3, 8, 15, 22)  # relu1_2, relu2_2, relu3_3, relu4_3 in torchvision's vgg16().features
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet, which the weights were trained on


def default_weights() -> Path:
    """Where torchvision caches the VGG16 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE


def read_state(path: Path, key: str = "restore.vgg_weights") -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a VGG16 state dict file, keys without the ``features.`` prefix;
    ``key`` is the config key the error message tells the user to set."""
    if not path.is_file():
        raise ConfigError(f"a VGG perceptual loss needs VGG16 weights, and {path} does not exist: pass "
                          f"{key}=FILE (torchvision's {VGG16_FILE}, or a .safetensors of it)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise ConfigError(f"{path} holds no VGG16 'features.*' weights (keys such as {list(state)[:3]})")
    return features


class VGGFeatures(nn.Module):
    """``images (B, 1|3, H, W)`` in [-1, 1] -> the VGG16 activations at :data:`LAYERS`, frozen.

    Args:
        weights: a VGG16 state dict file; None looks in the torch hub cache (:func:`default_weights`).
        key: the config key that names ``weights``, for the error when the file is missing.
    """

    def __init__(self, weights: str | Path | None = None, key: str = "restore.vgg_weights") -> None:
        super().__init__()
        from torchvision.models import vgg16

        self.body = vgg16(weights=None).features[: LAYERS[-1] + 1]
        state = read_state(Path(weights) if weights else default_weights(), key)
        self.body.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) <= LAYERS[-1]})
        self.body.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always frozen, dropout-free, eval mode

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        # 1. [-1, 1] gray or RGB -> ImageNet-normalised RGB                  (b, 3, h, w)
        x = images.float().add(1).div(2).expand(-1, 3, -1, -1) if images.shape[1] == 1 else images.float().add(1).div(2)
        x = (x - self.mean) / self.std
        # 2. run the layers, keeping the chosen activations                  [(b, c_l, h_l, w_l)]
        out = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in LAYERS:
                out.append(x)
        return out
