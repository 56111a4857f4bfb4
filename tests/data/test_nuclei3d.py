"""The built-in nuclei volumes (pix2pix_unet.data.nuclei3d): determinism, instances, touching, anisotropy, files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, make_nuclei_volume, write_nuclei_volumes
from pix2pix_unet.data.synthetic import VAL_INDEX_OFFSET
from pix2pix_unet.volume_io import read_volume

SPEC = Nuclei3DSpec()
VOLUMES = [make_nuclei_volume(index, seed=0) for index in range(6)]


def touching_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of instance ids that share a voxel face."""
    pairs = set()
    for axis in range(instances.ndim):
        ids = np.moveaxis(instances, axis, 0)
        a, b = ids[1:], ids[:-1]
        face = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(p, q), max(p, q)) for p, q in zip(a[face].tolist(), b[face].tolist())}
    return pairs


def test_volumes_are_deterministic_in_index_and_seed():
    image, instances = make_nuclei_volume(3, seed=7)
    again = make_nuclei_volume(3, seed=7)
    assert np.array_equal(image, again[0]) and np.array_equal(instances, again[1])
    assert not np.array_equal(instances, make_nuclei_volume(4, seed=7)[1])
    assert not np.array_equal(instances, make_nuclei_volume(3, seed=8)[1])
    with pytest.raises(IndexError, match="-1"):
        make_nuclei_volume(-1)


def test_dtypes_shapes_and_a_realistic_16_bit_range():
    for image, instances in VOLUMES:
        assert image.dtype == np.uint16 and instances.dtype == np.int32
        assert image.shape == instances.shape == SPEC.shape == (32, 96, 96)
        # measured: background medians 200-420 counts, maxima 14000-17500
        assert 100 < np.median(image[instances == 0]) < 600 and 5000 < image.max() < 25000
    small = Nuclei3DSpec(shape=(8, 32, 40))
    image, instances = make_nuclei_volume(0, spec=small)
    assert image.shape == instances.shape == (8, 32, 40)


def test_every_instance_is_one_connected_piece_with_ids_1_to_n():
    for _, instances in VOLUMES:
        n = int(instances.max())
        assert n >= 20 and np.array_equal(np.unique(instances), np.arange(n + 1))
        for k, box in enumerate(ndimage.find_objects(instances), start=1):
            mask = instances[box] == k
            assert ndimage.label(mask)[1] == 1 and mask.sum() >= SPEC.min_voxels


def test_nuclei_touch():
    for _, instances in VOLUMES:
        pairs = touching_pairs(instances)
        touched = {k for pair in pairs for k in pair}
        # measured: 77-93 % of the nuclei of a volume touch another
        assert len(touched) >= 0.6 * instances.max()


def test_nuclei_are_brighter_than_the_background():
    for image, instances in VOLUMES:
        inside, outside = np.median(image[instances > 0]), np.median(image[instances == 0])
        assert inside > 5 * outside  # measured: 9-15x
        # even the dimmest nucleus stands out, so a watershed has something to find (measured: 4.1-8.4x)
        means = ndimage.mean(image, instances, np.arange(1, instances.max() + 1))
        assert means.min() > 3 * outside


def test_nuclei_are_round_in_micrometres_so_thin_in_z_voxels():
    extents = []
    for _, instances in VOLUMES:
        for box in ndimage.find_objects(instances):
            extents.append([s.stop - s.start for s in box])
    voxels = np.median(np.asarray(extents, np.float64), axis=0)  # (z, y, x)
    micrometres = voxels * np.asarray(SPEC.spacing)
    assert voxels[1] > 2.5 * voxels[0]  # z is sampled 4x coarser
    assert 0.6 < micrometres[0] / micrometres[1] < 1.8 and 0.8 < micrometres[2] / micrometres[1] < 1.25


def test_the_z_blur_is_longer_than_the_lateral_one():
    def steepness(psf_sigma: tuple[float, float]) -> np.ndarray:
        """Mean absolute difference of neighbouring voxels along z, y and x, nearly without noise."""
        spec = Nuclei3DSpec(psf_sigma=psf_sigma, read_noise=0.0, gain=1e-3, texture=0.0)
        image = make_nuclei_volume(0, spec=spec)[0].astype(np.float64)
        return np.array([np.abs(np.diff(image, axis=axis)).mean() for axis in range(3)])

    # the same nuclei under the default PSF (1.6 µm along z) and under one as short along z as across (0.3 µm):
    # the longer z blur softens the edges along z far more than along y and x (measured 0.74 against 0.94)
    ratio = steepness(SPEC.psf_sigma) / steepness((SPEC.psf_sigma[1], SPEC.psf_sigma[1]))
    assert SPEC.psf_sigma[0] > SPEC.psf_sigma[1]
    assert ratio[0] < 0.85 and ratio[0] < ratio[1] - 0.1 and ratio[0] < ratio[2] - 0.1


def test_spec_fields_out_of_range_name_themselves():
    with pytest.raises(ValueError, match=r"shape.*\(2, 96, 96\)"):
        Nuclei3DSpec(shape=(2, 96, 96))
    with pytest.raises(ValueError, match=r"spacing.*\(0\.0, 0\.5, 0\.5\)"):
        Nuclei3DSpec(spacing=(0.0, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"radius.*\(5\.0, 3\.0\)"):
        Nuclei3DSpec(radius=(5.0, 3.0))
    with pytest.raises(ValueError, match="gain"):
        Nuclei3DSpec(gain=0.0)


def test_written_volumes_carry_the_spacing_and_mirror_the_2d_layout(tmp_path):
    spec = Nuclei3DSpec(shape=(8, 32, 32))
    root = write_nuclei_volumes(tmp_path / "nuclei3d", num_train=2, num_val=1, seed=5, spec=spec)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.tif")) == [
        f"{split}/{kind}/{name}" for split, names in (("train", ("v000.tif", "v001.tif")), ("val", ("v000.tif",)))
        for kind in ("images", "instances", "labels") for name in names
    ]
    for split, index, name in (("train", 1, "v001.tif"), ("val", VAL_INDEX_OFFSET, "v000.tif")):
        image, instances = make_nuclei_volume(index, seed=5, spec=spec)
        read = {kind: read_volume(root / split / kind / name) for kind in ("images", "labels", "instances")}
        for volume in read.values():
            assert volume.spacing == spec.spacing and volume.voxels.shape == (*spec.shape, 1)
        assert read["images"].voxels.dtype == np.uint16 and read["labels"].voxels.dtype == np.uint8
        assert read["instances"].voxels.dtype == np.uint16
        np.testing.assert_array_equal(read["images"].voxels[..., 0], image)
        np.testing.assert_array_equal(read["instances"].voxels[..., 0], instances)
        np.testing.assert_array_equal(read["labels"].voxels[..., 0], instances > 0)
    with pytest.raises(ValueError, match="num_val=-1"):
        write_nuclei_volumes(tmp_path / "bad", 1, -1)
