"""Model pages: the registered models with their evaluations per applicable dataset, and one evaluation
(metrics, confusion matrix, ROC curve as inline SVG). Same services as the JSON API; each page links its JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.datasets import filters_from
from app.api.deps import RuntimesDep, SessionDep, SettingsDep
from app.catalog import queries
from app.inference import registry
from app.inference.evaluation import evaluate
from app.web.pages import query_url

router = APIRouter(include_in_schema=False)

# ROC plot geometry (SVG user units): the unit square is drawn at PLOT_PAD..PLOT_PAD+PLOT_SIZE.
PLOT_SIZE = 300
PLOT_PAD = 40


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context)


def _device(runtimes: Any, model: Any, device_setting: str) -> str:
    try:
        return runtimes.get(model, device_setting).device
    except Exception as exc:  # noqa: BLE001 - a model that cannot load is shown, not a page error
        return f"unavailable ({exc})"


def applicable_models(session: Session, kind: str, task: str | None = "classify") -> list[dict[str, Any]]:
    """Summaries of the registered models whose card applies to datasets of `kind` (and of `task`)."""
    return [{**registry.model_summary(m), "classes": _classes(m)} for m in registry.list_models(session)
            if kind in (m.card.get("applies_to") or []) and (task is None or m.task == task)]


def _classes(model: Any) -> list[str]:
    return list((model.card.get("output") or {}).get("classes") or [])


@router.get("/models", name="models_page")
def models_page(request: Request, session: SessionDep, settings: SettingsDep, runtimes: RuntimesDep) -> Response:
    datasets = queries.list_datasets(session)
    models = []
    for m in registry.list_models(session):
        summary = registry.model_summary(m)
        summary["device"] = _device(runtimes, m, settings.device)
        summary["classes"] = _classes(m)
        summary["datasets"] = [d for d in datasets if d["kind"] in summary["applies_to"]]
        models.append(summary)
    return _render(request, "models.html", {"models": models})


@router.get("/models/{model_id}/evaluation", name="evaluation_page")
def evaluation_page(model_id: int, dataset_id: int, request: Request, session: SessionDep) -> Response:
    filters = {k: v for k, v in filters_from(request).items() if k != "dataset_id"}
    model = registry.model_summary(registry.get_model(session, model_id))
    dataset = queries.dataset_summary(queries.get_dataset(session, dataset_id))
    result = evaluate(session, model_id, dataset_id, filters)
    return _render(request, "evaluation.html", {
        "model": model, "dataset": dataset, "result": result, "filters": filters,
        "json_url": query_url(f"/api/models/{model_id}/evaluation", filters, dataset_id=dataset_id),
        "confusion": confusion_view(result), "roc": roc_view(result.get("roc")),
        "plot": {"size": PLOT_SIZE, "pad": PLOT_PAD, "ticks": tick_marks()}})


# -- display helpers --------------------------------------------------------------------------

def confusion_view(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows (truth) of the confusion matrix: class name, total, and each cell's count and shade (0–1 of max)."""
    matrix: Sequence[Sequence[int]] = result.get("confusion_matrix") or []
    classes = list(result.get("classes") or [])
    top = max((c for row in matrix for c in row), default=0) or 1
    rows = []
    for i, row in enumerate(matrix):
        name = classes[i] if i < len(classes) else str(i)
        rows.append({"name": name, "total": sum(row), "cells": [
            {"count": c, "shade": round(c / top, 3), "diagonal": i == j} for j, c in enumerate(row)]})
    return rows


def _xy(fpr: float, tpr: float) -> str:
    x = PLOT_PAD + fpr * PLOT_SIZE
    y = PLOT_PAD + (1 - tpr) * PLOT_SIZE
    return f"{x:.1f},{y:.1f}"


def roc_view(roc: Mapping[str, Sequence[float]] | None) -> dict[str, Any] | None:
    """The ROC curve as SVG polyline points (one per (fpr, tpr) pair), or None without a curve."""
    if not roc or not roc.get("fpr"):
        return None
    points = [_xy(f, t) for f, t in zip(roc["fpr"], roc["tpr"], strict=True)]
    return {"points": " ".join(points), "count": len(points)}


def tick_marks() -> list[dict[str, Any]]:
    """Axis ticks at 0, 0.25 … 1: label and SVG offset along each axis."""
    return [{"label": f"{v:g}", "x": PLOT_PAD + v * PLOT_SIZE, "y": PLOT_PAD + (1 - v) * PLOT_SIZE}
            for v in (0, 0.25, 0.5, 0.75, 1)]
