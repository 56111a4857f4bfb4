"""The typed choices of the config: each a ``str`` enum whose values are what YAML and ``KEY=VALUE`` accept."""

from __future__ import annotations

import enum


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
    BLURPOOL = "blurpool"  # N2V2 (Höck et al. 2022): 2x2 max at stride 1, then a binomial blur at stride 2


class Up(str, enum.Enum):
    TRANSPOSED = "transposed"  # 4x4 stride-2 transposed conv (pix2pix)
    BILINEAR = "bilinear"  # bilinear resize then 3x3 conv
    NEAREST = "nearest"  # nearest resize then 3x3 conv


class Skip(str, enum.Enum):
    CONCAT = "concat"
    ATTENTION = "attention"  # Attention U-Net: a [0, 1] gate from the coarser level weights the skip, then concat
    NONE = "none"  # no skip: the decoder level sees the upsampled coarser features only (set by `top_skip=false`)


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


class LrDecay(str, enum.Enum):
    """The shape of the lr's decay from ``optim.decay_start`` to 0 at ``max_steps`` (``optim.decay``)."""

    LINEAR = "linear"  # pix2pix's straight line
    COSINE = "cosine"  # half a cosine: slow at first, slow again near 0


class Task(str, enum.Enum):
    """What the generator learns; each task brings its data, losses and metrics (``pix2pix_unet/tasks``)."""

    TRANSLATE = "translate"  # image or label map -> image, with the pix2pix losses
    SEGMENT = "segment"  # image -> per-class logits
    RESTORE = "restore"  # degraded image -> clean image
    UNPAIRED = "unpaired"  # domain A -> domain B from unpaired folders (CycleGAN, CUT, FastCUT)


class Contrast(str, enum.Enum):
    """How an unpaired translation's output should relate to its input's contrast (the inversion warning)."""

    SAME = "same"  # the domains share a structure and its polarity (a stain change): warn on correlation <= -0.5
    INVERTED = "inverted"  # B shows A's structure inverted (fluorescence -> brightfield): warn on >= +0.5
    ANY = "any"  # no expectation, no warning


class FidWhen(str, enum.Enum):
    """When FID and KID of a generator's outputs are measured (translate and unpaired; they cost an Inception
    pass per image)."""

    OFF = "off"
    REPORT = "report"  # by `evaluate` and the run's final figures only
    VALIDATION = "validation"  # at every validation too (and they can then choose the exported checkpoint)


class UnpairedMode(str, enum.Enum):
    """How ``task=unpaired`` learns A -> B without pairs."""

    CYCLEGAN = "cyclegan"  # two generators, two discriminators, cycle + identity losses (Zhu et al. 2017)
    CUT = "cut"  # one generator, PatchNCE between input and output patches + its identity term (Park et al. 2020)
    FASTCUT = "fastcut"  # CUT with a 10x NCE weight, no identity term, and flip equivariance


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


class Switch(str, enum.Enum):
    """A speed option that can be measured: ``auto`` times the run's own step with it on and off at the start
    of the run and keeps the faster (pix2pix_unet/training/perf.py); ``on`` and ``off`` skip the measurement."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class Intensity(str, enum.Enum):
    """How image intensities are mapped to [-1, 1]."""

    DTYPE = "dtype"  # by bit depth: 8-bit / 255, 16-bit / 65535
    IMAGE = "image"  # each image's own min..max
    RANGE = "range"  # the configured intensity_min..intensity_max, clipped


class SelfSupervised(str, enum.Enum):
    """How ``task=restore`` learns: from clean images it degrades, or from noisy images alone."""

    NONE = "none"  # clean images, degraded on the fly
    NEIGHBOR2NEIGHBOR = "neighbor2neighbor"  # noisy images: random neighbour sub-images predict each other
    BLIND_SPOT = "blind_spot"  # noisy images: masked pixels, replaced by a neighbour median, are predicted (N2V2)


class PixelLoss(str, enum.Enum):
    L1 = "l1"
    CHARBONNIER = "charbonnier"  # sqrt(d^2 + eps^2): L1 that is smooth at 0


class MetricMode(str, enum.Enum):
    """Whether a lower or a higher value of a validation metric is better."""

    MIN = "min"
    MAX = "max"


class ExportWeights(str, enum.Enum):
    """Which weights a run's generator export (``checkpoints/generator``) holds at the end of training."""

    BEST = "best"  # the best checkpoint by best_metric (the last where no checkpoint was measured)
    LAST = "last"  # the weights of the last step


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
