"""A model's benchmark metrics over a dataset selection: the items that have both ground truth and a
prediction from the model (API.md `GET /api/models/{id}/evaluation`), per task.

- classify: from the stored probabilities and the items' labels (`classification_metrics`).
- segment2d: means of the stored per-item metrics (Dice, IoU, wFm, S-measure, E-measure, MAE are per-image
  scores averaged over images, the toolkits' convention), plus `dice_histogram` (10 bins of 0.1).
- detect2d: FROC from the stored boxes (`boxes` and the low-score `candidates`, down to 0.05) against the
  items' ground-truth boxes: `sensitivity_at_fp` at 0.5/1/2/4/8 false positives per image and the `froc` curve.
- segment3d: `dice_per_label` (mean over the scans whose ground truth has the label) and
  `identification_rate` (mean of the per-scan rates), from the stored per-item values.
Every result also says `task`, `predicted` (items with a prediction in the selection) and `worst_first`
(the per-item metric and direction that put the worst items first, for the items list's sort).

`annotations` picks the ground truth: `current` (default: the current versions, user corrections included) or
`dataset` (the dataset's own versions, whether superseded or not). Labels and boxes are read per call, so both
are exact. Segmentation metrics are stored per item when the prediction is made, against the ground truth
current then: an item whose annotations changed after its prediction (for `current`), or had been corrected
before it (for `dataset`), has stored metrics scored against other ground truth; such items are left out and
counted in `excluded_edited` (one query over the selection's user annotation versions — the partial index
ix_annotations_user_current and the lineage index — whatever the dataset's size; re-run the prediction to
score them against the current annotations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.catalog.queries import filtered_ids, get_dataset
from app.db.models import Annotation, Item, Prediction
from app.errors import InvalidInput
from app.inference.card import ModelCard
from app.inference.ground_truth import ANNOTATION_SETS, annotation_filter, class_index, ground_truth_labels
from app.inference.registry import get_model, model_card
from app.metrics.classification import classification_metrics
from app.metrics.detection import froc

SEGMENTATION_KEYS = ("dice", "iou", "wfm", "s_measure", "e_measure", "mae")
HISTOGRAM_BINS = 10
CURVE_MAX_POINTS = 400
# The per-item metric whose order puts the worst items first, and whether that is descending.
WORST_FIRST = {"classify": ("nll", True), "segment2d": ("dice", False), "detect2d": ("sensitivity", False),
               "segment3d": ("dice_mean", False)}


def evaluate(session: Session, model_id: int, dataset_id: int, filters: Mapping[str, Sequence[str]],
             annotations: str = "current") -> dict[str, Any]:
    if annotations not in ANNOTATION_SETS:
        raise InvalidInput(f"annotations: {annotations!r} is not one of {', '.join(ANNOTATION_SETS)}")
    model = get_model(session, model_id)
    card = model_card(model)
    dataset = get_dataset(session, dataset_id)
    selected = filtered_ids(dataset, filters)
    rows = session.execute(select(Prediction.item_id, Prediction.outputs, Prediction.metrics, Prediction.created_at)
                           .where(Prediction.model_id == model.id, Prediction.item_id.in_(selected))).all()
    if card.task not in WORST_FIRST:
        raise InvalidInput(f"model {model.name!r} is an {card.task} model: it has no evaluation against ground truth")
    metric, descending = WORST_FIRST[card.task]
    head = {"model_id": model.id, "dataset_id": dataset.id, "task": card.task, "predicted": len(rows),
            "annotations": annotations,
            "worst_first": {"metric": metric, "descending": descending,
                            "sort": f"{'-' if descending else ''}metric:{model.id}:{metric}"}}
    if card.task == "classify":
        body = _classification(session, card, dataset.kind, {r.item_id: r.outputs for r in rows}, annotations)
    elif card.task == "detect2d":
        body = _detection(session, {r.item_id: r.outputs or {} for r in rows}, annotations)
    else:
        stale = stale_metrics(session, dataset.id, {r.item_id: r.created_at for r in rows}, annotations)
        kept = [r.metrics or {} for r in rows if r.item_id not in stale]
        body = segmentation_summary(kept) if card.task == "segment2d" else vertebrae_summary(kept)
        body["excluded_edited"] = len(stale)
    return {**head, **body}


def stale_metrics(session: Session, dataset_id: int, predicted_at: Mapping[int, Any], annotations: str) -> set[int]:
    """Items whose stored per-item metrics were scored against other ground truth than `annotations`: for
    `current`, an annotation version made or retired after the prediction; for `dataset`, a user version (or a
    retirement) made before it. Reads only the items that ever had a user version or a retirement."""
    changed = or_(Annotation.source.like("user:%"), Annotation.retired_at.is_not(None))
    first: dict[int, Any] = {}
    last: dict[int, Any] = {}
    stmt = (select(Annotation.item_id, func.min(Annotation.created_at), func.max(Annotation.created_at),
                   func.min(Annotation.retired_at), func.max(Annotation.retired_at))
            .where(Annotation.dataset_id == dataset_id, changed).group_by(Annotation.item_id))
    for item_id, made_first, made_last, retired_first, retired_last in session.execute(stmt):
        if item_id not in predicted_at:
            continue
        firsts = [t for t in (made_first, retired_first) if t is not None]
        lasts = [t for t in (made_last, retired_last) if t is not None]
        first[item_id], last[item_id] = min(firsts), max(lasts)
    if annotations == "current":
        return {i for i, t in last.items() if predicted_at[i] is None or t > predicted_at[i]}
    return {i for i, t in first.items() if predicted_at[i] is None or t <= predicted_at[i]}


def _classification(session: Session, card: ModelCard, kind: str, outputs: dict[int, Any],
                    annotations: str = "current") -> dict[str, Any]:
    truths = ground_truth_labels(session, list(outputs), annotations=annotations)
    y_true, probabilities = [], []
    for item_id in sorted(outputs):
        truth = truths.get(item_id)
        index = None if truth is None else class_index(truth, card, kind)
        if index is None:
            continue  # no ground truth the model's classes can name
        y_true.append(index)
        probabilities.append(outputs[item_id]["probabilities"])
    # no usable item: an empty (0, classes) array (reshape(0, -1) cannot infer the width)
    width = len(probabilities[0]) if probabilities else max(len(card.output.classes or []), 2)
    metrics = classification_metrics(np.array(y_true, dtype=int),
                                     np.array(probabilities, dtype=float).reshape(len(y_true), width))
    return {"classes": list(card.output.classes or []), **metrics}


def dice_histogram(values: Sequence[float], bins: int = HISTOGRAM_BINS) -> dict[str, list]:
    """Counts of Dice values in equal bins over [0, 1] (the last bin includes 1.0)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(np.asarray(values, dtype=float), 0.0, 1.0), bins=edges)
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


def segmentation_summary(per_item: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means of the per-item segmentation metrics over the items that have them (ground truth present)."""
    scored = [m for m in per_item if isinstance(m.get("dice"), int | float)]
    out: dict[str, Any] = {"n": len(scored)}
    for key in SEGMENTATION_KEYS:
        values = [float(m[key]) for m in scored if isinstance(m.get(key), int | float)]
        out[key] = float(np.mean(values)) if values else None
    out["dice_histogram"] = dice_histogram([float(m["dice"]) for m in scored])
    return out


def vertebrae_summary(per_item: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    scored = [m for m in per_item if "dice_per_label" in m or "identification_rate" in m or "dice_foreground" in m]
    sums: dict[int, list[float]] = {}
    for m in scored:
        for label, value in (m.get("dice_per_label") or {}).items():
            sums.setdefault(int(label), []).append(float(value))
    rates = [float(m["identification_rate"]) for m in scored if isinstance(m.get("identification_rate"), int | float)]
    means = [float(m["dice_mean"]) for m in scored if isinstance(m.get("dice_mean"), int | float)]
    foreground = [float(m["dice_foreground"]) for m in scored if isinstance(m.get("dice_foreground"), int | float)]
    return {"n": len(scored), "dice_per_label": {str(k): float(np.mean(v)) for k, v in sorted(sums.items())},
            "dice_mean": float(np.mean(means)) if means else None,
            "identification_rate": float(np.mean(rates)) if rates else None,
            # a foreground-only model (one output channel): Dice of its mask against every labelled voxel
            **({"dice_foreground": float(np.mean(foreground))} if foreground else {})}


def _thin(curve: dict[str, Any], keep_max: int = CURVE_MAX_POINTS) -> dict[str, list | None]:
    """At most `keep_max` points of a curve (first and last kept, evenly spaced between); its sensitivity is None
    when there are no ground-truth boxes."""
    n = len(curve["fps_per_image"])
    if n <= keep_max:
        return curve
    keep = np.unique(np.round(np.linspace(0, n - 1, keep_max)).astype(int))
    thresholds = curve["thresholds"]
    return {"fps_per_image": [curve["fps_per_image"][i] for i in keep],
            "sensitivity": [curve["sensitivity"][i] for i in keep] if curve["sensitivity"] else None,
            "thresholds": [thresholds[i - 1] for i in keep if i > 0]}


def box_of(geometry: Mapping[str, Any]) -> list[float] | None:
    """An annotation's ground-truth box: its `bbox`, else the box around a RECIST's four points (a user's
    edited RECIST may carry only its axes)."""
    bbox = geometry.get("bbox")
    if isinstance(bbox, list) and len(bbox) >= 4:
        return bbox
    points = [p for axis in ("long", "short") for p in (geometry.get(axis) or []) if isinstance(p, list | tuple)]
    if len(points) < 2:
        return None
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    return [min(xs), min(ys), max(xs), max(ys)]


def detection_gt(session: Session, item_ids: Sequence[int], annotations: str = "current"
                 ) -> dict[int, list[list[float]]]:
    """Ground-truth boxes of items that have box annotations (of the `annotations` set), on each item's own
    slice."""
    boxes: dict[int, list[list[float]]] = {}
    for chunk in range(0, len(item_ids), 5000):
        ids = list(item_ids[chunk:chunk + 5000])
        for item_id, geometry, ann_slice, item_slice in session.execute(
                select(Annotation.item_id, Annotation.geometry, Annotation.slice_index, Item.location_index)
                .join(Item, Item.id == Annotation.item_id)
                .where(Annotation.item_id.in_(ids), annotation_filter(annotations))):
            bbox = box_of(geometry or {})
            if bbox is None:
                continue
            found = boxes.setdefault(item_id, [])
            if ann_slice is None or item_slice is None or ann_slice == item_slice:
                found.append([float(v) for v in bbox[:4]])
    return boxes


def _detection(session: Session, outputs: dict[int, dict[str, Any]], annotations: str = "current") -> dict[str, Any]:
    truth = detection_gt(session, sorted(outputs), annotations)
    ids = [i for i in sorted(outputs) if i in truth]
    predictions = [[b[:5] for b in (outputs[i].get("boxes") or []) + (outputs[i].get("candidates") or [])]
                   for i in ids]
    result = froc(predictions, [truth[i] for i in ids])
    return {"n": result["n"], "n_gt": result["n_gt"], "sensitivity_at_fp": result["sensitivity_at_fp"],
            "froc": _thin(result["curve"])}
