"""One item through one model, synchronously: pixels → card preprocessing → runtime → outputs + metrics.

The prediction is stored (one row per item × model; predicting again replaces it). Per-item metrics are
added when the item has ground truth the card's classes can name: the item's label or, failing that,
its newest `label` annotation; coded labels (PCam "0"/"1") match either the class names the dataset
kind gives them ("normal"/"tumor") or, as numbers, the class index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.catalog.queries import get_dataset, get_item
from app.config import Settings
from app.datasets.base import Image2D, View
from app.datasets.registry import get_adapter
from app.db.models import Annotation, Item, Model, Prediction
from app.errors import InvalidInput
from app.inference.card import ModelCard
from app.inference.postprocess import ClassPrediction, classify
from app.inference.preprocess import prepare_batch
from app.inference.registry import RuntimeCache, get_model, model_card
from app.inference.runtime import InferenceRuntime
from app.metrics.classification import item_correct, item_nll
from app.render.service import Renderer, load_target

SUPPORTED_TASKS = ("classify",)


def ground_truth_label(session: Session, item: Item) -> str | None:
    """The item's label, else its newest current `label` annotation's."""
    if item.label is not None:
        return item.label
    return session.scalar(select(Annotation.label).where(
        Annotation.item_id == item.id, Annotation.kind == "label", Annotation.superseded_by.is_(None),
        Annotation.label.is_not(None)).order_by(Annotation.id.desc()).limit(1))


def class_index(label: str, card: ModelCard, dataset_kind: str) -> int | None:
    """The card's class index for a dataset label, or None when the classes cannot name it."""
    classes = card.output.classes or []
    if label in classes:
        return classes.index(label)
    names = getattr(get_adapter(dataset_kind), "facet_labels", {}).get("label", {})
    if names.get(label) in classes:
        return classes.index(names[label])
    if label.isdigit() and int(label) < len(classes):
        return int(label)
    return None


def ground_truth_labels(session: Session, item_ids: Sequence[int]) -> dict[int, str | None]:
    """`ground_truth_label` of many items in two queries."""
    rows = session.execute(select(Item.id, Item.label).where(Item.id.in_(list(item_ids))))
    labels: dict[int, str | None] = {item_id: label for item_id, label in rows}
    unlabelled = [i for i, label in labels.items() if label is None]
    if unlabelled:
        for item_id, label in session.execute(select(Annotation.item_id, Annotation.label).where(
                Annotation.item_id.in_(unlabelled), Annotation.kind == "label", Annotation.superseded_by.is_(None),
                Annotation.label.is_not(None)).order_by(Annotation.id)):
            labels[item_id] = label  # ascending ids: the newest wins
    return labels


def check_applies(model: Model, card: ModelCard, dataset_kind: str) -> None:
    if card.applies_to and dataset_kind not in card.applies_to:
        raise InvalidInput(f"model {model.name!r} applies to {', '.join(card.applies_to)}, not to {dataset_kind} "
                           "items (the card's applies_to)")
    if card.task not in SUPPORTED_TASKS:
        raise InvalidInput(f"model {model.name!r} is a {card.task} model; synchronous prediction supports "
                           f"{', '.join(SUPPORTED_TASKS)} models so far")


def run_classifier(runtime: InferenceRuntime, images: Sequence[Image2D], card: ModelCard) -> list[ClassPrediction]:
    """Several images through a classifier in one `runtime.run`."""
    batch, _ = prepare_batch(images, card)
    output = runtime.run(batch)
    return classify(output[0] if isinstance(output, tuple) else output, card)


def item_metrics(prediction: ClassPrediction, truth: str | None, card: ModelCard, kind: str) -> dict[str, Any]:
    """Per-item metrics when the ground truth names one of the card's classes, else {}."""
    index = class_index(truth, card, kind) if truth is not None else None
    if index is None:
        return {}
    return {"correct": item_correct(prediction.probabilities, index), "nll": item_nll(prediction.probabilities, index)}


def _store(session: Session, item_id: int, model_id: int, outputs: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Insert or replace the (item, model) prediction."""
    for _ in range(2):
        row = session.scalar(select(Prediction).where(Prediction.item_id == item_id,
                                                      Prediction.model_id == model_id))
        if row is None:
            session.add(Prediction(item_id=item_id, model_id=model_id, outputs=outputs, metrics=metrics))
        else:
            row.outputs, row.metrics = outputs, metrics
        try:
            session.commit()
            return
        except IntegrityError:  # a concurrent request inserted it first: update that row instead
            session.rollback()
    raise InvalidInput(f"could not store the prediction of model {model_id} for item {item_id}")


def predict_item(session: Session, settings: Settings, renderer: Renderer, runtimes: RuntimeCache, item_id: int,
                 model_id: int) -> dict[str, Any]:
    """Predict one item with one model, store it and return `{model_id, model_name, outputs, metrics}`."""
    item = get_item(session, item_id)
    model = get_model(session, model_id)
    card = model_card(model)
    kind = get_dataset(session, item.dataset_id).kind
    check_applies(model, card, kind)
    target = load_target(session, item_id, False, settings.allowed_roots)
    image = renderer.image(target, View())
    prediction = run_classifier(runtimes.get(model, settings.device), [image], card)[0]
    outputs = prediction.as_outputs()
    metrics = item_metrics(prediction, ground_truth_label(session, item), card, kind)
    _store(session, item.id, model.id, outputs, metrics)
    return {"model_id": model.id, "model_name": model.name, "outputs": outputs, "metrics": metrics}
