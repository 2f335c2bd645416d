"""FROC / sensitivity at fixed FPs per image on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from app.metrics.detection import box_iou, froc


def hand_case() -> tuple[list, list]:
    gts = [
        [[0, 0, 10, 10], [20, 20, 30, 30]],  # image 0: A, B
        [[0, 0, 10, 10]],  # image 1: C
        [],  # image 2: no lesion
    ]
    preds = [
        [[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.8], [20, 20, 30, 30, 0.3]],  # TP A, duplicate of A → FP, TP B
        [[50, 50, 60, 60, 0.85], [0, 0, 10, 5, 0.4]],  # FP, TP C (IoU exactly 0.5)
        [[0, 0, 5, 5, 0.7], [0, 0, 5, 5, 0.2]],  # two FPs
    ]
    return preds, gts


def test_hand_computed_froc():
    preds, gts = hand_case()
    r = froc(preds, gts)
    # by score: .9 TP, .85 FP, .8 FP, .7 FP, .4 TP, .3 TP, .2 FP over 3 images and 3 lesions
    third = 1 / 3
    assert r["n"] == 3 and r["n_gt"] == 3
    assert r["curve"]["fps_per_image"] == pytest.approx([0, 0, third, 2 * third, 1, 1, 1, 4 * third])
    assert r["curve"]["sensitivity"] == pytest.approx([0, third, third, third, third, 2 * third, 1, 1])
    assert r["curve"]["thresholds"] == [0.9, 0.85, 0.8, 0.7, 0.4, 0.3, 0.2]
    assert list(r["sensitivity_at_fp"]) == ["0.5", "1", "2", "4", "8"]
    assert r["sensitivity_at_fp"]["0.5"] == pytest.approx(third)
    assert r["sensitivity_at_fp"]["1"] == pytest.approx(1.0)
    assert r["sensitivity_at_fp"]["8"] == pytest.approx(1.0)


def test_iou_threshold_is_inclusive_and_configurable():
    gts = [[[0, 0, 10, 10]]]
    assert froc([[[0, 0, 10, 5, 1.0]]], gts)["sensitivity_at_fp"]["0.5"] == 1.0  # IoU = 0.5
    assert froc([[[0, 0, 10, 4.9, 1.0]]], gts)["sensitivity_at_fp"]["8"] == 0.0  # IoU = 0.49
    assert froc([[[0, 0, 10, 4.9, 1.0]]], gts, iou=0.4)["sensitivity_at_fp"]["0.5"] == 1.0


def test_each_gt_matched_once_to_the_best_overlap():
    gts = [[[0, 0, 10, 10], [6, 0, 16, 10]]]
    # the first box overlaps both (IoU 90/110 with the second, 50/150 with the first); it takes the second; the
    # next box then matches the first GT.
    preds = [[[5, 0, 15, 10, 0.9], [0, 0, 10, 10, 0.8]]]
    r = froc(preds, gts)
    assert r["curve"]["sensitivity"] == pytest.approx([0, 0.5, 1.0])
    assert r["curve"]["fps_per_image"] == [0, 0, 0]


def test_tied_scores_form_one_operating_point():
    # a TP and a FP with the same score cannot be separated by a threshold: 0 → (1 FP, sensitivity 1)
    r = froc([[[0, 0, 10, 10, 0.5], [50, 50, 60, 60, 0.5]]], [[[0, 0, 10, 10]]])
    assert r["curve"]["fps_per_image"] == [0.0, 1.0]
    assert r["curve"]["sensitivity"] == [0.0, 1.0]
    assert r["sensitivity_at_fp"]["0.5"] == 0.0
    assert r["sensitivity_at_fp"]["1"] == 1.0


def test_custom_fps_and_detector_that_stops_early():
    preds = [[[0, 0, 10, 10, 0.9]], [[30, 30, 40, 40, 0.8]]]
    gts = [[[0, 0, 10, 10]], [[0, 0, 10, 10]]]
    r = froc(preds, gts, fps=(0.25, 3))
    # points: (0,0), (0, .5), (.5, .5); never reaches 3 FP/image → its final sensitivity
    assert r["sensitivity_at_fp"] == {"0.25": 0.5, "3": 0.5}


def test_no_predictions_and_no_ground_truth():
    r = froc([[], []], [[[0, 0, 1, 1]], []])
    assert r["sensitivity_at_fp"]["8"] == 0.0
    assert r["curve"]["fps_per_image"] == [0.0]
    r = froc([[[0, 0, 1, 1, 0.5]]], [[]])
    assert r["n_gt"] == 0 and r["sensitivity_at_fp"]["1"] is None
    assert r["curve"]["fps_per_image"] == [0.0, 1.0]


def test_box_iou_and_invalid_input():
    assert box_iou(np.array([0, 0, 2, 2.0]), np.array([[1, 1, 3, 3.0], [5, 5, 6, 6.0]])).tolist() == [1 / 7, 0.0]
    with pytest.raises(ValueError):
        froc([[]], [[], []])
    with pytest.raises(ValueError):
        froc([[[0, 0, 1, 1]]], [[]])  # score missing
    with pytest.raises(ValueError):
        froc([[]], [[[5, 0, 1, 1]]])  # x2 < x1
