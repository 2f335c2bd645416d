"""Dice between two label arrays (app.review.masks.dice): overall over the foreground and per label."""

from __future__ import annotations

import numpy as np
import pytest

from app.review.masks import checked_labels, dice


def test_dice_overall_and_per_label():
    a = np.zeros((4, 5), np.uint8)
    b = np.zeros((4, 5), np.uint8)
    a[0, :4] = 1  # 4 px of label 1
    b[0, 2:] = 1  # 3 px of label 1, 2 shared
    a[3, 0] = 2
    b[3, 0] = 3  # foreground overlaps, labels differ
    out = dice(a, b)
    assert out["overall"] == pytest.approx(2 * 3 / (5 + 4))
    assert out["per_label"] == {1: pytest.approx(2 * 2 / 7), 2: 0.0, 3: 0.0}


def test_dice_edge_cases_and_volumes():
    empty = np.zeros((3, 3, 3), np.uint16)
    assert dice(empty, empty) == {"overall": 1.0, "per_label": {}}
    full = np.full((3, 3, 3), 28, np.uint16)
    assert dice(full, full) == {"overall": 1.0, "per_label": {28: 1.0}}
    assert dice(empty, full)["overall"] == 0.0
    with pytest.raises(ValueError):
        dice(empty, np.zeros((3, 3), np.uint16))


def test_binary_png_values_map_to_label_one():
    assert checked_labels(np.array([[0, 255]], np.uint8), (1,)).tolist() == [[0, 1]]
    assert checked_labels(np.array([[0, 28]], np.uint8), tuple(range(1, 29))).tolist() == [[0, 28]]
