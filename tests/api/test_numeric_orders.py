"""Numeric sorts served from memory (app.catalog.orders) give the SQL path's pages exactly: every page, cursor,
offset jump and `sort_value`, under facet filters, both directions, on both databases; a re-ingest (new dataset
version) builds the order again."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.catalog import queries
from app.catalog.state import Catalog
from app.db.models import Dataset, Item


def sql_only() -> Catalog:
    catalog = Catalog()
    catalog.orders.get = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return catalog


def walk(session: Session, catalog: Catalog, dataset_id: int, filters: dict, sort: str, offset: int | None):
    pages, page = [], queries.list_items(session, catalog, dataset_id, filters, sort=sort, limit=3, offset=offset)
    while True:
        pages.append(page)
        if not page["next_cursor"]:
            return pages
        page = queries.list_items(session, catalog, dataset_id, filters, sort=sort, limit=3,
                                  cursor=page["next_cursor"])


@pytest.mark.parametrize("sort", ["age", "-age", "lesion_size", "-lesion_size"])
def test_memory_orders_page_like_sql(engine, ingested, sort):
    ds = ingested.dataset_id
    with Session(engine) as s:  # some items without a value: they come last, by id, in both directions
        s.execute(update(Item).where(Item.dataset_id == ds, Item.id % 4 == 0).values(age=None))
        s.commit()
    memory, sql = Catalog(), sql_only()
    with Session(engine) as s:
        splits = sorted({i["split"] for i in queries.list_items(s, sql, ds, {}, limit=500)["items"]})
        for filters in ({}, {"split": splits[:1]}, {"sex": ["M"]}, {"split": splits, "sex": ["F", "M"]}):
            for offset in (None, 0, 2, 5, 10_000):
                assert walk(s, memory, ds, filters, sort, offset) == walk(s, sql, ds, filters, sort, offset)
        assert memory.orders.get(s, s.get(Dataset, ds), queries.sorting.parse_sort(s, s.get(Dataset, ds), sort))


def test_a_new_dataset_version_rebuilds_the_order(engine, ingested):
    ds = ingested.dataset_id
    catalog = Catalog()
    with Session(engine) as s:
        first = queries.list_items(s, catalog, ds, {}, sort="-age", limit=500)["items"]
        top = first[0]["id"]
        s.execute(update(Item).where(Item.id == first[-1]["id"]).values(age=200))
        s.execute(update(Dataset).where(Dataset.id == ds).values(ingest_generation=Dataset.ingest_generation + 1))
        s.commit()
    with Session(engine) as s:
        again = queries.list_items(s, catalog, ds, {}, sort="-age", limit=500)["items"]
    assert again[0]["id"] == first[-1]["id"] and again[0]["sort_value"] == 200 and again[1]["id"] == top
