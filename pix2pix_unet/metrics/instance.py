"""Instance matching metrics as pure functions, with the StarDist / Cellpose definitions.

A predicted object and a true object *match* when their IoU is at least a
threshold ``tau``; matching is one-to-one. Instance maps may be 2D ``(H, W)`` or
volumes ``(Z, Y, X)``: every function counts pixels and voxels alike. Per image,
:func:`match_counts` gives ``(tp, fp, fn, sum of matched IoU)`` at every ``tau``;
summed over a dataset (as StarDist's ``matching_dataset`` does),
:func:`instance_scores` turns them into precision, recall, F1, the "accuracy"
``tp / (tp + fp + fn)`` that StarDist and Cellpose call average precision,
panoptic quality and the mean matched IoU. :func:`drop_border_objects` leaves out
the objects a crop's border cuts, to score the interior of a crop alone.

Example::

    counts = sum(match_counts(pred, true) for pred, true in pairs)
    scores = instance_scores(counts)  # {"object_f1": ..., "ap_50": ..., "map": ..., ...}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TAUS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(9))
"""The IoU thresholds 0.5, 0.55, ..., 0.9 that ``map`` averages over."""

COUNT_COLUMNS: tuple[str, ...] = ("tp", "fp", "fn", "iou_sum")
"""What the columns of :func:`match_counts` hold."""


def _check_maps(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"predicted instance map is {pred.shape} but the true one is {true.shape}")
    for name, ids in (("predicted", pred), ("true", true)):
        if ids.dtype.kind not in "iub":
            raise ValueError(f"{name} instance map holds {ids.dtype} values; instance ids must be integers")
        if ids.size and ids.min() < 0:
            raise ValueError(f"{name} instance map holds id {ids.min()}; ids must be >= 0 (0 = background)")
    return pred, true


def _check_taus(taus: Sequence[float]) -> np.ndarray:
    array = np.asarray(taus, np.float64)
    if array.ndim != 1 or not len(array):
        raise ValueError(f"taus must be a non-empty sequence of IoU thresholds, got {taus!r}")
    bad = array[(array <= 0) | (array > 1) | ~np.isfinite(array)]
    if len(bad):
        raise ValueError(f"IoU threshold {bad[0]} is outside (0, 1]")
    return array


def iou_matrix(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU of every predicted object with every true object, from one joint histogram.

    Rows and columns follow the sorted non-zero ids of each map (``np.unique``
    order); ids need not be consecutive.

    Args:
        pred: ``(H, W)`` predicted instance ids, 0 for background.
        true: ``(H, W)`` true instance ids, 0 for background.

    Returns:
        ``(n_pred, n_true)`` float64 in [0, 1].

    Raises:
        ValueError: the maps differ in shape, or hold non-integer or negative ids.
    """
    pred, true = _check_maps(pred, true)
    pred_ids, pred_flat = np.unique(pred, return_inverse=True)
    true_ids, true_flat = np.unique(true, return_inverse=True)
    n_pred, n_true = len(pred_ids), len(true_ids)
    # overlap[i, j] = pixels in predicted object i and true object j (background included, cut below)
    overlap = np.bincount(pred_flat.ravel() * n_true + true_flat.ravel(), minlength=n_pred * n_true)
    overlap = overlap.reshape(n_pred, n_true)
    pred_fg, true_fg = pred_ids != 0, true_ids != 0
    area_pred, area_true = overlap.sum(1)[pred_fg], overlap.sum(0)[true_fg]
    overlap = overlap[pred_fg][:, true_fg]
    union = area_pred[:, None] + area_true[None, :] - overlap  # >= 1: every object has a pixel
    return overlap / union


def _greedy_pairs(iou: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, cols, ious)`` of the one-to-one matching that takes pairs in descending IoU (ties: row-major
    order), in that order."""
    rows, cols = np.nonzero(iou > 0)
    values = iou[rows, cols]
    order = np.argsort(-values, kind="stable")
    used_pred, used_true = np.zeros(iou.shape[0], bool), np.zeros(iou.shape[1], bool)
    kept = []
    for k in order:
        r, c = rows[k], cols[k]
        if not (used_pred[r] or used_true[c]):
            used_pred[r] = used_true[c] = True
            kept.append(k)
    kept = np.asarray(kept, np.int64)
    return rows[kept], cols[kept], values[kept].astype(np.float64)


def match_counts(pred: np.ndarray, true: np.ndarray, taus: Sequence[float] = TAUS) -> np.ndarray:
    """``(tp, fp, fn, sum of IoU over matched pairs)`` of one image at each IoU threshold.

    Pairs are matched one-to-one, greedily by descending IoU, and a match counts at
    ``tau`` when its IoU is at least ``tau``. For ``tau >= 0.5`` an object can
    overlap at most one partner that much, so this is the optimal matching. One
    greedy pass serves every ``tau``: the decisions about pairs of IoU ``>= tau``
    only depend on pairs of higher IoU.

    Args:
        pred: ``(H, W)`` predicted instance ids, 0 for background.
        true: ``(H, W)`` true instance ids, 0 for background.
        taus: IoU thresholds in (0, 1].

    Returns:
        ``(len(taus), 4)`` float64, columns :data:`COUNT_COLUMNS`; sum it over
        images for :func:`instance_scores`.

    Raises:
        ValueError: as :func:`iou_matrix`, or a threshold outside (0, 1].
    """
    thresholds = _check_taus(taus)
    iou = iou_matrix(pred, true)
    n_pred, n_true = iou.shape
    matched = _greedy_pairs(iou)[2]
    hit = matched[None, :] >= thresholds[:, None]  # (taus, matches)
    tp = hit.sum(1).astype(np.float64)
    iou_sum = np.where(hit, matched[None, :], 0.0).sum(1)
    return np.stack([tp, n_pred - tp, n_true - tp, iou_sum], axis=1)


def border_ids(ids: np.ndarray) -> np.ndarray:
    """Sorted non-zero ids of the objects with a pixel or voxel on the map's outer faces (any axis).

    Args:
        ids: ``(H, W)`` or ``(Z, Y, X)`` instance ids, 0 for background.
    """
    ids = np.asarray(ids)
    rim = np.ones(ids.shape, bool)
    rim[tuple(slice(1, -1) for _ in ids.shape)] = False
    found = np.unique(ids[rim])
    return found[found != 0]


def drop_border_objects(pred: np.ndarray, true: np.ndarray, tau: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Both maps with the objects cut by the image border set to background, to score the interior only.

    Objects that touch the border of a crop are partly outside it, so neither the truth nor a prediction
    can be judged on them. This drops (sets to 0):

    - every true object that touches the border;
    - every predicted object matched (IoU >= ``tau``, as :func:`match_counts` matches) to such a true object,
      whether or not it touches the border itself;
    - every unmatched predicted object that touches the border.

    A predicted object matched to an interior true object is kept even when it reaches the border. So on the
    returned maps, at ``tau``, a true positive is an interior object found, a false negative an interior
    object missed, and a false positive a predicted object off the border that matches nothing; errors on
    border objects count neither way. (Dropping only the objects that touch the border, on both sides, would
    count an interior prediction of a border object as a false positive.)

    Args:
        pred: ``(H, W)`` or ``(Z, Y, X)`` predicted instance ids, 0 for background.
        true: true instance ids of the same shape.
        tau: the IoU at which a prediction is matched to a true object, in (0, 1].

    Returns:
        ``(pred, true)``: copies with the dropped objects set to 0; the other ids are unchanged.

    Raises:
        ValueError: as :func:`iou_matrix`, or ``tau`` outside (0, 1].
    """
    _check_taus([tau])
    pred, true = _check_maps(pred, true)
    pred_ids, true_ids = np.unique(pred[pred != 0]), np.unique(true[true != 0])
    rows, cols, values = _greedy_pairs(iou_matrix(pred, true))
    hit = values >= tau
    partner = dict(zip(pred_ids[rows[hit]].tolist(), true_ids[cols[hit]].tolist()))  # pred id -> true id
    cut_true = set(border_ids(true).tolist())
    cut_pred = set(border_ids(pred).tolist())
    drop_pred = [p for p in pred_ids.tolist()
                 if (p in partner and partner[p] in cut_true) or (p not in partner and p in cut_pred)]
    return (np.where(np.isin(pred, drop_pred), 0, pred),
            np.where(np.isin(true, sorted(cut_true)), 0, true))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def _tau_row(thresholds: np.ndarray, tau: float) -> int | None:
    rows = np.flatnonzero(np.isclose(thresholds, tau))
    return int(rows[0]) if len(rows) else None


def instance_scores(counts: np.ndarray, taus: Sequence[float] = TAUS) -> dict[str, float]:
    """Object-level scores from :func:`match_counts` summed over a dataset.

    At ``tau = 0.5``: ``object_precision`` tp/(tp+fp), ``object_recall``
    tp/(tp+fn), ``object_f1`` 2tp/(2tp+fp+fn), ``ap_50`` the accuracy
    tp/(tp+fp+fn), ``pq`` the panoptic quality sum IoU/(tp+fp/2+fn/2) and
    ``matched_iou`` sum IoU/tp. Then ``ap_75``, the accuracy at 0.75 (only when
    ``taus`` holds 0.75), and ``map``, the mean accuracy over all ``taus``.

    Empty cases: with nothing to find and nothing found (tp+fp+fn = 0) precision,
    recall, F1, accuracy and PQ are 1.0; otherwise a zero denominator gives 0.0
    (e.g. precision of an empty prediction while objects exist). ``matched_iou``
    is 0.0 when tp = 0: there is no matched pair to average.

    Args:
        counts: ``(len(taus), 4)`` counts, columns :data:`COUNT_COLUMNS`.
        taus: the thresholds the counts were taken at; must hold 0.5.

    Raises:
        ValueError: ``counts`` does not fit ``taus``, or ``taus`` lacks 0.5.
    """
    thresholds = _check_taus(taus)
    counts = np.asarray(counts, np.float64)
    if counts.shape != (len(thresholds), len(COUNT_COLUMNS)):
        raise ValueError(f"counts of shape {counts.shape} do not fit {len(thresholds)} thresholds "
                         f"(expected {(len(thresholds), len(COUNT_COLUMNS))})")
    half = _tau_row(thresholds, 0.5)
    if half is None:
        raise ValueError(f"taus={tuple(taus)} lacks 0.5, where precision, recall, F1 and PQ are taken")

    def scores_at(row: int) -> dict[str, float]:
        tp, fp, fn, iou_sum = counts[row]
        if tp + fp + fn == 0:
            return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0, "pq": 1.0, "matched_iou": 0.0}
        return {
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "accuracy": _ratio(tp, tp + fp + fn),
            "pq": _ratio(iou_sum, tp + fp / 2 + fn / 2),
            "matched_iou": _ratio(iou_sum, tp),
        }

    at_half = scores_at(half)
    scores = {
        "object_precision": at_half["precision"],
        "object_recall": at_half["recall"],
        "object_f1": at_half["f1"],
        "ap_50": at_half["accuracy"],
        "pq": at_half["pq"],
        "matched_iou": at_half["matched_iou"],
    }
    three_quarters = _tau_row(thresholds, 0.75)
    if three_quarters is not None:
        scores["ap_75"] = scores_at(three_quarters)["accuracy"]
    scores["map"] = float(np.mean([scores_at(row)["accuracy"] for row in range(len(thresholds))]))
    return scores
