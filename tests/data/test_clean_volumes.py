"""Clean volumes for 3D restoration: TIFF stacks with one voxel size, or the built-in nuclei without noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.config import DataConfig
from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, make_nuclei_volume
from pix2pix_unet.data.volumes import CLEAN_NUCLEI, BuiltinCleanVolumes, CleanVolumes, build_clean_volumes
from pix2pix_unet.errors import DatasetError
from pix2pix_unet.io import write_image
from pix2pix_unet.volume_io import VolumeError, write_volume


def volume(seed: int, shape: tuple[int, int, int] = (6, 16, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, shape, dtype=np.uint16)


def test_clean_volumes_decode_whole_stacks_with_their_spacing(tmp_path):
    for i in range(2):
        write_volume(tmp_path / f"v{i}.tif", volume(i), (2.0, 0.5, 0.5))
    data = CleanVolumes(sorted(tmp_path.glob("*.tif")), ImageCodec(1)).check()
    item = data[1]
    assert item["clean"].shape == (1, 6, 16, 16) and item["name"] == "v1.tif"
    expected = torch.from_numpy(volume(1).astype(np.float32)) / 65535 * 2 - 1  # the 16-bit dtype rule
    assert torch.allclose(item["clean"][0], expected, atol=1e-6)
    assert data.spacing == (2.0, 0.5, 0.5) and data.example_files()[0] == {"clean": tmp_path / "v0.tif"}


def test_clean_volumes_refuse_other_spacings_2d_images_and_pairs_that_differ(tmp_path):
    write_volume(tmp_path / "a.tif", volume(0), (2.0, 0.5, 0.5))
    write_volume(tmp_path / "b.tif", volume(1), (1.0, 0.5, 0.5))
    with pytest.raises(DatasetError, match=r"b\.tif has voxel size \(1\.0, 0\.5, 0\.5\)"):
        CleanVolumes([tmp_path / "a.tif", tmp_path / "b.tif"], ImageCodec(1)).check()
    write_image(tmp_path / "flat.png", np.zeros((16, 16), np.uint16))
    with pytest.raises(VolumeError, match="flat.png"):
        CleanVolumes([tmp_path / "flat.png"], ImageCodec(1))[0]
    write_volume(tmp_path / "small.tif", volume(2, (4, 16, 16)), (2.0, 0.5, 0.5))
    with pytest.raises(DatasetError, match=r"pair shapes differ: .*small\.tif"):
        CleanVolumes([tmp_path / "a.tif"], ImageCodec(1), degraded=[tmp_path / "small.tif"])[0]


def test_a_folder_is_split_by_file_and_the_volumes_share_a_spacing(tmp_path):
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            write_volume(tmp_path / split / "images" / f"{split}{i}.tif", volume(i), None)
    files = lambda folder: sorted((folder / "images").glob("*.tif"))  # noqa: E731
    train, val, spacing = build_clean_volumes(DataConfig(path=str(tmp_path)), ImageCodec(1), 0, files,
                                              (1.0, 0.25, 0.25))
    assert (len(train), len(val)) == (2, 1) and spacing == (1.0, 0.25, 0.25)  # none in the files: the given one


def test_builtin_clean_volumes_are_the_nuclei_without_camera_noise():
    spec = Nuclei3DSpec(shape=(8, 32, 32), gain=CLEAN_NUCLEI.gain, read_noise=CLEAN_NUCLEI.read_noise)
    data = BuiltinCleanVolumes(1, 0, ImageCodec(1), spec=spec)
    clean = data[0]["clean"]
    assert clean.shape == (1, 8, 32, 32) and data.spacing == (2.0, 0.5, 0.5) and data[0]["name"] == "volume_0000"
    noisy, _ = make_nuclei_volume(0, 0, Nuclei3DSpec(shape=(8, 32, 32)))
    counts = (clean[0].double() + 1) / 2 * 65535
    # the same nuclei; the noisy volume's extra is its shot and read noise, tens of counts
    residual = noisy.astype(np.float64) - counts.numpy()
    assert abs(float(residual.mean())) < 5 and 10 < float(residual.std()) < 200
    smooth = float(np.diff(counts.numpy(), axis=-1).std())
    assert smooth < float(np.diff(noisy.astype(np.float64), axis=-1).std())
