"""Segmentation losses and metrics, hand-checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pix2pix_unet.data.labels import instances_from_labels
from pix2pix_unet.config import SegmentConfig
from pix2pix_unet.losses.segment import segmentation_losses, soft_dice_loss, weighted_cross_entropy
from pix2pix_unet.metrics.segment import confusion_matrix, f1_score, object_matches, segmentation_scores


def test_scores_from_a_hand_made_confusion():
    target = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0])
    scores = segmentation_scores(confusion_matrix(pred, target, num_classes=4))
    assert scores["pixel_acc"] == pytest.approx(3 / 5)
    assert scores["iou_0"] == pytest.approx(1 / 3)  # tp 1, fp 1, fn 1
    assert scores["iou_1"] == pytest.approx(2 / 3)  # tp 2, fp 1
    assert scores["iou_2"] == 0.0
    assert "iou_3" not in scores  # in neither targets nor predictions
    assert scores["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert scores["dice"] == pytest.approx((2 / 4 + 4 / 5 + 0) / 3)


def test_object_f1_matches_at_iou_half():
    truth = np.zeros((6, 6), np.int64)
    truth[:2, :2] = 1
    truth[4:, 4:] = 2
    pred = np.zeros((6, 6), np.int64)
    pred[:2, :2] = 5  # exact match
    pred[3:, 3:] = 7  # 4 of 9 px overlap object 2: IoU 4/9 < 0.5
    pred[0, 5] = 9  # a stray pixel
    assert object_matches(pred, truth) == (1, 2, 1)
    assert f1_score(1, 2, 1) == pytest.approx(2 / 5)
    assert f1_score(0, 0, 0) == 1.0


def test_connected_components_split_classes_and_gaps():
    labels = np.array([[1, 1, 0, 1], [2, 2, 0, 1]])
    instances = instances_from_labels(labels)
    assert len(np.unique(instances[instances > 0])) == 3
    assert instances[0, 0] == instances[0, 1] != instances[0, 3]


def test_losses_reward_the_right_answer():
    labels = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 20
    wrong = perfect.roll(1, dims=1)
    assert soft_dice_loss(perfect, labels) < 0.01 < 0.9 < soft_dice_loss(wrong, labels)
    weight = torch.ones(2, 8, 8)
    assert weighted_cross_entropy(perfect, labels, weight) < 1e-6
    # doubling the weight doubles the loss
    assert weighted_cross_entropy(wrong, labels, 2 * weight) == pytest.approx(
        2 * weighted_cross_entropy(wrong, labels, weight).item())


def test_pixels_of_confidence_zero_do_not_touch_the_loss_and_ones_change_nothing():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (2, 8, 8))
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    weight, cfg = torch.rand(2, 8, 8) + 0.5, SegmentConfig()
    plain = segmentation_losses(logits, labels, weight, cfg)
    ones = segmentation_losses(logits, labels, weight, cfg, torch.ones(2, 8, 8))
    assert all(ones[k].item() == pytest.approx(plain[k].item(), rel=1e-5) for k in plain)
    confidence = torch.ones(2, 8, 8)
    confidence[:, :4] = 0  # the top half is ignored
    loss = segmentation_losses(logits, labels, weight, cfg, confidence)["g_seg"]
    loss.backward()
    assert logits.grad[:, :, :4].abs().max() == 0 and logits.grad[:, :, 4:].abs().max() > 0
    changed = logits.detach().clone()
    changed[:, :, :4] = torch.randn(2, 3, 4, 8) * 10  # anything there
    again = segmentation_losses(changed, labels, weight, cfg, confidence)["g_seg"]
    assert again.item() == pytest.approx(loss.item(), rel=1e-5)
