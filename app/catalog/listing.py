"""Filtered, sorted keyset pages of a dataset's items, and their totals.

Two paths give the same pages (tests compare them):
- the facet index (app.catalog.counts) when the dataset is ready, every filter is a facet field, there is no
  key search and the sort is by id or by a column facet: ids come from in-memory arrays, rows by primary key;
- SQL otherwise (filters by patient/study, expression and metric sorts, datasets still indexing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.catalog import sorting
from app.catalog.counts import FacetIndex, FacetIndexes, page_after
from app.datasets.facets import COLUMN_FACETS, DERIVED_FACETS, LINKS, derived_counts, derived_filter
from app.datasets.registry import get_adapter
from app.db.models import Dataset, Item, ItemFacet
from app.errors import InvalidInput

MAX_OFFSET = 10**9


@dataclass
class Page:
    rows: list[tuple[int, Any]]  # (item id, sort value)
    next_cursor: str | None


def filtered(dataset: Dataset, filters: Mapping[str, Sequence[str]], key: str | None):
    """SELECT of a dataset's items matching the filters (InvalidInput naming an unknown filter field)."""
    adapter = get_adapter(dataset.kind)
    allowed = (*adapter.facet_fields, *adapter.filter_fields)
    stmt = select(Item).where(Item.dataset_id == dataset.id)
    for field_name, values in filters.items():
        if field_name not in allowed:
            raise InvalidInput(f"unknown filter {field_name!r}; {dataset.kind} items filter by "
                               f"{', '.join(allowed)}")
        if field_name in COLUMN_FACETS:
            stmt = stmt.where(COLUMN_FACETS[field_name].in_(list(values)))
            continue
        if field_name in DERIVED_FACETS:
            stmt = stmt.where(derived_filter(dataset.id, field_name, values))
            continue
        link = adapter.link_facets.get(field_name, field_name)
        if link in LINKS:
            column, model = LINKS[link]
            linked = select(model.id).where(model.dataset_id == dataset.id, model.external_id.in_(list(values)))
            stmt = stmt.where(column.in_(linked))
            continue
        sub = select(ItemFacet.item_id).where(ItemFacet.dataset_id == dataset.id,
                                              ItemFacet.field == field_name, ItemFacet.value.in_(list(values)))
        stmt = stmt.where(Item.id.in_(sub))
    if key:
        stmt = stmt.where(Item.key == key)
    return stmt


def usable_index(session: Session, ds: Dataset, filters: Mapping[str, Sequence[str]],
                 key: str | None, indexes: FacetIndexes) -> FacetIndex | None:
    if key:
        return None
    index = indexes.get(session, ds)
    return index if index is not None and index.covers(filters) else None


def count(session: Session, ds: Dataset, filters: Mapping[str, Sequence[str]], key: str | None,
          indexes: FacetIndexes) -> int:
    base = filtered(ds, filters, key)
    index = usable_index(session, ds, filters, key, indexes)
    if index is not None:
        return index.total_for(filters)
    return sorting.sql_count(session, base.with_only_columns(Item.id))


def keyset_page(session: Session, ds: Dataset, filters: Mapping[str, Sequence[str]], *, key: str | None,
                sort: sorting.Sort, limit: int, indexes: FacetIndexes, cursor: str | None = None,
                offset: int | None = None) -> Page:
    """Up to `limit` (id, sort value) rows after the cursor (or from position `offset`), and the next cursor."""
    base = filtered(ds, filters, key)
    if cursor and offset is not None:
        raise InvalidInput("give either cursor or offset, not both")
    if offset is not None and not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}, got {offset}")
    index = usable_index(session, ds, filters, key, indexes)
    if index is not None and (sort.name == "id" or sort.is_column):
        segments = _index_segments(index, filters, sort)
    else:
        segments = [(name, value, stmt, None) for name, value, stmt in
                    sorting.sql_segments(session, base, sort, ds.kind)]
    start, after = 0, None
    if cursor:
        segment, value, last = sorting.decode_cursor(cursor, sort)
        start = _segment_of(segments, segment, value, cursor)
        after = (value, last)
    elif offset:
        start, after = _position(session, segments, sort, ds.kind, offset - 1)
        if start is None:
            return Page([], None)
    rows: list[tuple[int, Any]] = []
    owner: list[int] = []
    for n in range(start, len(segments)):
        got = _segment_rows(session, segments[n], sort, ds.kind, after if n == start else None, limit + 1 - len(rows))
        rows += got
        owner += [n] * len(got)
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows, owner = rows[:limit], owner[:limit]
    if not more or not rows:
        return Page(rows, None)
    name, group, _, _ = segments[owner[-1]]
    value = group if name == "g" else rows[-1][1] if name == "v" else None
    return Page(rows, sorting.encode_cursor(sort, rows[-1][0], name, value))


def _index_segments(index: FacetIndex, filters, sort: sorting.Sort) -> list[tuple[str, Any, Any, Any]]:
    """(segment, group value, None, ids()) from the facet index: each segment's ids as a lazy array."""
    if not sort.is_column:
        return [("", None, None, lambda: index.matching_ids(filters))]
    counts = index.value_counts(filters, sort.name)
    return [("g", v, None, lambda v=v: index.matching_ids(filters, (sort.name, v)))
            for v in sorting.value_order(counts, sort.descending) if counts[v]]


def _segment_rows(session: Session, segment, sort: sorting.Sort, kind: str, after, limit: int) -> list[tuple]:
    name, group, stmt, ids = segment
    if stmt is None:  # index path
        value = group if name == "g" else None
        return [(i, value) for i in page_after(ids(), after[1] if after else None, limit, sort.descending)]
    return sorting.sql_page(session, stmt, name, sort, kind, after, limit)


def _segment_of(segments, name: str, value: Any, cursor: str) -> int:
    for n, (seg_name, group, _, _) in enumerate(segments):
        if seg_name == name and (name != "g" or group == value):
            return n
    raise InvalidInput(f"cursor {cursor!r} no longer matches this list (its group {value!r} has no items); "
                       "start again without a cursor")


def _position(session: Session, segments, sort: sorting.Sort, kind: str, n: int):
    """(segment number, (value, id)) of the item at position n (0-based), or (None, None) past the end."""
    for k, (name, group, stmt, ids) in enumerate(segments):
        if stmt is None:
            ids = ids()
            size = int(ids.size)
            if n < size:
                last = int(ids[size - 1 - n] if sort.descending else ids[n])
                return k, (group, last)
            n -= size
            continue
        size = sorting.sql_count(session, stmt)
        if n < size:
            row = sorting.sql_row_at(session, stmt, name, sort, kind, n)
            if row is None:  # items removed since the count: position n is now past the end
                return None, None
            return k, (row[1], row[0])
        n -= size
    return None, None


def live_facets(session: Session, ds: Dataset, filters: Mapping[str, Sequence[str]], indexes: FacetIndexes,
                key: str | None = None) -> tuple[dict[str, dict[str, int]], int]:
    """({facet field: {value: count}}, total) under the filters. Disjunctive ("standard faceted search"):
    a field's counts apply the *other* fields' filters, so they tell how many items each value would add."""
    filtered(ds, filters, key)  # validates the filter fields
    index = usable_index(session, ds, filters, key, indexes)
    if index is not None:
        return index.counts(filters)
    adapter = get_adapter(ds.kind)
    links = adapter.link_facets
    out: dict[str, dict[str, int]] = {}
    for name in adapter.facet_fields:
        ids = filtered(ds, {f: v for f, v in filters.items() if f != name}, key).with_only_columns(Item.id)
        if name in DERIVED_FACETS:
            total = sorting.sql_count(session, ids)
            out[name] = derived_counts(session, ds.id, ids, total)[name]
            continue
        if name in COLUMN_FACETS:
            column = COLUMN_FACETS[name]
            stmt = select(column, func.count()).where(Item.id.in_(ids), column.is_not(None)).group_by(column)
        elif name in links:
            link_column, model = LINKS[links[name]]
            stmt = (select(model.external_id, func.count()).select_from(Item).join(model, link_column == model.id)
                    .where(Item.id.in_(ids)).group_by(model.external_id))
        else:
            stmt = (select(ItemFacet.value, func.count()).where(
                ItemFacet.dataset_id == ds.id, ItemFacet.field == name, ItemFacet.item_id.in_(ids))
                .group_by(ItemFacet.value))
        out[name] = {str(v): n for v, n in session.execute(stmt)}
    return out, count(session, ds, filters, key, indexes)
