"""Instance matching metrics (StarDist / Cellpose definitions), against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from pix2pix_unet.metrics.instance import TAUS, instance_scores, iou_matrix, match_counts
from pix2pix_unet.metrics.segment import object_matches


def counts_at(counts: np.ndarray, tau: float) -> tuple[float, ...]:
    return tuple(counts[TAUS.index(tau)])


@pytest.fixture
def two_objects() -> np.ndarray:
    """A 2x2 object (id 3) and a 3x3 object (id 8) on a 6x6 background."""
    true = np.zeros((6, 6), np.int64)
    true[:2, :2] = 3
    true[3:, 3:] = 8
    return true


def square_split() -> tuple[np.ndarray, np.ndarray]:
    """One 4x4 object (16 px) and a cut of it into 4x3 (12 px) + 4x1 (4 px): IoUs 0.75 and 0.25."""
    whole = np.zeros((5, 5), np.int64)
    whole[:4, :4] = 1
    parts = whole.copy()
    parts[:4, 3] = 2
    return whole, parts


def test_taus():
    assert TAUS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def test_iou_matrix_follows_sorted_ids():
    true = np.array([[5, 5, 0, 2]])
    pred = np.array([[9, 0, 0, 2]])
    iou = iou_matrix(pred, true)
    assert iou.dtype == np.float64 and iou.shape == (2, 2)  # rows pred ids (2, 9), columns true ids (2, 5)
    np.testing.assert_allclose(iou, [[1.0, 0.0], [0.0, 0.5]])
    assert iou_matrix(np.zeros((3, 3), int), np.ones((3, 3), int)).shape == (0, 1)


def test_perfect_prediction(two_objects):
    pred = np.where(two_objects == 3, 1, np.where(two_objects == 8, 7, 0))  # other ids, same objects
    counts = match_counts(pred, two_objects)
    assert counts.shape == (9, 4)
    np.testing.assert_array_equal(counts, np.tile([2, 0, 0, 2.0], (9, 1)))
    scores = instance_scores(counts)
    assert scores == {"object_precision": 1.0, "object_recall": 1.0, "object_f1": 1.0, "ap_50": 1.0, "pq": 1.0,
                      "matched_iou": 1.0, "ap_75": 1.0, "map": 1.0}


def test_one_true_object_split_into_two():
    whole, parts = square_split()
    counts = match_counts(parts, whole)
    assert counts_at(counts, 0.5) == (1, 1, 0, 0.75)
    assert counts_at(counts, 0.75) == (1, 1, 0, 0.75)  # IoU 0.75 matches at 0.75: >=
    assert counts_at(counts, 0.8) == counts_at(counts, 0.9) == (0, 2, 1, 0.0)
    # one-to-one even where both parts pass the threshold
    np.testing.assert_array_equal(match_counts(parts, whole, taus=(0.2,)), [[1, 1, 0, 0.75]])
    scores = instance_scores(counts)
    assert scores["object_precision"] == 0.5 and scores["object_recall"] == 1.0
    assert scores["object_f1"] == pytest.approx(2 / 3)
    assert scores["ap_50"] == scores["ap_75"] == 0.5
    assert scores["pq"] == pytest.approx(0.75 / 1.5)
    assert scores["matched_iou"] == 0.75
    assert scores["map"] == pytest.approx(6 * 0.5 / 9)  # accuracy 1/2 up to 0.75, then 0/3


def test_two_true_objects_merged_into_one():
    whole, parts = square_split()
    counts = match_counts(whole, parts)
    assert counts_at(counts, 0.5) == counts_at(counts, 0.75) == (1, 0, 1, 0.75)
    assert counts_at(counts, 0.8) == (0, 1, 2, 0.0)
    scores = instance_scores(counts)
    assert (scores["object_precision"], scores["object_recall"], scores["ap_50"]) == (1.0, 0.5, 0.5)
    assert scores["pq"] == pytest.approx(0.75 / 1.5)


def test_a_missed_object(two_objects):
    pred = np.where(two_objects == 8, 4, 0)
    counts = match_counts(pred, two_objects)
    np.testing.assert_array_equal(counts, np.tile([1, 0, 1, 1.0], (9, 1)))
    scores = instance_scores(counts)
    assert (scores["object_precision"], scores["object_recall"]) == (1.0, 0.5)
    assert scores["object_f1"] == pytest.approx(2 / 3)
    assert scores["ap_50"] == scores["ap_75"] == scores["map"] == 0.5
    assert scores["pq"] == pytest.approx(1 / 1.5)
    assert scores["matched_iou"] == 1.0


def test_an_empty_prediction(two_objects):
    counts = match_counts(np.zeros_like(two_objects), two_objects)
    np.testing.assert_array_equal(counts, np.tile([0, 0, 2, 0.0], (9, 1)))
    scores = instance_scores(counts)
    assert all(value == 0.0 for value in scores.values()), scores


def test_nothing_to_find_and_nothing_found():
    empty = np.zeros((4, 4), np.int64)
    counts = match_counts(empty, empty)
    np.testing.assert_array_equal(counts, np.zeros((9, 4)))
    scores = instance_scores(counts)
    assert scores.pop("matched_iou") == 0.0  # no matched pair to average
    assert all(value == 1.0 for value in scores.values()), scores


def test_a_partial_overlap_at_several_taus(two_objects):
    pred = two_objects.copy()
    pred[3, 3:] = 0  # the 3x3 object loses a row: IoU 6/9
    counts = match_counts(pred, two_objects)
    assert counts_at(counts, 0.65) == pytest.approx((2, 0, 0, 1 + 6 / 9))
    assert counts_at(counts, 0.7) == (1, 1, 1, 1.0)
    scores = instance_scores(counts)
    assert scores["ap_50"] == 1.0 and scores["ap_75"] == pytest.approx(1 / 3)
    assert scores["pq"] == scores["matched_iou"] == pytest.approx((1 + 6 / 9) / 2)
    assert scores["map"] == pytest.approx((4 * 1 + 5 * 1 / 3) / 9)  # 0.5..0.65 all found, then one of two


def test_counts_summed_over_a_dataset(two_objects):
    whole, parts = square_split()
    total = match_counts(parts, whole) + match_counts(np.where(two_objects == 8, 4, 0), two_objects)
    assert counts_at(total, 0.5) == (2, 1, 1, 1.75)  # split image (1, 1, 0, 0.75) + missed (1, 0, 1, 1)
    scores = instance_scores(total)
    assert scores["object_f1"] == pytest.approx(4 / 6) and scores["ap_50"] == pytest.approx(2 / 4)
    assert scores["pq"] == pytest.approx(1.75 / 3) and scores["matched_iou"] == pytest.approx(1.75 / 2)


def test_matching_on_random_maps_is_consistent():
    rng = np.random.default_rng(0)
    for _ in range(20):
        true = rng.integers(0, 5, (12, 12)).repeat(2, 0).repeat(2, 1)
        pred = np.roll(true, int(rng.integers(0, 2)), axis=1) * (rng.random(true.shape) > 0.1)
        iou = iou_matrix(pred, true)
        counts = match_counts(pred, true)
        tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
        assert (np.diff(tp) <= 0).all()
        assert (tp + fp == iou.shape[0]).all() and (tp + fn == iou.shape[1]).all()
        # for tau >= 0.5 a match is unique, so greedy = counting the pairs over the threshold
        np.testing.assert_array_equal(tp, [(iou >= tau).sum() for tau in TAUS])


def test_object_matches_is_match_counts_at_one_threshold():
    whole, parts = square_split()
    assert object_matches(parts, whole) == (1, 1, 0)
    assert object_matches(parts, whole, threshold=0.8) == (0, 2, 1)


@pytest.mark.parametrize("pred, true, message", [
    (np.zeros((2, 3), int), np.zeros((3, 2), int), r"\(2, 3\) but the true one is \(3, 2\)"),
    (np.zeros((2, 2), float), np.zeros((2, 2), int), "float64"),
    (np.full((2, 2), -1), np.zeros((2, 2), int), "id -1"),
])
def test_bad_maps_are_named(pred, true, message):
    with pytest.raises(ValueError, match=message):
        match_counts(pred, true)


def test_bad_taus_and_counts_are_named():
    empty = np.zeros((2, 2), int)
    with pytest.raises(ValueError, match="1.5 is outside"):
        match_counts(empty, empty, taus=(0.5, 1.5))
    with pytest.raises(ValueError, match="lacks 0.5"):
        instance_scores(np.zeros((1, 4)), taus=(0.6,))
    with pytest.raises(ValueError, match=r"shape \(9, 3\)"):
        instance_scores(np.zeros((9, 3)))
    assert "ap_75" not in instance_scores(np.zeros((1, 4)), taus=(0.5,))
