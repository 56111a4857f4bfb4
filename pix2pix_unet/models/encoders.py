"""Pretrained CNN encoders from timm, and the UNet whose decoder fits itself to their stages.

Layout (``generator.architecture=timm-unet``; strides for a ResNet at ``depth=5``)::

    input ─► normalise ─► timm encoder (features_only): stages at strides 2, 4, 8, 16, 32
                                  │skip    │skip   │skip   │skip   │
                                  ▼        ▼       ▼       ▼       ▼ bottleneck
    head ◄─ level 1 ◄─ level 2 ◄─ level 4 ◄─ level 8 ◄─ level 16 ◄─┘

Every decoder level doubles the resolution (``generator.up``), merges the
encoder stage of that stride where the encoder has one (``generator.skip``) and
runs ``generator.conv_unit``; its width is ``base_channels * 2 ** log2(stride)``,
capped at ``max_channels``. A VGG has a stride-1 stage, so its top level gets a
full-resolution skip (TernausNet); a ResNet's top level has none. The encoder's
first conv takes any ``in_channels``: timm adapts pretrained RGB weights as
segmentation_models.pytorch does (1 channel: their sum; more: RGB repeated and
scaled by ``3 / in_channels``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..config import Architecture, ConfigError, ConvUnit, UNetConfig
from .blocks import BOTTLENECKS, SKIPS, UPSAMPLERS
from .generator import Generator, pad_to_multiple, register
from .unet import _FINAL, conv_units


def _timm() -> Any:
    try:
        import timm
    except ImportError as err:  # a dependency, but say what needs it if an environment lacks it
        raise ConfigError("generator.architecture=timm-unet needs the timm package (pip install timm)") from err
    return timm


def read_weights(cfg: UNetConfig, hub_id: str | None) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict ``generator.encoder.weights`` names, and where it came from (for messages).

    ``hub_id`` is the timm model's default Hugging Face repo (``weights: hub``). With
    ``HF_HUB_OFFLINE=1`` huggingface_hub reads only its cache, so nothing is downloaded.
    """
    from timm.models import load_state_dict, load_state_dict_from_hf

    weights, name = cfg.encoder.weights, cfg.encoder.name
    assert weights is not None
    if weights == cfg.encoder.HUB or weights.startswith(cfg.encoder.HUB_PREFIX):
        repo = hub_id if weights == cfg.encoder.HUB else weights.removeprefix(cfg.encoder.HUB_PREFIX)
        if not repo:
            raise ConfigError(f"generator.encoder.weights=hub: timm has no Hugging Face repo for {name!r}; "
                              "give a weights file instead")
        try:
            return load_state_dict_from_hf(repo), f"hf-hub:{repo}"  # model.safetensors, else pytorch_model.bin
        except Exception as err:  # noqa: BLE001 - offline misses, network and file errors all end here
            raise ConfigError(
                f"generator.encoder.weights={weights!r}: cannot load hf-hub:{repo} ({type(err).__name__}: {err}). "
                "With HF_HUB_OFFLINE=1 only the Hugging Face cache is read; fill it on a connected machine "
                f"(hf download {repo}) or give a weights file (docs/encoders.md)"
            ) from err
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"generator.encoder.weights={weights!r}: no such file (a state dict of timm's "
                          f"{name}, or `hub` for the Hugging Face hub cache)")
    try:
        return load_state_dict(str(path)), str(path)
    except Exception as err:  # noqa: BLE001 - torch.load and safetensors raise many kinds
        raise ConfigError(f"generator.encoder.weights={weights!r}: cannot read {path} as a state dict "
                          f"({type(err).__name__}: {err})") from err


def fit_weights(encoder: nn.Module, state: dict[str, torch.Tensor], first_convs: tuple[str, ...],
                in_channels: int) -> dict[str, torch.Tensor]:
    """``state`` (a whole timm classifier's, RGB) as the encoder's state dict: keys matched up to the
    ``.``/``_`` timm's feature wrapper swaps, the first conv adapted to ``in_channels``, the rest (the
    classifier, stages below the encoder's depth) left out.

    Raises:
        KeyError: a tensor the encoder needs is missing or of another shape (listed in the message).
    """
    from timm.models import adapt_input_conv

    def key(name: str) -> str:
        return name.replace(".", "_")

    state = dict(state)
    for conv in first_convs:
        if f"{conv}.weight" in state:
            state[f"{conv}.weight"] = adapt_input_conv(in_channels, state[f"{conv}.weight"])
    source = {key(k): v for k, v in state.items()}
    fitted, problems = {}, []
    for name, tensor in encoder.state_dict().items():
        value = source.get(key(name))
        if value is None:
            problems.append(f"{name} missing")
        elif value.shape != tensor.shape:
            problems.append(f"{name} is {tuple(value.shape)}, not {tuple(tensor.shape)}")
        else:
            fitted[name] = value
    if problems:
        shown = "; ".join(problems[:4]) + (f" and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise KeyError(f"{len(problems)} of the encoder's {len(fitted) + len(problems)} tensors do not fit: {shown}")
    return fitted


def create_features(cfg: UNetConfig, out_indices: tuple[int, ...] | None = None) -> nn.Module:
    """timm's ``features_only`` model ``generator.encoder.name`` for ``in_channels``, randomly initialised."""
    timm = _timm()
    name = cfg.encoder.name
    if not timm.is_model(name):
        raise ConfigError(f"generator.encoder.name={name!r} is not a timm model "
                          f"(list them with timm.list_models('*resnet*'))")
    kwargs: dict[str, Any] = {"features_only": True, "in_chans": cfg.in_channels}
    if out_indices is not None:
        kwargs["out_indices"] = out_indices
    try:
        return timm.create_model(name, **kwargs)
    except (RuntimeError, ValueError, KeyError, AssertionError, TypeError) as err:
        raise ConfigError(f"timm could not build generator.encoder.name={name!r} as a feature encoder for "
                          f"in_channels={cfg.in_channels}: {err}") from err


class TimmEncoder(nn.Module):
    """A timm CNN's feature stages down to stride ``2 ** depth``, behind the input normalisation its
    pretraining used.

    Shape:
        - Input: ``(B, in_channels, H, W)`` in ``[-1, 1]``, ``H, W`` multiples of ``2 ** depth``.
        - Output: one ``(B, channels[i], H / strides[i], W / strides[i])`` map per stage, shallow to deep.
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.model = create_features(cfg)
        info = self.model.feature_info
        keep = select_stages(cfg, info.reduction())
        if len(keep) < len(info.reduction()):  # rebuild without the stages below 2 ** depth
            self.model = create_features(cfg, out_indices=tuple(keep))
            info = self.model.feature_info
        self.out_indices = tuple(keep)
        self.strides: list[int] = list(info.reduction())
        self.channels: list[int] = list(info.channels())
        # [-1, 1] -> [0, 1] -> the pretraining's (x - mean) / std, per channel; RGB statistics repeated for
        # more channels as the first conv's weights are, averaged for one
        pretrained_cfg = self.model.pretrained_cfg
        mean = torch.tensor(pretrained_cfg.get("mean", (0.5, 0.5, 0.5)), dtype=torch.float32)
        std = torch.tensor(pretrained_cfg.get("std", (0.5, 0.5, 0.5)), dtype=torch.float32)
        if cfg.in_channels == 1:
            mean, std = mean.mean(0, keepdim=True), std.mean(0, keepdim=True)
        else:
            mean, std = mean.repeat(math.ceil(cfg.in_channels / len(mean)))[: cfg.in_channels], \
                std.repeat(math.ceil(cfg.in_channels / len(std)))[: cfg.in_channels]
        if not cfg.encoder.normalize:
            mean, std = torch.full_like(mean, 0.5), torch.full_like(std, 0.5)  # the identity on [-1, 1]
        # derived from the config, so not part of the state dict
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std  # (b, c, H, W)
        return self.model(x)


def select_stages(cfg: UNetConfig, strides: list[int]) -> list[int]:
    """Indices of the stages that feed the decoder: the deepest of each stride up to ``2 ** depth``, which
    must be the deepest stride; every stride a power of two."""
    name, limit = cfg.encoder.name, cfg.factor
    if any(s & (s - 1) for s in strides):
        raise ConfigError(f"generator.encoder.name={name!r} has feature strides {strides}; the decoder needs "
                          "powers of two")
    if limit not in strides:
        raise ConfigError(f"generator.depth={cfg.depth} asks for an encoder of stride {limit}, but "
                          f"{name}'s feature stages have strides {strides}; set generator.depth="
                          f"{int(math.log2(max(strides)))} (or lower, to stop at a shallower stage)")
    last = {s: i for i, s in enumerate(strides) if s <= limit}  # the deepest stage of each stride
    return sorted(last.values())


class StageDecoderLevel(nn.Module):
    """Double the resolution, merge the encoder stage of the new stride (if the encoder has one), convolve."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, cfg: UNetConfig, *,
                 dropout: float) -> None:
        super().__init__()
        self.up = UPSAMPLERS[cfg.up](in_channels, out_channels, cfg, dropout=dropout)
        self.skip = SKIPS[cfg.skip](out_channels, skip_channels, cfg) if skip_channels else None
        merged = self.skip.out_channels if self.skip is not None else out_channels
        self.conv = conv_units(merged, out_channels, cfg)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x)  # (b, c_out, 2h, 2w)
        if self.skip is not None:
            x = self.skip(x, skip)  # (b, c_out + c_skip, 2h, 2w)
        return self.conv(x)  # (b, c_out, 2h, 2w)


@register(Architecture.TIMM_UNET)
class TimmUNet(Generator):
    """A UNet on a timm CNN encoder (ResNet, EfficientNet, ConvNeXt, VGG ...), pretrained or not.

    Args:
        config: ``architecture=timm-unet``; ``config.encoder`` names the timm model and its weights,
            ``depth`` the encoder's total stride (``2 ** depth``), the rest the decoder.

    Shape:
        - Input: ``(B, in_channels, H, W)`` for any ``H, W``: padded to a multiple of ``2 ** depth`` and
          cropped back.
        - Output: ``(B, out_channels, H, W)``.

    Examples:
        >>> net = TimmUNet(from_dict(UNetConfig, {"preset": "resnet34-unet", "in_channels": 1}))
        >>> net(torch.randn(2, 1, 50, 70)).shape
        torch.Size([2, 3, 50, 70])

    A new model has random weights; :meth:`load_pretrained_parts` (``build_generator`` calls it) loads
    ``config.encoder.weights`` into the encoder.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        config.validate()
        if config.conv_unit is ConvUnit.NONE:  # validate() says so for timm-unet; a direct call may differ
            raise ConfigError("architecture=timm-unet needs a decoder conv_unit, got conv_unit=none")
        self.config = cfg = config
        self.encoder = TimmEncoder(cfg)
        skips = dict(zip(self.encoder.strides[:-1], self.encoder.channels[:-1]))
        self.bottleneck = BOTTLENECKS[cfg.bottleneck](self.encoder.channels[-1], cfg)

        self.level_strides = [2**s for s in range(cfg.depth - 1, -1, -1)]  # deep to shallow
        levels, channels = [], self.encoder.channels[-1]
        for k, stride in enumerate(self.level_strides):
            width = min(cfg.base_channels * stride, cfg.max_channels)
            dropout = cfg.dropout if 1 <= k <= cfg.dropout_levels else 0.0
            levels.append(StageDecoderLevel(channels, skips.get(stride, 0), width, cfg, dropout=dropout))
            channels = width
        self.decoder = nn.ModuleList(levels)
        head = nn.Conv2d(channels, cfg.out_channels, 1)
        self.head = nn.Sequential(head, _FINAL[cfg.final_activation]())
        if cfg.residual:  # the net starts as the identity and learns the correction
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def load_pretrained_parts(self) -> None:
        """Load ``config.encoder.weights`` (a file or the hub cache) into the encoder, the first conv adapted
        to ``in_channels``; nothing when it is None."""
        cfg = self.config
        if cfg.encoder.weights is None:
            return
        pretrained_cfg = self.encoder.model.pretrained_cfg
        state, source = read_weights(cfg, pretrained_cfg.get("hf_hub_id"))
        first = pretrained_cfg.get("first_conv") or ()
        try:
            fitted = fit_weights(self.encoder.model, state, (first,) if isinstance(first, str) else tuple(first),
                                 cfg.in_channels)
        except KeyError as err:
            raise ConfigError(f"generator.encoder.weights={cfg.encoder.weights!r}: {source} is not a state dict of "
                              f"timm's {cfg.encoder.name!r}: {err.args[0]}") from None
        self.encoder.model.load_state_dict(fitted)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        return self.encoder.parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h, w = x.shape[-2:]
        inputs = x
        # 1. pad to a multiple of the encoder's total stride           (b, c, H', W')
        x = pad_to_multiple(x, self.config.factor)
        # 2. encode: one map per stage, shallow to deep                 [(b, c_i, H'/s_i, W'/s_i)]
        features = self.encoder(x)
        skips = dict(zip(self.encoder.strides[:-1], features[:-1]))
        # 3. bottleneck on the deepest stage                            (b, c_n, H'/2^n, W'/2^n)
        x = self.bottleneck(features[-1])
        # 4. decode: 2x up per level, merging the stage of that stride where there is one
        for stride, level in zip(self.level_strides, self.decoder):
            x = level(x, skips.get(stride))  # (b, c_s, H'/s, W'/s)
        # 5. head to the output channels, crop the padding away          (b, out, H, W)
        out = self.head(x)[..., :h, :w]
        # 6. residual: the head predicts a correction to the input (extra input channels excluded)
        return out + inputs[:, : self.config.out_channels] if self.config.residual else out


__all__ = ["TimmUNet", "TimmEncoder", "StageDecoderLevel", "create_features", "fit_weights", "read_weights",
           "select_stages"]
