"""Facet storage, shared by the ingest driver (which counts facets at the end of an ingest) and the catalog (which
filters and counts them live); it lives here, below both, so datasets never import the catalog.

Single-valued facets that are item columns (split, label, sex) are counted and
filtered on `items` directly; every other facet (multi-valued, or kind-specific such as lesion type,
slide, vertebrae) lives in `item_facets`. Writing the column facets again as facet rows cost PCam's
327,680-item ingest two extra rows per item for nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute

from app.db.models import Item, ItemFacet, Patient, Series, Study

COLUMN_FACETS: dict[str, InstrumentedAttribute[str | None]] = {
    "split": Item.split, "label": Item.label, "sex": Item.sex, "review_status": Item.review_status}
# The tables a link facet reads: each has `id`, `dataset_id` and `external_id`.
LinkedModel = type[Patient] | type[Study] | type[Series]
# Facets an adapter reads from the item's patient / study / series (`link_facets = {"slide": "series"}`):
# the item's foreign key column and the linked table.
LINKS: dict[str, tuple[InstrumentedAttribute[int | None], LinkedModel]] = {
    "patient": (Item.patient_id, Patient), "study": (Item.study_id, Study), "series": (Item.series_id, Series)}


def facet_counts(conn, dataset_id: int, fields: Sequence[str],
                 links: Mapping[str, str] | None = None) -> dict[str, dict[str, int]]:
    """{field: {value: item count}} over a whole dataset (stored on the dataset at the end of ingest)."""
    links = links or {}
    counts: dict[str, dict[str, int]] = {f: {} for f in fields}
    for name in fields:
        if name in links:
            link_column, model = LINKS[links[name]]
            rows = conn.execute(select(model.external_id, func.count()).select_from(Item)
                                .join(model, link_column == model.id)
                                .where(Item.dataset_id == dataset_id).group_by(model.external_id))
            counts[name] = {str(value): n for value, n in rows}
            continue
        column = COLUMN_FACETS.get(name)
        if column is None:
            continue
        rows = conn.execute(select(column, func.count()).where(Item.dataset_id == dataset_id, column.is_not(None))
                            .group_by(column))
        counts[name] = {str(value): n for value, n in rows}
    tagged = [f for f in fields if f not in COLUMN_FACETS and f not in links]
    if tagged:
        rows = conn.execute(select(ItemFacet.field, ItemFacet.value, func.count())
                            .where(ItemFacet.dataset_id == dataset_id, ItemFacet.field.in_(tagged))
                            .group_by(ItemFacet.field, ItemFacet.value))
        for name, value, n in rows:
            counts[name][value] = n
    return counts
