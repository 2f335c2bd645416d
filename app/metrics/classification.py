"""Classification metrics: accuracy, ROC AUC, NLL, balanced accuracy, confusion matrix, ROC curve.

Inputs: ``y_true`` integer class indices in ``0..C-1`` and ``probabilities`` of shape ``(n, C)`` (a 1-D array is
read as the positive-class probability of a binary problem). The predicted class is the arg-max (first on ties).
Implemented in numpy; the tests check every number against scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

NLL_EPS = 1e-7
ROC_MAX_POINTS = 200


def _prepare(y_true: ArrayLike, probabilities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=float)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (n, classes>=2), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or infinite values")
    y_raw = np.asarray(y_true)
    if y_raw.ndim != 1 or y_raw.shape[0] != p.shape[0]:
        raise ValueError(f"y_true must be 1-D with {p.shape[0]} entries, got shape {y_raw.shape}")
    if y_raw.size and not np.all(np.equal(np.mod(y_raw, 1), 0)):
        raise ValueError("y_true must hold integer class indices")
    y = y_raw.astype(int)
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"y_true values must be in 0..{p.shape[1] - 1}")
    return y, p


def _binary_roc(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (false positives, true positives, threshold) at each distinct score, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    pos = positive[order].astype(float)
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(pos)[last_of_run]
    fps = (last_of_run + 1) - tps
    return np.r_[0.0, fps], np.r_[0.0, tps], s[last_of_run]


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (trapezoids; tied scores count one half), None without both classes."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    fps, tps, _ = _binary_roc(positive, scores)
    fpr, tpr = fps / n_neg, tps / n_pos
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _roc_curve(positive: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """ROC points at every distinct threshold (``score >= threshold`` is positive), at most 200 of them.

    The first point (0, 0) gets the threshold just above the highest score (scikit-learn uses +inf, which is
    not valid JSON). Subsampling keeps the first and last points and evenly spaced ones between.
    """
    fps, tps, thr = _binary_roc(positive, scores)
    fpr = fps / fps[-1]
    tpr = tps / tps[-1]
    thresholds = np.r_[np.nextafter(thr[0], np.inf), thr]
    if fpr.size > ROC_MAX_POINTS:
        keep = np.unique(np.round(np.linspace(0, fpr.size - 1, ROC_MAX_POINTS)).astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def classification_metrics(y_true: ArrayLike, probabilities: ArrayLike) -> dict[str, Any]:
    """Metrics over n items.

    - accuracy: fraction with arg-max class == truth.
    - auc: binary → ROC AUC of class 1's probability; multi-class → macro mean of one-vs-rest AUCs over the
      classes that occur in ``y_true`` (as scikit-learn's ``multi_class="ovr", average="macro"`` when all
      classes occur); None when ``y_true`` holds a single class.
    - nll: mean of ``-log(clip(p[i, y_i], 1e-7, 1 - 1e-7))`` (no renormalisation).
    - balanced_accuracy: mean recall over the classes present in ``y_true``.
    - confusion_matrix: ``C x C`` counts, rows = truth, columns = predicted class.
    - roc: binary only, ``{"fpr", "tpr", "thresholds"}`` (≤ 200 points); None otherwise or when undefined.
    With n == 0 every metric is None.
    """
    y, p = _prepare(y_true, probabilities)
    n, n_classes = p.shape
    if n == 0:
        return {
            "n": 0,
            "accuracy": None,
            "auc": None,
            "nll": None,
            "balanced_accuracy": None,
            "confusion_matrix": None,
            "roc": None,
        }
    pred = np.argmax(p, axis=1)
    confusion = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    support = confusion.sum(axis=1)
    present = support > 0
    recalls = np.diag(confusion)[present] / support[present]
    true_p = np.clip(p[np.arange(n), y], NLL_EPS, 1.0 - NLL_EPS)

    roc = None
    if n_classes == 2:
        auc = _binary_auc(y == 1, p[:, 1])
        if auc is not None:
            roc = _roc_curve(y == 1, p[:, 1])
    else:
        aucs = [_binary_auc(y == c, p[:, c]) for c in range(n_classes)]
        defined = [a for a in aucs if a is not None]
        auc = float(np.mean(defined)) if defined else None

    return {
        "n": int(n),
        "accuracy": float(np.mean(pred == y)),
        "auc": auc,
        "nll": float(np.mean(-np.log(true_p))),
        "balanced_accuracy": float(np.mean(recalls)),
        "confusion_matrix": confusion.tolist(),
        "roc": roc,
    }


def item_nll(probabilities: Sequence[float] | np.ndarray, label: int) -> float:
    """Negative log-likelihood of one item: ``-log(clip(p[label], 1e-7, 1 - 1e-7))``."""
    n, label = len(probabilities), int(label)  # scalar arithmetic: jobs call this once per item
    if not 0 <= label < n:
        raise ValueError(f"label {label} outside 0..{n - 1}")
    return -math.log(min(max(float(probabilities[label]), NLL_EPS), 1.0 - NLL_EPS))


def item_correct(probabilities: Sequence[float] | np.ndarray, label: int) -> bool:
    """Whether the arg-max class (first on ties) equals ``label``."""
    n, label = len(probabilities), int(label)
    if not 0 <= label < n:
        raise ValueError(f"label {label} outside 0..{n - 1}")
    return max(range(n), key=lambda i: probabilities[i]) == label  # max keeps the first of equal values
