"""Classification: item image → class probabilities; metrics `correct` and `nll` against the item's label."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import View
from app.inference.card import ModelCard
from app.inference.ground_truth import class_index, ground_truth_labels
from app.inference.postprocess import ClassPrediction, classify
from app.inference.preprocess import prepare_batch
from app.inference.runtime import InferenceRuntime
from app.inference.tasks.base import Prepared, Result, TaskContext, first_output
from app.metrics.classification import item_correct, item_nll


def item_metrics(prediction: ClassPrediction, truth: str | None, card: ModelCard, kind: str,
                 index: int | None = None) -> dict[str, Any]:
    """Per-item metrics when the ground truth names one of the card's classes, else {}. `index` = the truth's
    class index when the caller has it (a job maps each label value once per batch, not once per item)."""
    if index is None:
        index = class_index(truth, card, kind) if truth is not None else None
    if index is None:
        return {}
    return {"correct": item_correct(prediction.probabilities, index), "nll": item_nll(prediction.probabilities, index)}


class ClassifyTask:
    name = "classify"

    def chunk(self, settings: Settings, card: ModelCard) -> int:
        return settings.inference_batch

    def prepare(self, session: Session, ctx: TaskContext, ids: list[int]) -> Prepared:
        targets = ctx.pixels.targets(session, ids, False)
        batch, _ = prepare_batch(ctx.pixels.images_for(targets, View()), ctx.card)
        truths = ground_truth_labels(session, ids, {t.ref.id: t.ref.label for t in targets})
        return Prepared(ids, batch, [truths.get(i) for i in ids])

    def infer(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]:
        predictions = classify(first_output(runtime.run(prepared.batch)), ctx.card)
        indices = {t: class_index(t, ctx.card, ctx.dataset_kind) for t in set(prepared.extra) if t is not None}
        return [Result(item_id, p.as_outputs(),
                       item_metrics(p, truth, ctx.card, ctx.dataset_kind, indices.get(truth)) if truth is not None
                       else {})
                for item_id, p, truth in zip(prepared.ids, predictions, prepared.extra, strict=True)]
