"""A training run: the objective, the optimiser, speed options and :class:`TrainConfig`, which holds every
section, with the checks of options that cannot work together."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import ConfigError, _positive
from .data import DataConfig, LabelConfig
from .enums import (
    Architecture, CompileMode, ConvUnit, DeepOutput, DiscriminatorKind, ExportWeights, GanLoss, LabelFormat, LrDecay,
    LrScaling,
    MetricMode, MixedPrecision, Norm, Switch, Task,
)
from .model import PatchGANConfig, UNetConfig, patchgan_min_size
from .restore import RestoreConfig
from .segment import SegmentConfig
from .unpaired import FidConfig, UnpairedConfig


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
    """Adam for both nets (AdamW, decoupled weight decay, with ``weight_decay`` > 0); lr is constant, then
    decays to 0 at ``max_steps`` (linearly, or along half a cosine)."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_start: float = 0.5  # fraction of max_steps after which the lr decays
    decay: LrDecay = LrDecay.LINEAR
    weight_decay: float = 0.0  # AdamW's decoupled weight decay on G (D keeps plain Adam)
    d_steps_per_g: int = 1  # discriminator updates (on the same batch) before each generator update
    lr_scaling: LrScaling = LrScaling.NONE  # scale both lrs by the global batch (batch x accum x processes)
    base_batch_size: int = 1  # the global batch lr_g and lr_d were tuned for (pix2pix: 1)
    # generator.architecture=timm-unet: the encoder learns at lr_g x encoder_lr_factor, and not at all (lr 0)
    # for its first freeze_encoder_steps steps, while the randomly initialised decoder catches up
    encoder_lr_factor: float = 1.0
    freeze_encoder_steps: int = 0

    def validate(self, where: str = "optim") -> None:
        _positive(self, where, "lr_g", "lr_d", "d_steps_per_g", "base_batch_size")
        if self.weight_decay < 0:
            raise ConfigError(f"{where}.weight_decay={self.weight_decay} must be >= 0")
        if self.encoder_lr_factor < 0:
            raise ConfigError(f"{where}.encoder_lr_factor={self.encoder_lr_factor} must be >= 0")
        if self.freeze_encoder_steps < 0:
            raise ConfigError(f"{where}.freeze_encoder_steps={self.freeze_encoder_steps} must be >= 0")
        if not 0.0 <= self.decay_start <= 1.0:
            raise ConfigError(f"{where}.decay_start={self.decay_start} must be in [0, 1]")


@dataclass
class PerfConfig:
    """Speed options; none changes the maths beyond floating-point rounding.

    What each does and why the automatic choices are what they are (measured):
    :mod:`pix2pix_unet.training.perf`. The two CPU options are :class:`Switch` es: ``auto`` times the run's
    own step with each setting at the start of a CPU run and keeps the faster (recorded in the run folder's
    ``perf.json``, which a resumed run reuses); ``true``/``on`` and ``false``/``off`` are kept as given.
    """

    channels_last: bool | None = None  # NHWC G and D; None = both with CUDA, only D on CPU (measured faster)
    compile: bool | None = None  # torch.compile G and D in place; None = on when CUDA is available
    compile_mode: CompileMode = CompileMode.DEFAULT  # reduce-overhead adds CUDA graphs
    cudnn_benchmark: bool = True  # CUDA: time cuDNN's conv algorithms once per input shape, keep the fastest
    fused_adam: bool = True  # one fused kernel per optimiser step instead of a loop over tensors
    small_conv_gemm: Switch = Switch.AUTO  # CPU: convs on inputs of <= 16x16 px through im2col + GEMM, not oneDNN
    keep_freed_memory: Switch = Switch.AUTO  # CPU, Linux: malloc keeps freed memory, no page faults every step

    def __post_init__(self) -> None:
        for name in ("small_conv_gemm", "keep_freed_memory"):  # PerfConfig(small_conv_gemm=False) from code
            value = getattr(self, name)
            if isinstance(value, bool):
                setattr(self, name, Switch.ON if value else Switch.OFF)


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
    unpaired: UnpairedConfig = field(default_factory=UnpairedConfig)
    fid: FidConfig = field(default_factory=FidConfig)  # FID/KID of translate and unpaired outputs
    max_bad_steps: int = 5  # stop after this many steps in a row skipped for a NaN/inf loss or gradient
    init_from: str | None = None  # start G from this export's weights (fine-tuning; same architecture and channels)
    # rotation also keeps the checkpoint with the best value of this; None: the task's own (val/l1 translate,
    # val/miou segment, val/psnr restore). best_mode None: the task's own for its own metric, else min
    best_metric: str | None = None
    best_mode: MetricMode | None = None
    export: ExportWeights = ExportWeights.BEST  # what checkpoints/generator holds: the best checkpoint, or the last
    plan: bool = True  # folder data: settings the user did not set come from the dataset's plan (plan.json)
    # wall-clock seconds for the whole run: a warm-up of the first steps fixes max_steps (then a cap) to fit
    budget_s: float | None = None
    # several processes: how long one may wait for the others in a collective before the run fails. It must
    # cover the main process's validation, final threshold tuning and checkpoint export, which the others
    # wait out in their next collective (Accelerate's default, 10 min with NCCL, would end a long validation)
    process_group_timeout_s: float = 7200.0

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
        if self.budget_s is not None and self.budget_s <= 0:
            raise ConfigError(f"budget_s={self.budget_s} must be a positive number of seconds")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay} must be in (0, 1)")
        self.labels.validate()
        self.segment.validate()
        self.restore.validate()
        self.unpaired.validate()
        _positive(self, "", "max_bad_steps", "process_group_timeout_s")
        check_combinations(self)


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
    _check_unpaired(cfg)
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


def _check_unpaired(cfg: TrainConfig) -> None:
    """CUT compares the UNet encoder's feature maps; the layers it names must exist."""
    if cfg.task is not Task.UNPAIRED or not cfg.unpaired.cut:
        return
    gen = cfg.generator
    if gen.architecture is not Architecture.UNET:
        raise ConfigError(f"unpaired.mode={cfg.unpaired.mode.value} compares the encoder's features, which "
                          f"generator.architecture={gen.architecture.value} does not expose; use architecture=unet "
                          "or unpaired.mode=cyclegan")
    count = gen.depth + 1 if gen.conv_unit is ConvUnit.NONE else gen.depth + 2
    bad = [i for i in cfg.unpaired.layers(count) if i >= count]
    if bad:
        raise ConfigError(f"unpaired.nce_layers={cfg.unpaired.nce_layers}: the generator (depth={gen.depth}) has "
                          f"{count} feature layers (0..{count - 1}: the input, the stem, then each level); "
                          f"{bad} do not exist")


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
