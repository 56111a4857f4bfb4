"""Volume I/O: TIFF stacks keep their Z axis, dtype and voxel size both ways; 2D images, time series and
bad files are refused naming the file; the block writer writes what write_volume writes, in little memory."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import tifffile

from pix2pix_unet.errors import DatasetError
from pix2pix_unet.io import ImageReadError, ImageWriteError, write_image
from pix2pix_unet.volume_io import Volume, VolumeError, VolumeWriter, is_volume, read_volume, write_volume

RNG = np.random.default_rng(0)  # drawn from at import only
SPACING = (1.0, 0.25, 0.25)  # z, y, x in µm
ZYX16 = RNG.integers(0, 65536, (6, 17, 23), dtype=np.uint16)
ZYXC8 = RNG.integers(0, 256, (6, 17, 23, 3), dtype=np.uint8)


@pytest.mark.parametrize("voxels, axes", [(ZYX16, "ZYX"), (ZYXC8, "ZCYX"),
                                          (RNG.random((4, 9, 11, 2), dtype=np.float32), "ZCYX")])
def test_round_trip_keeps_voxels_dtype_and_spacing(tmp_path, voxels, axes):
    path = write_volume(tmp_path / "v.tif", voxels, SPACING)
    volume = read_volume(path)
    expected = voxels if voxels.ndim == 4 else voxels[..., None]
    assert volume.voxels.dtype == voxels.dtype and volume.voxels.shape == expected.shape
    np.testing.assert_array_equal(volume.voxels, expected)
    assert volume.spacing == pytest.approx(SPACING) and volume.axes == axes and volume.path == path
    assert is_volume(path)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file is gone


def test_files_are_imagej_hyperstacks_fiji_reads_the_voxel_size_of(tmp_path):
    path = write_volume(tmp_path / "v.tif", ZYXC8, (2.0, 0.5, 0.4))
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        assert tif.is_imagej and meta["slices"] == 6 and meta["channels"] == 3
        assert meta["spacing"] == 2.0 and meta["unit"] == "um"
        x_num, x_den = tif.pages[0].tags["XResolution"].value
        y_num, y_den = tif.pages[0].tags["YResolution"].value
        assert x_num / x_den == pytest.approx(2.5) and y_num / y_den == pytest.approx(2.0)  # pixels per µm


def test_like_carries_the_input_spacing_and_an_odd_spacing_survives(tmp_path):
    source = read_volume(write_volume(tmp_path / "in.tif", ZYX16, (0.3, 0.13, 0.13)))
    assert source.spacing == (0.3, 0.13, 0.13)  # exact: rationals are rounded to 7 digits
    out = read_volume(write_volume(tmp_path / "out.tif", ZYX16 // 2, like=source))
    assert out.spacing == source.spacing
    assert read_volume(write_volume(tmp_path / "none.tif", ZYX16)).spacing is None


@pytest.mark.parametrize("unit, scale", [("nm", 1000.0), ("µm", 1.0), ("mm", 0.001)])
def test_ome_tiff_physical_sizes_are_converted_to_micrometres(tmp_path, unit, scale):
    path = tmp_path / "v.ome.tif"
    tifffile.imwrite(path, np.moveaxis(ZYXC8, 3, 1), ome=True, metadata={
        "axes": "ZCYX", "PhysicalSizeX": 0.25 * scale, "PhysicalSizeXUnit": unit, "PhysicalSizeY": 0.2 * scale,
        "PhysicalSizeYUnit": unit, "PhysicalSizeZ": 1.5 * scale, "PhysicalSizeZUnit": unit})
    volume = read_volume(path)
    assert volume.spacing == pytest.approx((1.5, 0.2, 0.25))
    np.testing.assert_array_equal(volume.voxels, ZYXC8)


def test_ome_without_units_means_micrometres(tmp_path):
    path = tmp_path / "v.ome.tif"
    tifffile.imwrite(path, ZYX16, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                                                      "PhysicalSizeZ": 2.0})
    assert read_volume(path).spacing == pytest.approx((2.0, 0.5, 0.5))


def test_imagej_micron_unit_and_resolution(tmp_path):
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(path, ZYX16, imagej=True, resolution=(1 / 0.2, 1 / 0.3),
                     metadata={"axes": "ZYX", "spacing": 0.8, "unit": "micron"})
    assert read_volume(path).spacing == pytest.approx((0.8, 0.3, 0.2))


@pytest.mark.parametrize("layout, data, kwargs", [
    ("CZYX", np.moveaxis(ZYXC8, 3, 0), {"metadata": {"axes": "CZYX"}}),
    ("ZYXS", ZYXC8, {"photometric": "rgb", "metadata": {"axes": "ZYXS"}}),
    ("QYX", ZYX16, {"photometric": "minisblack"}),  # a plain multi-page TIFF: its pages are the Z axis
    ("ZCYX", np.moveaxis(ZYXC8, 3, 1)[None], {"imagej": True, "metadata": {"axes": "TZCYX"}}),  # T = 1
])
def test_stack_layouts_become_zyxc(tmp_path, layout, data, kwargs):
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, data, **kwargs)
    volume = read_volume(path)
    expected = ZYXC8 if data.dtype == np.uint8 else ZYX16[..., None]
    np.testing.assert_array_equal(volume.voxels, expected)
    assert volume.axes == layout and volume.spacing is None and is_volume(path)


def test_spacing_argument_when_the_file_has_none(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, ZYX16, photometric="minisblack")
    assert read_volume(path).spacing is None
    assert read_volume(path, spacing=(2.0, 0.5, 0.5)).spacing == (2.0, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"plain\.tif.*\(0\.0, 1, 1\)"):
        read_volume(path, spacing=(0.0, 1, 1))


def test_file_spacing_wins_over_a_different_argument_with_a_warning(tmp_path):
    path = write_volume(tmp_path / "stated.tif", ZYX16, SPACING)
    with pytest.warns(UserWarning, match=r"stated\.tif.*\(1\.0, 0\.25, 0\.25\).*\(2\.0, 0\.25, 0\.25\).* in z;"):
        volume = read_volume(path, spacing=(2.0, 0.25, 0.25))
    assert volume.spacing == SPACING
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_volume(path, spacing=SPACING).spacing == SPACING  # the same: no warning


def test_imagej_sizes_without_a_length_unit_are_no_voxel_size(tmp_path):
    path = tmp_path / "pixels.tif"  # ImageJ's unit "pixel": sizes in pixels say nothing about micrometres
    tifffile.imwrite(path, ZYX16, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "ZYX", "spacing": 3.0})
    assert read_volume(path).spacing is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_volume(path, spacing=(3.0, 0.4, 0.4)).spacing == (3.0, 0.4, 0.4)


@pytest.mark.parametrize("name", ["flat.png", "flat.tif", "one_slice.tif"])
def test_a_2d_image_is_a_volume_error_naming_the_file(tmp_path, name):
    path = tmp_path / name
    if name == "one_slice.tif":
        tifffile.imwrite(path, ZYX16[:1], imagej=True, metadata={"axes": "ZYX"})
    else:
        write_image(path, ZYX16[0])
    with pytest.raises(VolumeError, match=rf"{name}.*2D.*a 3D model needs a Z stack"):
        read_volume(path)
    assert issubclass(VolumeError, DatasetError)
    assert not is_volume(path)


def test_a_time_series_is_refused_naming_the_file_and_the_sizes(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((3, 4, 8, 9), np.uint16), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(VolumeError, match=r"movie\.tif.*axes TZYX, shape \(3, 4, 8, 9\), T = 3"):
        read_volume(path)
    assert is_volume(path)  # it has a Z stack; read_volume says why it cannot take it


def test_unreadable_files_raise_image_read_error_naming_them(tmp_path):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not really a tiff")
    for path in (broken, tmp_path / "missing.tif"):
        with pytest.raises(ImageReadError, match=path.name):
            read_volume(path)
    with pytest.raises(ImageReadError, match="broken.tif"):
        is_volume(broken)
    with pytest.raises(ImageReadError, match=r"missing\.png.*no such file"):
        read_volume(tmp_path / "missing.png")


def test_unwritable_volumes_name_the_file(tmp_path):
    with pytest.raises(ImageWriteError, match=r"ids\.tif.*int32"):
        write_volume(tmp_path / "ids.tif", ZYX16.astype(np.int32))
    with pytest.raises(ImageWriteError, match=r"thin\.tif.*Z of at least 2"):
        write_volume(tmp_path / "thin.tif", ZYX16[:1])
    with pytest.raises(ImageWriteError, match=r"flat\.tif.*shape \(17, 23\)"):
        write_volume(tmp_path / "flat.tif", ZYX16[0])
    with pytest.raises(ImageWriteError, match=r"bad\.tif.*\(1, 2\)"):
        write_volume(tmp_path / "bad.tif", ZYX16, spacing=(1, 2))  # type: ignore[arg-type]
    with pytest.raises(ImageWriteError, match=r"w\.tif.*float64"):
        VolumeWriter(tmp_path / "w.tif", (4, 8, 8), np.float64)
    assert not list(tmp_path.iterdir())


def test_volume_writer_writes_what_write_volume_writes(tmp_path):
    for voxels in (ZYX16, ZYXC8):
        whole = write_volume(tmp_path / "whole.tif", voxels, SPACING)
        with VolumeWriter(tmp_path / "blocks.tif", voxels.shape, voxels.dtype, SPACING) as out:
            for z0 in range(0, voxels.shape[0], 4):
                for y0 in range(0, voxels.shape[1], 8):  # blocks that split Y too, and end short
                    out[z0:z0 + 4, y0:y0 + 8] = voxels[z0:z0 + 4, y0:y0 + 8]
        a, b = read_volume(whole), read_volume(tmp_path / "blocks.tif")
        assert b.voxels.dtype == a.voxels.dtype and b.spacing == a.spacing == SPACING and b.axes == a.axes
        np.testing.assert_array_equal(b.voxels, a.voxels)
        with tifffile.TiffFile(whole) as ta, tifffile.TiffFile(tmp_path / "blocks.tif") as tb:
            assert ta.imagej_metadata == tb.imagej_metadata
            for tag in ("XResolution", "YResolution", "ImageWidth", "ImageLength", "BitsPerSample"):
                assert ta.pages[0].tags[tag].value == tb.pages[0].tags[tag].value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.tif", "whole.tif"]


def test_volume_writer_leaves_nothing_when_the_block_raises(tmp_path):
    with pytest.raises(KeyError):
        with VolumeWriter(tmp_path / "half.tif", (4, 8, 8), np.uint16) as out:
            out[:2] = np.ones((2, 8, 8), np.uint16)
            raise KeyError("prediction failed")
    assert not list(tmp_path.iterdir())
    with pytest.raises(RuntimeError, match=r"closed\.tif.*with block"):
        VolumeWriter(tmp_path / "closed.tif", (4, 8, 8), np.uint16)[0] = np.zeros((8, 8), np.uint16)


def test_volume_writer_peak_memory_stays_well_under_the_volume(tmp_path):
    shape, block = (64, 256, 256), 16
    size = int(np.prod(shape)) * 2  # 8 MiB of uint16
    tracemalloc.start()
    try:
        with VolumeWriter(tmp_path / "big.tif", shape, np.uint16, SPACING) as out:
            for z0 in range(0, shape[0], block):
                out[z0:z0 + block] = np.full((block, *shape[1:]), z0, np.uint16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # measured: a 2 MiB block plus about 0.1 MiB, against 8 MiB for the volume
    assert peak < 0.35 * size, f"peak {peak / 2**20:.2f} MiB for a {size / 2**20:.0f} MiB volume"
    volume = read_volume(tmp_path / "big.tif")
    assert volume.voxels.shape == (*shape, 1) and volume.spacing == SPACING
    assert volume.voxels[::block, 0, 0, 0].tolist() == list(range(0, shape[0], block))


def test_volume_dataclass_is_frozen(tmp_path):
    volume = read_volume(write_volume(tmp_path / "v.tif", ZYX16, SPACING))
    assert isinstance(volume, Volume) and volume.shape == (6, 17, 23, 1)
    with pytest.raises(AttributeError):
        volume.spacing = None  # type: ignore[misc]

