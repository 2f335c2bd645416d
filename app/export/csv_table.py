"""`csv`: one row per item — key, split, label (the current one), review status, each reader's latest verdict,
and the predictions and per-item metrics of the chosen models — the table a researcher loads into pandas.

Columns: `item_id, key, split, label, review_status`, then `verdict:<reader>` per reader who gave one on the
exported items (their latest verdict on the item, any queue), then per model `<model>:<output>` for each scalar
output (a short list of numbers, such as class probabilities, becomes `<model>:<output>[i]`) and
`<model>:<metric>` for each per-item metric. An item without a value has an empty cell.

Rows are read by primary key in chunks; verdicts, predictions and metrics with one query per chunk each, and
only when the dataset has any.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import exists, func, select

from app.db.models import Annotation, Item, ItemMetric, Model, Prediction, Review
from app.export.context import ExportContext
from app.export.selection import among, annotation_filter, item_chunks
from app.export.writer import atomic_text

BASE_COLUMNS = ("item_id", "key", "split", "label", "review_status")
MAX_LIST = 16  # longer output lists (masks, boxes) are not table cells
FILE_NAME = "items.csv"
ITEM_COLUMNS = (Item.id, Item.key, Item.split, Item.label, Item.review_status)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, bool):
        return int(value)
    return value


def _flatten(outputs: dict[str, Any]) -> dict[str, Any]:
    """Scalar outputs as they are; a short list of numbers as indexed entries; anything else left out."""
    flat: dict[str, Any] = {}
    for name, value in sorted(outputs.items()):
        if isinstance(value, str | int | float | bool) or value is None:
            flat[name] = value
        elif (isinstance(value, list) and len(value) <= MAX_LIST
              and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
            for i, v in enumerate(value):
                flat[f"{name}[{i}]"] = v
    return flat


def _labels(ctx: ExportContext, ids: Sequence[int]) -> dict[int, str]:
    """Item labels held by `label` annotations (current, or as ingested): they override the item's own label
    column (a corrected class); items without one keep the column's."""
    out: dict[int, str] = {}
    rows = ctx.session.connection().execute(select(Annotation.item_id, Annotation.label).where(
        among(Annotation.item_id, ids), Annotation.kind == "label", annotation_filter(ctx.mode)))
    for item_id, label in rows:
        if label is not None:
            out.setdefault(item_id, label)
    return out


def write(ctx: ExportContext) -> list[Path]:
    session = ctx.session
    dataset_items = select(Item.id).where(Item.dataset_id == ctx.dataset.id)
    has_reviews = bool(session.scalar(select(exists().where(Review.item_id.in_(dataset_items)))))
    readers: list[str] = []
    if has_reviews:
        readers = sorted(session.scalars(select(Review.reviewer).distinct().where(
            Review.item_id.in_(ctx.selection))))
    model_ids = ctx.params.models
    if model_ids is None:
        model_ids = list(session.scalars(select(Prediction.model_id).distinct().where(
            Prediction.item_id.in_(ctx.selection)).order_by(Prediction.model_id)))
    models = {m.id: m.name for m in session.scalars(select(Model).where(Model.id.in_(model_ids)))} if model_ids else {}
    model_ids = [m for m in model_ids if m in models]
    # the model columns: every output/metric name any exported item has, per model
    model_columns: dict[int, list[str]] = {}
    for model_id in model_ids:
        names: set[str] = set()
        for (outputs,) in session.execute(select(Prediction.outputs).where(
                Prediction.model_id == model_id, Prediction.item_id.in_(ctx.selection)).limit(200)):
            names.update(_flatten(outputs or {}))
        metric_names = session.scalars(select(ItemMetric.name).distinct().where(
            ItemMetric.model_id == model_id, ItemMetric.item_id.in_(ctx.selection)))
        model_columns[model_id] = sorted(names) + sorted(f"metric:{n}" for n in metric_names)
    has_labels = bool(session.scalar(select(exists().where(Annotation.dataset_id == ctx.dataset.id,
                                                           Annotation.kind == "label"))))
    header = [*BASE_COLUMNS, *(f"verdict:{r}" for r in readers),
              *(f"{models[m]}:{c.removeprefix('metric:')}" for m in model_ids for c in model_columns[m])]
    path = ctx.out / FILE_NAME
    with atomic_text(path, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for rows in item_chunks(session, ctx.selection, ITEM_COLUMNS):
            ids = [r[0] for r in rows]
            verdicts = _verdicts(ctx, ids) if readers else {}
            preds = _predictions(ctx, ids, model_ids) if model_ids else {}
            labels = _labels(ctx, ids) if has_labels else {}
            if not readers and not model_ids:  # the common case, without the per-cell work below
                writer.writerows((item_id, key, split or "", labels.get(item_id, label) or "", status)
                                 for item_id, key, split, label, status in rows)
                ctx.advance(len(rows))
                continue
            out = []
            for item_id, key, split, label, status in rows:
                line = [item_id, key, _cell(split), _cell(labels.get(item_id, label)), status]
                if readers:
                    mine = verdicts.get(item_id, {})
                    line += [mine.get(r, "") for r in readers]
                for m in model_ids:
                    values = preds.get((item_id, m), {})
                    line += [_cell(values.get(c)) for c in model_columns[m]]
                out.append(line)
            writer.writerows(out)
            ctx.advance(len(rows))
    return [ctx.wrote(path)]


def _verdicts(ctx: ExportContext, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """Each reader's latest verdict per item (the highest review id)."""
    latest = (select(func.max(Review.id)).where(among(Review.item_id, ids))
              .group_by(Review.item_id, Review.reviewer))
    out: dict[int, dict[str, str]] = {}
    for item_id, reviewer, verdict in ctx.session.connection().execute(
            select(Review.item_id, Review.reviewer, Review.verdict).where(Review.id.in_(latest))):
        out.setdefault(item_id, {})[reviewer] = verdict
    return out


def _predictions(ctx: ExportContext, ids: Sequence[int], model_ids: Sequence[int]) -> dict[tuple[int, int], dict]:
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for item_id, model_id, outputs in ctx.session.connection().execute(select(
            Prediction.item_id, Prediction.model_id, Prediction.outputs).where(
            among(Prediction.item_id, ids), Prediction.model_id.in_(list(model_ids)))):
        out[(item_id, model_id)] = _flatten(outputs or {})
    for item_id, model_id, name, value in ctx.session.connection().execute(select(
            ItemMetric.item_id, ItemMetric.model_id, ItemMetric.name, ItemMetric.value).where(
            among(ItemMetric.item_id, ids), ItemMetric.model_id.in_(list(model_ids)))):
        out.setdefault((item_id, model_id), {})[f"metric:{name}"] = value
    return out
