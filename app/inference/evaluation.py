"""A model's benchmark metrics over a dataset selection: the items that have both ground truth and a
prediction from the model (API.md `GET /api/models/{id}/evaluation`). Classification for now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog.queries import filtered_ids, get_dataset
from app.db.models import Prediction
from app.errors import Unsupported
from app.inference.predict import class_index, ground_truth_labels
from app.inference.registry import get_model, model_card
from app.metrics.classification import classification_metrics


def evaluate(session: Session, model_id: int, dataset_id: int, filters: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    model = get_model(session, model_id)
    card = model_card(model)
    dataset = get_dataset(session, dataset_id)
    if card.task != "classify":
        raise Unsupported(f"evaluation of {card.task} models is not available yet (classification only)")
    rows = session.execute(select(Prediction.item_id, Prediction.outputs).where(
        Prediction.model_id == model.id, Prediction.item_id.in_(filtered_ids(dataset, filters))))
    outputs = dict(rows.all())
    truths = ground_truth_labels(session, list(outputs))
    y_true, probabilities = [], []
    for item_id in sorted(outputs):
        truth = truths.get(item_id)
        index = None if truth is None else class_index(truth, card, dataset.kind)
        if index is None:
            continue  # no ground truth the model's classes can name
        y_true.append(index)
        probabilities.append(outputs[item_id]["probabilities"])
    # no usable item: an empty (0, classes) array (reshape(0, -1) cannot infer the width)
    width = len(probabilities[0]) if probabilities else max(len(card.output.classes or []), 2)
    metrics = classification_metrics(np.array(y_true, dtype=int),
                                     np.array(probabilities, dtype=float).reshape(len(y_true), width))
    return {"model_id": model.id, "dataset_id": dataset.id, "classes": list(card.output.classes or []),
            "predicted": len(outputs), **metrics}
