"""What an export covers: the dataset's items matching any grid filter (the catalog's own filter machinery, so a
filter means here what it means on the grid), narrowed to a grid selection, and their annotations — the current
versions, or the dataset's own rows as ingested (`--annotations dataset`, superseded or not)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

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
    fields = {f: v for f, v in filters.items() if f not in ID_FILTERS}
    if fields:
        from app.catalog.queries import filtered_ids  # the grid's machinery, loaded when a field filter is given

        stmt = filtered_ids(dataset, fields)
    else:  # what filtered_ids gives without a filter (a whole-dataset export need not load the catalog)
        stmt = select(Item.id).where(Item.dataset_id == dataset.id)
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


ANNOTATION_COLUMNS = (Annotation.id, Annotation.item_id, Annotation.kind, Annotation.label, Annotation.geometry,
                      Annotation.slice_index, Annotation.source, Annotation.version, Annotation.lineage_id)
DENSE = 4  # a chunk whose ids span at most this many times their count is read as one id range


def among(column: Any, ids: Sequence[int]) -> Any:
    """WHERE clause: `column` is one of the (sorted) `ids`. A dense run is read as a range — one comparison
    instead of thousands of bound parameters; rows of other ids inside it come along, and callers, who look
    their own ids up in the result, ignore them."""
    if ids and ids[-1] - ids[0] + 1 <= DENSE * len(ids):
        return column.between(ids[0], ids[-1])
    return column.in_(list(ids))


def annotations_of(session: Session, item_ids: Sequence[int], mode: str,
                   meta: bool = False) -> dict[int, list[Any]]:
    """The annotations of these items (rows with the ANNOTATION_COLUMNS' attributes, and `meta` when asked),
    by item id, each item's in a stable order (lineage, then id)."""
    out: dict[int, list[Any]] = {}
    if not item_ids:
        return out
    lineage = func.coalesce(Annotation.lineage_id, Annotation.id)
    columns = (*ANNOTATION_COLUMNS, Annotation.meta) if meta else ANNOTATION_COLUMNS
    stmt = (select(*columns).where(among(Annotation.item_id, item_ids), annotation_filter(mode))
            .order_by(lineage, Annotation.id))
    for a in session.connection().execute(stmt).all():  # fetched at once: cheaper than row by row
        out.setdefault(a.item_id, []).append(a)
    return out


def item_chunks(session: Session, selection: Select[tuple[int]], columns: Sequence[Any],
                size: int = 5000) -> Iterator[list[Any]]:
    """Rows of `columns` of the selected items in id order, `size` at a time, from one query read as it goes
    (Core rows: no ORM bookkeeping); the caller runs its per-chunk queries between the chunks."""
    # the selection's own WHERE with other columns: no `id IN (subquery)` to build
    result = session.connection().execute(selection.with_only_columns(*columns).order_by(Item.id))
    while rows := result.fetchmany(size):
        yield list(rows)
