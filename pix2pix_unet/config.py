"""Typed configuration: one dataclass per component, loaded from YAML plus CLI overrides.

Every run writes its resolved :class:`TrainConfig` to ``config.yaml`` and every
generator export carries its :class:`UNetConfig`, so a checkpoint can be rebuilt
with nothing else.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or impossible."""


# --------------------------------------------------------------------------- enums


class Architecture(str, enum.Enum):
    """The generator's topology: which class in ``models/`` :func:`~pix2pix_unet.models.build_generator` builds."""

    UNET = "unet"  # the linear encoder-decoder of models/unet.py (pix2pix, U-Net and their block variants)
    SPADE = "spade"  # models/spade.py: label map -> image, SPADE residual blocks from the coarsest scale up
    UNETPP = "unet++"  # UNet++ (Zhou et al. 2018): nested dense skips X^{i,j}, models/unetpp.py
    UNET3P = "unet3+"  # UNet 3+ (Huang et al. 2020): full-scale skips, models/unet3p.py
    TIMM_UNET = "timm-unet"  # a timm CNN encoder (pretrained or not) + a UNet decoder fitted to its stages (encoders.py)


class DeepOutput(str, enum.Enum):
    """With ``deep_supervision``, what ``forward`` returns: the last (full-depth) head or the mean of all heads."""

    LAST = "last"
    MEAN = "mean"


class Norm(str, enum.Enum):
    BATCH = "batch"
    INSTANCE = "instance"
    GROUP = "group"
    LAYER = "layer"  # LayerNorm over the channels of each pixel (NAFNet, ConvNeXt)
    NONE = "none"


class Activation(str, enum.Enum):
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    GELU = "gelu"
    SILU = "silu"


class FinalActivation(str, enum.Enum):
    TANH = "tanh"
    SIGMOID = "sigmoid"
    NONE = "none"


class ConvUnit(str, enum.Enum):
    """The convolution applied at each resolution level after down/up sampling."""

    NONE = "none"  # pix2pix: each level is a single 4x4 stride-2 conv, nothing else
    DOUBLE = "double"  # original U-Net: two 3x3 conv-norm-act
    RESIDUAL = "residual"  # two 3x3 conv-norm + identity (or 1x1 projection) shortcut, then act
    SEPARABLE = "separable"  # two depthwise-separable (depthwise 3x3 + pointwise 1x1) conv-norm-act
    DILATED = "dilated"  # two 3x3 conv-norm-act dilated by `dilation`
    NAF = "naf"  # NAFNet block: LayerNorm, 1x1, depthwise 3x3, simple gate, channel attention; gated FFN


class Down(str, enum.Enum):
    STRIDED = "strided"  # 4x4 stride-2 conv (pix2pix)
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"


class Up(str, enum.Enum):
    TRANSPOSED = "transposed"  # 4x4 stride-2 transposed conv (pix2pix)
    BILINEAR = "bilinear"  # bilinear resize then 3x3 conv
    NEAREST = "nearest"  # nearest resize then 3x3 conv


class Skip(str, enum.Enum):
    CONCAT = "concat"
    ATTENTION = "attention"  # Attention U-Net: a [0, 1] gate from the coarser level weights the skip, then concat


class Bottleneck(str, enum.Enum):
    NONE = "none"
    ASPP = "aspp"  # atrous spatial pyramid pooling at `aspp_rates` + image pooling, projected back
    TRANSFORMER = "transformer"  # TransUNet: ViT blocks over the deepest map's pixels as tokens (`transformer`)


class PositionEmbedding(str, enum.Enum):
    """How the transformer bottleneck tells its tokens where they are; both work at any token grid."""

    LEARNED = "learned"  # a learned grid x grid table, bilinearly resized to the token grid
    SINUSOIDAL = "sinusoidal"  # fixed 2D sin-cos of each token's position, measured in units of that grid


class DiscriminatorKind(str, enum.Enum):
    NLAYER = "nlayer"  # PatchGAN; n_layers=3 gives the 70x70 receptive field
    PIXEL = "pixel"  # 1x1 PatchGAN (PixelGAN)


class GanLoss(str, enum.Enum):
    VANILLA = "vanilla"  # BCE with logits
    LSGAN = "lsgan"
    HINGE = "hinge"
    WGAN_GP = "wgan-gp"  # Wasserstein critic with the gradient penalty (weight `loss.gp_weight`)


class Direction(str, enum.Enum):
    A_TO_B = "AtoB"
    B_TO_A = "BtoA"


class MixedPrecision(str, enum.Enum):
    NO = "no"
    FP16 = "fp16"
    BF16 = "bf16"


class CompileMode(str, enum.Enum):
    """``torch.compile`` modes (``perf.compile_mode``); the CUDA graph modes do nothing different on a CPU."""

    DEFAULT = "default"  # fused Triton/C++ kernels
    REDUCE_OVERHEAD = "reduce-overhead"  # + CUDA graphs: a whole forward or backward replayed as one launch
    MAX_AUTOTUNE = "max-autotune"  # + kernel autotuning and CUDA graphs; minutes of compilation
    MAX_AUTOTUNE_NO_CUDAGRAPHS = "max-autotune-no-cudagraphs"


class LrScaling(str, enum.Enum):
    """How ``optim.lr_g``/``lr_d`` follow the global batch size (``optim.lr_scaling``)."""

    NONE = "none"  # the learning rates as given, whatever the batch
    SQRT = "sqrt"  # x sqrt(batch / base_batch_size): the usual rule for Adam
    LINEAR = "linear"  # x batch / base_batch_size: the SGD rule; aggressive for Adam and GANs


class Task(str, enum.Enum):
    """What the generator learns; each task brings its data, losses and metrics (``pix2pix_unet/tasks``)."""

    TRANSLATE = "translate"  # image or label map -> image, with the pix2pix losses
    SEGMENT = "segment"  # image -> per-class logits
    RESTORE = "restore"  # degraded image -> clean image


class LabelFormat(str, enum.Enum):
    """How ``task=translate`` reads its label maps."""

    RGB = "rgb"  # colour label images in A/, fed as they are
    INDEX = "index"  # class-id images in labels/, fed one-hot (pix2pixHD)


class BuiltinKind(str, enum.Enum):
    """Which procedural data ``data.path=builtin`` renders."""

    PHOTOS = "photos"  # RGB "photos" of 5 label classes (label map -> photo, and the reverse)
    NUCLEI = "nuclei"  # fluorescence-like 16-bit gray tiles of touching nuclei, with instance maps


class InstanceMode(str, enum.Enum):
    """Whether ``task=segment`` separates touching objects (background / interior / border targets)."""

    AUTO = "auto"  # on when instance maps are given (instances/, or the built-in data)
    ON = "on"
    OFF = "off"


class Intensity(str, enum.Enum):
    """How image intensities are mapped to [-1, 1]."""

    DTYPE = "dtype"  # by bit depth: 8-bit / 255, 16-bit / 65535
    IMAGE = "image"  # each image's own min..max
    RANGE = "range"  # the configured intensity_min..intensity_max, clipped


class PixelLoss(str, enum.Enum):
    L1 = "l1"
    CHARBONNIER = "charbonnier"  # sqrt(d^2 + eps^2): L1 that is smooth at 0


class MetricMode(str, enum.Enum):
    """Whether a lower or a higher value of a validation metric is better."""

    MIN = "min"
    MAX = "max"


class BlendWindow(str, enum.Enum):
    """How overlapping tiles are weighted where they meet (see ``pix2pix_unet.runtime.tiling``)."""

    LINEAR = "linear"  # a quarter of the overlap is context only, then a linear cross-fade
    GAUSSIAN = "gaussian"  # a half-Gaussian across the overlap (sigma = overlap / 3)


class OutputDtype(str, enum.Enum):
    """Pixel type of written images; ``input`` follows each input file."""

    INPUT = "input"
    UINT8 = "uint8"
    UINT16 = "uint16"
    FLOAT32 = "float32"


# --------------------------------------------------------------------------- components


@dataclass
class TransformerConfig:
    """``generator.bottleneck=transformer`` (TransUNet, Chen et al. 2021): pre-norm ViT blocks at the deepest level.

    Each pixel of the deepest feature map is a token. The position embedding is
    defined on a ``grid`` x ``grid`` token lattice and resampled to the actual
    one, so a model trained on 256-px crops (``grid=16`` at ``2 ** 4``) runs on
    any size; the tokens then cost ``O((H W / 4 ** depth) ** 2)`` in attention.
    """

    depth: int = 4  # transformer blocks
    heads: int = 8  # attention heads; must divide dim
    dim: int | None = None  # token width (1x1 convs in and out); None: the deepest level's channels
    mlp_ratio: float = 4.0  # hidden width of each block's MLP, as a multiple of dim
    position: PositionEmbedding = PositionEmbedding.LEARNED
    grid: int = 16  # side of the position embedding's own lattice, in tokens

    def validate(self, where: str = "generator.transformer") -> None:
        _positive(self, where, "depth", "heads", "mlp_ratio", "grid")
        if self.dim is not None:
            _positive(self, where, "dim")
            check_token_width(self, self.dim, where, f"{where}.dim")


def check_token_width(cfg: TransformerConfig, dim: int, where: str, source: str) -> None:
    """``dim`` (named by ``source``) splits into ``heads`` heads and, for sin-cos positions, four quarters."""
    if dim % cfg.heads:
        raise ConfigError(f"{where}.heads={cfg.heads} must divide the token width {source}={dim}")
    if cfg.position is PositionEmbedding.SINUSOIDAL and dim % 4:
        raise ConfigError(f"{where}.position=sinusoidal needs a token width divisible by 4, got {source}={dim}")


@dataclass
class EncoderConfig:
    """``generator.architecture=timm-unet``: the timm CNN encoding the input (``features_only=True``).

    The encoder's feature stages down to stride ``2 ** generator.depth`` feed the
    decoder (``depth=5`` for the usual stride-32 CNNs). Nothing is downloaded
    unless ``weights`` asks for the hub; see docs/encoders.md for ImageNet weights.
    """

    name: str = "resnet34"  # a timm model name (optionally with its tag: resnet34.a1_in1k)
    # None: random init. A file (.safetensors, .pth, .bin) holding the timm model's state dict (classifier
    # included or not, as hub's model.safetensors or create_model(name, pretrained=True).state_dict()); `hub`: the
    # model's default pretrained tag from the Hugging Face hub (its cache with HF_HUB_OFFLINE=1);
    # `hf-hub:<repo id>`: that hub repo. Read when a model is built for training, never by from_pretrained.
    weights: str | None = None
    normalize: bool = True  # map [-1, 1] inputs to the mean/std the encoder's weights were trained with

    HUB: ClassVar[str] = "hub"
    HUB_PREFIX: ClassVar[str] = "hf-hub:"

    def validate(self, where: str = "generator.encoder") -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{where}.name={self.name!r} must name a timm model, such as resnet34")
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights
                                         or self.weights == self.HUB_PREFIX):
            raise ConfigError(f"{where}.weights={self.weights!r} must be a file, `hub` or `hf-hub:<repo id>`")


@dataclass
class UNetConfig:
    """The UNet generator.

    ``depth`` counts the 2x downsamplings, so inputs are padded to a multiple of
    ``2 ** depth`` and cropped back. With ``conv_unit=none`` (pix2pix) the first
    downsampling is the stem itself; otherwise the stem works at full resolution.
    """

    architecture: Architecture = Architecture.UNET
    in_channels: int = 3
    out_channels: int = 3
    depth: int = 6
    base_channels: int = 32
    max_channels: int = 256
    norm: Norm = Norm.BATCH
    norm_groups: int = 8
    activation: Activation = Activation.LEAKY_RELU
    dropout: float = 0.5
    dropout_levels: int = 3  # decoder levels just above the innermost that use dropout
    final_activation: FinalActivation = FinalActivation.TANH
    conv_unit: ConvUnit = ConvUnit.NONE
    units_per_level: int = 1  # convolution units in a row at each level (and in the stem)
    down: Down = Down.STRIDED
    up: Up = Up.TRANSPOSED
    skip: Skip = Skip.CONCAT
    bottleneck: Bottleneck = Bottleneck.NONE
    dilation: int = 2  # rate of the `dilated` conv unit
    aspp_rates: list[int] = field(default_factory=lambda: [1, 3, 6, 9])  # `aspp` branches; rate 1 is a 1x1 conv
    spectral_norm: bool = False  # spectral normalisation on every conv weight
    residual: bool = False  # output = input[:, :out_channels] + net(input); the head starts at zero (identity)
    spade_hidden: int = 64  # spade: channels of each SPADE norm's shared conv on the label map
    noise_channels: int = 0  # spade: a random vector per sample joins the label map (diverse images per layout)
    deep_supervision: bool = False  # unet++/unet3+: an output head on every X^{0,j} / decoder level (num_heads)
    deep_output: DeepOutput = DeepOutput.LAST  # with deep_supervision: forward returns the last head or their mean
    fullscale_channels: int = 64  # unet3+: the channels every scale brings to a decoder level (the paper's 64)
    prune_to: int | None = None  # unet++ with deep_supervision: forward returns head X^{0,k} and runs only the
    # nodes it needs (the paper's pruned UNet++ L^k, k = 1..depth); training still trains every head. None: all
    transformer: TransformerConfig = field(default_factory=TransformerConfig)  # used by bottleneck=transformer
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # used by architecture=timm-unet

    @property
    def factor(self) -> int:
        """Input sizes are padded up to a multiple of this."""
        return 2**self.depth

    @property
    def num_heads(self) -> int:
        """Output heads: 1, or with ``deep_supervision`` one per X^{0,j} (unet++: ``depth``) or per decoder
        level and the bottom (unet3+: ``depth + 1``)."""
        if not self.deep_supervision:
            return 1
        return self.depth + 1 if self.architecture is Architecture.UNET3P else self.depth

    def validate(self, where: str = "generator") -> None:
        _positive(self, where, "in_channels", "out_channels", "depth", "base_channels", "max_channels")
        if self.max_channels < self.base_channels:
            raise ConfigError(f"{where}.max_channels={self.max_channels} is below base_channels={self.base_channels}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}.dropout={self.dropout} must be in [0, 1)")
        if self.conv_unit is ConvUnit.NONE and self.down is not Down.STRIDED:
            raise ConfigError(
                f"{where}.conv_unit=none needs down=strided (a pooling layer cannot change channels), got down={self.down.value}"
            )
        if self.norm is Norm.GROUP and self.base_channels % self.norm_groups:
            raise ConfigError(
                f"{where}.norm_groups={self.norm_groups} must divide base_channels={self.base_channels} for group norm"
            )
        _positive(self, where, "dilation", "units_per_level", "spade_hidden")
        if self.noise_channels < 0:
            raise ConfigError(f"{where}.noise_channels={self.noise_channels} must be >= 0")
        if self.residual and self.in_channels < self.out_channels:
            raise ConfigError(f"{where}.residual=true adds the input to the output, so in_channels={self.in_channels} "
                              f"must be at least out_channels={self.out_channels}")
        self._validate_topology(where)
        rates = self.aspp_rates
        if not isinstance(rates, list) or not rates or not all(isinstance(r, int) and not isinstance(r, bool) and r > 0
                                                                for r in rates):
            raise ConfigError(f"{where}.aspp_rates={rates!r} must be a non-empty list of positive integers")
        self.transformer.validate(f"{where}.transformer")
        if self.architecture is Architecture.TIMM_UNET:
            self.encoder.validate(f"{where}.encoder")
            if self.conv_unit is ConvUnit.NONE:
                raise ConfigError(f"{where}.architecture=timm-unet needs a decoder conv_unit (double, residual, ...), "
                                  "got conv_unit=none")
            if self.spectral_norm:
                raise ConfigError(f"{where}.spectral_norm=true would rescale the pretrained encoder's weights; "
                                  "it is not available with architecture=timm-unet")

    def _validate_topology(self, where: str) -> None:
        """The options of the nested (unet++) and full-scale (unet3+) topologies."""
        arch = f"{where}.architecture={self.architecture.value}"
        if self.architecture not in (Architecture.UNETPP, Architecture.UNET3P):
            if self.deep_supervision:
                raise ConfigError(f"{where}.deep_supervision=true needs a generator with extra output heads "
                                  f"({where}.architecture=unet++ or unet3+), got {arch}")
            return
        if self.conv_unit is ConvUnit.NONE:
            raise ConfigError(f"{arch} builds every node from a convolution unit; {where}.conv_unit=none has "
                              "none (use double, residual, separable, dilated or naf)")
        if self.skip is not Skip.CONCAT:
            raise ConfigError(f"{arch} merges its skips by concatenation; {where}.skip={self.skip.value} "
                              "applies to architecture=unet only")
        if self.deep_output is DeepOutput.MEAN and not self.deep_supervision:
            raise ConfigError(f"{where}.deep_output=mean averages the deep-supervision heads; set "
                              f"{where}.deep_supervision=true or deep_output=last")
        _positive(self, where, "fullscale_channels")
        if self.prune_to is not None:
            if self.architecture is not Architecture.UNETPP or not self.deep_supervision:
                raise ConfigError(f"{where}.prune_to={self.prune_to} picks a trained UNet++ head; it needs "
                                  f"architecture=unet++ and deep_supervision=true, got {arch}, deep_supervision="
                                  f"{str(self.deep_supervision).lower()}")
            if not 1 <= self.prune_to <= self.depth:
                raise ConfigError(f"{where}.prune_to={self.prune_to} must be in 1..depth={self.depth}")
            if self.deep_output is DeepOutput.MEAN:
                raise ConfigError(f"{where}.prune_to={self.prune_to} returns one head; it cannot be combined "
                                  f"with {where}.deep_output=mean")


@dataclass
class PatchGANConfig:
    """The conditional PatchGAN discriminator (sees input and output concatenated)."""

    kind: DiscriminatorKind = DiscriminatorKind.NLAYER
    base_channels: int = 64
    n_layers: int = 3
    norm: Norm = Norm.BATCH
    num_scales: int = 1  # pix2pixHD multi-scale: one PatchGAN per scale, each input avg-pooled 2x from the last
    spectral_norm: bool = False  # spectral normalisation on every conv weight

    def validate(self, where: str = "discriminator") -> None:
        _positive(self, where, "base_channels", "n_layers", "num_scales")


@dataclass
class LossConfig:
    gan: GanLoss = GanLoss.VANILLA
    gan_weight: float = 1.0
    l1_weight: float = 100.0
    fm_weight: float = 0.0  # pix2pixHD feature matching on D's intermediate features; 0 turns it off
    gp_weight: float = 10.0  # WGAN-GP gradient penalty weight (used with gan=wgan-gp)
    vgg_weight: float = 0.0  # translate: L1 between VGG16 features of output and target (SPADE: 10); 0 is off
    vgg_weights: str | None = None  # torchvision's vgg16 state dict; None: the torch hub cache's vgg16-397923af.pth

    def validate(self, where: str = "loss") -> None:
        for name in ("gan_weight", "l1_weight", "fm_weight", "gp_weight", "vgg_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be >= 0")


@dataclass
class OptimConfig:
    """Adam for both nets; lr is constant, then decays linearly to 0 at ``max_steps``."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # fraction of max_steps after which the lr decays linearly
    d_steps_per_g: int = 1  # discriminator updates (on the same batch) before each generator update
    lr_scaling: LrScaling = LrScaling.NONE  # scale both lrs by the global batch (batch x accum x processes)
    base_batch_size: int = 1  # the global batch lr_g and lr_d were tuned for (pix2pix: 1)
    # generator.architecture=timm-unet: the encoder learns at lr_g x encoder_lr_factor, and not at all (lr 0)
    # for its first freeze_encoder_steps steps, while the randomly initialised decoder catches up
    encoder_lr_factor: float = 1.0
    freeze_encoder_steps: int = 0

    def validate(self, where: str = "optim") -> None:
        _positive(self, where, "lr_g", "lr_d", "d_steps_per_g", "base_batch_size")
        if self.encoder_lr_factor < 0:
            raise ConfigError(f"{where}.encoder_lr_factor={self.encoder_lr_factor} must be >= 0")
        if self.freeze_encoder_steps < 0:
            raise ConfigError(f"{where}.freeze_encoder_steps={self.freeze_encoder_steps} must be >= 0")
        if not 0.0 <= self.decay_start <= 1.0:
            raise ConfigError(f"{where}.decay_start={self.decay_start} must be in [0, 1]")


@dataclass
class DataConfig:
    """Where pairs come from and how they are prepared.

    ``path`` is ``builtin`` (the procedural dataset) or a folder holding either
    aligned ``AB`` images or ``A/`` and ``B/`` sub-folders, optionally split into
    ``train/`` and ``val/``.
    """

    path: str = "builtin"
    direction: Direction = Direction.A_TO_B
    load_size: int | None = None  # resize every image to this square size on load
    crop_size: int | None = 64  # random crop (train) on the device; None keeps the loaded size
    flip: bool = True
    val_fraction: float = 0.1  # used when the folder has no val/ split
    num_workers: int | None = None  # loader processes decoding files; None: with CUDA up to 8 per GPU, else 0
    builtin_train: int = 400
    builtin_val: int = 32
    builtin_size: int = 72
    builtin_kind: BuiltinKind = BuiltinKind.PHOTOS
    skip_bad: bool = False  # train on the good pairs when some files are bad, instead of stopping
    cache_mb: int = 1024  # restore: decoded images kept in memory, per loader process (0: decode every draw)

    def validate(self, where: str = "data") -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"{where}.val_fraction={self.val_fraction} must be in (0, 1)")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"{where}.num_workers={self.num_workers} must be >= 0")
        for name in ("load_size", "crop_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{where}.{name}={value} must be a positive size")
        if self.load_size and self.crop_size and self.crop_size > self.load_size:
            raise ConfigError(f"{where}.crop_size={self.crop_size} is larger than load_size={self.load_size}")


@dataclass
class PerfConfig:
    """Speed options; none changes the maths beyond floating-point rounding.

    What each does and why the automatic choices are what they are (measured):
    :mod:`pix2pix_unet.training.perf`.
    """

    channels_last: bool | None = None  # NHWC G and D; None = both with CUDA, only D on CPU (measured faster)
    compile: bool | None = None  # torch.compile G and D in place; None = on when CUDA is available
    compile_mode: CompileMode = CompileMode.DEFAULT  # reduce-overhead adds CUDA graphs
    cudnn_benchmark: bool = True  # CUDA: time cuDNN's conv algorithms once per input shape, keep the fastest
    fused_adam: bool = True  # one fused kernel per optimiser step instead of a loop over tensors
    small_conv_gemm: bool = True  # CPU: convs on inputs of <= 16x16 px through im2col + GEMM, not oneDNN
    keep_freed_memory: bool = True  # CPU, Linux: malloc keeps freed memory, no page faults every step


@dataclass
class LabelConfig:
    """Label-map datasets, read by ``task=segment`` and by ``task=translate`` with ``format=index``.

    Each split folder (or the dataset folder itself) holds ``images/`` (or ``B/``),
    ``labels/`` with class ids and, optionally, ``instances/`` with instance ids and
    ``confidence/`` with per-pixel loss weights (``synthesize --confidence`` writes
    them), paired by file name. The built-in data provides the first three.
    """

    format: LabelFormat = LabelFormat.RGB  # translate only; segment always reads class ids
    num_classes: int | None = None  # None: 1 + the largest id in the label maps (5 for the built-in data)
    image_folder: str | None = None  # None: images/, or B/ where there is no images/
    label_folder: str = "labels"
    instance_folder: str = "instances"  # optional; without it instances are connected components
    confidence_folder: str = "confidence"  # optional per-pixel loss weights (segment; 255 = 1); missing files: 1
    segmenter: str | None = None  # translate, index labels: a segment export; val/seg_miou = its mIoU on the outputs

    def validate(self, where: str = "labels") -> None:
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"{where}.num_classes={self.num_classes} must be at least 2 (background + one class)")
        if self.num_classes is not None and self.num_classes > 65536:
            raise ConfigError(f"{where}.num_classes={self.num_classes} does not fit a 16-bit label map")


@dataclass
class SegmentConfig:
    """``task=segment``: hybrid loss, U-Net weight map, paired augmentation, intensities.

    The loss is ``ce_weight * CE + dice_weight * soft Dice + boundary_weight * weighted CE``,
    the last weighted by the U-Net paper's map ``w_c(x) + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))``.
    """

    ce_weight: float = 1.0
    dice_weight: float = 1.0
    boundary_weight: float = 1.0
    adversarial: bool = False  # add loss.gan_weight x the PatchGAN loss on the predicted probabilities
    w0: float = 10.0
    sigma: float = 5.0  # pixels
    class_balance: bool = True  # w_c(x) from each image's class frequencies; 1 otherwise
    augment: bool = True  # flips, 90-degree rotations, affine and elastic deformation
    rotate_degrees: float = 15.0
    scale: float = 0.1  # affine zoom in [1 - scale, 1 + scale]
    elastic_alpha: float = 3.0  # kornia's alpha: about 1.7 px mean displacement on a 64-px crop with sigma 8
    elastic_sigma: float = 8.0  # smoothness of the displacement field, pixels
    intensity: Intensity = Intensity.DTYPE
    intensity_min: float = 0.0  # used by intensity=range
    intensity_max: float = 255.0
    instances: InstanceMode = InstanceMode.AUTO  # border class + seeded watershed, see tasks/instances.py
    prob_threshold: float | None = None  # foreground probability; None: tuned on validation at the end
    seed_threshold: float | None = None  # interior probability for watershed seeds; None: tuned
    min_size: int | None = None  # objects under this many pixels are dropped; None: tuned
    distance_head: bool = False  # instance mode: also regress each object's normalised distance to its border
    distance_weight: float = 1.0  # weight of that L1 loss
    # generator.deep_supervision: the segmentation loss of each head (the generator's order, the main head last),
    # summed with these weights; None: 1 / generator.num_heads each (the UNet++ paper's average)
    deep_weights: list[float] | None = None

    def validate(self, where: str = "segment") -> None:
        if self.distance_head and self.adversarial:
            raise ConfigError(f"{where}.distance_head cannot be combined with {where}.adversarial (D judges class "
                              "probabilities, not distances)")
        for name in ("ce_weight", "dice_weight", "boundary_weight", "w0", "rotate_degrees", "elastic_alpha",
                     "distance_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be >= 0")
        if self.ce_weight + self.dice_weight + self.boundary_weight <= 0:
            raise ConfigError(f"{where}: ce_weight, dice_weight and boundary_weight are all 0; nothing to learn")
        _positive(self, where, "sigma", "elastic_sigma")
        if not 0.0 <= self.scale < 1.0:
            raise ConfigError(f"{where}.scale={self.scale} must be in [0, 1)")
        if self.intensity_max <= self.intensity_min:
            raise ConfigError(
                f"{where}.intensity_max={self.intensity_max} must be above intensity_min={self.intensity_min}"
            )
        weights = self.deep_weights
        if weights is not None and (not isinstance(weights, list) or not weights or min(weights) < 0
                                    or sum(weights) <= 0):
            raise ConfigError(f"{where}.deep_weights={weights!r} must be a list of weights >= 0, not all 0")


@dataclass
class Degradation:
    """One degradation of ``task=restore``: applied to a sample with probability ``p``, at a strength
    drawn uniformly from ``[low, high]`` for each sample. ``p=0`` turns it off."""

    p: float = 0.0
    low: float = 0.0
    high: float = 0.0
    bounds: ClassVar[tuple[float, float]] = (0.0, math.inf)  # what low and high may be

    def validate(self, where: str) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"{where}.p={self.p} must be in [0, 1]")
        lo, hi = self.bounds
        for name in ("low", "high"):
            if not lo <= getattr(self, name) <= hi:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be in [{lo}, {hi}]")
        if self.low > self.high:
            raise ConfigError(f"{where}.low={self.low} is above high={self.high}")


@dataclass
class GaussianNoise(Degradation):
    """Additive noise; strength = its standard deviation on the [0, 1] intensity scale."""

    p: float = 0.5
    low: float = 0.01
    high: float = 0.08


@dataclass
class PoissonNoise(Degradation):
    """Shot noise; strength = photons at full intensity (fewer is noisier)."""

    p: float = 0.25
    low: float = 30.0
    high: float = 300.0
    bounds: ClassVar[tuple[float, float]] = (1.0, math.inf)


@dataclass
class GaussianBlur(Degradation):
    """Strength = the blur sigma in pixels."""

    p: float = 0.4
    low: float = 0.5
    high: float = 1.5
    bounds: ClassVar[tuple[float, float]] = (0.1, 10.0)


@dataclass
class MotionBlur(Degradation):
    """Strength = the length of the (odd-sized) kernel in pixels; the angle is random."""

    p: float = 0.2
    low: float = 3.0
    high: float = 7.0
    bounds: ClassVar[tuple[float, float]] = (3.0, 31.0)


@dataclass
class Jpeg(Degradation):
    """Strength = the JPEG quality (lower is worse)."""

    p: float = 0.4
    low: float = 30.0
    high: float = 90.0
    bounds: ClassVar[tuple[float, float]] = (1.0, 100.0)


@dataclass
class Downsample(Degradation):
    """Super-resolution: shrink by this factor (antialiased) and scale back up (bicubic)."""

    p: float = 0.2
    low: float = 1.5
    high: float = 3.0
    bounds: ClassVar[tuple[float, float]] = (1.0, 16.0)


@dataclass
class Inpaint(Degradation):
    """Holes to fill: strength = the number of random strokes and boxes. The hole mask is given
    to the generator as an extra input channel (only when ``p > 0``)."""

    p: float = 0.0
    low: float = 1.0
    high: float = 4.0
    bounds: ClassVar[tuple[float, float]] = (1.0, 32.0)


# --------------------------------------------------------------------------- second-order degradation


def _check_p(key: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ConfigError(f"{key}={value!r} must be a probability in [0, 1]")


def _check_range(key: str, values: list[float], lo: float, hi: float) -> None:
    """``values`` is a ``[low, high]`` pair with ``lo <= low <= high <= hi``."""
    if not (isinstance(values, list) and len(values) == 2 and all(isinstance(v, (int, float)) for v in values)):
        raise ConfigError(f"{key}={values!r} must be a [low, high] pair of numbers")
    low, high = values
    if not (lo <= low <= hi and lo <= high <= hi):
        raise ConfigError(f"{key}={values} must lie in [{lo}, {hi}]")
    if low > high:
        raise ConfigError(f"{key}={values}: low={low} is above high={high}")


def _check_probs(key: str, values: list[float], names: tuple[str, ...]) -> None:
    """``values`` holds one probability per name, summing to 1."""
    if not (isinstance(values, list) and len(values) == len(names)):
        raise ConfigError(f"{key}={values!r} must hold {len(names)} probabilities ({', '.join(names)})")
    for name, value in zip(names, values):
        _check_p(f"{key}[{name}]", value)
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ConfigError(f"{key}={values} must sum to 1, not {sum(values):g}")


@dataclass
class BlurStage:
    """A blur of the second-order degradation: each sample gets its own kernel, a Gaussian,
    generalized Gaussian or plateau shape (isotropic, or anisotropic at a random angle) or,
    with ``sinc_p``, a sinc (ringing) kernel. Kernels are zero-padded to 21 x 21 px."""

    p: float = 1.0  # chance that a sample is blurred at this stage
    kernel_size: list[int] = field(default_factory=lambda: [7, 21])  # [low, high] odd kernel side, px
    # chances of iso, aniso, generalized_iso, generalized_aniso, plateau_iso, plateau_aniso kernels
    kernel_probs: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_p: float = 0.1  # chance of a sinc kernel instead (cutoff pi/3..pi rad/px below 13 px, pi/5..pi from 13)
    sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])  # [low, high] kernel std along each axis, px
    betag: list[float] = field(default_factory=lambda: [0.5, 4.0])  # [low, high] generalized Gaussian shape, 1 = Gauss
    betap: list[float] = field(default_factory=lambda: [1.0, 2.0])  # [low, high] plateau shape, higher = flatter top

    KERNEL_TYPES: ClassVar[tuple[str, ...]] = (
        "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso",
    )
    MAX_KERNEL: ClassVar[int] = 21  # every kernel is zero-padded to this side, as Real-ESRGAN's

    def validate(self, where: str) -> None:
        _check_p(f"{where}.p", self.p)
        _check_range(f"{where}.kernel_size", self.kernel_size, 3, self.MAX_KERNEL)
        if any(not isinstance(s, int) or s % 2 == 0 for s in self.kernel_size):
            raise ConfigError(f"{where}.kernel_size={self.kernel_size} must be odd integers")
        _check_probs(f"{where}.kernel_probs", self.kernel_probs, self.KERNEL_TYPES)
        _check_p(f"{where}.sinc_p", self.sinc_p)
        _check_range(f"{where}.sigma", self.sigma, 0.05, 20.0)
        _check_range(f"{where}.betag", self.betag, 0.05, 20.0)
        _check_range(f"{where}.betap", self.betap, 0.05, 20.0)


@dataclass
class SecondBlurStage(BlurStage):
    """The second-order blur: applied to 80 % of the samples, with smaller kernels."""

    p: float = 0.8  # chance that a sample is blurred at this stage
    sigma: list[float] = field(default_factory=lambda: [0.2, 1.5])  # [low, high] kernel std along each axis, px


@dataclass
class ResizeStage:
    """A random resize of the second-order degradation: up, down or kept, then area, bilinear or
    bicubic interpolation at random."""

    probs: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])  # chances of up, down, keep
    # [low, high] resize factor: down draws from [low, 1], up from [1, high]
    factor: list[float] = field(default_factory=lambda: [0.15, 1.5])

    CHOICES: ClassVar[tuple[str, ...]] = ("up", "down", "keep")

    def validate(self, where: str) -> None:
        _check_probs(f"{where}.probs", self.probs, self.CHOICES)
        _check_range(f"{where}.factor", self.factor, 0.01, 16.0)
        if not self.factor[0] <= 1.0 <= self.factor[1]:
            raise ConfigError(f"{where}.factor={self.factor} must hold 1 (down draws from [low, 1], up from [1, high])")


@dataclass
class SecondResizeStage(ResizeStage):
    """The second-order resize, relative to the working size ``(H / scale, W / scale)``."""

    probs: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.3])  # chances of up, down, keep
    # [low, high] resize factor: down draws from [low, 1], up from [1, high]
    factor: list[float] = field(default_factory=lambda: [0.3, 1.2])


@dataclass
class NoiseStage:
    """Noise of the second-order degradation: Gaussian, else Poisson (shot) noise; the same on every
    channel ("gray") with ``gray_p``, which is all a one-channel image gets."""

    p: float = 1.0  # chance that a sample gets noise at this stage (Real-ESRGAN: always)
    gaussian_p: float = 0.5  # chance the noise is Gaussian, else Poisson
    sigma: list[float] = field(default_factory=lambda: [1.0, 30.0])  # [low, high] Gaussian std, 0-255 scale
    poisson_scale: list[float] = field(default_factory=lambda: [0.05, 3.0])  # [low, high] factor on the shot noise
    gray_p: float = 0.4  # chance the noise is one field shared by all channels

    def validate(self, where: str) -> None:
        _check_p(f"{where}.p", self.p)
        _check_p(f"{where}.gaussian_p", self.gaussian_p)
        _check_range(f"{where}.sigma", self.sigma, 0.0, 255.0)
        _check_range(f"{where}.poisson_scale", self.poisson_scale, 0.0, 100.0)
        _check_p(f"{where}.gray_p", self.gray_p)


@dataclass
class SecondNoiseStage(NoiseStage):
    """The second-order noise: a little weaker."""

    sigma: list[float] = field(default_factory=lambda: [1.0, 25.0])  # [low, high] Gaussian std, 0-255 scale
    poisson_scale: list[float] = field(default_factory=lambda: [0.05, 2.5])  # [low, high] factor on the shot noise


@dataclass
class JpegStage:
    """JPEG compression of the second-order degradation, at a quality drawn per sample."""

    p: float = 1.0  # chance that a sample is compressed at this stage (Real-ESRGAN: always)
    quality: list[float] = field(default_factory=lambda: [30.0, 95.0])  # [low, high] JPEG quality, 1-100

    def validate(self, where: str) -> None:
        _check_p(f"{where}.p", self.p)
        _check_range(f"{where}.quality", self.quality, 1.0, 100.0)


@dataclass
class FinalStage:
    """The last step: [resize to the working size + sinc] and the second JPEG, in a random order."""

    sinc_p: float = 0.8  # chance of the final sinc filter (cutoff pi/3..pi rad/px), else none
    kernel_size: list[int] = field(default_factory=lambda: [7, 21])  # [low, high] odd sinc kernel side, px
    resize_first_p: float = 0.5  # chance of [resize + sinc] then JPEG, else JPEG then [resize + sinc]

    def validate(self, where: str) -> None:
        _check_p(f"{where}.sinc_p", self.sinc_p)
        _check_range(f"{where}.kernel_size", self.kernel_size, 3, BlurStage.MAX_KERNEL)
        if any(not isinstance(s, int) or s % 2 == 0 for s in self.kernel_size):
            raise ConfigError(f"{where}.kernel_size={self.kernel_size} must be odd integers")
        _check_p(f"{where}.resize_first_p", self.resize_first_p)


@dataclass
class SecondOrderConfig:
    """Real-ESRGAN's second-order degradation (Wang et al. 2021) for ``task=restore``, with its
    published defaults: blur, resize, noise, JPEG, then blur, resize, noise and the final
    [resize + sinc] / JPEG pair. Its second half works at ``(H / scale, W / scale)`` as
    Real-ESRGAN's x``scale`` models do; the result is resized back to the clean image's size.
    Every sample draws its own kernels and parameters (:mod:`pix2pix_unet.data.second_order`).
    """

    enabled: bool = False  # degrade with this pipeline (how often is decided by the restore task)
    scale: int = 4  # the working size after the second order is (H / scale, W / scale), px
    blur1: BlurStage = field(default_factory=BlurStage)  # first-order blur
    resize1: ResizeStage = field(default_factory=ResizeStage)  # first-order resize, relative to (H, W)
    noise1: NoiseStage = field(default_factory=NoiseStage)  # first-order noise
    jpeg1: JpegStage = field(default_factory=JpegStage)  # first-order JPEG
    blur2: SecondBlurStage = field(default_factory=SecondBlurStage)  # second-order blur
    resize2: SecondResizeStage = field(default_factory=SecondResizeStage)  # relative to (H / scale, W / scale)
    noise2: SecondNoiseStage = field(default_factory=SecondNoiseStage)  # second-order noise
    jpeg2: JpegStage = field(default_factory=JpegStage)  # second-order JPEG, ordered with the final sinc
    final: FinalStage = field(default_factory=FinalStage)  # final sinc and the order of the last two steps

    def validate(self, where: str = "restore.second_order") -> None:
        if not (isinstance(self.scale, int) and self.scale >= 1):
            raise ConfigError(f"{where}.scale={self.scale!r} must be an integer >= 1")
        for f in dataclasses.fields(self):
            stage = getattr(self, f.name)
            if dataclasses.is_dataclass(stage):
                stage.validate(f"{where}.{f.name}")


@dataclass
class RestoreConfig:
    """``task=restore``: degradations made on the fly on the device, in this order.

    Validation degrades with the fixed ``val_seed``, so its numbers are comparable
    from one evaluation (and one run) to the next.
    """

    gaussian_blur: GaussianBlur = field(default_factory=GaussianBlur)
    motion_blur: MotionBlur = field(default_factory=MotionBlur)
    downsample: Downsample = field(default_factory=Downsample)
    gaussian_noise: GaussianNoise = field(default_factory=GaussianNoise)
    poisson_noise: PoissonNoise = field(default_factory=PoissonNoise)
    jpeg: Jpeg = field(default_factory=Jpeg)
    inpaint: Inpaint = field(default_factory=Inpaint)
    # Real-ESRGAN's second-order pipeline; enabled, it degrades every image in place of the ones above
    # (holes, with inpaint.p > 0, still come last)
    second_order: SecondOrderConfig = field(default_factory=SecondOrderConfig)
    val_seed: int = 1234
    # how file values map to the model's [-1, 1] and back (as segment.intensity); `range` suits dim 16-bit
    # microscopy: the degradation strengths are then relative to [intensity_min, intensity_max]
    intensity: Intensity = Intensity.DTYPE
    intensity_min: float = 0.0  # used by intensity=range
    intensity_max: float = 255.0
    # the model and its objective: PSNR first, the GAN and perceptual terms opt-in
    residual: bool = True  # output = input + G(input) (sets generator.residual)
    pixel_loss: PixelLoss = PixelLoss.CHARBONNIER  # to the clean image, on the [0, 1] scale
    charbonnier_eps: float = 1e-3
    gan_weight: float = 0.0  # PatchGAN term (loss.gan's kind); 0.01 is pix2pix's 1:100 to the pixel loss
    perceptual_weight: float = 0.0  # L1 between VGG16 features (relu1_2 ... relu4_3) of output and clean image
    vgg_weights: str | None = None  # torchvision's vgg16 state dict; None: the torch hub cache's vgg16-397923af.pth

    def degradations(self) -> dict[str, Degradation]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), Degradation)}

    def validate(self, where: str = "restore") -> None:
        for name, degradation in self.degradations().items():
            degradation.validate(f"{where}.{name}")
        self.second_order.validate(f"{where}.second_order")
        _positive(self, where, "charbonnier_eps")
        if self.intensity_max <= self.intensity_min:
            raise ConfigError(
                f"{where}.intensity_max={self.intensity_max} must be above intensity_min={self.intensity_min}"
            )
        for name in ("gan_weight", "perceptual_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}={getattr(self, name)} must be >= 0")


@dataclass
class TrainConfig:
    generator: UNetConfig = field(default_factory=UNetConfig)
    discriminator: PatchGANConfig = field(default_factory=PatchGANConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    output_dir: str = "runs/pix2pix"
    max_steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    mixed_precision: MixedPrecision = MixedPrecision.NO
    seed: int = 0
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    num_samples: int = 4  # rows in each sample grid
    ema: bool = False
    ema_decay: float = 0.999
    wandb: bool = True
    wandb_project: str = "pix2pix-unet"
    task: Task = Task.TRANSLATE
    labels: LabelConfig = field(default_factory=LabelConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    restore: RestoreConfig = field(default_factory=RestoreConfig)
    max_bad_steps: int = 5  # stop after this many steps in a row skipped for a NaN/inf loss or gradient
    init_from: str | None = None  # start G from this export's weights (fine-tuning; same architecture and channels)
    best_metric: str = "val/l1"  # rotation also keeps the checkpoint with the best value of this
    best_mode: MetricMode = MetricMode.MIN

    def validate(self) -> None:
        self.generator.validate()
        self.discriminator.validate()
        self.optim.validate()
        self.data.validate()
        self.loss.validate()
        _check_gan_variant(self)
        _positive(
            self, "", "max_steps", "batch_size", "grad_accum", "log_every", "sample_every",
            "checkpoint_every", "keep_checkpoints", "num_samples",
        )
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay} must be in (0, 1)")
        self.labels.validate()
        self.segment.validate()
        self.restore.validate()
        _positive(self, "", "max_bad_steps")
        check_combinations(self)


def patchgan_min_size(n_layers: int, num_scales: int = 1) -> int:
    """Smallest input side for which every scale of the N-layer PatchGAN still outputs one logit.

    Each of its ``n_layers`` 4x4 stride-2 convs (padding 1) halves the side and the
    two 4x4 stride-1 convs at the end each take one pixel off, so a scale needs
    ``3 * 2**n_layers`` px; each further scale sees the input average-pooled by 2
    (3x3, stride 2, padding 1: ``ceil(s / 2)``), which ``2 * s - 1`` px survive.
    """
    size = 3 * 2**n_layers
    for _ in range(num_scales - 1):
        size = 2 * size - 1
    return size


def check_combinations(cfg: TrainConfig) -> None:
    """Options that are valid alone but cannot work together; the message names the keys."""
    builtin = cfg.data.path == "builtin"
    # Other tasks set the generator's channels from the data themselves (pix2pix_unet/tasks).
    rgb_pairs = cfg.task is Task.TRANSLATE and cfg.labels.format is LabelFormat.RGB
    if builtin and rgb_pairs and (cfg.generator.in_channels, cfg.generator.out_channels) != (3, 3):
        raise ConfigError(
            f"generator.in_channels={cfg.generator.in_channels} and generator.out_channels="
            f"{cfg.generator.out_channels}: the built-in data (data.path=builtin) is RGB on both sides, "
            f"so both must be 3"
        )
    loaded = cfg.data.load_size or (cfg.data.builtin_size if builtin else None)
    if builtin and cfg.data.crop_size and cfg.data.crop_size > loaded:
        raise ConfigError(
            f"data.crop_size={cfg.data.crop_size} is larger than the built-in images "
            f"({'data.load_size' if cfg.data.load_size else 'data.builtin_size'}={loaded})"
        )
    sizes = [("data.crop_size", cfg.data.crop_size), ("data.load_size", cfg.data.load_size),
             ("data.builtin_size", cfg.data.builtin_size if builtin else None)]
    size_key, size = next(((k, v) for k, v in sizes if v), ("", None))  # what D will see in training
    if size and cfg.discriminator.kind is DiscriminatorKind.NLAYER:
        need = patchgan_min_size(cfg.discriminator.n_layers, cfg.discriminator.num_scales)
        if size < need:
            scales = f" with num_scales={cfg.discriminator.num_scales}" if cfg.discriminator.num_scales > 1 else ""
            raise ConfigError(
                f"discriminator.n_layers={cfg.discriminator.n_layers}{scales} needs training images of at least "
                f"{need} px (its output would be empty), but {size_key}={size}; lower n_layers or use larger images"
            )
    _check_deep_supervision(cfg)
    encoder_options = cfg.optim.encoder_lr_factor != 1.0 or cfg.optim.freeze_encoder_steps > 0
    if encoder_options and cfg.generator.architecture is not Architecture.TIMM_UNET:
        raise ConfigError(
            f"optim.encoder_lr_factor={cfg.optim.encoder_lr_factor} and optim.freeze_encoder_steps="
            f"{cfg.optim.freeze_encoder_steps} apply to a pretrained encoder, but generator.architecture="
            f"{cfg.generator.architecture.value} has none (use architecture=timm-unet, e.g. preset resnet34-unet)"
        )
    if cfg.generator.norm is Norm.GROUP and cfg.generator.max_channels % cfg.generator.norm_groups:
        raise ConfigError(
            f"generator.norm_groups={cfg.generator.norm_groups} must divide generator.max_channels="
            f"{cfg.generator.max_channels} for group norm"
        )


def _check_deep_supervision(cfg: TrainConfig) -> None:
    """Deep supervision trains its extra heads in the segment objective only."""
    gen, weights = cfg.generator, cfg.segment.deep_weights
    if gen.deep_supervision and cfg.task is not Task.SEGMENT and gen.deep_output is DeepOutput.LAST:
        raise ConfigError(
            f"generator.deep_supervision=true: task={cfg.task.value} trains the last head only, so the other "
            f"{gen.num_heads - 1} would stay untrained; use task=segment, generator.deep_output=mean (all heads "
            "train through their mean) or generator.deep_supervision=false"
        )
    if weights is not None and not gen.deep_supervision:
        raise ConfigError(f"segment.deep_weights={weights} weighs deep-supervision heads, but "
                          "generator.deep_supervision=false")
    if weights is not None and len(weights) != gen.num_heads:
        raise ConfigError(f"segment.deep_weights={weights} has {len(weights)} weights, but the generator "
                          f"(architecture={gen.architecture.value}, depth={gen.depth}) has {gen.num_heads} heads")


def _check_gan_variant(cfg: TrainConfig) -> None:
    """Combinations of discriminator, loss and optimisation options that cannot work together."""
    if cfg.loss.gan is GanLoss.WGAN_GP and cfg.discriminator.norm is Norm.BATCH:
        # The penalty constrains D's gradient per sample; batch norm makes each output depend on the whole batch.
        raise ConfigError(
            "loss.gan=wgan-gp needs a per-sample discriminator norm (discriminator.norm=instance, group or none), "
            "got discriminator.norm=batch"
        )
    if cfg.optim.d_steps_per_g > 1 and cfg.grad_accum > 1:
        raise ConfigError(
            f"optim.d_steps_per_g={cfg.optim.d_steps_per_g} cannot be combined with grad_accum={cfg.grad_accum}: "
            "the repeated discriminator updates would accumulate into one"
        )


@dataclass
class InferenceConfig:
    """How ``predict`` and ``evaluate`` run a generator on images of any size.

    Images of at most ``tile_above_mp`` megapixels run whole (padded to the UNet's
    multiple and cropped back); larger ones run as overlapping ``tile`` x ``tile``
    tiles blended with ``window``. ``tile`` must be a multiple of the generator's
    ``2 ** depth``; the step between tiles is rounded down to one.
    """

    batch_size: int = 4  # images of one size, or tiles, per forward pass
    tile: int = 512
    overlap: int = 128
    window: BlendWindow = BlendWindow.LINEAR
    tile_above_mp: float = 4.0  # tile images with more megapixels than this; 0 tiles every image
    output_dtype: OutputDtype = OutputDtype.INPUT
    precision: MixedPrecision = MixedPrecision.NO  # bf16/fp16: autocast the generator (outputs stay float32)
    compile: bool = False  # torch.compile the generator: slow first batch (and per new size), faster after
    compile_mode: CompileMode = CompileMode.DEFAULT  # reduce-overhead: CUDA graphs, for small batches
    tta: bool = False  # average the outputs of the 8 flips / 90-degree rotations (8x the compute)

    def validate(self, where: str = "inference") -> None:
        _positive(self, where, "batch_size", "tile")
        if not 0 <= self.overlap < self.tile:
            raise ConfigError(f"{where}.overlap={self.overlap} must be in [0, tile={self.tile})")
        if self.tile_above_mp < 0:
            raise ConfigError(f"{where}.tile_above_mp={self.tile_above_mp} must be >= 0")


def _positive(obj: Any, where: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            key = f"{where}.{name}" if where else name
            raise ConfigError(f"{key}={value} must be positive")


# --------------------------------------------------------------------------- presets

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


# --------------------------------------------------------------------------- (de)serialisation

T = TypeVar("T")


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict (enums become their values)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        return value

    return convert(config)


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking every key and type.

    A ``preset`` key inside ``generator`` starts from that preset.
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    base: Any = cls()
    if cls is UNetConfig and "preset" in data:
        name = data.pop("preset")
        if name not in GENERATOR_PRESETS:
            raise ConfigError(f"{where}.preset={name!r} is not one of {sorted(GENERATOR_PRESETS)}")
        base = copy.deepcopy(GENERATOR_PRESETS[name])  # deep: a preset must never share its lists
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; valid keys here: {sorted(names)}")
        setattr(base, key, _coerce(hints[key], value, path))
    return base


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return from_dict(tp, value, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, bool):  # YAML 1.1 reads on/off (and yes/no) as booleans
            value = "on" if value else "off"
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(f"{path}={value!r} is not one of {[m.value for m in tp]}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}={value!r} must be true or false")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" (no dot) as a string
            return tp(value)
        except ValueError:
            raise ConfigError(f"{path}={value!r} must be of type {tp.__name__}") from None
    if tp in (int, float, str) and not (isinstance(value, tp) and not isinstance(value, bool)):
        raise ConfigError(f"{path}={value!r} must be of type {tp.__name__}")
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` strings (values parsed as YAML) to a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.subkey=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML file (optional), apply overrides, build and validate a :class:`TrainConfig`."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
    saved = data.pop("version", None) is not None  # written by save_config: a run's own, complete config
    data = apply_overrides(data, overrides or [])
    if not saved:
        data = with_task_preset(data)
    config = from_dict(TrainConfig, data)
    config.validate()
    return config


# The generator preset a task starts from when the config names none (keys set on top still apply).
TASK_PRESETS: dict[Task, str] = {Task.RESTORE: "nafnet"}


def with_task_preset(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``generator.preset`` set to its task's :data:`TASK_PRESETS` entry when it names no preset."""
    try:
        task = Task(data.get("task", Task.TRANSLATE.value))
    except ValueError:
        return data  # from_dict names the bad value
    generator = data.get("generator") or {}
    if task not in TASK_PRESETS or not isinstance(generator, dict) or "preset" in generator:
        return data
    return {**data, "generator": {"preset": TASK_PRESETS[task], **generator}}


def save_config(config: Any, path: str | Path, **extra: Any) -> None:
    """Write ``config`` (plus ``extra`` top-level keys such as the version) as YAML."""
    data = {**extra, **to_dict(config)}
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
