"""The item JSON's `predictions`: every stored model prediction of an item (API.md; the viewer's contract).

Each is `{model_id, model_name, task, outputs, metrics, created_at}`; outputs per task:
classify `{"probabilities", "label"}`; segment2d `{"mask": URL, "labels", "area_fraction"}`; segment3d
`{"mask": URL, "labels"}` (the URL takes ?plane=&slice= like /raw); detect2d `{"boxes": [[x1, y1, x2, y2,
score, label]…], "candidates": […below the threshold…], "score_threshold"}`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog.queries import item_detail
from app.db.models import Model, Prediction


def item_predictions(session: Session, item_id: int) -> list[dict[str, Any]]:
    """Every stored model prediction of an item, by model id."""
    rows = session.execute(select(Prediction, Model.name, Model.task).join(Model, Model.id == Prediction.model_id)
                           .where(Prediction.item_id == item_id).order_by(Prediction.model_id))
    return [{"model_id": p.model_id, "model_name": name, "task": task, "outputs": p.outputs, "metrics": p.metrics,
             "created_at": p.created_at.isoformat() if p.created_at else None} for p, name, task in rows]


def item_with_predictions(session: Session, item_id: int) -> dict[str, Any]:
    """The item JSON (`GET /api/items/{id}`, the item page): the catalog's item detail plus its predictions."""
    return {**item_detail(session, item_id), "predictions": item_predictions(session, item_id)}
