"""Typed configuration: one dataclass per component, loaded from YAML plus CLI overrides.

Every run writes its resolved :class:`TrainConfig` to ``config.yaml`` and every
generator export carries its :class:`UNetConfig`, so a checkpoint can be rebuilt
with nothing else.

The package is the bottom layer (it imports nothing else from ``pix2pix_unet``), one module per concern:

- ``base``: :class:`ConfigError`;
- ``enums``: the typed choices;
- ``model``: the generator (:class:`UNetConfig` and its parts) and the discriminator;
- ``data``: image pairs and label maps;
- ``segment``, ``restore``: the settings of those tasks (``restore`` with its degradations);
- ``train``: the objective, optimiser, speed options, :class:`TrainConfig` and the combination checks;
- ``inference``: :class:`InferenceConfig`;
- ``presets``: the named generators and each task's default one;
- ``loader``: YAML and overrides in, dicts and YAML out.

Import from here: every name is re-exported.
"""

from .base import ConfigError, _positive
from .data import DataConfig, LabelConfig
from .enums import (
    Activation, Architecture, BlendWindow, Contrast, Bottleneck, BuiltinKind, CompileMode, ConvUnit, DeepOutput, Direction,
    DiscriminatorKind, Down, ExportWeights, FidWhen, FinalActivation, GanLoss, InstanceMode, Intensity, LabelFormat, LrDecay, LrScaling,
    MetricMode, MixedPrecision, Norm, OutputDtype, PixelLoss, PositionEmbedding, SelfSupervised, Skip, Switch, Task,
    UnpairedMode, Up,
)
from .unpaired import FidConfig, UnpairedConfig
from .inference import InferenceConfig, ZeroShotConfig
from .loader import T, _coerce, apply_overrides, from_dict, load_config, save_config, to_dict
from .model import EncoderConfig, PatchGANConfig, TransformerConfig, UNetConfig, check_token_width, patchgan_min_size
from .presets import GENERATOR_PRESETS, TASK_PRESETS, with_task_preset
from .restore import (
    BlurStage, Degradation, Downsample, FinalStage, GaussianBlur, GaussianNoise, Inpaint, Jpeg, JpegStage,
    MotionBlur, NoiseStage, PoissonNoise, ResizeStage, RestoreConfig, SecondBlurStage, SecondNoiseStage,
    SecondOrderConfig, SecondResizeStage, _check_p, _check_probs, _check_range,
)
from .segment import SegmentConfig
from .train import (
    LossConfig, OptimConfig, PerfConfig, TrainConfig, _check_deep_supervision, _check_gan_variant,
    check_combinations,
)

__all__ = [
    # errors
    "ConfigError",
    # enums
    "Activation", "Architecture", "BlendWindow", "Contrast", "Bottleneck", "BuiltinKind", "CompileMode", "ConvUnit", "DeepOutput",
    "Direction", "DiscriminatorKind", "Down", "ExportWeights", "FidWhen", "FinalActivation", "GanLoss", "InstanceMode",
    "Intensity",
    "LabelFormat", "LrDecay", "LrScaling", "MetricMode", "MixedPrecision", "Norm", "OutputDtype", "PixelLoss",
    "PositionEmbedding", "SelfSupervised", "Skip", "Switch", "Task", "UnpairedMode", "Up",
    # components
    "TransformerConfig", "EncoderConfig", "UNetConfig", "PatchGANConfig", "check_token_width", "patchgan_min_size",
    "DataConfig", "LabelConfig", "SegmentConfig",
    "Degradation", "GaussianNoise", "PoissonNoise", "GaussianBlur", "MotionBlur", "Jpeg", "Downsample", "Inpaint",
    "BlurStage", "SecondBlurStage", "ResizeStage", "SecondResizeStage", "NoiseStage", "SecondNoiseStage",
    "JpegStage", "FinalStage", "SecondOrderConfig", "RestoreConfig",
    "FidConfig", "LossConfig", "OptimConfig", "PerfConfig", "TrainConfig", "UnpairedConfig", "check_combinations",
    "InferenceConfig", "ZeroShotConfig",
    # presets
    "GENERATOR_PRESETS", "TASK_PRESETS", "with_task_preset",
    # (de)serialisation
    "to_dict", "from_dict", "apply_overrides", "load_config", "save_config",
]
