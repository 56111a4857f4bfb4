"""Image files in and out: 8- and 16-bit PNG, TIFF (stacks too), JPEG; gray, RGB, RGBA or N channels.

Pixels travel as numpy arrays ``(H, W, C)`` in the file's own dtype, so an
output can be written in the dtype its input came in. How pixels become a
model's tensors (channels, intensity rules) is :mod:`pix2pix_unet.codec`'s job;
:func:`from_tensor` maps a tensor in ``[-1, 1]`` to a dtype's full range.

Decoders, chosen by suffix: PNG through imagecodecs (libpng keeps 16-bit RGB(A),
which Pillow would cut to 8 bits), TIFF through tifffile (every leading axis of a
stack, such as ``C`` or ``Z``, becomes channels), anything else through Pillow.
A file that cannot be read raises :class:`ImageReadError` naming it.

Label maps (class ids) are written as indexed (palette) PNGs, so they open as
colour pictures in any viewer and as class ids in code.
"""

from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import imagecodecs
import numpy as np
import tifffile
import torch
from einops import rearrange
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp"}
DTYPE_MAX: dict[np.dtype, float] = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0,
                                    np.dtype(np.float32): 1.0}


class ImageReadError(DatasetError):
    """An image file cannot be read or decoded; the message names it."""


class ImageWriteError(ValueError):
    """Pixels cannot be stored in the requested file format; the message names the file."""


class ChannelError(ValueError):
    """An image has a channel count the generator does not take; the message names the file and both counts."""


@dataclass
class ImageFile:
    """Decoded pixels ``(H, W, C)`` in the file's dtype (uint8, uint16 or float32).

    ``alpha`` says the last channel is transparency (RGBA, gray + alpha), which a
    generator that does not take it may drop.
    """

    pixels: np.ndarray
    alpha: bool = False

    @property
    def dtype(self) -> np.dtype:
        return self.pixels.dtype

    @property
    def shape(self) -> tuple[int, int, int]:
        h, w, c = self.pixels.shape
        return h, w, c


# --------------------------------------------------------------------------- reading


def _read_png(path: Path) -> ImageFile:
    try:
        pixels = imagecodecs.png_decode(path.read_bytes())
    except imagecodecs.PngError as err:
        raise ValueError(f"corrupt or truncated PNG ({err})") from None
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    return ImageFile(pixels, alpha=pixels.shape[-1] in (2, 4))


def _tiff_to_hwc(array: np.ndarray, axes: str) -> np.ndarray:
    """Move ``Y``, ``X`` first and fold every other axis (``S``, ``C``, ``Z``, ...) into channels."""
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"no Y and X axes in a stack of axes {axes!r}")
    others = [i for i, a in enumerate(axes) if a not in "YX"]
    order = [axes.index("Y"), axes.index("X"), *others]
    array = np.transpose(array, order)
    return array.reshape(*array.shape[:2], -1)


def _read_tiff(path: Path) -> ImageFile:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        pixels = _tiff_to_hwc(series.asarray(), series.axes)
        alpha = series.axes.endswith("S") and pixels.shape[-1] == 4 and bool(tif.pages[0].extrasamples)
    return ImageFile(pixels, alpha=alpha)


_PIL_MODES = {"1": "L", "P": None, "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def _read_pil(path: Path) -> ImageFile:
    with Image.open(path) as img:
        img.load()
        mode = _PIL_MODES.get(img.mode, img.mode)
        if img.mode == "P":
            mode = "RGBA" if "transparency" in img.info else "RGB"
        if mode != img.mode:
            img = img.convert(mode)
        pixels = np.asarray(img)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    return ImageFile(pixels, alpha=mode in ("LA", "RGBA", "PA"))


READERS: dict[str, Callable[[Path], ImageFile]] = {".png": _read_png, ".tif": _read_tiff, ".tiff": _read_tiff}


def _reason(err: Exception) -> str:
    """The error without the file name, which Pillow repeats and our messages already carry."""
    if isinstance(err, UnidentifiedImageError):
        return "not an image in a known format, or corrupt"
    if isinstance(err, FileNotFoundError):
        return "no such file"
    return str(err)


def read_image(path: str | Path) -> ImageFile:
    """Decode an image file to ``(H, W, C)`` pixels in its own dtype.

    Raises:
        ImageReadError: the file is missing, unreadable, truncated, or of a pixel
            type other than 8/16-bit integer or float.
    """
    path = Path(path)
    try:
        image = READERS.get(path.suffix.lower(), _read_pil)(path)
    except (OSError, ValueError, RuntimeError, SyntaxError, UnidentifiedImageError, tifffile.TiffFileError) as err:
        raise ImageReadError(f"cannot read image {path}: {_reason(err)}") from None
    pixels = image.pixels
    if pixels.dtype == np.float64 or pixels.dtype == np.float16:
        pixels = pixels.astype(np.float32)
    elif pixels.dtype == np.bool_:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.dtype not in DTYPE_MAX:
        raise ImageReadError(f"cannot read image {path}: pixel type {pixels.dtype} is not uint8, uint16 or float")
    if min(pixels.shape[:2]) < 1:
        raise ImageReadError(f"cannot read image {path}: it is empty ({pixels.shape[1]}x{pixels.shape[0]})")
    image.pixels = pixels
    return image


def image_shape(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` from the file header, without decoding the pixels.

    Raises:
        ImageReadError: the header cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return series.shape[series.axes.index("Y")], series.shape[series.axes.index("X")]
        with Image.open(path) as img:
            return img.height, img.width
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, tifffile.TiffFileError) as err:
        raise ImageReadError(f"cannot read image {path}: {_reason(err)}") from None


# --------------------------------------------------------------------------- tensors


def from_tensor(tensor: torch.Tensor, dtype: np.dtype | type) -> np.ndarray:
    """A ``(C, H, W)`` tensor in ``[-1, 1]`` as ``(H, W, C)`` pixels of ``dtype`` (clipped to its range); a
    volume's ``(C, Z, Y, X)`` as ``(Z, Y, X, C)``."""
    dtype = np.dtype(dtype)
    unit = rearrange(tensor.detach().float().clamp(-1, 1).add(1).div(2), "c ... -> ... c").cpu().numpy()
    if dtype.kind == "f":
        return np.ascontiguousarray(unit, dtype=dtype)
    return np.ascontiguousarray(np.rint(unit * DTYPE_MAX[dtype]), dtype=dtype)


# --------------------------------------------------------------------------- writing


def _write_png(path: Path, pixels: np.ndarray, target: Path) -> None:
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.shape[2] > 4:
        raise ImageWriteError(
            f"cannot write {target}: PNG holds 1-4 channels of 8 or 16 bits, got {pixels.shape[2]} channel(s) of "
            f"{pixels.dtype}; write .tif instead (--suffix .tif) or choose --output-dtype uint8/uint16"
        )
    path.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)))


def _write_tiff(path: Path, pixels: np.ndarray, target: Path) -> None:
    channels = pixels.shape[2]
    if channels == 1:
        tifffile.imwrite(path, pixels[..., 0], photometric="minisblack")
    elif channels == 3:
        tifffile.imwrite(path, pixels, photometric="rgb")
    else:  # a stack: one page per channel, as microscopy tools expect
        tifffile.imwrite(path, rearrange(pixels, "h w c -> c h w"), photometric="minisblack",
                         metadata={"axes": "CYX"})


def _write_pil(path: Path, pixels: np.ndarray, target: Path) -> None:
    fmt = Image.registered_extensions().get(target.suffix.lower())
    jpeg = fmt == "JPEG"
    allowed = (1, 3) if jpeg else (1, 3, 4)
    if fmt is None or pixels.dtype != np.uint8 or pixels.shape[2] not in allowed:
        raise ImageWriteError(
            f"cannot write {target}: {fmt or target.suffix} holds {allowed} channels of 8 bits, got "
            f"{pixels.shape[2]} channel(s) of {pixels.dtype}; write .png or .tif instead (--suffix)"
        )
    img = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    img.save(path, format=fmt, **({"quality": 95} if jpeg else {}))


WRITERS: dict[str, Callable[[Path, np.ndarray, Path], None]] = {
    ".png": _write_png, ".tif": _write_tiff, ".tiff": _write_tiff,
}


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through a hidden temporary file and rename, so an interrupted run leaves no torn output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_image(path: str | Path, pixels: np.ndarray) -> Path:
    """Write ``(H, W, C)`` pixels in the format of ``path``'s suffix, keeping their dtype.

    PNG takes 1-4 channels of uint8/uint16; TIFF takes any channel count and
    dtype (channels other than 1 or 3 become a ``CYX`` stack); JPEG and the
    rest take uint8 only.

    Raises:
        ImageWriteError: the format cannot hold these pixels; names the file.
    """
    path = Path(path)
    pixels = np.ascontiguousarray(pixels[..., None] if pixels.ndim == 2 else pixels)
    writer = WRITERS.get(path.suffix.lower(), _write_pil)
    try:
        return _atomic(path, lambda tmp: writer(tmp, pixels, path))
    except (ValueError, RuntimeError, TypeError) as err:
        if isinstance(err, ImageWriteError):
            raise
        raise ImageWriteError(f"cannot write {path}: {err}") from None


# --------------------------------------------------------------------------- label maps

# Colours used for the colourised label maps (the "A" side). Saturated and far
# apart so that a generator's output can be decoded back to class ids by
# nearest-palette-colour without ambiguity.
PALETTE: torch.Tensor = torch.tensor(
    [
        [0.00, 0.00, 0.00],  # 0 background: black
        [0.90, 0.10, 0.10],  # 1 ellipse: red
        [0.10, 0.75, 0.10],  # 2 rectangle: green
        [0.10, 0.25, 0.95],  # 3 triangle: blue
        [0.95, 0.90, 0.10],  # 4 ring: yellow
        [0.90, 0.10, 0.90],  # 5 blob: magenta
        [0.10, 0.90, 0.90],  # 6 cross: cyan
        [1.00, 1.00, 1.00],  # 7 diamond: white
    ],
    dtype=torch.float32,
)


def palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours: the built-in data's palette, then evenly spread hues."""
    base = (PALETTE.numpy() * 255).round().astype(np.uint8)
    extra = [
        [round(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.95)]
        for i in range(max(0, num_classes - len(base)))
    ]
    colours = np.concatenate([base, np.asarray(extra, np.uint8).reshape(-1, 3)])
    return colours[:num_classes]


def write_label_map(path: str | Path, labels: np.ndarray, num_classes: int) -> Path:
    """Write class ids ``(H, W)`` as an indexed PNG (or a 16-bit gray PNG beyond 256 classes)."""
    path = Path(path)
    if num_classes > 256:
        return write_image(path, labels.astype(np.uint16))

    def write(tmp: Path) -> None:
        img = Image.fromarray(labels.astype(np.uint8), mode="P")
        img.putpalette(palette(num_classes).flatten().tolist())
        img.save(tmp, format="PNG")

    return _atomic(path, write)


def read_label_map(path: str | Path) -> np.ndarray:
    """Class ids ``(H, W)`` as int64 from an indexed or gray (8/16-bit) PNG, or a single-channel TIFF.

    Raises:
        ImageReadError: unreadable, or a colour image where class ids are expected.
    """
    path = Path(path)
    if path.suffix.lower() == ".png":
        try:
            with Image.open(path) as img:
                img.load()
                if img.mode == "P":
                    return np.asarray(img).astype(np.int64)
        except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as err:
            raise ImageReadError(f"cannot read label map {path}: {_reason(err)}") from None
    image = read_image(path)
    if image.shape[2] != 1 or image.dtype.kind == "f":
        raise ImageReadError(
            f"label map {path} has {image.shape[2]} channel(s) of {image.dtype}; expected class ids "
            "(an indexed PNG, or one channel of 8/16-bit integers)"
        )
    return image.pixels[..., 0].astype(np.int64)


# --------------------------------------------------------------------------- display


def display_rgb8(image: ImageFile, span: tuple[float, float] | None = None) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 view for overlays and reports.

    8-bit images are shown as they are; others are stretched between ``span``,
    by default their own 0.5th and 99.5th percentiles, since 16-bit and float data
    rarely fill their range (the demo stretches an input and its output alike).
    Alpha is dropped, gray repeated, and of more than 3 channels the first 3 shown.
    """
    pixels = image.pixels[..., :-1] if image.alpha else image.pixels
    pixels = np.repeat(pixels, 3, axis=-1) if pixels.shape[2] == 1 else pixels
    pixels = np.concatenate([pixels, pixels[..., -1:]], axis=-1) if pixels.shape[2] == 2 else pixels[..., :3]
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    low, high = span if span is not None else np.percentile(pixels, [0.5, 99.5])
    unit = (pixels.astype(np.float32) - low) / max(float(high - low), 1e-12)
    return np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)


def overlay(rgb: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """Blend class colours over an ``(H, W, 3)`` uint8 picture; class 0 (background) is left clear."""
    colours = palette(max(num_classes, int(labels.max()) + 1)).astype(np.float32)[labels]
    mask = (labels > 0)[..., None]
    blended = np.where(mask, (1 - alpha) * rgb.astype(np.float32) + alpha * colours, rgb.astype(np.float32))
    return np.rint(blended).astype(np.uint8)


__all__ = [
    "ChannelError", "ImageFile", "ImageReadError", "ImageWriteError", "IMAGE_SUFFIXES", "display_rgb8",
    "from_tensor", "image_shape", "overlay", "palette", "read_image", "read_label_map",
    "write_image", "write_label_map",
]
