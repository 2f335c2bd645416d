"""Writing predictions: the `predictions` row (outputs + metrics JSON) and the item's per-item metric values in
`item_metrics` (one row per numeric metric, for "worst first" sorting and metric filters), always together.

Single items replace their previous prediction and metric rows in one transaction; jobs insert a batch of
new predictions and their metric rows in bulk (two INSERTs per batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.bulk import insert_rows
from app.db.models import ItemMetric, Prediction
from app.db.session import json_dumps as dumps
from app.errors import InvalidInput
from app.inference.tasks.base import Result, scalar_metrics


def metric_rows(model_id: int, results: Sequence[Result]) -> list[dict[str, Any]]:
    return [{"item_id": r.item_id, "model_id": model_id, "name": name, "value": value}
            for r in results for name, value in scalar_metrics(r.metrics).items()]


def store_one(session: Session, model_id: int, result: Result) -> None:
    """Insert or replace one (item, model) prediction and its metric rows."""
    for _ in range(2):
        row = session.scalar(select(Prediction).where(Prediction.item_id == result.item_id,
                                                      Prediction.model_id == model_id))
        if row is None:
            session.add(Prediction(item_id=result.item_id, model_id=model_id, outputs=result.outputs,
                                   metrics=result.metrics))
        else:
            row.outputs, row.metrics, row.created_at = result.outputs, result.metrics, utcnow()
        session.execute(delete(ItemMetric).where(ItemMetric.item_id == result.item_id,
                                                 ItemMetric.model_id == model_id))
        rows = metric_rows(model_id, [result])
        if rows:
            session.execute(insert(cast(Table, ItemMetric.__table__)), rows)  # typed FromClause, a Table
        try:
            session.commit()
            return
        except IntegrityError:  # a concurrent request or job inserted it first: update that row instead
            session.rollback()
    raise InvalidInput(f"could not store the prediction of model {model_id} for item {result.item_id}")


def insert_batch(session: Session, model_id: int, results: Sequence[Result]) -> None:
    """Bulk-insert new predictions and their metric rows (no commit: the caller's transaction). A job only
    predicts items without a prediction from the model, and metric rows exist only beside their prediction
    (written together here and in `store_one`; deleted together by the cascades), so nothing is replaced."""
    if not results:
        return
    now = utcnow().isoformat(sep=" ")
    conn = session.connection()
    insert_rows(conn, Prediction.__tablename__, ("item_id", "model_id", "outputs", "metrics", "created_at"),
                [(r.item_id, model_id, dumps(r.outputs), dumps(r.metrics), now) for r in results])
    rows = metric_rows(model_id, results)
    if rows:
        insert_rows(conn, ItemMetric.__tablename__, ("item_id", "model_id", "name", "value"),
                    [(m["item_id"], model_id, m["name"], m["value"]) for m in rows])
