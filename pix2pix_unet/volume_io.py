"""Volume files in and out: TIFF stacks (ImageJ hyperstacks, OME-TIFF, plain multi-page TIFF) with their voxel size.

:mod:`pix2pix_unet.io` folds every axis beside ``Y`` and ``X`` into channels, which
is what a 2D model wants; a 3D model needs the ``Z`` axis kept apart and the voxel
size (``spacing``, z, y, x in micrometres), because confocal and light-sheet voxels
are rarely cubes. Voxels travel as numpy arrays ``(Z, Y, X, C)`` in the file's own
dtype.

Reading (:func:`read_volume`) takes the first series of a TIFF file:

- axes ``ZYX``, ``ZCYX``, ``CZYX``, ``ZYXS`` (RGB) and the like; an unnamed page axis
  (tifffile's ``I`` or ``Q``, a multi-page TIFF written without metadata) is ``Z``;
  axes of size 1 (an ImageJ hyperstack's ``T``) are dropped; a ``T`` axis longer than
  1 is refused, since a time series is not a volume.
- the voxel size from ImageJ metadata (``spacing`` for z, the ``XResolution`` and
  ``YResolution`` tags in pixels per ``unit``) or from OME-XML (``PhysicalSizeX/Y/Z``
  and their units), converted to micrometres. Resolution tags of a plain TIFF are
  ignored: a default of 72 pixels per inch would pass for a voxel size.

OME-Zarr (a ``.zarr`` folder, NGFF 0.4 on Zarr v2 or 0.5 on Zarr v3) is opened lazily by
:func:`open_volume`: its full-resolution array, with the axes its ``multiscales`` metadata
names (``t``, ``c``, ``z``, ``y``, ``x`` in any order) and the voxel size from its ``scale``
transformations and axis units, seen as ``(Z, Y, X, C)`` by :class:`LazyVoxels`, which reads
only the chunks a block touches, so a volume larger than memory can be predicted window by
window. :func:`read_volume` reads one whole.

Writing (:func:`write_volume`, :class:`VolumeWriter`) makes ImageJ hyperstacks (axes
``ZYX`` or ``ZCYX``, unit ``um``), so Fiji and napari open them with the voxel size.
:class:`VolumeWriter` fills a file block by block through a memory map, so a
prediction larger than memory never has to be held whole.

Errors: an unreadable file raises :class:`~pix2pix_unet.io.ImageReadError`, a file
that holds no Z stack :class:`VolumeError`, a volume the format cannot hold
:class:`~pix2pix_unet.io.ImageWriteError`; each names the file.
"""

from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import tifffile

from .errors import DatasetError
from .io import ImageReadError, ImageWriteError, _atomic

__all__ = ["LazyVoxels", "Spacing", "Volume", "VolumeError", "VolumeWriter", "VOLUME_SUFFIXES", "WRITE_DTYPES",
           "ZARR_SUFFIX", "is_volume", "is_zarr", "open_volume", "read_volume", "write_volume", "z_slices"]

Spacing = tuple[float, float, float]
"""Voxel size ``(z, y, x)`` in micrometres."""

VOLUME_SUFFIXES = {".tif", ".tiff"}
ZARR_SUFFIX = ".zarr"
"""A folder with this suffix is one OME-Zarr volume (``NAME.ome.zarr`` too)."""
WRITE_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
"""What an ImageJ hyperstack holds, so what :func:`write_volume` and :class:`VolumeWriter` write."""

_MICROMETRES_PER: dict[str, float] = {
    "pm": 1e-6, "nm": 1e-3, "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6, "å": 1e-4, "angstrom": 1e-4,
    "picometer": 1e-6, "nanometer": 1e-3, "millimeter": 1e3, "centimeter": 1e4, "meter": 1e6,  # OME-NGFF's names
}
_SPACING_DIGITS = 7  # TIFF resolutions are rationals: 1 / 0.3 comes back as 0.30000000x


class VolumeError(DatasetError):
    """A file holds no volume a 3D model can take (a 2D image, a time series); the message names it."""


@dataclass(frozen=True)
class Volume:
    """Decoded voxels ``(Z, Y, X, C)`` in the file's dtype, with the file's voxel size and axis order.

    Attributes:
        voxels: ``(Z, Y, X, C)``; ``C`` gathers the file's ``C`` and ``S`` (RGB) axes.
        spacing: ``(z, y, x)`` in micrometres, or None when neither the file nor the
            caller gave one.
        axes: the first series' axes as tifffile names them (e.g. ``"ZYX"``, ``"ZCYX"``,
            ``"QYX"`` for a plain multi-page TIFF).
        path: the file read.
    """

    voxels: np.ndarray | LazyVoxels
    spacing: Spacing | None
    axes: str
    path: Path

    @property
    def lazy(self) -> bool:
        """Whether the voxels are read block by block (:class:`LazyVoxels`) rather than held."""
        return isinstance(self.voxels, LazyVoxels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        z, y, x, c = self.voxels.shape
        return z, y, x, c


# --------------------------------------------------------------------------- axes


def _volume_axes(path: Path, axes: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """The series' axes as the reader uses them: ``I``/``Q`` renamed ``Z``, size-1 axes other than Y and X
    dropped (so a Z of 1 is gone too); ``(axes, shape)`` without reading a pixel.

    Raises:
        VolumeError: a ``T`` axis longer than 1, or an axis this reader has no place for.
    """
    if "Z" not in axes and sum(a in "IQ" for a in axes) == 1:
        axes = axes.replace("I", "Z").replace("Q", "Z")
    sizes = dict(zip(axes, shape))
    if sizes.get("T", 1) > 1:
        raise VolumeError(f"{path} is a time series (axes {axes}, shape {shape}, T = {sizes['T']}); a 3D model "
                          "takes one time point: save each as a file of its own")
    kept = [(a, n) for a, n in zip(axes, shape) if n > 1 or a in "YX"]
    unknown = [a for a, _ in kept if a not in "ZCSYX"]
    if unknown or "Y" not in axes or "X" not in axes:
        raise VolumeError(f"{path} has axes {axes} (shape {shape}); a volume has Z, Y, X and maybe C or S "
                          f"(channels), not {''.join(unknown) or 'no Y and X'}")
    return "".join(a for a, _ in kept), tuple(n for _, n in kept)


def _tiff_error(path: Path, err: Exception) -> ImageReadError:
    reason = "no such file" if isinstance(err, FileNotFoundError) else str(err) or type(err).__name__
    return ImageReadError(f"cannot read volume {path}: {reason}")


_READ_ERRORS = (OSError, ValueError, RuntimeError, KeyError, IndexError, tifffile.TiffFileError)


def z_slices(path: str | Path) -> int:
    """The length of the Z axis a TIFF's metadata names (ImageJ, OME): 0 for other files and for stacks whose
    pages are not named Z (a multi-channel TIFF written without metadata may store its channels as pages, so
    only a named Z is taken as proof of a volume), or an OME-Zarr volume's. From the header alone; an unreadable
    header counts as 0."""
    path = Path(path)
    if is_zarr(path):
        try:
            return open_volume(path).shape[0]
        except (DatasetError, ImageReadError):  # a 2D or unreadable Zarr
            return 0
    if path.suffix.lower() not in VOLUME_SUFFIXES:
        return 0
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
    except _READ_ERRORS:
        return 0
    return shape[axes.index("Z")] if "Z" in axes else 0


def is_volume(path: str | Path) -> bool:
    """Whether ``path`` is a TIFF whose first series has a Z axis longer than 1 (an unnamed page axis
    counts as Z), from the header alone, or a ``.zarr`` folder. Other suffixes are never volumes.

    A file for which this is True may still be refused by :func:`read_volume`, e.g. a time series,
    whose error says why.

    Raises:
        ImageReadError: a TIFF whose header cannot be read.
    """
    path = Path(path)
    if is_zarr(path):
        return True
    if path.suffix.lower() not in VOLUME_SUFFIXES:
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
    except _READ_ERRORS as err:
        raise _tiff_error(path, err) from None
    if "Z" not in axes and sum(a in "IQ" for a in axes) == 1:
        axes = axes.replace("I", "Z").replace("Q", "Z")
    return "Z" in axes and shape[axes.index("Z")] > 1


# --------------------------------------------------------------------------- spacing


def _to_micrometres(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` as micrometres; None for no unit or one that is not a length (ImageJ's
    ``pixel``)."""
    if unit is None:
        return None
    factor = _MICROMETRES_PER.get(unit.strip().lower())
    return None if factor is None else value * factor


def _resolution(page: tifffile.TiffPage, tag: str) -> float | None:
    """Pixel size in the file's unit from a resolution tag (pixels per unit); None when missing or 0."""
    item = page.tags.get(tag)
    if item is None:
        return None
    value = item.value
    num, den = value if isinstance(value, tuple) else (value, 1)
    return den / num if num else None


def _imagej_spacing(tif: tifffile.TiffFile) -> list[float | None]:
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    page = tif.pages.first
    x, y, z = _resolution(page, "XResolution"), _resolution(page, "YResolution"), meta.get("spacing")
    return [None if v is None else _to_micrometres(float(v), unit) for v in (z, y, x)]


def _ome_spacing(tif: tifffile.TiffFile) -> list[float | None]:
    root = ElementTree.fromstring(tif.ome_metadata)
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return [None, None, None]
    out: list[float | None] = []
    for axis in "ZYX":
        size = pixels.get(f"PhysicalSize{axis}")
        # the OME schema's default unit is the micrometre
        out.append(None if size is None else _to_micrometres(float(size), pixels.get(f"PhysicalSize{axis}Unit", "µm")))
    return out


def _file_spacing(tif: tifffile.TiffFile) -> list[float | None]:
    """``[z, y, x]`` in micrometres as the file states them, None for each it does not."""
    if tif.is_ome and tif.ome_metadata:
        values = _ome_spacing(tif)
    elif tif.is_imagej:
        values = _imagej_spacing(tif)
    else:
        return [None, None, None]
    return [None if v is None or not (math.isfinite(v) and v > 0) else float(f"{v:.{_SPACING_DIGITS}g}")
            for v in values]


def _check_spacing(path: Path, spacing: Any, error: type[Exception]) -> Spacing | None:
    if spacing is None:
        return None
    try:
        values = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise error(f"spacing for {path} must be three positive numbers (z, y, x) in micrometres, got {spacing!r}")
    return values  # type: ignore[return-value]


def _merge_spacing(path: Path, stated: list[float | None], given: Spacing | None) -> Spacing | None:
    """The file's voxel size, each axis it does not state taken from ``given``; a warning where both
    state an axis and differ."""
    if given is not None:
        differ = [axis for axis, s, g in zip("zyx", stated, given)
                  if s is not None and not math.isclose(s, g, rel_tol=1e-4)]
        if differ:
            warnings.warn(f"{path} states a voxel size of {tuple(stated)} µm (z, y, x), which differs from the "
                          f"spacing given, {tuple(given)}, in {', '.join(differ)}; the file's is used",
                          stacklevel=3)
    merged = [s if s is not None else (given[i] if given is not None else None) for i, s in enumerate(stated)]
    if any(v is None for v in merged):
        return None
    return merged[0], merged[1], merged[2]  # type: ignore[return-value]


# --------------------------------------------------------------------------- reading


def read_volume(path: str | Path, spacing: Spacing | None = None) -> Volume:
    """Decode a TIFF stack to ``(Z, Y, X, C)`` voxels in its own dtype, with its voxel size.

    Args:
        path: a ``.tif``/``.tiff`` file; its first series is read. An OME-Zarr folder is read whole
            (:func:`open_volume` reads it lazily).
        spacing: ``(z, y, x)`` in micrometres, for the axes the file does not state.
            Where the file states one that differs, the file's wins and a warning
            names the file and both.

    Raises:
        ImageReadError: the file is missing, not a TIFF, corrupt or truncated, or of
            a pixel type other than integer, float or bool (bool comes back as uint8).
        VolumeError: a 2D image (no Z axis, or a Z of 1), a time series (T > 1), or
            axes this reader has no place for.
    """
    path = Path(path)
    if is_zarr(path):
        volume = open_volume(path, spacing)
        voxels = np.asarray(volume.voxels)
        return Volume(voxels.astype(np.uint8) if voxels.dtype.kind == "b" else voxels, volume.spacing, volume.axes,
                      path)
    given = _check_spacing(path, spacing, ValueError)
    if path.suffix.lower() not in VOLUME_SUFFIXES:
        if path.is_file():
            raise VolumeError(f"{path} is a 2D image format ({path.suffix}); a 3D model needs a Z stack, "
                              "saved as a multi-page TIFF (.tif)")
        raise ImageReadError(f"cannot read volume {path}: no such file")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            file_axes, file_shape = series.axes, tuple(series.shape)
            axes, shape = _volume_axes(path, file_axes, file_shape)
            if "Z" not in axes:
                raise VolumeError(f"{path} is a 2D image (axes {file_axes}, shape {file_shape}); a 3D model needs "
                                  "a Z stack; give it a multi-page TIFF or hyperstack with more than one slice")
            stated = _file_spacing(tif)
            voxels = series.asarray().reshape(shape)
    except VolumeError:
        raise
    except _READ_ERRORS as err:
        raise _tiff_error(path, err) from None
    if voxels.dtype.kind == "b":
        voxels = voxels.astype(np.uint8)
    elif voxels.dtype.kind not in "uif":
        raise ImageReadError(f"cannot read volume {path}: pixel type {voxels.dtype} is not integer or float")
    channels = [i for i, a in enumerate(axes) if a in "CS"]
    order = [axes.index("Z"), axes.index("Y"), axes.index("X"), *channels]
    voxels = np.transpose(voxels, order)
    voxels = np.ascontiguousarray(voxels.reshape(*voxels.shape[:3], -1))
    return Volume(voxels, _merge_spacing(path, stated, given), file_axes, path)


# --------------------------------------------------------------------------- OME-Zarr


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` is a ``.zarr`` folder (read as one OME-Zarr volume, not searched for images)."""
    path = Path(path)
    return path.suffix.lower() == ZARR_SUFFIX and path.is_dir()


class LazyVoxels:
    """A Zarr array seen as ``(Z, Y, X, C)`` without reading it: indexing reads the chunks a block touches.

    Args:
        array: the array (``zarr.Array``, or anything with ``shape``, ``dtype`` and numpy indexing).
        axes: its axes, one letter each from ``tczyx`` (``t`` of size 1 and ``c`` may be absent).
        path: for error messages.
    """

    ndim = 4

    def __init__(self, array: Any, axes: str, path: Path) -> None:
        self.array, self.axes, self.path = array, axes, path
        sizes = dict(zip(axes, array.shape))
        self.shape = (sizes["z"], sizes["y"], sizes["x"], sizes.get("c", 1))
        self.dtype = np.dtype(array.dtype)
        # where each of Z, Y, X (and C) sits in the array, for the transpose of a read block
        kept = [a for a in axes if a != "t"]
        self._order = [kept.index(a) for a in "zyxc" if a in kept]

    def __getitem__(self, key: Any) -> np.ndarray:
        """The block ``(z, y, x, C)`` at ``key``: slices (steps allowed) over ``(Z, Y, X[, C])``."""
        key = key if isinstance(key, tuple) else (key,)
        if key and key[0] is Ellipsis:
            key = key[1:]
        if len(key) > 4 or not all(isinstance(k, slice) for k in key):
            raise IndexError(f"{self.path}: a lazy volume is read by slices over (Z, Y, X, C), not {key!r}")
        key = key + (slice(None),) * (4 - len(key))
        by_axis = dict(zip("zyxc", key))
        index = tuple(0 if a == "t" else by_axis[a] for a in self.axes)
        try:
            block = np.asarray(self.array[index])
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise ImageReadError(f"cannot read volume {self.path}: {err}") from None
        block = np.transpose(block, self._order)
        return block if "c" in self.axes else block[..., None]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        block = self[...]
        return block if dtype is None else block.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


def _ome_multiscale(path: Path, attrs: dict[str, Any]) -> dict[str, Any]:
    multiscales = attrs.get("ome", attrs).get("multiscales")  # NGFF 0.5 nests it under "ome"
    if not multiscales:
        raise ImageReadError(f"cannot read volume {path}: a .zarr folder needs OME-NGFF 'multiscales' metadata "
                             "(axes and scale), or to be a single 3D array (Z, Y, X)")
    return multiscales[0]


def _ome_scale(path: Path, multiscale: dict[str, Any], axes: list[dict[str, Any]]) -> list[float | None]:
    """``[z, y, x]`` in micrometres from the first dataset's ``scale`` (times a multiscale-wide ``scale``)."""
    scale = np.ones(len(axes))
    for transforms in (multiscale["datasets"][0].get("coordinateTransformations", []),
                       multiscale.get("coordinateTransformations", [])):
        for t in transforms:
            if t.get("type") == "scale":
                scale = scale * np.asarray(t["scale"], float)
    names = [a["name"].lower() for a in axes]
    out: list[float | None] = []
    for axis in "zyx":
        unit = axes[names.index(axis)].get("unit")
        out.append(_to_micrometres(float(scale[names.index(axis)]), unit) if unit else None)
    return [None if v is None or not (math.isfinite(v) and v > 0) else float(f"{v:.{_SPACING_DIGITS}g}")
            for v in out]


def open_volume(path: str | Path, spacing: Spacing | None = None) -> Volume:
    """A volume without reading its voxels: an OME-Zarr folder's full-resolution array as :class:`LazyVoxels`;
    a TIFF is read whole (:func:`read_volume`).

    The axes come from the ``multiscales`` metadata (``t`` of size 1 dropped; a longer ``t`` refused, as in a
    TIFF); a bare Zarr array without metadata is taken as ``ZYX``. The voxel size is the first dataset's
    ``scale`` in its axes' units, converted to micrometres (an axis without a unit states none, and takes
    ``spacing``).

    Raises:
        ImageReadError: a missing folder, or one that holds no readable Zarr array; names it.
        VolumeError: no ``z`` axis (a 2D image), a time series, or axes other than ``tczyx``.
    """
    path = Path(path)
    if not is_zarr(path):
        return read_volume(path, spacing)
    given = _check_spacing(path, spacing, ValueError)
    import zarr  # here: only OME-Zarr inputs need it

    try:
        node = zarr.open(str(path), mode="r")
    except (OSError, ValueError, KeyError, FileNotFoundError) as err:
        raise ImageReadError(f"cannot read volume {path}: {err}") from None
    if isinstance(node, zarr.Array):
        array, axes, stated = node, "zyx" if node.ndim == 3 else "", [None, None, None]
        if node.ndim != 3:
            raise VolumeError(f"{path} is a Zarr array of shape {node.shape} without OME-NGFF axes; a bare array "
                              "is read as (Z, Y, X): add 'multiscales' metadata naming its axes")
    else:
        multiscale = _ome_multiscale(path, dict(node.attrs))
        try:
            array = node[multiscale["datasets"][0]["path"]]
        except KeyError as err:
            raise ImageReadError(f"cannot read volume {path}: its metadata names array {err}, which is missing"
                                 ) from None
        # NGFF 0.3 lists names only, and before it the axes were always tczyx
        meta_axes = multiscale.get("axes") or list("tczyx"[-array.ndim:])
        meta_axes = [a if isinstance(a, dict) else {"name": a} for a in meta_axes]
        axes = "".join(a["name"].lower() for a in meta_axes)
        stated = _ome_scale(path, multiscale, meta_axes)
    sizes = dict(zip(axes, array.shape))
    if len(axes) != array.ndim or set(axes) - set("tczyx") or not {"y", "x"} <= set(axes):
        raise VolumeError(f"{path} has axes {axes or '?'} for an array of shape {array.shape}; a volume has "
                          "z, y, x and maybe c and t (of size 1)")
    if sizes.get("t", 1) > 1:
        raise VolumeError(f"{path} is a time series (t = {sizes['t']}); a 3D model takes one time point")
    if sizes.get("z", 1) < 2:
        raise VolumeError(f"{path} is a 2D image (axes {axes}, shape {array.shape}); a 3D model needs a Z stack")
    voxels = LazyVoxels(array, axes, path)
    if voxels.dtype.kind not in "uif":
        raise ImageReadError(f"cannot read volume {path}: pixel type {voxels.dtype} is not integer or float")
    return Volume(voxels, _merge_spacing(path, stated, given), axes.upper(), path)


# --------------------------------------------------------------------------- writing


def _imagej_options(path: Path, shape: tuple[int, int, int, int], dtype: np.dtype,
                    spacing: Spacing | None) -> dict[str, Any]:
    """tifffile keywords for an ImageJ hyperstack of ``(Z, Y, X, C)`` voxels.

    Raises:
        ImageWriteError: a dtype ImageJ cannot hold, an empty volume, or a single slice.
    """
    if dtype not in WRITE_DTYPES:
        raise ImageWriteError(f"cannot write {path}: a volume file holds uint8, uint16 or float32 voxels (what "
                              f"ImageJ reads), got {dtype}; convert first (instance ids fit uint16)")
    if min(shape) < 1 or shape[0] < 2:
        raise ImageWriteError(f"cannot write {path}: a volume needs Y, X and C of at least 1 and Z of at least 2, "
                              f"got (Z, Y, X, C) = {shape}; write a single slice with io.write_image")
    metadata: dict[str, Any] = {"axes": "ZYX" if shape[3] == 1 else "ZCYX"}
    options: dict[str, Any] = {"imagej": True, "metadata": metadata}
    if spacing is not None:
        metadata.update(spacing=spacing[0], unit="um")
        options["resolution"] = (1 / spacing[2], 1 / spacing[1])  # pixels per µm, (x, y)
    return options


def _as_zyxc(path: Path, voxels: np.ndarray) -> np.ndarray:
    voxels = np.asarray(voxels)
    if voxels.ndim == 3:
        voxels = voxels[..., None]
    if voxels.ndim != 4:
        raise ImageWriteError(f"cannot write {path}: voxels must be (Z, Y, X) or (Z, Y, X, C), got shape "
                              f"{voxels.shape}")
    return voxels


def write_volume(path: str | Path, voxels: np.ndarray, spacing: Spacing | None = None,
                 like: Volume | None = None) -> Path:
    """Write ``(Z, Y, X, C)`` or ``(Z, Y, X)`` voxels as an ImageJ hyperstack, keeping their dtype.

    The file goes through a temporary file beside it, renamed when complete, so an
    interrupted run leaves no torn output.

    Args:
        spacing: ``(z, y, x)`` in micrometres; None takes ``like``'s (an input's voxel
            size carried to its output), and with neither the file states none.

    Raises:
        ImageWriteError: a dtype other than uint8, uint16 or float32, a wrong shape or
            a bad spacing; names the file.
    """
    path = Path(path)
    voxels = _as_zyxc(path, voxels)
    spacing = _check_spacing(path, spacing if spacing is not None else (like.spacing if like else None),
                             ImageWriteError)
    options = _imagej_options(path, voxels.shape, voxels.dtype, spacing)
    data = voxels[..., 0] if voxels.shape[3] == 1 else np.moveaxis(voxels, 3, 1)  # ZYX or ZCYX
    try:
        return _atomic(path, lambda tmp: tifffile.imwrite(tmp, np.ascontiguousarray(data), **options))
    except (ValueError, RuntimeError, TypeError) as err:
        raise ImageWriteError(f"cannot write {path}: {err}") from None


class VolumeWriter:
    """An ImageJ hyperstack filled block by block, for volumes larger than memory.

    The file is created at full size as a memory map (``tifffile.memmap``, which
    writes the same ImageJ metadata as :func:`write_volume`), so each block goes
    straight to disk; it is written under a temporary name and renamed on a clean
    exit from the ``with`` block, and removed if the block raised.

    Example::

        with VolumeWriter(path, (z, y, x, 1), np.uint16, spacing=(1.0, 0.25, 0.25)) as out:
            for z0 in range(0, z, 16):
                out[z0:z0 + 16] = predict(volume[z0:z0 + 16])  # (z, y, x) or (z, y, x, c)

    Raises:
        ImageWriteError: as :func:`write_volume`.
    """

    def __init__(self, path: str | Path, shape: tuple[int, int, int, int] | tuple[int, int, int],
                 dtype: np.dtype | type, spacing: Spacing | None = None) -> None:
        self.path = Path(path)
        if len(shape) not in (3, 4):
            raise ImageWriteError(f"cannot write {self.path}: shape must be (Z, Y, X) or (Z, Y, X, C), got {shape}")
        z, y, x, c = (*(int(n) for n in shape[:3]), int(shape[3]) if len(shape) == 4 else 1)
        self.shape = (z, y, x, c)
        self.dtype = np.dtype(dtype)
        self.spacing = _check_spacing(self.path, spacing, ImageWriteError)
        self._options = _imagej_options(self.path, self.shape, self.dtype, self.spacing)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._map: np.memmap | None = None
        self._view: np.ndarray | None = None  # the map seen as (Z, Y, X, C)

    def __enter__(self) -> VolumeWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        z, y, x, c = self.shape
        file_shape = (z, y, x) if c == 1 else (z, c, y, x)
        try:
            self._map = tifffile.memmap(self._tmp, shape=file_shape, dtype=self.dtype, **self._options)
        except (OSError, ValueError, RuntimeError, TypeError) as err:
            self._tmp.unlink(missing_ok=True)
            raise ImageWriteError(f"cannot write {self.path}: {err}") from None
        self._view = self._map[..., None] if c == 1 else np.moveaxis(self._map, 1, 3)
        return self

    def __setitem__(self, key: Any, block: np.ndarray) -> None:
        """Store ``block`` at ``key``, an index over ``(Z, Y, X)`` or ``(Z, Y, X, C)``; a block without a
        channel axis fills a one-channel volume."""
        if self._view is None:
            raise RuntimeError(f"VolumeWriter for {self.path} is not open: use it in a with block")
        block = np.asarray(block)
        if self.shape[3] == 1 and block.ndim == 3:
            block = block[..., None]
        self._view[key] = block

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if self._map is not None:
                self._map.flush()
            self._map = self._view = None  # closes the map before the rename
            if kind is None:
                os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
