"""Every item of a dataset to its facet *cell*, in one streamed pass: the build behind the facet index
(app.catalog.counts, which holds the result and keeps it live).

Why streamed (issue 13, memory at scale): the first build read every item through the ORM, which buffers the
whole result as Row objects before handing out the first one, and collected Python lists of ids, cell numbers
and signature tuples. At 1,114,112 PCam items a worker's RSS rose by 443 MiB during the build to settle at
+89 MiB, and with two uvicorn workers both building at start-up the peak was several times the settled figure.
Here the items are read through Core in id-ordered keyset chunks of CHUNK_ROWS, and each chunk's ids and cell
numbers go straight into numpy arrays allocated once from a count(*). The only temporaries are one chunk's rows
(a few MB), so the build's peak is the final arrays (~8 bytes per item) plus a constant.

A row's *raw key* (its facet column values as the database returns them, plus its multi-valued and derived
values) is looked up in a dict of the few thousand keys seen so far; only a new key is turned into a cell
signature (strings, link ids to external ids). The chunk query is `dataset_id + 0 = :id AND id > :last ORDER
BY id LIMIT n`: the `+ 0` keeps both SQLite and PostgreSQL from picking a facet index on dataset_id, whose rows
would then have to be sorted by id again for every chunk; the primary key's range serves it instead. Tagged
(item_facets) values are read per chunk by the same id range, on the (item_id, field, value) primary key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from app.datasets.facets import COLUMN_FACETS, DERIVED_FACETS, EDITED_FACET, LINKS, derived_values
from app.datasets.registry import get_adapter
from app.db.models import Dataset, Item, ItemFacet

Signature = tuple[tuple[str, ...], ...]  # per cube field, the item's values (empty: none; several: multi-valued)
CHUNK_ROWS = 16_384  # items per keyset chunk: ~3 MB of rows in flight, ~70 chunks at a million items


def scan_cells(session: Session, ds: Dataset, fields: tuple[str, ...]
               ) -> tuple[list[Signature], np.ndarray, np.ndarray]:
    """(cell signatures, item ids ascending, cell number of each id) of every item of the dataset."""
    links = get_adapter(ds.kind).link_facets
    columns = [COLUMN_FACETS[f] if f in COLUMN_FACETS else LINKS[links[f]][0] if f in links else None
               for f in fields]
    used = [c for c in columns if c is not None]
    extra_fields = [f for f, c in zip(fields, columns, strict=True) if c is None]  # multi-valued or derived
    tagged = [f for f in extra_fields if f not in DERIVED_FACETS]
    conn = session.connection()
    derived = derived_values(conn, ds.id) if any(f in DERIVED_FACETS for f in fields) else {}
    link_names = {f: _external_ids(conn, ds.id, links[f]) for f in fields if f in links}
    derived_ids = set().union(*(derived[f].keys() for f in extra_fields if f in DERIVED_FACETS))
    n, low, top = conn.execute(select(func.count(), func.min(Item.id), func.max(Item.id))
                               .where(Item.dataset_id == ds.id)).one()
    ids = np.empty(int(n or 0), np.int32 if int(top or 0) < 2**31 else np.int64)
    cell_of = np.empty(ids.size, np.int32)
    numbers: dict[Signature, int] = {}
    raw: dict[tuple[Any, ...], int] = {}  # raw key → cell number

    def new_cell(key: tuple[Any, ...]) -> int:
        values, extra = iter(key[:len(used)]), iter(key[len(used):])
        sig: list[tuple[str, ...]] = []
        for name, column in zip(fields, columns, strict=True):
            if column is None:
                sig.append(next(extra))
                continue
            value = next(values)
            if value is None:
                sig.append(())
            elif name in link_names and isinstance(value, int):  # a link facet's column is the linked row's id
                sig.append((link_names[name].get(value, str(value)),))
            else:
                sig.append((str(value),))
        number = numbers.setdefault(tuple(sig), len(numbers))
        raw[key] = number
        return number

    filled, last = 0, int(low) - 1 if low is not None else -1
    while low is not None:
        rows = conn.execute(select(Item.id, *used).where((Item.dataset_id + 0) == ds.id, Item.id > last)
                            .order_by(Item.id).limit(CHUNK_ROWS)).all()
        if not rows:
            break
        tags = _tagged_values(conn, ds.id, tagged, rows[0][0], rows[-1][0]) if tagged else {}
        extras = [(derived[f] if f in DERIVED_FACETS else tags[f], ("no",) if f == EDITED_FACET else ())
                  for f in extra_fields]
        # most items have no derived or tagged value: their key is the columns plus the defaults
        special = derived_ids.union(*(tags[f].keys() for f in tagged)) if tagged else derived_ids
        defaults = tuple(d for _, d in extras)
        get = raw.get
        chunk: list[int] = []
        for row in rows:
            key = row[1:] + (defaults if row[0] not in special else tuple(m.get(row[0], d) for m, d in extras))
            number = get(key)
            chunk.append(new_cell(key) if number is None else number)
        k = len(rows)
        if filled + k > ids.size:  # items added since the count (the index version changes: rebuilt anyway)
            ids, cell_of = np.resize(ids, filled + k), np.resize(cell_of, filled + k)
        ids[filled:filled + k] = np.fromiter((row[0] for row in rows), ids.dtype, k)
        cell_of[filled:filled + k] = chunk
        filled += k
        if k < CHUNK_ROWS:
            break
        last = rows[-1][0]
        del rows, chunk
    if filled < ids.size:  # items removed since the count
        ids, cell_of = ids[:filled].copy(), cell_of[:filled].copy()
    return list(numbers), ids, cell_of


def _external_ids(conn: Connection, dataset_id: int, link: str) -> dict[int, str]:
    model = LINKS[link][1]
    return {i: e for i, e in conn.execute(select(model.id, model.external_id).where(model.dataset_id == dataset_id))}


def _tagged_values(conn: Connection, dataset_id: int, fields: Sequence[str], first: int, last: int
                   ) -> dict[str, dict[int, tuple[str, ...]]]:
    """{field: {item id: sorted values}} from item_facets for the items first..last (one chunk's id range)."""
    acc: dict[str, dict[int, list[str]]] = {f: {} for f in fields}
    rows = conn.execute(select(ItemFacet.field, ItemFacet.item_id, ItemFacet.value)
                        .where((ItemFacet.dataset_id + 0) == dataset_id, ItemFacet.item_id >= first,
                               ItemFacet.item_id <= last, ItemFacet.field.in_(list(fields))))
    for name, item_id, value in rows:
        acc[name].setdefault(item_id, []).append(value)
    return {f: {i: tuple(sorted(v)) for i, v in per.items()} for f, per in acc.items()}
