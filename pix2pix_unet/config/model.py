"""The networks' settings: the generator (:class:`UNetConfig` and its transformer and encoder parts) and
the PatchGAN discriminator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .base import ConfigError, _positive
from .enums import (
    Activation, Architecture, Bottleneck, ConvUnit, DeepOutput, DiscriminatorKind, Down, FinalActivation, Norm,
    PositionEmbedding, Skip, Up,
)


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
    top_skip: bool = True  # false: the full-resolution skip is dropped (N2V2: it carries checkerboard artefacts)
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
    dims: int = 2  # 2: images (B, C, H, W); 3: volumes (B, C, D, H, W), every block built in 3D
    # dims=3: the voxel size (z, y, x), any unit; kernels and pooling follow it (nnU-Net's rule, `kernels`,
    # `strides`). None: isotropic voxels
    spacing: list[float] | None = None

    @property
    def factor(self) -> int:
        """Input heights and widths are padded up to a multiple of this (``axis_factors`` for every axis)."""
        return 2**self.depth

    @property
    def strides(self) -> list[tuple[int, ...]]:
        """The stride per spatial axis of each of the ``depth`` downsamplings, finest first.

        nnU-Net's rule for anisotropic voxels: an axis is pooled only while its spacing is within 2x of the
        finest axis's, and pooling doubles the spacing of the axes it halves, so a coarse z axis waits until
        the in-plane spacing has caught up. Isotropic voxels (and 2D) halve every axis at every level.
        """
        return self._plan()[1]

    @property
    def kernels(self) -> list[tuple[int, ...]]:
        """The conv kernel per spatial axis at each resolution (0: full, then after each downsampling): 3, but 1
        on an axis whose spacing is over 2x the finest's (nnU-Net's 1 x 3 x 3 kernels on a coarse z axis until
        the spacings meet)."""
        return self._plan()[0]

    @property
    def axis_factors(self) -> tuple[int, ...]:
        """Each spatial axis is padded up to a multiple of its factor: the product of its strides."""
        factors = [1] * self.dims
        for stride in self.strides:
            factors = [f * s for f, s in zip(factors, stride)]
        return tuple(factors)

    def _plan(self) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        spacing = list(self.spacing) if self.spacing is not None else [1.0] * self.dims
        kernels, strides = [], []
        for level in range(self.depth + 1):
            finest = min(spacing)
            near = [s <= 2 * finest for s in spacing]
            kernels.append(tuple(3 if n else 1 for n in near))
            if level < self.depth:
                strides.append(tuple(2 if n else 1 for n in near))
                spacing = [s * st for s, st in zip(spacing, strides[-1])]
        return kernels, strides

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
        if self.skip is Skip.NONE:
            raise ConfigError(f"{where}.skip=none would drop every skip (an autoencoder, not a UNet); use "
                              f"{where}.top_skip=false to drop the full-resolution one")
        self._validate_topology(where)
        self._validate_dims(where)
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

    def _validate_dims(self, where: str) -> None:
        """2D or 3D, the spacing's length, and which blocks are built in 3D."""
        if self.dims not in (2, 3):
            raise ConfigError(f"{where}.dims={self.dims!r} must be 2 (images) or 3 (volumes)")
        if self.spacing is not None:
            spacing = self.spacing
            if (not isinstance(spacing, (list, tuple)) or len(spacing) != self.dims
                    or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in spacing)):
                raise ConfigError(f"{where}.spacing={spacing!r} must be {self.dims} positive voxel sizes "
                                  f"({'z, y, x' if self.dims == 3 else 'y, x'})")
        if self.dims == 2:
            return
        unsupported = {
            "architecture": (self.architecture, {Architecture.UNET}),
            "down": (self.down, {Down.STRIDED, Down.MAXPOOL, Down.AVGPOOL}),
            "bottleneck": (self.bottleneck, {Bottleneck.NONE, Bottleneck.ASPP}),
        }
        for key, (value, allowed) in unsupported.items():
            if value not in allowed:
                raise ConfigError(f"{where}.{key}={value.value} is not built in 3D ({where}.dims=3); use one of "
                                  f"{', '.join(sorted(a.value for a in allowed))}")
        if self.noise_channels:
            raise ConfigError(f"{where}.noise_channels={self.noise_channels} (SPADE) is not built in 3D")

    def _validate_topology(self, where: str) -> None:
        """The options of the nested (unet++) and full-scale (unet3+) topologies."""
        arch = f"{where}.architecture={self.architecture.value}"
        if not self.top_skip and self.architecture is not Architecture.UNET:
            raise ConfigError(f"{where}.top_skip=false applies to architecture=unet only, got {arch}")
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
