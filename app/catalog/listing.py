"""Filtered, sorted keyset pages of a dataset's items, and their totals.

Two paths give the same pages (tests compare them):
- the facet index (app.catalog.counts) when the dataset is ready, every filter is a facet field, there is no
  key search and the sort is by id or by a column facet: ids come from in-memory arrays, rows by primary key;
  a numeric sort (age, lesion size, mask area) under such filters comes from its in-memory order
  (app.catalog.orders) the same way;
- SQL otherwise (filters by patient/study, expression and metric sorts, datasets still indexing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.catalog import sorting
from app.catalog.counts import FacetIndex, FacetIndexes, page_after
from app.catalog.keysearch import SEARCH_FIELD, indexed_counts, key_search
from app.catalog.orders import NumericOrders, order_segments
from app.datasets.facets import COLUMN_FACETS, DERIVED_FACETS, LINKS, derived_counts, derived_filter
from app.datasets.registry import get_adapter
from app.db.models import Dataset, Item, ItemFacet, Prediction
from app.errors import InvalidInput

MAX_OFFSET = 10**9
PRED_PREFIX = "pred:"  # `pred:MODEL_ID=CLASS`: items the classifier MODEL_ID predicted as CLASS
ID_FIELD = "id"  # `id=3&id=17`: only these items (a grid selection, the embedding map's lasso handed to the grid)
MAX_ID_FILTER = 10_000  # ids one `id` filter may name (a review queue's size)


def id_filter(values: Sequence[str]) -> list[int]:
    """The item ids of an `id` filter, one per value as jobs and exports take them (InvalidInput naming a value
    that is not an id, or the count past MAX_ID_FILTER)."""
    if len(values) > MAX_ID_FILTER:
        raise InvalidInput(f"filter id: {len(values)} ids, at most {MAX_ID_FILTER} may be given")
    bad = next((v for v in values if not (v.isdigit() and len(v) <= 18)), None)
    if bad is not None:
        raise InvalidInput(f"filter id: {bad[:40]!r} is not an item id; repeat id= for several (id=3&id=17)")
    return [int(v) for v in values]


def predicted_as(field_name: str, values: Sequence[str]):
    """WHERE clause of `pred:MODEL_ID` = any of the class names (a stored classification's `label`)."""
    model = field_name[len(PRED_PREFIX):]
    if not model.isdigit():
        raise InvalidInput(f"filter {field_name!r}: a prediction filter is pred:MODEL_ID=CLASS, e.g. pred:1=tumor")
    sub = select(Prediction.item_id).where(Prediction.model_id == int(model),
                                           Prediction.outputs["label"].as_string().in_(list(values)))
    return Item.id.in_(sub)


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
        if field_name.startswith(PRED_PREFIX):
            stmt = stmt.where(predicted_as(field_name, values))
            continue
        if field_name == SEARCH_FIELD:
            stmt = stmt.where(key_search(dataset, values))
            continue
        if field_name == ID_FIELD:
            stmt = stmt.where(Item.id.in_(id_filter(values)))
            continue
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


def _segments(session: Session, ds: Dataset, filters: Mapping[str, Sequence[str]], key: str | None,
              sort: sorting.Sort, indexes: FacetIndexes, base: Any) -> list[Any]:
    """The list's segments in order: from the facet index's id arrays when it covers the filters and the sort
    is a column, else the SQL segments of the sort."""
    index = usable_index(session, ds, filters, key, indexes)
    if index is not None and (sort.name == "id" or sort.is_column):
        return _index_segments(index, filters, sort)
    return [(name, value, stmt, None) for name, value, stmt in sorting.sql_segments(session, base, sort, ds.kind)]


def keyset_page(session: Session, ds: Dataset, filters: Mapping[str, Sequence[str]], *, key: str | None,
                sort: sorting.Sort, limit: int, indexes: FacetIndexes, cursor: str | None = None,
                offset: int | None = None, orders: NumericOrders | None = None) -> Page:
    """Up to `limit` (id, sort value) rows after the cursor (or from position `offset`), and the next cursor."""
    base = filtered(ds, filters, key)
    if cursor and offset is not None:
        raise InvalidInput("give either cursor or offset, not both")
    if offset is not None and not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}, got {offset}")
    index = usable_index(session, ds, filters, key, indexes)
    order = orders.get(session, ds, sort) if orders is not None and (index is not None or not filters) and not key \
        else None
    if index is not None and (sort.name == "id" or sort.is_column):
        segments = _index_segments(index, filters, sort)
    elif order is not None:  # a numeric sort from memory (app.catalog.orders)
        matching = index.matching_ids if index is not None and filters else None
        segments = order_segments(order, lambda: matching(filters) if matching is not None else None)
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
    if isinstance(ids, tuple):  # a numeric order's valued segment: (NumericOrder, filtered ids)
        order, keep = ids
        return order.page(keep(), after, limit, sort.descending)
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
        if isinstance(ids, tuple):  # a numeric order's valued segment
            order, keep = ids
            wanted = keep()
            size = order.size(wanted)
            if n < size:
                found = order.row_at(wanted, n, sort.descending)
                assert found is not None
                return k, (found[1], found[0])
            n -= size
            continue
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
    if SEARCH_FIELD in filters and not key:
        found = indexed_counts(session, ds, filters, indexes.get(session, ds))
        if found is not None:
            return found
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


@dataclass
class Neighbours:
    position: int  # 1-based place of the item in the list
    total: int
    previous: int | None
    next: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "total": self.total, "previous": self.previous, "next": self.next}


def neighbours(session: Session, ds: Dataset, filters: Mapping[str, Sequence[str]], *, key: str | None,
               sort: sorting.Sort, indexes: FacetIndexes, item_id: int) -> Neighbours | None:
    """The item's place in the filtered, sorted list and the ids before and after it (None when the item is not
    in the list). Keyset, never OFFSET: with the facet index every step is a binary search in an id array; on the
    SQL path (expression and metric sorts, filters the index does not cover) a few indexed LIMIT 1 queries and
    one COUNT for the position."""
    base = filtered(ds, filters, key)
    segments = _segments(session, ds, filters, key, sort, indexes, base)
    before = 0
    for k, segment in enumerate(segments):
        found = _locate(session, segment, sort, ds.kind, item_id)
        if found is None:
            before += _segment_size(session, segment)
            continue
        rank, value = found
        after = (value, item_id)
        nxt = _segment_rows(session, segment, sort, ds.kind, after, 1)
        for later in segments[k + 1:]:
            if nxt:
                break
            nxt = _segment_rows(session, later, sort, ds.kind, None, 1)
        prev = _segment_before(session, segment, sort, ds.kind, after)
        for earlier in reversed(segments[:k]):
            if prev is not None:
                break
            prev = _segment_before(session, earlier, sort, ds.kind, None)
        total = count(session, ds, filters, key, indexes)
        return Neighbours(before + rank + 1, total, prev, nxt[0][0] if nxt else None)
    return None


def _segment_size(session: Session, segment) -> int:
    name, _, stmt, ids = segment
    return int(ids().size) if stmt is None else sorting.sql_count(session, stmt)


def _locate(session: Session, segment, sort: sorting.Sort, kind: str, item_id: int) -> tuple[int, Any] | None:
    """(rank of the item within the segment, its sort value) or None when the segment does not hold it."""
    name, group, stmt, ids = segment
    if stmt is None:
        arr = ids()
        pos = int(np.searchsorted(arr, item_id))
        if pos >= arr.size or int(arr[pos]) != item_id:
            return None
        return (arr.size - 1 - pos if sort.descending else pos), (group if name == "g" else None)
    row = session.execute(stmt.where(Item.id == item_id)).first()
    if row is None:
        return None
    value = row[1] if name == "v" else group if name == "g" else None
    earlier = _before_clause(name, sort, kind, (value, item_id))
    return sorting.sql_count(session, stmt.where(earlier)), value


def _before_clause(name: str, sort: sorting.Sort, kind: str, at: tuple[Any, int]):
    """WHERE clause of the rows of a SQL segment that come before (value, id) in the list's order."""
    value, last = at
    desc = sort.descending
    id_before = Item.id > last if desc else Item.id < last
    if name != "v":
        return id_before
    expr = sorting.sort_expression(sort, kind)
    return or_(expr > value if desc else expr < value, and_(expr == value, id_before))


def _segment_before(session: Session, segment, sort: sorting.Sort, kind: str, at: tuple[Any, int] | None
                    ) -> int | None:
    """The id just before (value, id) in one segment (its last one when `at` is None)."""
    name, _, stmt, ids = segment
    desc = sort.descending
    if stmt is None:
        arr = ids()
        if at is None:
            return (int(arr[0]) if desc else int(arr[-1])) if arr.size else None
        pos = int(np.searchsorted(arr, at[1]))
        if desc:
            pos = pos + 1 if pos < arr.size and int(arr[pos]) == at[1] else pos
            return int(arr[pos]) if pos < arr.size else None
        return int(arr[pos - 1]) if pos > 0 else None
    id_order = Item.id.asc() if desc else Item.id.desc()  # the list's order reversed
    if at is not None:
        stmt = stmt.where(_before_clause(name, sort, kind, at))
    if name == "v":
        expr = sorting.sort_expression(sort, kind)
        stmt = stmt.order_by(expr.asc() if desc else expr.desc(), id_order)
    else:
        stmt = stmt.order_by(id_order)
    row = session.execute(stmt.limit(1)).first()
    return int(row[0]) if row else None
