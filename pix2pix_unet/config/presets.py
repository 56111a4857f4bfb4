"""Named generators (:data:`GENERATOR_PRESETS`) and the preset each task starts from (:data:`TASK_PRESETS`)."""

from __future__ import annotations

from typing import Any

from .restore import PLANAR_DEGRADATIONS
from .enums import Activation, Architecture, Bottleneck, ConvUnit, Down, FinalActivation, Norm, Skip, Task, Up
from .model import EncoderConfig, TransformerConfig, UNetConfig

GENERATOR_PRESETS: dict[str, UNetConfig] = {
    # The pix2pix paper's 256-px U-Net ("unet_256"): 54.4 M parameters.
    "pix2pix": UNetConfig(depth=8, base_channels=64, max_channels=512, norm=Norm.BATCH, dropout=0.5),
    # The CPU-friendly default: 64-px images, 6 downsamplings, 7.3 M parameters.
    "small": UNetConfig(),
    # Ronneberger et al.'s U-Net: double 3x3 convs, max-pool, transposed-conv upsampling.
    "unet": UNetConfig(
        depth=4, base_channels=64, max_channels=1024, conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL,
        up=Up.TRANSPOSED, activation=Activation.RELU, dropout=0.0,
    ),
    # Oktay et al.'s Attention U-Net: the `unet` preset with attention-gated skips.
    "attention-unet": UNetConfig(
        depth=4, base_channels=64, max_channels=1024, conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL,
        up=Up.TRANSPOSED, activation=Activation.RELU, dropout=0.0, skip=Skip.ATTENTION,
    ),
    # Res-UNet (Zhang et al.): the `unet` preset with residual units (1x1 projection where channels change).
    "res-unet": UNetConfig(
        depth=4, base_channels=64, max_channels=1024, conv_unit=ConvUnit.RESIDUAL, down=Down.MAXPOOL,
        up=Up.TRANSPOSED, activation=Activation.RELU, dropout=0.0,
    ),
    # For CPU and edge devices: depthwise-separable units, 16->256 channels, 5 levels.
    "lite": UNetConfig(
        depth=5, base_channels=16, max_channels=256, conv_unit=ConvUnit.SEPARABLE, down=Down.MAXPOOL,
        up=Up.TRANSPOSED, activation=Activation.RELU, dropout=0.0,
    ),
    # Restoration (the default of task=restore): NAFNet blocks, 2 per level, 32->128 channels over 3 levels,
    # so a 64-px crop keeps 8x8 features at the bottom and full-resolution ones at the top. 0.4 M parameters.
    "nafnet": UNetConfig(
        depth=3, base_channels=32, max_channels=128, conv_unit=ConvUnit.NAF, units_per_level=2, down=Down.STRIDED,
        up=Up.BILINEAR, norm=Norm.LAYER, dropout=0.0, final_activation=FinalActivation.NONE,
    ),
    # A Res-UNet at CPU width for restoration: no batch norm (EDSR: it hurts restoration), 32->128 channels.
    "res-unet-lite": UNetConfig(
        depth=3, base_channels=32, max_channels=128, conv_unit=ConvUnit.RESIDUAL, down=Down.STRIDED,
        up=Up.BILINEAR, norm=Norm.NONE, activation=Activation.RELU, dropout=0.0, final_activation=FinalActivation.NONE,
    ),
    # The `unet` preset with atrous spatial pyramid pooling (DeepLabv3) at the deepest level.
    "aspp-unet": UNetConfig(
        depth=4, base_channels=64, max_channels=1024, conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL,
        up=Up.TRANSPOSED, activation=Activation.RELU, dropout=0.0, bottleneck=Bottleneck.ASPP,
    ),
    # SPADE (Park et al. 2019), CPU-sized: label map -> image from 1/16 scale, 32->128 channels; 1.4 M parameters
    # for 5 classes.
    "spade": UNetConfig(architecture=Architecture.SPADE, depth=4, base_channels=32, max_channels=128,
                        spade_hidden=32, norm=Norm.BATCH, dropout=0.0),
    # SPADE at 256 px: from 1/32 scale, 64->1024 channels (the paper's ngf=64), 128-channel SPADE convs; 45 M.
    "spade-256": UNetConfig(architecture=Architecture.SPADE, depth=5, base_channels=64, max_channels=1024,
                            spade_hidden=128, norm=Norm.BATCH, dropout=0.0),
    # UNet++ (Zhou et al. 2018): the paper's 32->512 widths over 4 levels, nested dense skips. Deep supervision
    # (segment): generator.deep_supervision=true, a head on each X^{0,j}; deep_output=last|mean at inference.
    "unet++": UNetConfig(
        architecture=Architecture.UNETPP, depth=4, base_channels=32, max_channels=512, conv_unit=ConvUnit.DOUBLE,
        down=Down.MAXPOOL, up=Up.TRANSPOSED, activation=Activation.RELU, dropout=0.0,
    ),
    # UNet 3+ (Huang et al. 2020): the paper's 64->1024 encoder, full-scale skips of 64 channels per scale.
    # Deep supervision (segment): generator.deep_supervision=true, a head on every decoder level and the bottom.
    "unet3+": UNetConfig(
        architecture=Architecture.UNET3P, depth=4, base_channels=64, max_channels=1024, conv_unit=ConvUnit.DOUBLE,
        down=Down.MAXPOOL, activation=Activation.RELU, dropout=0.0, fullscale_channels=64,
    ),
    # TransUNet-style (Chen et al. 2021): a U-Net whose deepest level (1/16) runs 4 pre-norm ViT blocks over its
    # pixels as tokens; bilinear upsampling as TransUNet's cascaded decoder. 256-px images give a 16x16 token grid.
    "trans-unet": UNetConfig(
        depth=4, base_channels=32, max_channels=256, conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL, up=Up.BILINEAR,
        activation=Activation.RELU, dropout=0.0, bottleneck=Bottleneck.TRANSFORMER,
        transformer=TransformerConfig(depth=4, heads=8),
    ),
    # segmentation_models.pytorch's default Unet: a timm ResNet-34 encoder (stride 32), nearest-resize decoder of
    # 256, 128, 64, 32, 16 channels with two 3x3 conv-BN-ReLU per level. Random init unless
    # generator.encoder.weights names ImageNet weights (docs/encoders.md).
    "resnet34-unet": UNetConfig(
        architecture=Architecture.TIMM_UNET, depth=5, base_channels=16, max_channels=256,
        conv_unit=ConvUnit.DOUBLE, up=Up.NEAREST, activation=Activation.RELU, dropout=0.0,
        encoder=EncoderConfig(name="resnet34"),
    ),
    # TernausNet (Iglovikov & Shvets 2018): a VGG11 encoder, transposed-conv decoder of 256, 256, 128, 64, 32
    # channels, its full-resolution skip from VGG's first conv.
    "vgg11-unet": UNetConfig(
        architecture=Architecture.TIMM_UNET, depth=5, base_channels=32, max_channels=256,
        conv_unit=ConvUnit.DOUBLE, up=Up.TRANSPOSED, activation=Activation.RELU, dropout=0.0,
        encoder=EncoderConfig(name="vgg11"),
    ),
}


# The generator preset a task starts from when the config names none (keys set on top still apply).
TASK_PRESETS: dict[Task, str] = {Task.RESTORE: "nafnet"}
# Settings a task starts from (the config's own keys win): unpaired translation as the CycleGAN/CUT reference
# code trains it, with least-squares GAN losses, instance norm and no dropout; FID at every validation; and the
# last step's weights exported, which scored as well as or better than the lowest-FID checkpoint on held-out
# truth in each of the six runs of benchmarks/unpaired.py (docs/unpaired.md).
TASK_DEFAULTS: dict[Task, dict[str, Any]] = {
    Task.UNPAIRED: {"loss": {"gan": "lsgan"}, "generator": {"norm": "instance", "dropout": 0.0},
                    "fid": {"when": "validation"}, "export": "last"},
}


VOLUME_DEFAULTS: dict[Task, dict[str, Any]] = {
    # restore's default degradations include 2D-only ones (motion streaks, resizes, JPEG): off for volumes
    Task.RESTORE: {"restore": {name: {"p": 0.0} for name in PLANAR_DEGRADATIONS}},
}
"""Defaults of a task with ``generator.dims=3``, under the keys the config sets (as :data:`TASK_DEFAULTS`)."""


def _under(defaults: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` over ``defaults``, nested dicts merged key by key (``data`` wins)."""
    merged = dict(defaults)
    for key, value in data.items():
        merged[key] = (_under(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict)
                       else value)
    return merged


def with_task_preset(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``generator.preset`` set to its task's :data:`TASK_PRESETS` entry when it names no preset, and
    the task's :data:`TASK_DEFAULTS` (and for ``generator.dims=3`` its :data:`VOLUME_DEFAULTS`) under the keys it
    sets."""
    try:
        task = Task(data.get("task", Task.TRANSLATE.value))
    except ValueError:
        return data  # from_dict names the bad value
    generator = data.get("generator")
    if isinstance(generator, dict) and str(generator.get("dims")) == "3" and task in VOLUME_DEFAULTS:
        data = _under(VOLUME_DEFAULTS[task], data)
    for section, defaults in TASK_DEFAULTS.get(task, {}).items():
        if not isinstance(defaults, dict):  # a top-level key
            data = data if section in data else {**data, section: defaults}
        elif isinstance(data.get(section) or {}, dict):
            data = {**data, section: {**defaults, **(data.get(section) or {})}}
    generator = data.get("generator") or {}
    if task not in TASK_PRESETS or not isinstance(generator, dict) or "preset" in generator:
        return data
    return {**data, "generator": {"preset": TASK_PRESETS[task], **generator}}
