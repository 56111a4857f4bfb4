"""Instance metrics on volumes: iou_matrix, match_counts and instance_scores count voxels as they count pixels.

The maps below are boxes in a (6, 6, 10) volume, IoUs worked out by hand:

    true 1 = [0:4, 0:4, 0:4]   64 voxels     pred 1 = [0:4, 0:4, 0:3]    48 voxels
    true 2 = [0:4, 0:4, 4:8]   64 voxels     pred 2 = [0:4, 0:4, 3:8]    80 voxels
    true 3 = [4:6, 0:2, 8:10]   8 voxels     pred 3 = [5:6, 5:6, 8:10]    2 voxels (overlaps nothing)
                                             pred 4 = [4:6, 0:2, 9:10]    4 voxels

    pred 1 / true 1: overlap 48, union 64            -> 0.75
    pred 2 / true 1: overlap 16 (x = 3), union 80 + 64 - 16 = 128 -> 0.125
    pred 2 / true 2: overlap 64, union 80            -> 0.8
    pred 4 / true 3: overlap 4, union 8              -> 0.5
"""

from __future__ import annotations

import numpy as np
import pytest

from pix2pix_unet.metrics.instance import (border_ids, drop_border_objects, instance_scores, iou_matrix,
                                           match_counts)


def boxes(shape: tuple[int, ...], *regions: tuple[slice, ...]) -> np.ndarray:
    ids = np.zeros(shape, np.int32)
    for k, region in enumerate(regions, start=1):
        ids[region] = k
    return ids


SHAPE = (6, 6, 10)
TRUE = boxes(SHAPE, np.s_[0:4, 0:4, 0:4], np.s_[0:4, 0:4, 4:8], np.s_[4:6, 0:2, 8:10])
PRED = boxes(SHAPE, np.s_[0:4, 0:4, 0:3], np.s_[0:4, 0:4, 3:8], np.s_[5:6, 5:6, 8:10], np.s_[4:6, 0:2, 9:10])


def test_iou_matrix_of_boxes_in_a_volume():
    expected = np.array([
        [0.75, 0.0, 0.0],
        [0.125, 0.8, 0.0],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 0.5],
    ])
    np.testing.assert_allclose(iou_matrix(PRED, TRUE), expected)


def test_match_counts_at_each_threshold():
    counts = match_counts(PRED, TRUE, taus=(0.5, 0.75, 0.8, 0.85))
    # tau 0.5: pred 1-true 1 (0.75), pred 2-true 2 (0.8), pred 4-true 3 (0.5, counted at >=); pred 3 is a FP
    # tau 0.75: 0.75 and 0.8 left; tau 0.8: 0.8 alone; tau 0.85: none
    np.testing.assert_allclose(counts, [
        [3, 1, 0, 2.05],
        [2, 2, 1, 1.55],
        [1, 3, 2, 0.8],
        [0, 4, 3, 0.0],
    ])


def test_instance_scores_from_volume_counts():
    scores = instance_scores(match_counts(PRED, TRUE, taus=(0.5,)), taus=(0.5,))
    assert scores["object_precision"] == pytest.approx(3 / 4)
    assert scores["object_recall"] == pytest.approx(1.0)
    assert scores["object_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 0))  # 6/7
    assert scores["pq"] == pytest.approx(2.05 / (3 + 0.5))
    assert scores["matched_iou"] == pytest.approx(2.05 / 3)


def test_objects_overlapping_in_every_slice_but_shifted_in_z_count_voxels_not_slices():
    # each true slice is covered by some predicted slice, but only half the voxels are shared:
    # overlap [2:4] = 2 * 9 = 18 voxels, union 4 * 9 + 4 * 9 - 18 = 54 -> IoU 1/3, a miss at 0.5
    true = boxes((8, 3, 3), np.s_[0:4])
    pred = boxes((8, 3, 3), np.s_[2:6])
    np.testing.assert_allclose(iou_matrix(pred, true), [[1 / 3]])
    np.testing.assert_allclose(match_counts(pred, true, taus=(0.3, 0.5)), [[1, 0, 0, 1 / 3], [0, 1, 1, 0.0]])


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(6, 6, 10\).*\(6, 10\)"):
        iou_matrix(PRED, TRUE[0])


def test_border_ids_in_a_volume_and_an_image():
    volume = boxes((6, 8, 8), np.s_[1:4, 2:5, 2:5], np.s_[5:6, 3:4, 3:4], np.s_[2:3, 7:8, 1:2])
    assert border_ids(volume).tolist() == [2, 3]  # 2 on the last slice, 3 on the last row
    image = boxes((5, 5), np.s_[1:3, 1:3], np.s_[0:1, 2:3])
    assert border_ids(image).tolist() == [2]


def test_drop_border_objects_scores_the_interior_only():
    shape = (6, 8, 8)
    true = boxes(shape,
                 np.s_[1:4, 2:5, 2:5],   # 1 interior, found
                 np.s_[0:4, 1:3, 5:7],   # 2 on the first slice: dropped
                 np.s_[4:5, 1:3, 1:3],   # 3 interior, missed
                 np.s_[2:4, 5:7, 1:3])   # 4 interior, found by a prediction that reaches the border
    pred = boxes(shape,
                 np.s_[1:4, 2:5, 2:5],   # 1 = true 1
                 np.s_[1:4, 1:3, 5:7],   # 2 off the border, but matches true 2 (IoU 12/16): dropped with it
                 np.s_[5:6, 6:8, 0:2],   # 3 on the border, matches nothing: dropped
                 np.s_[4:5, 5:7, 5:7],   # 4 off the border, matches nothing: a false positive
                 np.s_[2:4, 5:7, 0:3])   # 5 on the border, matches true 4 (IoU 8/12): kept
    kept_pred, kept_true = drop_border_objects(pred, true)
    assert np.unique(kept_pred).tolist() == [0, 1, 4, 5]
    assert np.unique(kept_true).tolist() == [0, 1, 3, 4]
    tp, fp, fn, _ = match_counts(kept_pred, kept_true, taus=(0.5,))[0]
    assert (tp, fp, fn) == (2, 1, 1)
    assert np.array_equal(pred, boxes(shape, np.s_[1:4, 2:5, 2:5], np.s_[1:4, 1:3, 5:7], np.s_[5:6, 6:8, 0:2],
                                      np.s_[4:5, 5:7, 5:7], np.s_[2:4, 5:7, 0:3]))  # inputs untouched
    # at a stricter match, pred 2 no longer belongs to true 2 and counts as a false positive
    assert 2 in drop_border_objects(pred, true, tau=0.8)[0]
    with pytest.raises(ValueError, match="outside"):
        drop_border_objects(pred, true, tau=1.5)
