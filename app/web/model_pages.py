"""Model pages: the registered models with their evaluations per applicable dataset, and one evaluation per
model × dataset with its task's plots as inline SVG: ROC curve and confusion matrix (classification), Dice
histogram (segmentation), FROC curve (detection), per-vertebra Dice bars (3-D vertebra segmentation); and a
"worst first" link into the dataset grid sorted by the per-item metric. Each confusion-matrix cell links to the
grid of its items (the dataset's label values of that true class, `pred:MODEL=CLASS` for the predicted one);
a toggle evaluates against the current (corrected) annotations or the dataset's own (`annotations=`). Same
services as the JSON API; each page links its JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.datasets import filters_from
from app.api.deps import RuntimesDep, SessionDep, SettingsDep
from app.catalog import queries, urls
from app.catalog.urls import query_url
from app.datasets.verse import labels as verse_labels
from app.inference import registry
from app.inference.evaluation import evaluate
from app.inference.ground_truth import ANNOTATION_SETS, class_index
from app.inference.registry import card_classes
from app.inference.tasks import task_misfit

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


@router.get("/models", name="models_page")
def models_page(request: Request, session: SessionDep, settings: SettingsDep, runtimes: RuntimesDep) -> Response:
    datasets = queries.list_datasets(session)
    models = []
    for m in registry.list_models(session):
        summary = registry.model_summary(m)
        summary["device"] = _device(runtimes, m, settings.device)
        summary["classes"] = card_classes(m)
        card = registry.model_card(m)
        summary["datasets"] = [d for d in datasets if (not summary["applies_to"] or d["kind"] in summary["applies_to"])
                               and task_misfit(card, d["kind"]) is None]
        models.append(summary)
    return _render(request, "models.html", {"models": models})


@router.get("/models/{model_id}/evaluation", name="evaluation_page")
def evaluation_page(model_id: int, dataset_id: int, request: Request, session: SessionDep,
                    annotations: str = "current") -> Response:
    filters = {k: v for k, v in filters_from(request).items() if k != "dataset_id"}
    model_row = registry.get_model(session, model_id)
    model = registry.model_summary(model_row)
    ds = queries.get_dataset(session, dataset_id)
    dataset = queries.dataset_summary(ds)
    result = evaluate(session, model_id, dataset_id, filters, annotations)
    worst = result.get("worst_first") or {}
    page = urls.evaluation_page_url(model_id, dataset_id).split("?")[0]
    truth_values = class_label_values(registry.model_card(model_row), ds.kind, ds.facet_counts.get("label") or {}) \
        if result.get("task") == "classify" else []
    return _render(request, "evaluation.html", {
        "model": model, "dataset": dataset, "result": result, "filters": filters,
        "json_url": query_url(urls.model_evaluation_url(model_id), filters, dataset_id=dataset_id,
                              **({"annotations": annotations} if annotations != "current" else {})),
        "toggle": {a: query_url(page, filters, dataset_id=dataset_id, **({"annotations": a} if a != "current" else {}))
                   for a in ANNOTATION_SETS},
        "worst_url": worst_first_url(dataset_id, worst["sort"], filters) if worst else None,
        "confusion": confusion_view(result, cell_urls(dataset_id, model_id, result, truth_values, filters)),
        "roc": roc_view(result.get("roc")),
        "histogram": histogram_view(result.get("dice_histogram")), "froc": froc_view(result.get("froc"),
                                                                                     result.get("sensitivity_at_fp")),
        "vertebrae": vertebrae_view(result.get("dice_per_label")),
        "plot": {"size": PLOT_SIZE, "pad": PLOT_PAD, "ticks": tick_marks()}})


# -- display helpers --------------------------------------------------------------------------

def worst_first_url(dataset_id: int, sort: str, filters: Mapping[str, Sequence[str]]) -> str:
    """The dataset grid sorted by a per-item metric (`sort=metric:MODEL:NAME`, readable, colons kept), with the
    evaluation's filters."""
    rest = query_url("", filters).lstrip("?")
    return f"{urls.dataset_page_url(dataset_id)}?sort={quote(sort, safe=':-')}" + (f"&{rest}" if rest else "")


def class_label_values(card: Any, kind: str, labels: Mapping[str, int]) -> list[list[str]]:
    """Per class of the card, the dataset's `label` values that name it (PCam "1" → "tumor")."""
    classes = list(card.output.classes or [])
    out: list[list[str]] = [[] for _ in classes]
    for value in labels:
        index = class_index(value, card, kind)
        if index is not None and index < len(out):
            out[index].append(value)
    return out


def cell_urls(dataset_id: int, model_id: int, result: Mapping[str, Any], truth_values: Sequence[Sequence[str]],
              filters: Mapping[str, Sequence[str]]) -> list[list[str | None]]:
    """The grid of each confusion cell's items: the evaluation's filters, the true class's label values and
    `pred:MODEL=CLASS` (None where the dataset has no label value for that class)."""
    classes = list(result.get("classes") or [])
    out: list[list[str | None]] = []
    for i in range(len(classes)):
        row: list[str | None] = []
        for predicted in classes:
            values = truth_values[i] if i < len(truth_values) else []
            if not values:
                row.append(None)
                continue
            cell = {**{k: list(v) for k, v in filters.items() if k != "label"}, "label": list(values),
                    f"pred:{model_id}": [predicted]}
            row.append(query_url(urls.dataset_page_url(dataset_id), cell))
        out.append(row)
    return out


def confusion_view(result: Mapping[str, Any], links: Sequence[Sequence[str | None]] = ()) -> list[dict[str, Any]]:
    """Rows (truth) of the confusion matrix: class name, total, and each cell's count, shade (0–1 of max) and
    the grid of its items."""
    matrix: Sequence[Sequence[int]] = result.get("confusion_matrix") or []
    classes = list(result.get("classes") or [])
    top = max((c for row in matrix for c in row), default=0) or 1
    rows = []
    for i, row in enumerate(matrix):
        name = classes[i] if i < len(classes) else str(i)
        rows.append({"name": name, "total": sum(row), "cells": [
            {"count": c, "shade": round(c / top, 3), "diagonal": i == j,
             "url": links[i][j] if i < len(links) and j < len(links[i]) else None} for j, c in enumerate(row)]})
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


def histogram_view(histogram: Mapping[str, Sequence[float]] | None) -> dict[str, Any] | None:
    """Bars of the Dice histogram in the plot square: x = Dice bin, height = share of the tallest bin."""
    if not histogram or not sum(histogram.get("counts") or []):
        return None
    counts, edges = list(histogram["counts"]), list(histogram["edges"])
    top = max(counts)
    bars = []
    for n, count in enumerate(counts):
        height = count / top * PLOT_SIZE
        x = PLOT_PAD + edges[n] * PLOT_SIZE
        bars.append({"x": round(x + 1, 1), "y": round(PLOT_PAD + PLOT_SIZE - height, 1), "count": count,
                     "width": round((edges[n + 1] - edges[n]) * PLOT_SIZE - 2, 1), "height": round(height, 1),
                     "label": f"{edges[n]:.1f}–{edges[n + 1]:.1f}"})
    y_ticks = [{"label": str(round(top * f)), "y": PLOT_PAD + (1 - f) * PLOT_SIZE} for f in (0, 0.5, 1)]
    return {"bars": bars, "top": top, "y_ticks": y_ticks}


FROC_FPS = (0.125, 0.25, 0.5, 1, 2, 4, 8)  # x axis (log2), false positives per image


def _froc_x(fp: float) -> float:
    """log2 axis from 1/8 to 8 FPs per image; 0 sits on the left edge, beyond 8 on the right one."""
    low, high = math.log2(FROC_FPS[0]), math.log2(FROC_FPS[-1])
    value = low if fp <= 0 else min(max(math.log2(fp), low), high)
    return PLOT_PAD + (value - low) / (high - low) * PLOT_SIZE


def froc_view(curve: Mapping[str, Sequence[float]] | None,
              at_fp: Mapping[str, float | None] | None) -> dict[str, Any] | None:
    """The FROC curve as a step polyline (sensitivity holds until the next operating point), the reported
    operating points as dots, and the x ticks."""
    if not curve or not curve.get("sensitivity"):
        return None
    points: list[str] = []
    previous = 0.0
    for fp, sens in zip(curve["fps_per_image"], curve["sensitivity"], strict=True):
        if fp > FROC_FPS[-1]:
            break  # beyond the axis: the curve stops at its level at 8 FPs per image
        x = _froc_x(fp)
        if points:
            points.append(f"{x:.1f},{PLOT_PAD + (1 - previous) * PLOT_SIZE:.1f}")
        points.append(f"{x:.1f},{PLOT_PAD + (1 - sens) * PLOT_SIZE:.1f}")
        previous = sens
    points.append(f"{PLOT_PAD + PLOT_SIZE:.1f},{PLOT_PAD + (1 - previous) * PLOT_SIZE:.1f}")
    dots = [{"x": round(_froc_x(float(k)), 1), "y": round(PLOT_PAD + (1 - v) * PLOT_SIZE, 1), "fp": k, "value": v}
            for k, v in (at_fp or {}).items() if v is not None]
    ticks = [{"label": f"{f:g}", "x": round(_froc_x(f), 1)} for f in FROC_FPS]
    return {"points": " ".join(points), "dots": dots, "x_ticks": ticks}


def vertebrae_view(dice_per_label: Mapping[str, float] | None) -> list[dict[str, Any]]:
    """Rows of the per-vertebra Dice table in anatomical order: name, value and bar width (%)."""
    rows = [{"label": int(k), "name": verse_labels.name(int(k)), "dice": v, "width": round(100 * v, 1)}
            for k, v in (dice_per_label or {}).items()]
    order = {label: n for n, label in enumerate(verse_labels.SPINE_ORDER)}
    return sorted(rows, key=lambda r: order.get(r["label"], 1000 + r["label"]))
