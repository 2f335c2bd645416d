"""The few-shot page of an embedding model (issue 15): per applicable dataset, how many of its items have a
vector and a label, the few-shot classifiers already trained from it, a "Train classifier" form (admin), the
label curve drawn on demand (static/js/fewshot.js: balanced accuracy against labels per class, log x axis) and
an uncertainty-first review queue of a trained classifier (reviewer and admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.catalog import queries, urls
from app.embeddings.fewshot import training_of
from app.inference import registry, vectors
from app.inference.tasks import task_misfit

router = APIRouter(include_in_schema=False)


@router.get("/models/{model_id}/fewshot", name="fewshot_page")
def fewshot_page(model_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                 dataset_id: int | None = None) -> Response:
    model, card = registry.embedding_model(session, model_id, "a few-shot classifier")
    datasets = [d for d in queries.list_datasets(session)
                if (not card.applies_to or d["kind"] in card.applies_to) and task_misfit(card, d["kind"]) is None]
    for d in datasets:
        stored = vectors.load(settings, model.id, d["id"])
        d["vectors"] = len(stored) if stored is not None else 0
    chosen = next((d for d in datasets if d["id"] == dataset_id), None)
    if chosen is None:
        chosen = next((d for d in datasets if d["vectors"]), datasets[0] if datasets else None)
    trained = []
    for m in registry.list_models(session):
        info = training_of(settings, m) if m.task == "classify" else None
        if info and info.get("embed_model_id") == model.id and chosen and info.get("dataset_id") == chosen["id"]:
            trained.append({"id": m.id, "name": m.name, "info": info,
                            "evaluation_url": urls.evaluation_page_url(m.id, chosen["id"])})
    page_data: dict[str, Any] = {
        "embed_model_id": model.id, "dataset_id": chosen["id"] if chosen else None,
        "urls": {"train": request.app.url_path_for("train_fewshot"),
                 "curve": request.app.url_path_for("fewshot_curve", model_id=str(model.id)),
                 "queues": request.app.url_path_for("create_queue"),
                 "queue_page": request.app.url_path_for("review_queue_page", queue_id="0").removesuffix("0")
                 + "{id}",
                 "evaluation_page": urls.evaluation_page_url("{model_id}", "{dataset_id}")}}
    return request.app.state.templates.TemplateResponse(request, "fewshot.html", {
        "model": registry.model_summary(model), "datasets": datasets, "dataset": chosen, "trained": trained,
        "page_data": page_data})
