"""The grid's "similar" filter: `similar=ITEM[&similar_model=MODEL][&similar_k=K]` on a dataset's item list →
the K items nearest to ITEM by the embedding model's vectors (the /similar route's answer, same order), kept
to those the other filters (and `key`) match, in similarity order, each with its `similarity`.

At most MAX_K (200) items, so the page is a slice of that list (`cursor` = `similar:N`, or `offset=N`) rather
than a keyset page. Without `similar_model` the newest embedding model with vectors for the dataset is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog import predicted, queries
from app.catalog.listing import filtered
from app.config import Settings
from app.datasets.registry import get_adapter
from app.db.models import Item
from app.embeddings.similar import MAX_K, similar_items
from app.embeddings.stores import newest_embedder
from app.errors import InvalidInput, NotFound
from app.inference.registry import get_model

CURSOR_PREFIX = "similar:"
SORT = "similar"


def parse_cursor(cursor: str | None, offset: int | None) -> int:
    if cursor and offset is not None:
        raise InvalidInput("give either cursor or offset, not both")
    if not cursor:
        return offset or 0
    number = cursor.removeprefix(CURSOR_PREFIX)
    if not cursor.startswith(CURSOR_PREFIX) or not number.isdigit():
        raise InvalidInput(f"cursor {cursor!r} is not a cursor of a similar list (pass the next_cursor it gave)")
    return int(number)


def resolve_model(session: Session, settings: Settings, dataset_id: int, model_id: int | None) -> tuple[int, str]:
    """(id, name) of the embedding model named, or of the newest one with vectors for the dataset (404 when
    there is none, saying how to make some)."""
    if model_id is not None:
        model = get_model(session, model_id)
        return model.id, model.name
    newest = newest_embedder(session, settings, dataset_id)
    if newest is None:
        raise NotFound("similar: no embedding model has vectors for this dataset yet; run a predict job of an "
                       "embedding model (card task: embed) over it, or name one with similar_model")
    return newest.id, newest.name


def similar_page(session: Session, settings: Settings, dataset_id: int, filters: Mapping[str, Sequence[str]], *,
                 item_id: int, model_id: int | None = None, k: int = MAX_K, key: str | None = None,
                 limit: int = queries.DEFAULT_LIMIT, cursor: str | None = None, offset: int | None = None,
                 sort: str | None = None, badge_model: str | None = None, with_ids: bool = False) -> dict[str, Any]:
    """The list_items page of the similar filter: `{items, total, next_cursor, sort: "similar", similar:
    {item_id, model_id, model_name, k}}` (with `with_ids` also the whole list's `ids`, for the page); each item
    has its `similarity` (cosine to ITEM), also as `sort_value`, the value a grid card shows."""
    if not 1 <= limit <= queries.MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {queries.MAX_LIMIT}, got {limit}")
    if sort not in (None, "", SORT):
        raise InvalidInput(f"sort={sort!r}: the similar filter lists items in similarity order; leave sort out")
    start = parse_cursor(cursor, offset)
    ds = queries.get_dataset(session, dataset_id)
    item = queries.get_item(session, item_id)
    if item.dataset_id != ds.id:
        raise InvalidInput(f"similar={item_id}: item {item_id} is in another dataset than {ds.name}")
    shown_model = predicted.get_model(session, badge_model) if badge_model else None
    base = filtered(ds, filters, key)  # checks the filter fields before any vector is read
    mid, name = resolve_model(session, settings, ds.id, model_id)
    found = similar_items(session, settings, item_id, mid, k)["items"]
    score = {x["id"]: x["score"] for x in found}
    ids = [x["id"] for x in found]
    if (filters or key) and ids:
        kept = set(session.scalars(base.with_only_columns(Item.id).where(Item.id.in_(ids))))
        ids = [i for i in ids if i in kept]
    shown = ids[start:start + limit]
    by_id = {i.id: i for i in session.scalars(select(Item).where(Item.id.in_(shown)))} if shown else {}
    marks = predicted.badges(session, shown_model, shown) if shown_model is not None and shown else {}
    naming = get_adapter(ds.kind).patient_page
    items = []
    for i in shown:
        summary = {**queries.item_summary(by_id[i], naming), "similarity": score[i], "sort_value": score[i]}
        if shown_model is not None:
            summary["prediction"] = marks.get(i)
        items.append(summary)
    end = start + len(shown)
    return {"items": items, "total": len(ids), "sort": SORT,
            "next_cursor": f"{CURSOR_PREFIX}{end}" if end < len(ids) else None,
            "similar": {"item_id": item_id, "model_id": mid, "model_name": name, "k": k},
            **({"ids": ids} if with_ids else {})}


def similar_neighbours(session: Session, settings: Settings, item_id: int, filters: Mapping[str, Sequence[str]], *,
                       similar: int, model_id: int | None = None, k: int = MAX_K,
                       key: str | None = None) -> dict[str, Any] | None:
    """{position, total, previous, next} of the item in a grid's similar list (the item page's previous/next
    when it was opened from that grid), or None when it is not in it or the list cannot be made."""
    try:
        dataset_id = queries.get_item(session, item_id).dataset_id
        ids = similar_page(session, settings, dataset_id, filters, item_id=similar, model_id=model_id, k=k,
                           key=key, limit=1, with_ids=True)["ids"]
    except (InvalidInput, NotFound):
        return None
    if item_id not in ids:
        return None
    n = ids.index(item_id)
    return {"position": n + 1, "total": len(ids), "previous": ids[n - 1] if n else None,
            "next": ids[n + 1] if n + 1 < len(ids) else None}
