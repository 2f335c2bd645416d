"""Classification metrics checked against scikit-learn on random data, plus hand-computed edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    log_loss,
    roc_auc_score,
    roc_curve,
)

from app.metrics.classification import classification_metrics, item_correct, item_nll


def random_case(n: int, classes: int, seed: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    y[:classes] = np.arange(classes)  # every class present
    logits = rng.normal(size=(n, classes)) + 1.5 * np.eye(classes)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if decimals is not None:  # coarse scores: many ties
        p = np.round(p, decimals)
        p[:, -1] = 1.0 - p[:, :-1].sum(axis=1)
    return y, p


@pytest.mark.parametrize("classes,seed", [(2, 0), (2, 1), (3, 2), (5, 3)])
def test_matches_sklearn(classes: int, seed: int):
    y, p = random_case(300, classes, seed)
    m = classification_metrics(y, p)
    pred = p.argmax(axis=1)
    assert m["n"] == 300
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
    assert m["nll"] == pytest.approx(log_loss(y, p, labels=list(range(classes))), rel=1e-9)
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=list(range(classes))).tolist()
    if classes == 2:
        assert m["auc"] == pytest.approx(roc_auc_score(y, p[:, 1]), abs=1e-12)
    else:
        assert m["auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
        assert m["roc"] is None


@pytest.mark.parametrize("classes", [2, 4])
def test_auc_with_tied_scores_matches_sklearn(classes: int):
    y, p = random_case(400, classes, 7, decimals=1)
    m = classification_metrics(y, p)
    ref = roc_auc_score(y, p[:, 1]) if classes == 2 else roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert m["auc"] == pytest.approx(ref, abs=1e-12)


def test_roc_curve_matches_sklearn():
    y, p = random_case(120, 2, 11, decimals=2)
    roc = classification_metrics(y, p)["roc"]
    fpr, tpr, thr = roc_curve(y, p[:, 1], drop_intermediate=False)
    assert len(fpr) <= 200
    np.testing.assert_allclose(roc["fpr"], fpr, atol=1e-12)
    np.testing.assert_allclose(roc["tpr"], tpr, atol=1e-12)
    np.testing.assert_allclose(roc["thresholds"][1:], thr[1:], atol=1e-12)
    assert roc["thresholds"][0] > p[:, 1].max()  # finite (JSON), but above every score
    assert math.isfinite(roc["thresholds"][0])


def test_roc_is_subsampled_to_200_points_of_the_full_curve():
    y, p = random_case(2000, 2, 5)
    roc = classification_metrics(y, p)["roc"]
    fpr, tpr, _ = roc_curve(y, p[:, 1], drop_intermediate=False)
    assert len(fpr) > 200
    assert 2 < len(roc["fpr"]) <= 200
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    full = set(zip(fpr.round(12), tpr.round(12), strict=True))
    assert all((round(a, 12), round(b, 12)) in full for a, b in zip(roc["fpr"], roc["tpr"], strict=True))


def test_hand_computed_binary_case():
    # truth 0,0,1,1; P(class 1) = .1,.6,.4,.9 → predictions 0,1,0,1
    y = [0, 0, 1, 1]
    p1 = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, np.stack([1 - p1, p1], axis=1))
    assert m["accuracy"] == 0.5
    assert m["balanced_accuracy"] == 0.5
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    # positive/negative pairs ranked correctly: (.4>.1), (.9>.1), (.9>.6) but not (.4<.6) → 3/4
    assert m["auc"] == 0.75
    assert m["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.4) + math.log(0.9)) / 4)
    assert classification_metrics(y, p1)["auc"] == 0.75  # 1-D = positive-class probability


def test_single_class_auc_is_none_and_nll_is_clipped():
    m = classification_metrics([1, 1], [[1.0, 0.0], [0.2, 0.8]])
    assert m["auc"] is None and m["roc"] is None
    assert m["confusion_matrix"] == [[0, 0], [1, 1]]
    assert m["balanced_accuracy"] == 0.5  # only class 1 present: recall 1/2
    assert m["nll"] == pytest.approx((-math.log(1e-7) - math.log(0.8)) / 2)


def test_multiclass_auc_skips_absent_classes():
    y = [0, 0, 1, 1]
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3], [0.4, 0.1, 0.5]])
    # class 0: pos .7,.3 vs neg .2,.4 → 3/4; class 1: pos .5,.1 vs neg .2,.3 → 2/4; class 2 absent → skipped
    assert classification_metrics(y, p)["auc"] == pytest.approx(0.625)


def test_empty_and_invalid_inputs():
    assert classification_metrics([], np.zeros((0, 2)))["accuracy"] is None
    with pytest.raises(ValueError):
        classification_metrics([0, 2], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError):
        classification_metrics([0], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError):
        classification_metrics([0.5], [[0.5, 0.5]])


def test_item_helpers():
    assert item_nll([0.25, 0.75], 1) == pytest.approx(-math.log(0.75))
    assert item_nll([1.0, 0.0], 1) == pytest.approx(-math.log(1e-7))
    assert item_nll([0.0, 1.0], 1) == pytest.approx(-math.log(1 - 1e-7))
    assert item_correct([0.2, 0.5, 0.3], 1) is True
    assert item_correct([0.2, 0.5, 0.3], 2) is False
    assert item_correct([0.5, 0.5], 0) is True  # ties → first class
    with pytest.raises(ValueError):
        item_nll([0.5, 0.5], 2)
