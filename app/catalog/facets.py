"""Facet storage: single-valued facets that are item columns (split, label, sex) are counted and
filtered on `items` directly; every other facet (multi-valued, or kind-specific such as lesion type,
slide, vertebrae) lives in `item_facets`. Writing the column facets again as facet rows cost PCam's
327,680-item ingest two extra rows per item for nothing."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from app.db.models import Item, ItemFacet

COLUMN_FACETS = {"split": Item.split, "label": Item.label, "sex": Item.sex}


def facet_counts(conn, dataset_id: int, fields: Sequence[str]) -> dict[str, dict[str, int]]:
    """{field: {value: item count}} over a whole dataset (stored on the dataset at the end of ingest)."""
    counts: dict[str, dict[str, int]] = {f: {} for f in fields}
    for name in fields:
        column = COLUMN_FACETS.get(name)
        if column is None:
            continue
        rows = conn.execute(select(column, func.count()).where(Item.dataset_id == dataset_id, column.is_not(None))
                            .group_by(column))
        counts[name] = {str(value): n for value, n in rows}
    tagged = [f for f in fields if f not in COLUMN_FACETS]
    if tagged:
        rows = conn.execute(select(ItemFacet.field, ItemFacet.value, func.count())
                            .where(ItemFacet.dataset_id == dataset_id, ItemFacet.field.in_(tagged))
                            .group_by(ItemFacet.field, ItemFacet.value))
        for name, value, n in rows:
            counts[name][value] = n
    return counts
