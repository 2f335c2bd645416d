"""Vertebrae metrics: per-label Dice and the VerSe identification rate on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from app.metrics.vertebrae import identification_rate, label_centroids, per_label_dice, vertebrae_metrics


def volumes() -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((2, 4, 4), dtype=np.int16)
    gt[0, :2, :2] = 1  # 4 voxels
    gt[1, 2:, 2:] = 2  # 4 voxels
    pred = np.zeros_like(gt)
    pred[0, :2, :2] = 1
    pred[0, 1, 1] = 0  # 3 of label 1 found
    pred[0, 3, 0] = 1  # plus one stray voxel
    pred[1, 0, 3] = 3  # label 3 hallucinated, label 2 missed
    return pred, gt


def test_per_label_dice_hand_computed():
    pred, gt = volumes()
    # label 1: |P| = 4, |G| = 4, overlap 3 → 6/8; label 2: missed → 0; label 3: only predicted → 0
    assert per_label_dice(pred, gt) == {1: 0.75, 2: 0.0, 3: 0.0}
    assert per_label_dice(gt, gt) == {1: 1.0, 2: 1.0}
    assert per_label_dice(np.zeros((2, 2), int), np.zeros((2, 2), int)) == {}


def test_per_label_dice_rejects_bad_volumes():
    with pytest.raises(ValueError):
        per_label_dice(np.zeros((2, 2)), np.zeros((2, 2), int))  # float labels
    with pytest.raises(ValueError):
        per_label_dice(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_identification_rate_hand_computed():
    spacing = (1.0, 1.0, 2.0)  # k voxels are 2 mm
    gt = {1: (0, 0, 0), 2: (0, 0, 10), 3: (0, 0, 20), 4: (0, 30, 40), 5: (0, 60, 40), 6: (30, 0, 0)}
    pred = {
        1: (0, 0, 4),  # 8 mm from GT 1, 12 mm from GT 2 → identified
        2: (0, 0, 15),  # 10 mm from GT 2 and from GT 3: a tie counts as closest → identified
        3: (0, 0, 14),  # 12 mm from GT 3 but 8 mm from GT 2 → not identified
        5: (0, 81, 40),  # 21 mm → not identified
        6: (30, 0, 11),  # 11 voxels but 22 mm → not identified
        9: (5, 5, 5),  # not in the GT: ignored
    }
    r = identification_rate(pred, gt, spacing)
    assert r["n"] == 6 and r["identified"] == 2
    assert r["rate"] == pytest.approx(2 / 6)
    assert r["per_label"] == {1: True, 2: True, 3: False, 4: False, 5: False, 6: False}
    assert r["distance_mm"] == pytest.approx({1: 8.0, 2: 10.0, 3: 12.0, 5: 21.0, 6: 22.0})
    assert identification_rate({1: (0, 0, 10)}, {1: (0, 0, 0)}, spacing)["rate"] == 1.0  # exactly 20 mm
    assert identification_rate({1: (0, 0, 10)}, {1: (0, 0, 0)}, spacing, max_mm=19.9)["rate"] == 0.0
    assert identification_rate({}, {}, spacing)["rate"] is None


def test_label_centroids():
    _, gt = volumes()
    assert label_centroids(gt) == {1: (0.0, 0.5, 0.5), 2: (1.0, 2.5, 2.5)}
    assert label_centroids(np.zeros((3, 3), int)) == {}


def test_vertebrae_metrics_over_cases():
    pred, gt = volumes()
    gt_c = label_centroids(gt)
    case_a = {"pred_labels": pred, "gt_labels": gt, "spacing_mm": (1, 1, 1)}
    # label 1's predicted centroid: mean of (0,0,0),(0,0,1),(0,1,0),(0,3,0) = (0, 1, .25), ~0.56 voxel from
    # (0, .5, .5) and far from label 2 → identified; label 2 not predicted → rate 1/2.
    case_b = {"pred_labels": gt, "gt_labels": gt, "spacing_mm": (1, 1, 1)}  # perfect: Dice 1, rate 1
    case_c = {"pred_centroids": {}, "gt_centroids": gt_c, "spacing_mm": (1, 1, 1)}  # centroids only: rate 0
    m = vertebrae_metrics([case_a, case_b, case_c])
    assert m["n"] == 3
    # label 3 never in a GT → not reported; label 1: (.75 + 1)/2; label 2: (0 + 1)/2
    assert m["dice_per_label"] == {"1": pytest.approx(0.875), "2": pytest.approx(0.5)}
    assert m["identification_rate"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert vertebrae_metrics([]) == {"n": 0, "dice_per_label": {}, "identification_rate": None}
