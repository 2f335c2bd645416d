"""A model's predictions on the dataset grid (issue 14): a badge per card and a "predicted label" facet.

The grid shows one model at a time (`model=ID` on the page and on /items; the page's "Predictions" menu lists
the models with predictions on this dataset, found with one probe per model, never a scan):

- `badges`: for each item of a page, its stored prediction of that model as a small dict — a classifier's
  predicted class and its probability, a segmenter's Dice — with a `verdict`: "right"/"wrong" for a class
  against the ground truth (the `correct` item metric written with the prediction), "good"/"fair"/"poor" for a
  Dice (≥ DICE_GOOD, ≥ DICE_FAIR, below), None without ground truth. Two indexed queries per page.
- `facet`: how many of the items matching the other filters the classifier predicted as each of its classes;
  the values link to the same `pred:MODEL=CLASS` filter the confusion-matrix cells use (app.catalog.listing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.catalog import listing
from app.db.models import Dataset, Item, ItemMetric, Model, Prediction
from app.errors import InvalidInput

DICE_GOOD = 0.7
DICE_FAIR = 0.5


def models_with_predictions(session: Session, dataset_id: int) -> list[dict[str, Any]]:
    """{id, name, task} of every model with at least one prediction on the dataset (one probe per model)."""
    out = []
    for model in session.scalars(select(Model).order_by(Model.id)):
        probe = session.scalar(select(Prediction.id).join(Item, Item.id == Prediction.item_id)
                               .where(Prediction.model_id == model.id, Item.dataset_id == dataset_id).limit(1))
        if probe is not None:
            out.append({"id": model.id, "name": model.name, "task": model.task})
    return out


def get_model(session: Session, model_id: str | int) -> Model:
    """The model `model=` names (InvalidInput for a non-number or an unknown id: the grid's parameter)."""
    if not str(model_id).isdigit():
        raise InvalidInput(f"model={model_id!r}: give a model id (GET /api/models lists them)")
    model = session.get(Model, int(model_id))
    if model is None:
        raise InvalidInput(f"model={model_id}: no such model (GET /api/models lists them)")
    return model


def classes(model: Model) -> list[str]:
    """The classifier's class names from its card (empty for other tasks)."""
    out = ((model.card or {}).get("output") or {}).get("classes") or []
    return [str(c) for c in out] if model.task == "classify" else []


def badges(session: Session, model: Model, item_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """{item id: badge} for the items that have a prediction of `model`."""
    if not item_ids:
        return {}
    ids = list(item_ids)
    metrics: dict[int, dict[str, float]] = {}
    for item_id, name, value in session.execute(select(ItemMetric.item_id, ItemMetric.name, ItemMetric.value).where(
            ItemMetric.model_id == model.id, ItemMetric.item_id.in_(ids), ItemMetric.name.in_(("correct", "dice")))):
        metrics.setdefault(item_id, {})[name] = value
    out: dict[int, dict[str, Any]] = {}
    for item_id, outputs in session.execute(select(Prediction.item_id, Prediction.outputs).where(
            Prediction.model_id == model.id, Prediction.item_id.in_(ids))):
        m = metrics.get(item_id, {})
        badge: dict[str, Any] = {"model_id": model.id, "label": None, "probability": None, "dice": None,
                                 "verdict": None}
        if model.task == "classify":
            probs = (outputs or {}).get("probabilities") or []
            label = (outputs or {}).get("label")
            badge["label"] = None if label is None else str(label)
            names = classes(model)
            if badge["label"] in names and len(probs) == len(names):
                badge["probability"] = float(probs[names.index(badge["label"])])
            elif probs:
                badge["probability"] = float(max(probs))
            if "correct" in m:
                badge["verdict"] = "right" if m["correct"] >= 0.5 else "wrong"
        elif "dice" in m:
            dice = float(m["dice"])
            badge["dice"] = dice
            badge["verdict"] = "good" if dice >= DICE_GOOD else "fair" if dice >= DICE_FAIR else "poor"
        out[item_id] = badge
    return out


def facet(session: Session, ds: Dataset, model: Model, filters: Mapping[str, Sequence[str]],
          key: str | None) -> dict[str, int]:
    """{class: items predicted as it} under the filters except this model's own `pred:` filter (disjunctive,
    like the other facets); every class of the card listed, 0 when none."""
    field = f"{listing.PRED_PREFIX}{model.id}"
    ids = listing.filtered(ds, {f: v for f, v in filters.items() if f != field}, key).with_only_columns(Item.id)
    label = Prediction.outputs["label"].as_string()
    rows = session.execute(select(label, func.count()).where(Prediction.model_id == model.id,
                                                             Prediction.item_id.in_(ids)).group_by(label))
    counts = {str(v): n for v, n in rows if v is not None}
    return {**dict.fromkeys(classes(model), 0), **counts}
