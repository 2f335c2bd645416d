"""What an export covers: the dataset's items matching any grid filter (the catalog's own filter machinery, so a
filter means here what it means on the grid), narrowed to a grid selection, and their annotations — the current
versions, or the dataset's own rows as ingested (`--annotations dataset`, superseded or not)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.catalog.queries import filtered_ids
from app.db.models import Annotation, Dataset, Item
from app.inference.job_params import ID_FILTERS

MULTI_VALUE_FIELDS = ("review_status",)  # `review_status=accepted,corrected` is two values (none holds a comma)
SOURCE_DATASET = "dataset"


def normalised(filters: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The filters with comma lists of the enumerated fields split into values."""
    out: dict[str, list[str]] = {}
    for name, values in filters.items():
        if name in MULTI_VALUE_FIELDS:
            out[name] = [v.strip() for value in values for v in value.split(",") if v.strip()]
        else:
            out[name] = list(values)
    return out


def selected_ids(dataset: Dataset, filters: Mapping[str, Sequence[str]]) -> Select[tuple[int]]:
    """SELECT of the ids of the exported items (InvalidInput naming a field the dataset does not filter by)."""
    filters = normalised(filters)
    stmt = filtered_ids(dataset, {f: v for f, v in filters.items() if f not in ID_FILTERS})
    if "id" in filters:
        stmt = stmt.where(Item.id.in_([int(v) for v in filters["id"]]))
    if "exclude_id" in filters:
        stmt = stmt.where(Item.id.not_in([int(v) for v in filters["exclude_id"]]))
    return stmt


def count(session: Session, selection: Select[tuple[int]]) -> int:
    return session.scalar(select(func.count()).select_from(selection.subquery())) or 0


def annotation_filter(mode: str) -> Any:
    """WHERE clause of the annotations an export writes: `current` or `dataset` (the ingested rows)."""
    return Annotation.is_current() if mode == "current" else Annotation.source == SOURCE_DATASET


def annotations_of(session: Session, item_ids: Sequence[int], mode: str) -> dict[int, list[Annotation]]:
    """The annotations of these items, by item id, each item's in a stable order (lineage, then id)."""
    out: dict[int, list[Annotation]] = {}
    if not item_ids:
        return out
    lineage = func.coalesce(Annotation.lineage_id, Annotation.id)
    for a in session.scalars(select(Annotation).where(Annotation.item_id.in_(list(item_ids)),
                                                      annotation_filter(mode)).order_by(lineage, Annotation.id)):
        out.setdefault(a.item_id, []).append(a)
    return out


def item_chunks(session: Session, selection: Select[tuple[int]], columns: Sequence[Any],
                size: int = 5000) -> Iterator[list[Any]]:
    """Rows of `columns` of the selected items in id order, `size` at a time: the ids are read with one query,
    the rows by primary key per chunk (the caller reads annotations etc. per chunk between them)."""
    ids = list(session.scalars(selection.order_by(Item.id)))
    for start in range(0, len(ids), size):
        part = ids[start:start + size]
        yield list(session.execute(select(*columns).where(Item.id.in_(part)).order_by(Item.id)))
