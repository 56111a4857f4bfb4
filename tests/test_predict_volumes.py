"""predict on volumes: OME-Zarr read lazily writes what the same volume as a TIFF held in memory writes; large
volumes keep only the task's voxel maps (class ids, watershed maps), block by block, and write what keeping the
whole output would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from pix2pix_unet.cli import main
from pix2pix_unet.config import InferenceConfig, UNetConfig, from_dict
from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, make_nuclei_volume
from pix2pix_unet.models import UNet
from pix2pix_unet.predict import collect_inputs
from pix2pix_unet.runtime import prepare_generator, run_one_volume, window_for_budget
from pix2pix_unet.tasks import generator_task
from pix2pix_unet.volume_io import VolumeError, open_volume, read_volume, write_volume

SPACING = (2.0, 0.5, 0.5)
META = {"task": "segment", "num_classes": 2, "intensity": "image", "instance_mode": True,
        "instance_thresholds": {"prob": 0.5, "seed": 0.5, "min_size": 4}}


def segmenter_3d(path: Path) -> Path:
    """An untrained 3D instance segmenter (background, nucleus, border) saved as an export: what predict does
    with its outputs does not depend on their quality. Its conv weights are scaled up so its outputs vary
    (on the volume below: all three classes, a few hundred objects). Batch norm in eval mode, so crop
    windows equal the whole."""
    torch.manual_seed(0)
    model = UNet(from_dict(UNetConfig, {
        "dims": 3, "spacing": list(SPACING), "depth": 2, "base_channels": 4, "max_channels": 8, "in_channels": 1,
        "out_channels": 3, "final_activation": "none", "norm": "batch", "dropout": 0.0}))
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 5:
                p.mul_(3)
    model.save_pretrained(path, **META)
    return path


def write_ome_zarr(path: Path, voxels: np.ndarray, spacing: tuple[float, float, float], chunks=(4, 16, 16),
                   zarr_format: int = 2) -> Path:
    """An OME-NGFF volume (0.4 on Zarr v2, 0.5 on Zarr v3) of ``(Z, Y, X)`` voxels, spacing in nanometres."""
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    array = group.create_array("0", shape=voxels.shape, chunks=chunks, dtype=voxels.dtype)
    array[:] = voxels
    multiscale = {"axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
                  "datasets": [{"path": "0", "coordinateTransformations": [
                      {"type": "scale", "scale": [1000 * s for s in spacing]}]}]}
    if zarr_format == 2:
        group.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    return path


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    image, _ = make_nuclei_volume(0, seed=3, spec=Nuclei3DSpec(shape=(12, 96, 80), spacing=SPACING))
    return image


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_lazy_ome_zarr_is_predicted_as_the_same_tiff_held_in_memory(tmp_path, volume, zarr_format):
    model = segmenter_3d(tmp_path / "model")
    write_volume(tmp_path / "tif" / "nuclei.tif", volume, SPACING)
    write_ome_zarr(tmp_path / "zarr" / "nuclei.ome.zarr", volume, SPACING, zarr_format=zarr_format)
    # the same sliding window for both (tile above 0 megavoxels): 0.5 MB gives 6 x 24 x 24 windows, below the
    # receptive field's 4x, so they overlap and blend (Gaussian)
    flags = ["--device", "cpu", "--no-progress", "--tile-above", "0", "--volume-budget", "0.5"]
    assert main(["predict", "--checkpoint", str(model), "--input", str(tmp_path / "tif"), "--output",
                 str(tmp_path / "from_tif"), *flags]) == 0
    assert main(["predict", "--checkpoint", str(model), "--input", str(tmp_path / "zarr"), "--output",
                 str(tmp_path / "from_zarr"), *flags]) == 0
    for name in ("nuclei", "nuclei_instances"):
        eager = read_volume(tmp_path / "from_tif" / f"{name}.tif")
        lazy = read_volume(tmp_path / "from_zarr" / f"nuclei.ome{name[6:]}.tif")
        assert np.array_equal(lazy.voxels, eager.voxels), name
        assert lazy.spacing == eager.spacing == SPACING  # nanometres in the metadata, micrometres out
    assert len(np.unique(eager.voxels)) > 20  # many objects: the comparison is not of empty volumes


def test_a_folder_of_zarr_volumes_gives_one_input_each_not_their_chunks(tmp_path, volume):
    write_ome_zarr(tmp_path / "in" / "a.zarr", volume, SPACING)
    write_ome_zarr(tmp_path / "in" / "sub" / "b.ome.zarr", volume, SPACING)
    inputs = collect_inputs(tmp_path / "in")
    assert [str(i.relative) for i in inputs] == ["a.zarr", "sub/b.ome.zarr"]
    assert [str(i.relative) for i in collect_inputs(tmp_path / "in" / "a.zarr")] == ["a.zarr"]


def test_the_voxel_maps_of_a_windowed_volume_are_those_of_its_whole_output(tmp_path, volume):
    """What predict keeps of a large volume (class ids, foreground, interior), block by block, equals the same
    maps taken from the whole output, and so do the instances cut from them."""
    model = UNet.from_pretrained(segmenter_3d(tmp_path / "model"))
    task = generator_task(model)
    write_volume(tmp_path / "v.tif", volume, SPACING)
    decoded = task.decode_input(tmp_path / "v.tif")
    generator = prepare_generator(model, InferenceConfig(), "cpu")
    whole = run_one_volume(generator, decoded.tensor, InferenceConfig(), "cpu")
    assert isinstance(whole, torch.Tensor) and whole.shape == (3, *volume.shape)
    # 4 MB: 12 x 52 x 52 windows, 4x the receptive field, so cropped exactly; four of them cover the volume
    assert window_for_budget(model.config, 1, 4 * 2**20, shape=volume.shape) == (12, 52, 52)
    windowed = run_one_volume(generator, decoded.tensor, InferenceConfig(tile_above_mp=0, volume_budget_mb=4), "cpu",
                              reduction=task.volume_reduction(decoded))
    expected = task.voxel_maps(whole)
    assert set(windowed) == {"classes", "foreground", "interior"}
    assert windowed["classes"].dtype == np.uint8 and windowed["foreground"].dtype == bool
    assert np.array_equal(windowed["classes"], expected["classes"])
    assert np.array_equal(windowed["foreground"], expected["foreground"])
    assert np.allclose(windowed["interior"], expected["interior"], atol=1e-5)
    assert 0 < expected["foreground"].mean() < 1 and len(np.unique(expected["classes"])) == 2


def test_ome_zarr_metadata_gives_axes_and_spacing_and_bad_ones_are_named(tmp_path, volume):
    path = write_ome_zarr(tmp_path / "v.zarr", volume, SPACING)
    opened = open_volume(path)
    assert opened.lazy and opened.shape == (*volume.shape, 1) and opened.spacing == SPACING
    assert np.array_equal(opened.voxels[2:5, 10:20, :][..., 0], volume[2:5, 10:20, :])  # only a block is read
    assert np.array_equal(read_volume(path).voxels[..., 0], volume)  # read whole, for training
    group = zarr.open_group(str(tmp_path / "flat.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(1, 8, 8), dtype="uint8")
    group.attrs["multiscales"] = [{"axes": [{"name": n} for n in "zyx"], "datasets": [{"path": "0"}]}]
    with pytest.raises(VolumeError, match="flat.zarr is a 2D image"):
        open_volume(tmp_path / "flat.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(Exception, match="empty.zarr"):
        open_volume(tmp_path / "empty.zarr")


def test_a_restorer_writes_the_same_16_bit_volume_from_windows_as_from_its_whole_output(tmp_path, volume):
    """A 3D restorer's large volume keeps only its written voxels, block by block (16-bit, half the float
    output); they are the voxels its whole output gives, in the input's dtype and spacing."""
    torch.manual_seed(0)
    model = UNet(from_dict(UNetConfig, {"dims": 3, "spacing": list(SPACING), "depth": 2, "base_channels": 4,
                                        "max_channels": 8, "in_channels": 1, "out_channels": 1, "norm": "batch",
                                        "dropout": 0.0}))
    model.save_pretrained(tmp_path / "model", task="restore", hole_mask_channel=False)
    write_volume(tmp_path / "in" / "v.tif", volume, SPACING)
    flags = ["--device", "cpu", "--no-progress"]
    assert main(["predict", "--checkpoint", str(tmp_path / "model"), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "whole"), *flags]) == 0
    # 4 MB: 12 x 52 x 52 windows, cropped exactly (4x the receptive field)
    assert main(["predict", "--checkpoint", str(tmp_path / "model"), "--input", str(tmp_path / "in"), "--output",
                 str(tmp_path / "windows"), *flags, "--tile-above", "0", "--volume-budget", "4"]) == 0
    whole, windows = read_volume(tmp_path / "whole" / "v.tif"), read_volume(tmp_path / "windows" / "v.tif")
    assert windows.voxels.dtype == np.uint16 and windows.spacing == SPACING
    assert np.abs(windows.voxels.astype(int) - whole.voxels.astype(int)).max() <= 1  # float rounding at most
    assert whole.voxels.std() > 0
