"""Instance post-processing on volumes: border targets, border distance (with anisotropic voxels) and the
seeded watershed split two touching 3D ellipsoids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pix2pix_unet.data.instances import InstanceThresholds, border_distance, border_targets, instances_from_probs
from pix2pix_unet.metrics.instance import match_counts

SPACING = (2.0, 0.5, 0.5)  # z, y, x in µm: z 4x coarser, as the built-in volumes


def touching_ellipsoids() -> np.ndarray:
    """Two ellipsoids (semi-axes 6 µm in z, 5 in y, 6 in x) 10 µm apart along x, so they overlap by 2 µm;
    each overlapping voxel goes to the nearer centre, which leaves them touching along a flat sheet."""
    shape = (16, 40, 64)
    z, y, x = (np.indices(shape).astype(np.float64) * np.reshape(SPACING, (3, 1, 1, 1)))
    q = [((z - 16) / 6) ** 2 + ((y - 10) / 5) ** 2 + ((x - cx) / 6) ** 2 for cx in (11.0, 21.0)]
    instances = np.zeros(shape, np.int32)
    instances[q[0] <= 1] = 1
    instances[(q[1] <= 1) & ((q[1] < q[0]) | (q[0] > 1))] = 2
    return instances


INSTANCES = touching_ellipsoids()


def probabilities(classes: np.ndarray, num_classes: int = 3) -> np.ndarray:
    """A network's softmax, roughly: 0.8 on the right class, blurred by a voxel, ``(K, Z, Y, X)``."""
    onehot = np.stack([classes == k for k in range(num_classes)]).astype(np.float32)
    probs = 0.1 + 0.7 * onehot
    return np.stack([ndimage.gaussian_filter(p, 0.7) for p in probs])


def test_the_two_ellipsoids_touch_and_are_each_one_piece():
    touching = (INSTANCES[..., 1:] == 2) & (INSTANCES[..., :-1] == 1)
    assert touching.sum() > 20
    for k in (1, 2):
        assert ndimage.label(INSTANCES == k)[1] == 1


def test_border_targets_part_touching_volumes_by_a_two_voxel_sheet():
    targets = border_targets((INSTANCES > 0).astype(np.int64), INSTANCES, border_class=2)
    assert targets.shape == INSTANCES.shape and set(np.unique(targets)) == {0, 1, 2}
    contact = np.argwhere((INSTANCES[..., 1:] == 2) & (INSTANCES[..., :-1] == 1))
    for z, y, x in contact:  # both voxels at the contact are border, on each side of it
        assert targets[z, y, x] == targets[z, y, x + 1] == 2
    interior = ndimage.binary_erosion(INSTANCES == 1)  # a 6-neighbourhood erosion, as the border is drawn
    assert (targets[interior] == 1).all()


def test_touching_ellipsoids_split_into_exactly_two_instances():
    targets = border_targets((INSTANCES > 0).astype(np.int64), INSTANCES, border_class=2)
    found = instances_from_probs(probabilities(targets), border_class=2, th=InstanceThresholds())
    assert found.shape == INSTANCES.shape and found.max() == 2
    tp, fp, fn, _ = match_counts(found, INSTANCES, taus=(0.5,))[0]
    assert (tp, fp, fn) == (2, 0, 0)
    # without the border class the same foreground is one object: the border is what splits them
    merged = instances_from_probs(probabilities((INSTANCES > 0).astype(np.int64)), border_class=2,
                                  th=InstanceThresholds())
    assert merged.max() == 1


def test_distance_seeds_split_them_too():
    targets = border_targets((INSTANCES > 0).astype(np.int64), INSTANCES, border_class=2)
    distance = border_distance(INSTANCES, spacing=SPACING)
    found = instances_from_probs(probabilities(targets), 2, InstanceThresholds(seed=0.5), distance=distance)
    tp, fp, fn, _ = match_counts(found, INSTANCES, taus=(0.5,))[0]
    assert (tp, fp, fn) == (2, 0, 0)


def test_border_distance_of_a_volume_keeps_its_shape_and_measures_in_micrometres():
    # a box 5 voxels deep and 21 x 21 wide, alone in a (7, 23, 23) volume. The voxel at (2, 0, 10) of the box
    # is 1 voxel from the border (y); the deepest voxels are 3 from it in voxels (z), so 1/3 normalised.
    # With z voxels of 4 µm and y, x of 1 µm, the deepest are 11 µm from it (y, x: 12 µm away in z), so 1/11.
    instances = np.zeros((7, 23, 23), np.int32)
    instances[1:6, 1:22, 1:22] = 1
    plain, spaced = border_distance(instances), border_distance(instances, spacing=(4.0, 1.0, 1.0))
    assert plain.shape == spaced.shape == instances.shape
    assert plain[3, 1, 11] == pytest.approx(1 / 3) and spaced[3, 1, 11] == pytest.approx(1 / 11)
    assert plain.max() == spaced.max() == 1.0 and plain[0].max() == spaced[0].max() == 0.0
    with pytest.raises(ValueError, match=r"\(1\.0, 1\.0\).*3-d"):
        border_distance(instances, spacing=(1.0, 1.0))


def test_border_distance_in_2d_is_unchanged_by_unit_spacing():
    instances = INSTANCES[8]
    np.testing.assert_array_equal(border_distance(instances), border_distance(instances, spacing=(1.0, 1.0)))
    assert border_distance(instances).shape == instances.shape
