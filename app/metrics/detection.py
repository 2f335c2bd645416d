"""Lesion detection: FROC and sensitivity at fixed false positives per image (as DeepLesion papers report).

Boxes are ``[x1, y1, x2, y2]`` in continuous pixel coordinates (area = (x2 - x1) * (y2 - y1), no "+1").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_FPS = (0.5, 1.0, 2.0, 4.0, 8.0)


def _boxes(rows: Sequence[Sequence[float]], width: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray(rows, dtype=float) if len(rows) else np.zeros((0, width))
    except ValueError as exc:
        raise ValueError(f"{what}: boxes must be lists of {width} numbers") from exc
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{what}: each box needs {width} numbers")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: NaN or infinite coordinate")
    if np.any(arr[:, 2] < arr[:, 0]) or np.any(arr[:, 3] < arr[:, 1]):
        raise ValueError(f"{what}: box with x2 < x1 or y2 < y1")
    return arr


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box against each row of ``boxes`` (0 where the union is empty)."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _fp_key(fp: float) -> str:
    return f"{fp:g}"


def froc(
    predictions: Sequence[Sequence[Sequence[float]]],
    ground_truths: Sequence[Sequence[Sequence[float]]],
    fps: Sequence[float] = DEFAULT_FPS,
    iou: float = 0.5,
) -> dict[str, Any]:
    """Free-response ROC over images.

    Matching: all predictions are visited in descending score (stable for ties); a prediction is a true positive
    when its image has a not-yet-matched GT box with IoU >= ``iou`` (it takes the one with the highest IoU), else
    a false positive — duplicates on an already-found lesion count as false positives and each GT is matched at
    most once. (DeepLesion's reference script ignores such duplicates and uses "+1" pixel areas.)
    Curve: one operating point per distinct score threshold, starting at (0, 0): average false positives per
    image and the fraction of GT boxes found; ``thresholds[i]`` is the score threshold of point i + 1.
    ``sensitivity_at_fp[f]`` is the highest sensitivity among operating points with at most f FPs per image
    (an achievable threshold, no interpolation); if the detector never reaches f FPs per image, its final
    sensitivity. Sensitivities are None when there are no GT boxes.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} prediction lists for {len(ground_truths)} images")
    n_images = len(ground_truths)
    gts = [_boxes(g, 4, f"ground truth of image {i}") for i, g in enumerate(ground_truths)]
    preds = [_boxes(p, 5, f"predictions of image {i}") for i, p in enumerate(predictions)]
    n_gt = int(sum(g.shape[0] for g in gts))

    image_of = np.concatenate([np.full(p.shape[0], i, dtype=int) for i, p in enumerate(preds)] or [np.zeros(0, int)])
    all_preds = np.concatenate(preds) if preds else np.zeros((0, 5))
    order = np.argsort(-all_preds[:, 4], kind="mergesort")
    matched = [np.zeros(g.shape[0], dtype=bool) for g in gts]
    is_tp = np.zeros(order.size, dtype=bool)
    for rank, idx in enumerate(order):
        img = image_of[idx]
        if gts[img].shape[0] == 0:
            continue
        overlaps = box_iou(all_preds[idx, :4], gts[img])
        overlaps[matched[img]] = -1.0
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou:
            matched[img][best] = True
            is_tp[rank] = True

    scores = all_preds[order, 4]
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1] if scores.size else np.zeros(0, int)
    tp_cum = np.cumsum(is_tp)[last_of_run]
    fp_cum = (last_of_run + 1) - tp_cum
    fp_per_image = np.r_[0.0, fp_cum / n_images] if n_images else np.zeros(1)
    sensitivity = np.r_[0.0, tp_cum / n_gt] if n_gt else None

    at_fp: dict[str, float | None] = {}
    for f in fps:
        if sensitivity is None:
            at_fp[_fp_key(f)] = None
        else:
            at_fp[_fp_key(f)] = float(sensitivity[fp_per_image <= f + 1e-12].max())
    return {
        "n": n_images,
        "n_gt": n_gt,
        "sensitivity_at_fp": at_fp,
        "curve": {
            "fps_per_image": fp_per_image.tolist(),
            "sensitivity": sensitivity.tolist() if sensitivity is not None else None,
            "thresholds": scores[last_of_run].tolist(),
        },
    }


def match_boxes(predictions: Sequence[Sequence[float]], ground_truth: Sequence[Sequence[float]],
                iou: float = 0.5) -> dict[str, Any]:
    """One image's detections (x1, y1, x2, y2, score) against its GT boxes, matched as `froc` does (descending
    score, each GT at most once, the highest-IoU free GT): {"tp", "fp", "fn", "sensitivity"} — sensitivity
    = tp / GT boxes, None without GT boxes."""
    preds = _boxes(predictions, 5, "predictions")
    gts = _boxes(ground_truth, 4, "ground truth")
    matched = np.zeros(gts.shape[0], dtype=bool)
    tp = 0
    for idx in np.argsort(-preds[:, 4], kind="mergesort"):
        if not gts.shape[0]:
            break
        overlaps = box_iou(preds[idx, :4], gts)
        overlaps[matched] = -1.0
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou:
            matched[best] = True
            tp += 1
    n_gt = int(gts.shape[0])
    return {"tp": tp, "fp": int(preds.shape[0]) - tp, "fn": n_gt - tp, "sensitivity": tp / n_gt if n_gt else None}
