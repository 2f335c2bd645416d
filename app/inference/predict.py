"""One item through one model, synchronously: the task's own prepare → run → postprocess path (the same one
jobs use, `app.inference.tasks`), stored (one prediction per item × model; predicting again replaces it and
its per-item metric rows).

Every task runs here on the CPU too; a 3-D volume may take a while (its tiles are batched as in jobs). The
database session is released before the model runs, so a long prediction holds no connection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.catalog.queries import get_dataset, get_item
from app.config import Settings
from app.db.models import Model
from app.errors import InvalidInput
from app.inference.card import ModelCard
from app.inference.ground_truth import class_index, ground_truth_label, ground_truth_labels
from app.inference.registry import RuntimeCache, get_model, model_card
from app.inference.store import store_one
from app.inference.tasks import TaskContext, check_task_fits, get_task
from app.inference.tasks.classify import item_metrics
from app.inference.tasks.embed import store_results
from app.pixels import PixelStore

__all__ = ["check_applies", "check_predictable", "class_index", "ground_truth_label", "ground_truth_labels",
           "item_metrics", "predict_item"]


def check_applies(model: Model, card: ModelCard, dataset_kind: str) -> None:
    """400 when the card's applies_to does not name the kind, or the task cannot run on such items."""
    if card.applies_to and dataset_kind not in card.applies_to:
        raise InvalidInput(f"model {model.name!r} applies to {', '.join(card.applies_to)}, not to {dataset_kind} "
                           "items (the card's applies_to)")
    check_task_fits(card, dataset_kind, model.name)


def check_predictable(session: Session, item_id: int, model_id: int) -> tuple[Any, Model, ModelCard, str]:
    """(item, model, card, dataset kind), or the 404 / 400 that says why this model cannot predict this item."""
    item = get_item(session, item_id)
    model = get_model(session, model_id)
    card = model_card(model)
    kind = get_dataset(session, item.dataset_id).kind
    check_applies(model, card, kind)
    return item, model, card, kind


def predict_item(session: Session, settings: Settings, pixels: PixelStore, runtimes: RuntimeCache, item_id: int,
                 model_id: int) -> dict[str, Any]:
    """Predict one item with one model, store it and return `{model_id, model_name, task, outputs, metrics}`."""
    item, model, card, kind = check_predictable(session, item_id, model_id)
    task = get_task(card)
    model_ref, name = model.id, model.name
    runtime = runtimes.get(model, settings.device)
    ctx = TaskContext(settings, pixels, card, model_ref, kind)
    prepared = task.prepare(session, ctx, [item.id])
    session.commit()  # end the read transaction: no connection held while the model runs
    result = task.infer(runtime, ctx, prepared)[0]
    if card.task == "embed":  # the vector goes to the model × dataset's vector files, not a prediction row
        result.outputs = store_results(settings, model_ref, item.dataset_id, [result])
    else:
        store_one(session, model_ref, result)
    return {"model_id": model_ref, "model_name": name, "task": card.task, "outputs": result.outputs,
            "metrics": result.metrics}
