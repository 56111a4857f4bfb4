"""File <-> tensor rules every task shares: image channels, bit depth and intensity, class ids, hole masks.

:mod:`pix2pix_unet.io` reads a file into pixels in the file's own dtype; this
module turns those pixels into what a generator takes, and a generator's output
back into pixels. The tasks (``tasks/<task>.py``) compose these rules; their
datasets, validation, ``predict``, ``evaluate`` and ``synthesize`` all decode
through them, so a rule set in training holds everywhere.

Intensity rules (``segment.intensity``) map a file's values to [-1, 1]:

============ ========================================================================
``dtype``    by bit depth: uint8 0..255, uint16 0..65535, float 0..1
``image``    each image's own min..max (of the whole image, also when it is tiled)
``range``    the fixed ``(low, high)`` in the file's units, clipped
============ ========================================================================

:meth:`ImageCodec.encode` inverts the same map, so an output lands in its input's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from . import io
from .config import Intensity, OutputDtype
from .errors import DatasetError
from .io import ChannelError, ImageFile
from .volume_io import LazyVoxels, Spacing, Volume, read_volume


@dataclass
class Decoded:
    """One decoded input file.

    Attributes:
        tensor: ``(C, H, W)`` float32, the generator's input (values in [-1, 1]; one-hot for label maps);
            ``(C, Z, Y, X)`` for a volume.
        path: the file it came from.
        image: the pixels as read (their dtype and values drive :meth:`ImageCodec.encode` and overlays);
            None for label maps.
        scale: the ``(low, high)`` of the file's units that were mapped to [-1, 1].
    """

    tensor: torch.Tensor
    path: Path
    image: ImageFile | None = None
    scale: tuple[float, float] = (0.0, 255.0)
    volume: Volume | None = None  # a volume's voxels ``(Z, Y, X, C)`` and spacing (the tensor is ``(C, Z, Y, X)``)
    blocks: VolumeBlocks | None = None  # a lazy volume's input, read block by block; ``tensor`` is then a sample

    @property
    def shape(self) -> tuple[int, ...]:
        """The generator input's shape, ``(C, H, W)`` or ``(C, Z, Y, X)``, of a lazy volume too."""
        return self.blocks.shape if self.blocks is not None else tuple(self.tensor.shape)


@dataclass(frozen=True)
class VolumeBlocks:
    """A volume decoded block by block: its raw voxels (held, or read lazily by
    :class:`~pix2pix_unet.volume_io.LazyVoxels`: an OME-Zarr larger than memory) and the intensity map of the
    whole volume, applied to each block as it is read, so every block is decoded exactly as the whole volume
    held in memory would be.

    Attributes:
        voxels: ``(Z, Y, X, C)`` in the file's dtype.
        codec: the channel rule.
        scale: the ``(low, high)`` file values mapped to -1 and 1 (of the whole volume).
        path: the file.
    """

    voxels: LazyVoxels | np.ndarray
    codec: ImageCodec
    scale: tuple[float, float]
    path: Path

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, Z, Y, X)`` of the decoded volume."""
        z, y, x, _ = self.voxels.shape
        return self.codec.channels, z, y, x

    def decode(self, block: np.ndarray) -> torch.Tensor:
        """A raw block ``(z, y, x, C)`` as the generator's input ``(C', z, y, x)`` in [-1, 1]."""
        return self.codec.to_unit(self.codec.channel_values(block, self.path), *self.scale)


@dataclass(frozen=True)
class ImageCodec:
    """How an image file becomes a ``(channels, H, W)`` tensor in [-1, 1], and back.

    Only lossless channel changes happen: an alpha channel the model does not
    take is dropped, gray is repeated for 3 channels, and an RGB image whose
    channels are equal (a gray picture saved as RGB) is read as gray. Anything
    else is a :class:`~pix2pix_unet.io.ChannelError` naming the file.
    """

    channels: int
    intensity: Intensity = Intensity.DTYPE
    value_range: tuple[float, float] = (0.0, 255.0)

    def decode(self, path: str | Path) -> Decoded:
        """Read ``path`` with :func:`pix2pix_unet.io.read_image` and map it to [-1, 1]."""
        path = Path(path)
        return self.from_pixels(io.read_image(path), path)

    def decode_volume(self, path: str | Path, spacing: Spacing | None = None) -> Decoded:
        """Read a Z stack with :func:`~pix2pix_unet.volume_io.read_volume` (``spacing`` where the file states
        none) and decode it (:meth:`from_volume`). A 2D image is a :class:`~pix2pix_unet.volume_io.VolumeError`
        naming the file."""
        return self.from_volume(read_volume(Path(path), spacing))

    def from_volume(self, volume: Volume, blocks: bool = False) -> Decoded:
        """Map a volume to ``(C, Z, Y, X)`` in [-1, 1] by the intensity rule, applied to the whole volume:
        ``image`` takes the volume's own range, never a tile's.

        With ``blocks``, and always for a lazy volume (OME-Zarr), the voxels are not decoded here: the range is
        taken over every block, and :attr:`Decoded.blocks` decodes each block on demand, exactly as the whole
        would be (``tensor`` is then a strided sample of at most about a million voxels, for value checks).
        ``predict`` decodes volumes so: a 512 x 512 x 200 volume's float32 input alone is 210 MB."""
        if volume.lazy or blocks:
            return self._lazy_volume(volume)
        t = self.channel_values(volume.voxels, volume.path)
        low, high = self.scale_of(volume.voxels.dtype, t)
        return Decoded(self.to_unit(t, low, high), volume.path, None, (low, high), volume)

    def channel_values(self, voxels: np.ndarray, path: str | Path) -> torch.Tensor:
        """Voxels ``(Z, Y, X, C)`` by the channel rules of 2D images (the volume seen as one ``(Z * Y, X, C)``
        image), as float32 ``(C', Z, Y, X)`` in the file's units."""
        z, y, x, c = voxels.shape
        flat = _channels(ImageFile(voxels.reshape(z * y, x, c)), self.channels, path)
        return rearrange(torch.from_numpy(np.ascontiguousarray(flat).astype(np.float32, copy=False)),
                         "(z y) x c -> c z y x", z=z)

    def to_unit(self, t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """File values ``t`` with ``(low, high)`` mapped to [-1, 1] (clamped under ``range``)."""
        t = (t - low) / (high - low) if high > low else torch.zeros_like(t) + 0.5
        if self.intensity is Intensity.RANGE:
            t = t.clamp(0, 1)
        return t.mul(2).sub(1).contiguous()

    def _lazy_volume(self, volume: Volume, slab: int = 8, sample: int = 2**20) -> Decoded:
        """:meth:`from_volume` block by block, reading ``slab`` slices at a time for its range (``image``), and
        a strided sample for the value checks."""
        voxels = volume.voxels
        z, y, x, _ = voxels.shape
        if self.intensity is Intensity.IMAGE:  # the whole volume's min..max, exactly, one slab at a time
            spans = [self.channel_values(voxels[i: i + slab], volume.path).aminmax() for i in range(0, z, slab)]
            low, high = float(min(s.min for s in spans)), float(max(s.max for s in spans))
        else:
            low, high = self.scale_of(voxels.dtype, torch.zeros(1))
        step = max(1, math.ceil((z * y * x / sample) ** (1 / 3)))
        preview = self.to_unit(self.channel_values(voxels[::step, ::step, ::step], volume.path), low, high)
        blocks = VolumeBlocks(voxels, self, (low, high), volume.path)
        return Decoded(preview, volume.path, None, (low, high), volume, blocks)

    def from_pixels(self, image: ImageFile, path: str | Path = "<array>") -> Decoded:
        """Map decoded pixels to the model's channels and [-1, 1] by the intensity rule."""
        pixels = _channels(image, self.channels, path)
        x = rearrange(torch.from_numpy(np.ascontiguousarray(pixels).astype(np.float32, copy=False)), "h w c -> c h w")
        low, high = self.scale_of(image.dtype, x)
        return Decoded(self.to_unit(x, low, high), Path(path), image, (low, high))

    def decode_halves(self, path: str | Path, right: "ImageCodec") -> tuple[torch.Tensor, torch.Tensor]:
        """An aligned ``A|B`` image (the two halves side by side): the left half by this codec, the right by ``right``."""
        path = Path(path)
        image = io.read_image(path)
        half = image.shape[1] // 2
        left_px, right_px = ImageFile(image.pixels[:, :half], image.alpha), ImageFile(image.pixels[:, half:], image.alpha)
        return self.from_pixels(left_px, path).tensor, right.from_pixels(right_px, path).tensor

    def scale_of(self, dtype: np.dtype, x: torch.Tensor) -> tuple[float, float]:
        """The ``(low, high)`` file values that map to -1 and 1 for the pixels ``x`` of a file of ``dtype``."""
        if self.intensity is Intensity.DTYPE:
            return 0.0, io.DTYPE_MAX[np.dtype(dtype)]
        if self.intensity is Intensity.IMAGE:
            return float(x.min()), float(x.max())
        return float(self.value_range[0]), float(self.value_range[1])

    def encode(self, tensor: torch.Tensor, like: Decoded | None, dtype: OutputDtype = OutputDtype.INPUT,
               fallback: np.dtype | type = np.uint8) -> np.ndarray:
        """A ``(C, H, W)`` output in [-1, 1] as ``(H, W, C)`` pixels; a volume's ``(C, Z, Y, X)`` as
        ``(Z, Y, X, C)`` voxels.

        With ``dtype=input`` the output takes the dtype of ``like``'s file (``fallback``
        where there is no image, e.g. a label-map input) and the inverse of the
        intensity map that decoded it, so it lands in the input's units. An explicit
        ``dtype`` uses that type's full range.
        """
        own = None if like is None else like.image.dtype if like.image is not None else (
            like.volume.voxels.dtype if like.volume is not None else None)
        if dtype is not OutputDtype.INPUT or own is None:
            target = np.dtype(fallback if dtype is OutputDtype.INPUT else dtype.value)
            return io.from_tensor(tensor, target)
        unit = rearrange(tensor.detach().float().clamp(-1, 1).add(1).div(2), "c ... -> ... c").cpu().numpy()
        target, (low, high) = np.dtype(own), like.scale
        values = low + unit * (high - low)
        if target.kind == "f":
            return np.ascontiguousarray(values, dtype=target)
        return np.ascontiguousarray(np.clip(np.rint(values), 0, io.DTYPE_MAX[target]), dtype=target)


def _channels(image: ImageFile, channels: int, path: str | Path) -> np.ndarray:
    pixels, have = image.pixels, image.shape[2]
    if have != channels and image.alpha:
        pixels, have = pixels[..., :-1], have - 1
    if have == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    if have == 3 and channels == 1 and (pixels == pixels[..., :1]).all():
        return pixels[..., :1]
    if have != channels:
        raise ChannelError(f"{path} has {image.shape[2]} channel(s) but the generator takes {channels}")
    return pixels


# --------------------------------------------------------------------------- class ids and masks


def decode_class_ids(path: str | Path, num_classes: int | None, what: str = "label map") -> torch.Tensor:
    """Class ids ``(H, W)`` int64 from a palette PNG or an 8/16-bit gray image.

    Raises:
        DatasetError: naming the file and the id, when an id is ``num_classes`` or more.
    """
    ids = io.read_label_map(path)
    top = int(ids.max())
    if num_classes is not None and top >= num_classes:
        raise DatasetError(f"{what} {path} holds class id {top}, but the generator has {num_classes} classes "
                           f"(ids 0..{num_classes - 1})")
    return torch.from_numpy(ids)


def decode_class_volume(path: str | Path, num_classes: int | None, spacing: Spacing | None = None,
                        what: str = "label volume") -> tuple[torch.Tensor, Volume]:
    """Class ids ``(Z, Y, X)`` int64 from a TIFF stack, and the volume read (its voxel size; ``spacing`` where
    the file states none).

    Raises:
        VolumeError: a 2D image, naming the file.
        DatasetError: naming the file, when it has more than one channel or an id is ``num_classes`` or more.
    """
    volume = read_volume(Path(path), spacing)
    if volume.voxels.shape[-1] != 1:
        raise DatasetError(f"{what} {path} has {volume.voxels.shape[-1]} channels; it should hold one class id "
                           "per voxel")
    ids = torch.from_numpy(volume.voxels[..., 0].astype(np.int64))
    top = int(ids.max())
    if num_classes is not None and top >= num_classes:
        raise DatasetError(f"{what} {path} holds class id {top}, but the generator has {num_classes} classes "
                           f"(ids 0..{num_classes - 1})")
    return ids, volume


def one_hot(labels: torch.Tensor, num_classes: int, dims: int = 2) -> torch.Tensor:
    """``(..., H, W)`` class ids -> ``(..., num_classes, H, W)`` float one-hot (0 or 1); with ``dims=3``
    ``(..., Z, Y, X)`` -> ``(..., num_classes, Z, Y, X)``."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).movedim(-1, -(dims + 1)).float()


def decode_mask(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """A hole mask ``(1, H, W)``: 1 where any channel of the file is non-zero, else 0.

    Raises:
        DatasetError: naming the file, when its size is not ``size`` (the image's ``(H, W)``).
    """
    pixels = io.read_image(path).pixels
    if pixels.shape[:2] != tuple(size):
        raise DatasetError(f"hole mask {path} is {pixels.shape[1]}x{pixels.shape[0]} but its image is "
                           f"{size[1]}x{size[0]}")
    return torch.from_numpy((pixels != 0).any(-1, keepdims=True).astype(np.float32)).permute(2, 0, 1).contiguous()


def decode_confidence(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """A per-pixel loss weight ``(H, W)`` in [0, 1] from a one-channel image: 8-bit ``/ 255``,
    16-bit ``/ 65535``, float as it is (clipped).

    Raises:
        DatasetError: naming the file, when it has several channels or its size is not ``size``
            (the image's ``(H, W)``).
    """
    pixels = io.read_image(path).pixels
    if pixels.shape[2] != 1:
        raise DatasetError(f"confidence map {path} has {pixels.shape[2]} channels; it must be one-channel gray "
                           f"(255 = full weight, 0 = ignored)")
    if pixels.shape[:2] != tuple(size):
        raise DatasetError(f"confidence map {path} is {pixels.shape[1]}x{pixels.shape[0]} but its image is "
                           f"{size[1]}x{size[0]}")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(pixels.dtype, 1.0)
    return torch.from_numpy(np.clip(pixels[..., 0].astype(np.float32) / scale, 0.0, 1.0))


# --------------------------------------------------------------------------- what the model was trained on


def value_span(x: torch.Tensor) -> tuple[float, float]:
    """The 0.5th and 99.5th percentiles of a decoded tensor (at most ~1M values sampled)."""
    flat = x.detach().float().flatten()
    flat = flat[:: max(1, flat.numel() // 1_000_000)]
    low, high = torch.quantile(flat, torch.tensor([0.005, 0.995])).tolist()
    return low, high


def training_span(tensors: list[torch.Tensor]) -> list[float]:
    """``[low, high]``: the widest :func:`value_span` of some decoded training inputs (for the export)."""
    spans = [value_span(t) for t in tensors]
    return [min(s[0] for s in spans), max(s[1] for s in spans)]


def out_of_range(decoded: Decoded, trained: list[float] | None, rule: Intensity) -> str | None:
    """A warning naming the file when its decoded values are far outside what the model was trained on.

    Far outside means its span is under a tenth of the training span, or it lies
    wholly beyond the training span. None when the input looks like the training data.
    """
    if not trained:
        return None
    low, high = value_span(decoded.tensor)
    t_low, t_high = trained
    narrow = (high - low) < 0.1 * (t_high - t_low)
    beyond = low > t_high or high < t_low
    if not (narrow or beyond):
        return None
    where = f"{decoded.path}: after intensity={rule.value} its values span {low:.3f}..{high:.3f} of [-1, 1]"
    if decoded.image is not None:
        raw = decoded.image.pixels
        full = io.DTYPE_MAX[raw.dtype]
        share = 100 * (float(raw.max()) - float(raw.min())) / full
        where += (f" (pixel values {raw.min():g}..{raw.max():g} of {raw.dtype}'s 0..{full:g}, {share:.2g} % of "
                  f"its range)")
    return (f"{where}, but the training inputs spanned {t_low:.3f}..{t_high:.3f}; the output is likely "
            "meaningless. Check the intensity rule (segment.intensity=image stretches each image)")


__all__ = ["Decoded", "ImageCodec", "VolumeBlocks", "decode_class_ids", "decode_mask", "one_hot", "out_of_range",
           "training_span", "value_span"]
