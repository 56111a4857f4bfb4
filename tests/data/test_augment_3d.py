"""3D augmentation: the elastic deformation (ids stay ids, identity at strength 0, image and labels move
together, displacement measured in µm) and the turns (in-plane when anisotropic, any plane when isotropic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from pix2pix_unet.data.augment import VolumeAugmentation, elastic_displacement3d, elastic_std, warp3d


def blobs(shape=(16, 32, 32)) -> torch.Tensor:
    """Instance ids: three boxes, one per id."""
    ids = torch.zeros(shape, dtype=torch.int64)
    ids[3:8, 4:12, 4:14], ids[8:13, 16:26, 6:14], ids[4:10, 18:28, 20:30] = 7, 12, 30
    return ids


def test_strength_zero_is_the_identity():
    torch.manual_seed(0)
    image = torch.rand(2, 8, 24, 24)
    field = elastic_displacement3d((8, 24, 24), (2.0, 0.5, 0.5), alpha=0.0, sigma=8.0)
    assert field.shape == (3, 8, 24, 24) and not field.any()
    assert torch.allclose(warp3d(image, field), image, atol=1e-5)  # float32 rounding of the grid
    ids = blobs()
    assert torch.equal(warp3d(ids[None], torch.zeros(3, *ids.shape), mode="nearest")[0], ids)


def test_labels_stay_a_subset_of_the_input_ids():
    torch.manual_seed(1)
    ids = blobs()
    field = elastic_displacement3d(ids.shape, (1.0, 1.0, 1.0), alpha=30.0, sigma=4.0)  # strong
    out = warp3d(ids[None], field, mode="nearest")[0]
    assert out.dtype == torch.int64
    assert set(out.unique().tolist()) <= set(ids.unique().tolist())
    assert not torch.equal(out, ids)  # it moved


def test_image_and_labels_move_together():
    torch.manual_seed(2)
    ids = blobs()
    image = (ids == 12).float()[None] * 2 - 1  # (1, z, y, x): the image shows blob 12
    field = elastic_displacement3d(ids.shape, (1.0, 1.0, 1.0), alpha=30.0, sigma=4.0)
    moved_image, moved_ids = warp3d(image, field)[0], warp3d(ids[None], field, mode="nearest")[0]
    centre_image = np.array(ndimage.center_of_mass((moved_image > 0).numpy()))
    centre_label = np.array(ndimage.center_of_mass((moved_ids == 12).numpy()))
    before = np.array(ndimage.center_of_mass((ids == 12).numpy()))
    assert np.abs(centre_image - centre_label).max() < 0.5  # one geometry for both
    assert np.abs(centre_label - before).max() > 0.3  # and the blob did move
    # through VolumeAugmentation too: image, labels and float maps together
    aug = VolumeAugmentation(flip=True, turn=True, intensity=False, spacing=(2.0, 0.5, 0.5), elastic_alpha=30.0,
                             elastic_sigma=4.0, elastic_p=1.0)
    labels = (ids > 0).long()
    x, y, m = aug(labels[None, None].float(), labels[None], labels[None, None].float())
    # trilinear image and nearest labels differ at most on a few boundary voxels
    assert (y[0] != (x[0, 0] > 0.5).long()).float().mean() < 0.01 and y.unique().tolist() == [0, 1]
    assert torch.allclose(x, m)


def test_the_displacement_is_the_same_in_um_on_every_axis():
    torch.manual_seed(3)
    spacing = (2.0, 0.5, 0.5)
    stds = torch.stack([elastic_displacement3d((24, 64, 64), spacing, alpha=3.0, sigma=8.0).flatten(1).std(1)
                        for _ in range(8)]).mean(0)  # voxels, per axis
    in_um = stds * torch.tensor(spacing)
    assert in_um[0] == pytest.approx(float(in_um[1:].mean()), rel=0.35)  # z moves as far in µm ...
    assert stds[0] < stds[1:].min() / 2  # ... so fewer of its coarse voxels
    # in-plane, as far as kornia's 2D elastic at the same strength on a 64-px crop (2.0 px for the defaults)
    assert float(stds[1:].mean()) == pytest.approx(elastic_std(3.0, 8.0), rel=0.35)


def test_turns_stay_in_plane_when_anisotropic_and_go_through_z_when_isotropic():
    cube = torch.zeros(1, 1, 8, 8, 8)
    cube[0, 0, 0, 0, 1:] = 1  # a line along x in the top slice
    def z_extents(spacing) -> set[int]:
        torch.manual_seed(4)
        aug = VolumeAugmentation(flip=False, turn=True, intensity=False, spacing=spacing)
        return {int(aug(cube, cube[:, 0].long(), cube)[0][0, 0].any(dim=(1, 2)).sum()) for _ in range(40)}
    assert z_extents((2.0, 0.5, 0.5)) == {1}  # the line never leaves its slice
    assert z_extents((1.0, 1.0, 1.0)) == {1, 7}  # turned through z, it spans 7 slices
    assert z_extents(None) == {1}  # no voxel size: in-plane only


def test_elastic_cost_per_32x96x96_patch(capsys):
    """Not a timed test: prints what one deformation of a patch costs here."""
    import time

    torch.manual_seed(5)
    image, labels, maps = torch.rand(1, 1, 32, 96, 96), torch.randint(0, 3, (1, 32, 96, 96)), torch.rand(1, 1, 32, 96, 96)
    aug = VolumeAugmentation(flip=False, turn=False, intensity=False, spacing=(2.0, 0.5, 0.5), elastic_alpha=3.0,
                             elastic_sigma=8.0, elastic_p=1.0)
    aug(image, labels, maps)
    start = time.perf_counter()
    for _ in range(5):
        out = aug(image, labels, maps)
    with capsys.disabled():
        print(f"\nelastic 3D, image + labels + 1 map, 32x96x96, {torch.get_num_threads()} thread(s): "
              f"{(time.perf_counter() - start) / 5 * 1000:.1f} ms per patch")
    assert out[0].shape == image.shape
