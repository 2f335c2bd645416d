"""Facet storage, shared by the ingest driver (which counts facets at the end of an ingest) and the catalog (which
filters and counts them live); it lives here, below both, so datasets never import the catalog.

Single-valued facets that are item columns (split, label, sex) are counted and
filtered on `items` directly; every other facet (multi-valued, or kind-specific such as lesion type,
slide, vertebrae) lives in `item_facets`. Writing the column facets again as facet rows cost PCam's
327,680-item ingest two extra rows per item for nothing.

The review facets of every kind are *derived*, computed from the review tables rather than stored (so a
re-ingest never loses them and nothing needs a backfill): `reviewer` (multi-valued: the user names that gave
the item a verdict, from `reviews`) and `edited` (`yes` when a current annotation version has a `user:*`
source — its ground truth was corrected — else `no`). Whoever changes them (a verdict, an annotation edit)
calls `touch`, which appends `facet_changes` rows in the same transaction; every process's facet index pulls
the items past the last change it has seen (app.catalog.counts), so counts stay live across workers."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, case, exists, func, insert, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.db.base import utcnow
from app.db.models import Annotation, FacetChange, Item, ItemFacet, Patient, Review, Series, Study

COLUMN_FACETS: dict[str, InstrumentedAttribute[str | None]] = {
    "split": Item.split, "label": Item.label, "sex": Item.sex, "review_status": Item.review_status}
# The tables a link facet reads: each has `id`, `dataset_id` and `external_id`.
LinkedModel = type[Patient] | type[Study] | type[Series]
# Facets an adapter reads from the item's patient / study / series (`link_facets = {"slide": "series"}`):
# the item's foreign key column and the linked table.
LINKS: dict[str, tuple[InstrumentedAttribute[int | None], LinkedModel]] = {
    "patient": (Item.patient_id, Patient), "study": (Item.study_id, Study), "series": (Item.series_id, Series)}
# Links whose item column has an index (ix_items_patient, ix_items_series): counted per linked row through it
# (PCam's 540 slides over 327,680 patches), where a join from the dataset's items reads every item row.
INDEXED_LINKS = ("patient", "series")
REVIEWER_FACET = "reviewer"
EDITED_FACET = "edited"
DERIVED_FACETS = (REVIEWER_FACET, EDITED_FACET)
EDITED_VALUES = ("yes", "no")
CHUNK = 500  # ids per IN (...) list


def user_edited_ids(dataset_id: int) -> Select[Any]:
    """SELECT of the ids of a dataset's items with a current `user:*` annotation version (`edited` = yes)."""
    return select(Annotation.item_id).where(Annotation.dataset_id == dataset_id, Annotation.source.like("user:%"),
                                            Annotation.is_current())


def reviewed_ids(dataset_id: int, reviewers: Collection[str]) -> Select[Any]:
    """SELECT of the ids of a dataset's items some of `reviewers` gave a verdict."""
    return (select(Review.item_id).join(Item, Item.id == Review.item_id)
            .where(Item.dataset_id == dataset_id, Review.reviewer.in_(list(reviewers))))


def derived_filter(dataset_id: int, name: str, values: Collection[str]) -> ColumnElement[bool]:
    """WHERE clause on Item for a derived facet filter (values of one field OR-ed)."""
    if name == REVIEWER_FACET:
        return Item.id.in_(reviewed_ids(dataset_id, values))
    wanted = set(values)
    if wanted >= {"yes", "no"}:
        return Item.id.is_not(None)
    if "yes" in wanted:
        return Item.id.in_(user_edited_ids(dataset_id))
    if "no" in wanted:
        return Item.id.not_in(user_edited_ids(dataset_id))
    return Item.id.is_(None)  # no item has another value


def derived_sort_expression(name: str) -> ColumnElement[Any]:
    """The group value a sort by a derived facet orders by: `edited` yes/no; `reviewer` the first reviewer's name
    in alphabetical order (a multi-valued field sorts by its smallest value; unreviewed items last)."""
    if name == REVIEWER_FACET:
        return (select(func.min(Review.reviewer)).where(Review.item_id == Item.id)
                .correlate(Item).scalar_subquery())
    user = exists().where(Annotation.item_id == Item.id, Annotation.source.like("user:%"), Annotation.is_current())
    return case((user, "yes"), else_="no")


def derived_values(conn, dataset_id: int, item_ids: Sequence[int] | None = None
                   ) -> dict[str, dict[int, tuple[str, ...]]]:
    """{field: {item id: sorted values}} of the derived facets, for a whole dataset or for `item_ids` (items
    missing from `edited` are `no`)."""
    reviewers: dict[int, set[str]] = {}
    edited: dict[int, tuple[str, ...]] = {}
    chunks: Iterable[Sequence[int] | None] = (
        [None] if item_ids is None else [item_ids[i:i + CHUNK] for i in range(0, len(item_ids), CHUNK)])
    for chunk in chunks:
        rstmt = (select(Review.item_id, Review.reviewer).join(Item, Item.id == Review.item_id)
                 .where(Item.dataset_id == dataset_id).distinct())
        estmt = user_edited_ids(dataset_id).distinct()
        if chunk is not None:
            rstmt = rstmt.where(Review.item_id.in_(list(chunk)))
            estmt = estmt.where(Annotation.item_id.in_(list(chunk)))
        for item_id, name in conn.execute(rstmt):
            reviewers.setdefault(item_id, set()).add(name)
        for (item_id,) in conn.execute(estmt):
            edited[item_id] = ("yes",)
    return {REVIEWER_FACET: {i: tuple(sorted(v)) for i, v in reviewers.items()}, EDITED_FACET: edited}


def derived_counts(conn, dataset_id: int, ids: Select[Any] | None = None, total: int | None = None
                   ) -> dict[str, dict[str, int]]:
    """{reviewer: {name: items}, edited: {yes: n, no: m}} over the dataset or the items of the SELECT `ids`
    (`total`: how many items that is, for `no`)."""
    rstmt = (select(Review.reviewer, func.count(func.distinct(Review.item_id))).join(Item, Item.id == Review.item_id)
             .where(Item.dataset_id == dataset_id).group_by(Review.reviewer))
    estmt = select(func.count(func.distinct(Annotation.item_id))).where(
        Annotation.dataset_id == dataset_id, Annotation.source.like("user:%"), Annotation.is_current())
    if ids is not None:
        rstmt = rstmt.where(Review.item_id.in_(ids))
        estmt = estmt.where(Annotation.item_id.in_(ids))
    if total is None:
        total = conn.execute(select(func.count()).select_from(Item).where(Item.dataset_id == dataset_id)).scalar()
    yes = conn.execute(estmt).scalar() or 0
    edited = {"yes": yes, "no": (total or 0) - yes}
    return {REVIEWER_FACET: {str(name): n for name, n in conn.execute(rstmt)},
            EDITED_FACET: {k: v for k, v in edited.items() if v}}


def touch(session: Session, dataset_id: int | None, item_ids: Sequence[int]) -> None:
    """Record that these items' review facets changed (a verdict, an annotation version), in the caller's
    transaction: every process's facet index moves them on its next read (`dataset_id` None: looked up)."""
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        return
    if dataset_id is None:
        dataset_id = session.scalar(select(Item.dataset_id).where(Item.id == ids[0]))
        if dataset_id is None:
            return
    now = utcnow()
    session.execute(insert(FacetChange), [{"dataset_id": dataset_id, "item_id": i, "created_at": now} for i in ids])


def facet_counts(conn, dataset_id: int, fields: Sequence[str],
                 links: Mapping[str, str] | None = None) -> dict[str, dict[str, int]]:
    """{field: {value: item count}} over a whole dataset (stored on the dataset at the end of ingest)."""
    links = links or {}
    counts: dict[str, dict[str, int]] = {f: {} for f in fields}
    for name in fields:
        if name in links:
            link_column, model = LINKS[links[name]]
            if links[name] in INDEXED_LINKS:  # each linked row's items counted on the index: 0.02 s, not 0.4 s
                n_items = select(func.count()).where(link_column == model.id).scalar_subquery()
                rows = conn.execute(select(model.external_id, n_items).where(model.dataset_id == dataset_id))
                counts[name] = {str(value): n for value, n in rows if n}
                continue
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
    derived = [f for f in fields if f in DERIVED_FACETS]
    if derived:
        values = derived_counts(conn, dataset_id)
        for name in derived:
            counts[name] = values[name]
    tagged = [f for f in fields if f not in COLUMN_FACETS and f not in links and f not in DERIVED_FACETS]
    if tagged:
        rows = conn.execute(select(ItemFacet.field, ItemFacet.value, func.count())
                            .where(ItemFacet.dataset_id == dataset_id, ItemFacet.field.in_(tagged))
                            .group_by(ItemFacet.field, ItemFacet.value))
        for name, value, n in rows:
            counts[name][value] = n
    return counts
