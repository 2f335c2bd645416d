"""Segmentation metrics: hand-computed cases and closed forms derived from the papers' definitions.

wFm: Margolin et al. 2014 (WFb.m); S-measure: Fan et al. 2017 (StructureMeasure.m, alpha 0.5);
E-measure: Fan et al. 2018, mean over thresholds k/255 (k = 1..255), normalised by N.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from app.metrics.segmentation import (
    dice,
    e_measure,
    iou,
    mae,
    s_measure,
    segmentation_metrics,
    weighted_f_measure,
)


def block(shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    g = np.zeros(shape, dtype=bool)
    g[rows, cols] = True
    return g


def disk(n: int = 32, r: float = 8.0, cy: float = 15.0, cx: float = 13.0) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# --- Dice, IoU, MAE ---------------------------------------------------------------------------------------


def test_dice_iou_mae_hand_computed():
    gt = np.array([[1, 1, 0], [0, 1, 0]], dtype=bool)
    pred = np.array([[0.9, 0.4, 0.6], [0.0, 0.5, 0.0]])  # binarised (>= 0.5): (0,0), (0,2), (1,1)
    # |P| = 3, |G| = 3, |P∩G| = 2, |P∪G| = 4
    assert dice(pred, gt) == pytest.approx(2 * 2 / 6)
    assert iou(pred, gt) == pytest.approx(2 / 4)
    assert mae(pred, gt) == pytest.approx((0.1 + 0.6 + 0.6 + 0.0 + 0.5 + 0.0) / 6)
    assert dice(pred, gt, threshold=0.95) == 0.0


def test_empty_mask_conventions():
    empty = np.zeros((4, 4), dtype=bool)
    some = block((4, 4), slice(0, 2), slice(0, 2))
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(np.full((4, 4), 0.49), empty) == 1.0  # nothing reaches 0.5
    assert dice(some, empty) == 0.0 and iou(some, empty) == 0.0
    assert dice(empty, some) == 0.0 and iou(empty, some) == 0.0
    assert mae(empty, empty) == 0.0


def test_dice_iou_work_in_3d_and_are_symmetric():
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 6, 7)) > 0.5, rng.random((5, 6, 7)) > 0.6
    assert dice(a, b) == pytest.approx(dice(b, a))
    d, j = dice(a, b), iou(a, b)
    assert d == pytest.approx(2 * j / (1 + j))  # Dice and IoU are tied: D = 2J / (1 + J)
    assert dice(a, b) == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_invalid_inputs():
    with pytest.raises(ValueError):
        dice(np.zeros((2, 2)), np.zeros((2, 3), bool))
    with pytest.raises(ValueError):
        dice(np.full((2, 2), 1.5), np.zeros((2, 2), bool))
    with pytest.raises(ValueError):
        dice(np.zeros((2, 2)), np.full((2, 2), 2))
    with pytest.raises(ValueError):
        s_measure(np.zeros((2, 2, 2)), np.zeros((2, 2, 2), bool))


# --- weighted F-measure -------------------------------------------------------------------------------------

INNER = block((20, 20), slice(8, 12), slice(8, 12))  # 16 pixels, >= 3 px from the border (no padding effects)


def test_wfm_perfect_is_one():
    for gt in (INNER, disk(), block((6, 6), slice(0, 6), slice(0, 3))):
        assert weighted_f_measure(gt, gt) == pytest.approx(1.0, abs=1e-12)
        assert weighted_f_measure(gt.astype(float), gt) == pytest.approx(1.0, abs=1e-12)


def test_wfm_all_zero_prediction_is_zero():
    # E = 1 on the GT and (through the nearest-GT copy) Et = 1 everywhere, so the smoothed error is 1 on an
    # interior object: Ew = 1 on GT, 0 elsewhere → TPw = 0, R = 0 → wFm = 0.
    assert weighted_f_measure(np.zeros((20, 20)), INNER) == pytest.approx(0.0, abs=1e-9)
    assert weighted_f_measure(np.zeros((32, 32)), disk()) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("c", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_wfm_scaled_prediction_closed_form(c: float):
    # pred = c on the object: Et = 1 - c everywhere → smoothed error = E = 1 - c on GT, 0 on background.
    # R = 1 - (1 - c) = c, P = 1 (no background error) → wFm = 2c / (1 + c).
    assert weighted_f_measure(c * INNER, INNER) == pytest.approx(2 * c / (1 + c), abs=1e-9)


def test_wfm_false_positive_weighted_by_distance():
    # One FP pixel at distance d from the object: B = 2 - 0.5 ** (d / 5), TPw = 16, FPw = B, R = 1,
    # P = 16 / (16 + B) → wFm = 2P / (1 + P) = 32 / (32 + B).
    far = INNER.astype(float)
    far[8, 16] = 1.0  # 5 px right of (8, 11): B = 1.5 → 32 / 33.5 = 64 / 67
    assert weighted_f_measure(far, INNER) == pytest.approx(64 / 67, abs=1e-9)
    near = INNER.astype(float)
    near[8, 12] = 1.0  # adjacent: B = 2 - 0.5 ** 0.2
    assert weighted_f_measure(near, INNER) == pytest.approx(32 / (34 - 0.5**0.2), abs=1e-9)
    assert weighted_f_measure(near, INNER) > weighted_f_measure(far, INNER)


def test_wfm_zero_padding_at_the_border():
    # GT fills a 7x7 image, pred is all zero: Et = 1, and imfilter's zero padding gives a smoothed error
    # EA(i, j) = S(i) S(j) with S(i) the share of the normalised 1-D Gaussian taps (sigma 5) inside the image.
    taps = np.exp(-(np.arange(-3, 4) ** 2) / 50.0)
    taps /= taps.sum()
    s = np.array([taps[3 - i :].sum() if i < 3 else taps[: 3 + 7 - i].sum() for i in range(7)])
    assert s[3] == pytest.approx(1.0)
    r = 1.0 - s.mean() ** 2  # R = 1 - mean(EA), P = 1 (no background)
    gt = np.ones((7, 7), dtype=bool)
    assert weighted_f_measure(np.zeros((7, 7)), gt) == pytest.approx(2 * r / (1 + r), abs=1e-9)
    assert weighted_f_measure(np.zeros((7, 7)), gt) == pytest.approx(0.58667, abs=1e-5)


def test_wfm_empty_gt_convention():
    empty = np.zeros((8, 8), dtype=bool)
    assert weighted_f_measure(np.zeros((8, 8)), empty) == 1.0
    assert weighted_f_measure(np.full((8, 8), 0.3), empty) == 1.0
    noisy = np.zeros((8, 8))
    noisy[2, 2] = 0.7
    assert weighted_f_measure(noisy, empty) == 0.0


# --- S-measure ------------------------------------------------------------------------------------------------

TL = block((4, 4), slice(0, 2), slice(0, 2))  # u = 1/4; centroid (1.5, 1.5) → rounds to 2: four 2x2 blocks


def test_s_measure_perfect_is_one():
    for gt in (TL, INNER, disk(), block((5, 7), slice(1, 4), slice(2, 7))):
        assert s_measure(gt, gt) == pytest.approx(1.0, abs=1e-9)  # eps in the SSIM denominators


def test_s_measure_all_zero_prediction_centred_block():
    # 4x4, GT = rows/cols 1..2: u = 1/4; 1-based centroid (2.5, 2.5) → MATLAB round → 3 (numpy's round would
    # give 2). S_object = u * 0 + (1 - u) * 1 = 3/4. Blocks: LT 3x3 mixed → 0; RT 3x1, LB 1x3, RB 1x1 all-zero GT
    # vs all-zero pred → 1 each. S_region = (3 + 3 + 1)/16 = 7/16. S = (3/4 + 7/16) / 2 = 19/32.
    gt = block((4, 4), slice(1, 3), slice(1, 3))
    assert s_measure(np.zeros((4, 4)), gt) == pytest.approx(19 / 32, abs=1e-12)


def test_s_measure_half_confident_prediction():
    # pred 0.5 on the GT block: O_FG = 2 * .5 / (.25 + 1 + 0) = .8, O_BG = 1 → S_object = .25 * .8 + .75 = .95;
    # every block is constant in both maps (alpha = beta = 0) → SSIM 1 → S_region = 1. S = (.95 + 1) / 2.
    assert s_measure(0.5 * TL, TL) == pytest.approx(0.975, abs=1e-12)


def test_s_measure_false_positive_corner():
    # pred = GT plus a FP at (3, 3). O_FG = 1. Background of 1 - pred: eleven 1s and one 0 → mean 11/12,
    # sample variance (11 (1/12)^2 + (11/12)^2) / 11 = 1/12 → O_BG = 2 (11/12) / ((11/12)^2 + 1 + sqrt(1/12)).
    # Blocks LT, RT, LB identical constants → 1; RB: GT all 0 (y = 0 → alpha = 0) but pred varies → 0.
    pred = TL.astype(float)
    pred[3, 3] = 1.0
    m = 11 / 12
    o_bg = 2 * m / (m * m + 1 + math.sqrt(1 / 12))
    expected = 0.5 * (0.25 * 1.0 + 0.75 * o_bg) + 0.5 * 0.75
    assert expected == pytest.approx(0.822928, abs=1e-6)
    assert s_measure(pred, TL) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("c", [0.0, 0.3, 0.6, 1.0])
def test_s_measure_scaled_prediction_closed_form(c: float):
    # 8x8, GT = rows/cols 2..5: u = 1/4, centroid 4.5 → 5; all four blocks are mixed. With pred = c * GT,
    # O_FG = 2c / (c^2 + 1), O_BG = 1, and each block's SSIM = 4c^2 / (1 + c^2)^2 (x = c y, s_x = c s_y).
    gt = block((8, 8), slice(2, 6), slice(2, 6))
    expected = 0.5 * (0.25 * 2 * c / (c * c + 1) + 0.75) + 0.5 * 4 * c * c / (1 + c * c) ** 2
    assert s_measure(c * gt, gt) == pytest.approx(expected, abs=1e-12)


def test_s_measure_special_cases_and_transpose():
    pred = np.random.default_rng(1).random((6, 9))
    assert s_measure(pred, np.zeros((6, 9), bool)) == pytest.approx(1 - pred.mean())
    assert s_measure(pred, np.ones((6, 9), bool)) == pytest.approx(pred.mean())
    gt = disk(32)
    noisy = np.clip(gt + np.random.default_rng(2).normal(0, 0.3, gt.shape), 0, 1)
    assert s_measure(noisy.T, gt.T) == pytest.approx(s_measure(noisy, gt), abs=1e-12)


# --- E-measure ------------------------------------------------------------------------------------------------


def e_fp_case() -> float:
    """4x4, GT = TL (4 px), F = GT + one FP: mu_F = 5/16, mu_G = 4/16. Per pixel phi = 2ab / (a^2 + b^2):
    TP a = 11/16, b = 12/16 → 264/265; FP a = 11/16, b = -4/16 → -88/137; TN a = -5/16, b = -4/16 → 40/41."""

    def enh(phi: Fraction) -> Fraction:
        return (phi + 1) ** 2 / 4

    total = 4 * enh(Fraction(264, 265)) + enh(Fraction(-88, 137)) + 11 * enh(Fraction(40, 41))
    return float(total / 16)


def test_e_measure_perfect_is_exactly_one():
    for gt in (TL, INNER, disk()):
        assert e_measure(gt, gt) == pytest.approx(1.0, abs=1e-12)
        assert e_measure(gt.astype(float), gt) == pytest.approx(1.0, abs=1e-12)


def test_e_measure_constant_prediction_is_quarter():
    # F constant → F - mean F = 0 → phi = 0 → (1 + 0)^2 / 4 everywhere.
    for gt in (TL, disk()):
        assert e_measure(np.zeros(gt.shape), gt) == pytest.approx(0.25, abs=1e-12)
        assert e_measure(np.ones(gt.shape), gt) == pytest.approx(0.25, abs=1e-12)


def test_e_measure_hand_worked_binary():
    pred = TL.copy()
    pred[3, 3] = True
    assert e_fp_case() == pytest.approx(0.921890, abs=1e-6)
    assert e_measure(pred, TL) == pytest.approx(e_fp_case(), abs=1e-12)


def test_e_measure_mean_over_thresholds():
    # pred 0.5 on GT, 0.3 on the FP pixel: k/255 <= 0.3 for k = 1..76 → the binary case above; k = 77..127 →
    # exactly the GT → 1; k = 128..255 → empty map → 1/4.
    pred = 0.5 * TL
    pred[3, 3] = 0.3
    expected = (76 * e_fp_case() + 51 * 1.0 + 128 * 0.25) / 255
    assert e_measure(pred, TL) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("c", [0.1, 0.5, 0.9])
def test_e_measure_scaled_prediction_closed_form(c: float):
    m = sum(1 for k in range(1, 256) if k / 255 <= c)  # thresholds that keep the object
    assert e_measure(c * disk(), disk()) == pytest.approx((m + (255 - m) / 4) / 255, abs=1e-12)


def test_e_measure_symmetries_and_special_cases():
    rng = np.random.default_rng(3)
    a, b = rng.random((12, 10)) > 0.6, rng.random((12, 10)) > 0.5
    assert e_measure(a, b) == pytest.approx(e_measure(b, a), abs=1e-12)  # phi is symmetric in F and G
    assert e_measure(~a, ~b) == pytest.approx(e_measure(a, b), abs=1e-12)  # both signs flip
    assert e_measure(a, np.zeros_like(a)) == pytest.approx(1 - a.mean())
    assert e_measure(a, np.ones_like(a)) == pytest.approx(a.mean())


# --- monotonicity and aggregation -------------------------------------------------------------------------


def test_all_measures_drop_as_the_prediction_drifts_away():
    gt = disk()
    scores = []
    for shift in range(0, 10, 2):
        pred = np.roll(gt, shift, axis=1).astype(float)
        scores.append([dice(pred, gt), iou(pred, gt), weighted_f_measure(pred, gt), s_measure(pred, gt),
                       e_measure(pred, gt), -mae(pred, gt)])  # fmt: skip
    scores_arr = np.array(scores)
    assert np.all(np.diff(scores_arr, axis=0) < 0), scores_arr


def test_segmentation_metrics_averages_per_image():
    gt1, gt2 = TL, block((4, 4), slice(1, 3), slice(1, 3))
    pred1, pred2 = TL.astype(float), np.zeros((4, 4))
    m = segmentation_metrics([(pred1, gt1), (pred2, gt2)])
    assert m["n"] == 2
    assert m["dice"] == pytest.approx(0.5) and m["iou"] == pytest.approx(0.5)
    assert m["mae"] == pytest.approx((0 + 4 / 16) / 2)
    assert m["s_measure"] == pytest.approx((1 + 19 / 32) / 2)
    assert m["e_measure"] == pytest.approx((1 + 0.25) / 2)
    assert m["wfm"] == pytest.approx((weighted_f_measure(pred1, gt1) + weighted_f_measure(pred2, gt2)) / 2)
    assert segmentation_metrics([])["dice"] is None and segmentation_metrics([])["n"] == 0
    vol = np.zeros((3, 4, 4), bool)
    vol[1, :2, :2] = True
    m3 = segmentation_metrics([(vol, vol)])
    assert m3["dice"] == 1.0 and m3["wfm"] is None and m3["s_measure"] is None
