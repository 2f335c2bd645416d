"""Pieces of the task path that need no database: per-image box matching (against a brute-force count),
score splitting, which metrics become item_metrics rows, evaluation summaries, card fields, plot helpers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.inference.card import ModelCardError, card_from_dict
from app.inference.evaluation import dice_histogram, segmentation_summary, vertebrae_summary
from app.inference.tasks.base import scalar_metrics
from app.inference.tasks.detect2d import split_by_score
from app.metrics.detection import froc, match_boxes
from app.web.model_pages import froc_view, histogram_view, worst_first_url


def test_match_boxes_agrees_with_froc_on_one_image():
    rng = np.random.default_rng(0)
    for _ in range(50):
        gt = [[x, y, x + w, y + h] for x, y, w, h in rng.uniform(0, 40, (int(rng.integers(0, 4)), 4))]
        preds = [[x, y, x + w, y + h, s] for x, y, w, h, s in rng.uniform(0, 40, (int(rng.integers(0, 6)), 5))]
        preds += [[*g, 0.95] for g in gt[:1]]  # one exact hit when there is a lesion
        m = match_boxes(preds, gt)
        assert m["tp"] + m["fp"] == len(preds) and m["tp"] + m["fn"] == len(gt)
        curve = froc([preds], [gt])["curve"]
        if gt:
            assert m["sensitivity"] == pytest.approx(curve["sensitivity"][-1])
        else:
            assert m["sensitivity"] is None and m["tp"] == 0


def test_match_boxes_each_lesion_once():
    gt = [[0, 0, 10, 10]]
    m = match_boxes([[0, 0, 10, 10, 0.9], [0, 0, 10, 10, 0.8], [50, 50, 60, 60, 0.7]], gt)
    assert m == {"tp": 1, "fp": 2, "fn": 0, "sensitivity": 1.0}
    assert match_boxes([[0, 0, 10, 4, 0.9]], gt)["tp"] == 0  # IoU 0.4 < 0.5


def test_split_by_score_orders_corners():
    boxes = np.array([[10, 20, 0, 5, 0.9, 0], [0, 0, 1, 1, 0.2, 1]], np.float32)
    shown, low = split_by_score(boxes, 0.5)
    assert shown.tolist() == [[0, 5, 10, 20, pytest.approx(0.9), 0]] and len(low) == 1


def test_scalar_metrics_keep_finite_numbers_only():
    got = scalar_metrics({"correct": True, "nll": 0.5, "tp": 2, "dice_per_label": {"20": 0.9}, "x": float("nan"),
                          "name": "a", "none": None})
    assert got == {"correct": 1.0, "nll": 0.5, "tp": 2.0}


def test_summaries():
    assert dice_histogram([0.0, 0.05, 0.55, 1.0, 1.0])["counts"] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    s = segmentation_summary([{"dice": 0.5, "iou": 0.25, "mae": 0.1, "wfm": 0.4, "s_measure": 0.6,
                               "e_measure": 0.7}, {"dice": 1.0, "iou": 1.0, "mae": 0.0, "wfm": 1.0, "s_measure": 1.0,
                                                   "e_measure": 1.0}, {}])
    assert s["n"] == 2 and s["dice"] == 0.75 and s["mae"] == pytest.approx(0.05)
    v = vertebrae_summary([{"dice_per_label": {"20": 0.8, "21": 0.6}, "dice_mean": 0.7, "identification_rate": 1.0},
                           {"dice_per_label": {"20": 0.4}, "dice_mean": 0.4, "identification_rate": 0.5}, {}])
    assert v == {"n": 2, "dice_per_label": {"20": pytest.approx(0.6), "21": 0.6}, "dice_mean": pytest.approx(0.55),
                 "identification_rate": 0.75}


def _card(**changes):
    data = {"name": "d", "task": "detect2d", "input": {"size": [64, 64], "channels": 3},
            "output": {"kind": "boxes"}}
    for key, value in changes.items():
        section, field = key.split("__")
        data[section][field] = value
    return card_from_dict(data)


def test_card_fields_for_detection_and_3d():
    assert _card().output.score_threshold == 0.5 and _card(output__score_threshold=0.3).output.score_threshold == 0.3
    assert _card().input.overlap == 0.5
    for bad in ({"output__score_threshold": -0.1}, {"input__overlap": 1.0}):
        with pytest.raises(ModelCardError):
            _card(**bad)


def test_plot_helpers():
    h = histogram_view({"edges": list(np.linspace(0, 1, 11)), "counts": [0, 1, 0, 0, 0, 0, 0, 0, 0, 3]})
    assert len(h["bars"]) == 10 and h["bars"][9]["height"] == 300 and h["bars"][1]["height"] == 100
    assert histogram_view({"edges": [0, 1], "counts": [0]}) is None
    f = froc_view({"fps_per_image": [0, 0.5, 8], "sensitivity": [0, 0.5, 1.0], "thresholds": [0.9, 0.1]},
                  {"0.5": 0.5, "1": 0.5, "2": 0.5, "4": 0.5, "8": 1.0})
    assert len(f["dots"]) == 5 and [t["label"] for t in f["x_ticks"]][0] == "0.125"
    xs = [float(p.split(",")[0]) for p in f["points"].split()]
    assert xs == sorted(xs)  # a step curve never goes back
    assert worst_first_url(3, "metric:7:dice", {"split": ["test"]}) == "/datasets/3?sort=metric:7:dice&split=test"


def test_permutation_invariance_of_matching():
    gt = [[0, 0, 10, 10], [20, 20, 30, 30]]
    preds = [[1, 1, 10, 10, 0.6], [20, 20, 29, 30, 0.9], [0, 0, 9, 9, 0.3]]
    results = {tuple(match_boxes(list(p), gt).values()) for p in itertools.permutations(preds)}
    assert results == {(2, 1, 0, 1.0)}
