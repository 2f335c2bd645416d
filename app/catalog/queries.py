"""Dataset, item and patient reads. Pages are keyset-paginated (id > cursor), never OFFSET."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.catalog import charts, listing, predicted, sorting, urls
from app.catalog.followup import lesion_tracks
from app.catalog.state import Catalog
from app.datasets.patients import PatientPage
from app.datasets.registry import get_adapter
from app.db.lookup import get_or_404
from app.db.models import Annotation, Comment, Dataset, Item, Patient, Study
from app.errors import InvalidInput, NotFound

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
# Query parameters that are not filters (`similar*`: the grid's similar filter, app.embeddings.similar_filter).
RESERVED_PARAMS = ("limit", "cursor", "key", "format", "cols", "tile", "overlays", "sort", "offset", "neighbours",
                   "annotations", "model", "similar", "similar_model", "similar_k")


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    return {"id": ds.id, "name": ds.name, "kind": ds.kind, "status": ds.status, "item_count": ds.item_count,
            "annotation_count": ds.annotation_count, "root": ds.root,
            "updated_at": ds.updated_at.isoformat() if ds.updated_at else None}


def list_datasets(session: Session) -> list[dict[str, Any]]:
    return [dataset_summary(ds) for ds in session.scalars(select(Dataset).order_by(Dataset.id))]


def get_dataset(session: Session, dataset_id: int) -> Dataset:
    return get_or_404(session, Dataset, dataset_id, "dataset")


def dataset_detail(session: Session, dataset_id: int) -> dict[str, Any]:
    ds = get_dataset(session, dataset_id)
    adapter = get_adapter(ds.kind)
    order = adapter.facet_order
    facets = {f: _sorted_counts(ds.facet_counts.get(f, {}), order.get(f)) for f in adapter.facet_fields}
    return {**dataset_summary(ds), "facets": facets, "facet_labels": adapter.facet_labels,
            "filter_fields": [*adapter.facet_fields, *adapter.filter_fields],
            "problems": ds.problems, "problem_count": len(ds.problems), "error": ds.error}


def _sorted_counts(counts: Mapping[str, int], preferred: Sequence[str] | None = None) -> dict[str, int]:
    """Values in the adapter's preferred order (e.g. vertebrae C1…L6), else numeric-aware ascending."""
    rank = {v: i for i, v in enumerate(preferred or ())}

    def order(value: str) -> tuple[int, float, str]:
        if value in rank:
            return (0, float(rank[value]), value)
        try:
            return (1, float(value.split("-")[0]), value)
        except ValueError:
            return (2, 0.0, value)

    return {v: counts[v] for v in sorted(counts, key=order)}


def live_facet_counts(session: Session, catalog: Catalog, dataset_id: int, filters: Mapping[str, Sequence[str]],
                      key: str | None = None) -> dict[str, Any]:
    """Counts under the filters for every facet field (disjunctive: a field's counts apply the other fields'
    filters), listing every value the dataset has (0 when the filters exclude it), and the total."""
    ds = get_dataset(session, dataset_id)
    adapter = get_adapter(ds.kind)
    live, total = listing.live_facets(session, ds, filters, catalog.indexes, key)
    order = adapter.facet_order
    facets = {f: _sorted_counts({**dict.fromkeys(ds.facet_counts.get(f) or {}, 0), **live.get(f, {})},
                                order.get(f)) for f in adapter.facet_fields}
    return {"facets": facets, "total": total, "filters": dict(filters), "semantics": "disjunctive"}


def dataset_charts(session: Session, catalog: Catalog, dataset_id: int) -> dict[str, Any]:
    ds = get_dataset(session, dataset_id)
    return {"dataset_id": ds.id, "kind": ds.kind,
            "charts": charts.dataset_charts(session, ds, catalog.indexes, catalog.charts)}


def filtered_ids(dataset: Dataset, filters: Mapping[str, Sequence[str]]):
    """SELECT of the ids of a dataset's items matching the filters (InvalidInput for an unknown field)."""
    return listing.filtered(dataset, filters, None).with_only_columns(Item.id)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def list_items(session: Session, catalog: Catalog, dataset_id: int, filters: Mapping[str, Sequence[str]], *,
               key: str | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None,
               sort: str | None = None, offset: int | None = None, model: str | None = None) -> dict[str, Any]:
    """A keyset page (app.catalog.listing) with the total; with a value sort (metric, numeric field) each
    item carries its `sort_value`; with `model` (an id) its `prediction` badge (app.catalog.predicted) or null."""
    _check_limit(limit)
    ds = get_dataset(session, dataset_id)
    shown_model = predicted.get_model(session, model) if model else None
    order = sorting.parse_sort(session, ds, sort)
    page = listing.keyset_page(session, ds, filters, key=key, sort=order, limit=limit, indexes=catalog.indexes,
                               cursor=cursor, offset=offset, orders=catalog.orders)
    total = listing.count(session, ds, filters, key, catalog.indexes)
    ids = [i for i, _ in page.rows]
    by_id = {i.id: i for i in session.scalars(select(Item).where(Item.id.in_(ids)))} if ids else {}
    marks = predicted.badges(session, shown_model, ids) if shown_model is not None else {}
    naming = get_adapter(ds.kind).patient_page
    items = []
    for item_id, value in page.rows:
        summary = item_summary(by_id[item_id], naming)
        if order.shows_value:
            summary["sort_value"] = value
        if shown_model is not None:
            summary["prediction"] = marks.get(item_id)
        items.append(summary)
    return {"items": items, "total": total, "next_cursor": page.next_cursor, "sort": order.text}


def page_ids(session: Session, catalog: Catalog, dataset_id: int, filters: Mapping[str, Sequence[str]], *,
             key: str | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None, sort: str | None = None,
             offset: int | None = None) -> tuple[list[int], str | None]:
    """Just the ids of one keyset page (and the next cursor): what a contact sheet needs, without
    building item objects or counting the whole selection."""
    _check_limit(limit)
    ds = get_dataset(session, dataset_id)
    page = listing.keyset_page(session, ds, filters, key=key, sort=sorting.parse_sort(session, ds, sort),
                               limit=limit, indexes=catalog.indexes, cursor=cursor, offset=offset,
                               orders=catalog.orders)
    return [i for i, _ in page.rows], page.next_cursor


def item_neighbours(session: Session, catalog: Catalog, item_id: int, filters: Mapping[str, Sequence[str]], *,
                    key: str | None = None, sort: str | None = None) -> dict[str, Any] | None:
    """{position, total, previous, next} of the item in its dataset's grid under these filters and sort (the
    grid's query, carried by its item links), or None when the item is not in that list."""
    item = get_item(session, item_id)
    ds = get_dataset(session, item.dataset_id)
    found = listing.neighbours(session, ds, filters, key=key, sort=sorting.parse_sort(session, ds, sort),
                               indexes=catalog.indexes, item_id=item.id)
    return found.as_dict() if found else None


def item_summary(item: Item, naming: PatientPage | None = None) -> dict[str, Any]:
    """The grid's item; with its kind's `naming` (the adapter's patient page) a `title` where the kind gives one
    (a DICOM series by description, date and number, not its UID)."""
    summary = {"id": item.id, "key": item.key, "kind": item.kind, "split": item.split, "label": item.label,
               "sex": item.sex, "age": item.age, "width": item.width, "height": item.height,
               "review_status": item.review_status, "version": item.content_version,
               "thumbnail_url": thumbnail_url(item)}
    if naming is not None and (title := naming.item_title({"key": item.key, "meta": item.meta or {}})) is not None:
        summary["title"] = title
    return summary


def thumbnail_url(item: Item) -> str:
    """Grid thumbnail: 256 px JPEG with ground truth, in the item's default plane (e.g. sagittal for a spine)."""
    return urls.thumbnail_url(item.id, item.content_version, (item.meta or {}).get("default_plane"))


def get_item(session: Session, item_id: int) -> Item:
    return get_or_404(session, Item, item_id, "item")


def annotation_dict(a: Annotation) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind, "source": a.source, "label": a.label, "geometry": a.geometry,
            "meta": a.meta, "slice_index": a.slice_index, "version": a.version}


def item_annotations(session: Session, item_id: int) -> list[Annotation]:
    return list(session.scalars(select(Annotation).where(Annotation.item_id == item_id,
                                                         Annotation.is_current())
                                .order_by(Annotation.id)))


def item_detail(session: Session, item_id: int) -> dict[str, Any]:
    item = get_item(session, item_id)
    patient = session.get(Patient, item.patient_id) if item.patient_id else None
    study = session.get(Study, item.study_id) if item.study_id else None
    return {
        "id": item.id, "dataset_id": item.dataset_id, "key": item.key, "kind": item.kind, "split": item.split,
        "label": item.label, "sex": item.sex, "age": item.age, "width": item.width, "height": item.height,
        "depth": item.depth, "spacing": item.spacing, "window": item.window, "meta": item.meta,
        "slice": item.location_index, "version": item.content_version, "review_status": item.review_status,
        "patient": patient.external_id if patient else None, "study": study.external_id if study else None,
        "annotations": [annotation_dict(a) for a in item_annotations(session, item.id)],
        "comments": session.scalar(select(func.count()).select_from(Comment).where(Comment.item_id == item.id)) or 0,
        "recent_comments": recent_comments(session, item.id),
    }


RECENT_COMMENTS = 20


def recent_comments(session: Session, item_id: int) -> list[dict[str, Any]]:
    """The item's newest RECENT_COMMENTS comments, oldest first (all of them: GET /api/items/{id}/comments)."""
    rows = session.scalars(select(Comment).where(Comment.item_id == item_id).order_by(Comment.id.desc())
                           .limit(RECENT_COMMENTS)).all()
    return [{"id": c.id, "annotation_id": c.annotation_id, "author": c.author, "text": c.text,
             "created_at": c.created_at.isoformat()} for c in reversed(rows)]


def all_ids(session: Session, catalog: Catalog, dataset_id: int, filters: Mapping[str, Sequence[str]], *,
            sort: str | None = None, cap: int) -> list[int]:
    """Every id of the dataset's items matching the filters, in the grid's order (`sort`), up to `cap` (a review
    queue's items are listed this way, page by page); InvalidInput past `cap`."""
    out: list[int] = []
    cursor = None
    while True:
        ids, cursor = page_ids(session, catalog, dataset_id, filters, limit=MAX_LIMIT, cursor=cursor, sort=sort)
        out += ids
        if len(out) > cap:
            raise InvalidInput(f"filters: more than {cap} items match; narrow the filters")
        if cursor is None:
            return out


def patient_timeline(session: Session, dataset_id: int, patient: str) -> dict[str, Any]:
    """Every study of a patient in order, each with its items and their annotations (for follow-up), and the page's
    sections as the kind's adapter groups and names them (`patient_page`, app.datasets.patients): items in no
    study (a VerSe subject without sessions) are in a section too. Lesion tracks only where the kind follows lesions."""
    ds = get_dataset(session, dataset_id)
    p = session.scalar(select(Patient).where(Patient.dataset_id == ds.id, Patient.external_id == patient))
    if p is None:
        raise NotFound(f"patient {patient!r} not found in dataset {ds.name}")
    page = get_adapter(ds.kind).patient_page
    studies = session.scalars(select(Study).where(Study.patient_id == p.id)
                              .order_by(Study.study_order, Study.external_id)).all()
    items = session.scalars(select(Item).where(Item.patient_id == p.id).order_by(Item.key)).all()
    anns: dict[int, list[Annotation]] = {}
    ids = [i.id for i in items]
    if ids:
        for a in session.scalars(select(Annotation).where(Annotation.item_id.in_(ids),
                                                          Annotation.is_current())
                                 .order_by(Annotation.id)):
            anns.setdefault(a.item_id, []).append(a)
    summaries = {i.id: item_summary(i) for i in items}
    out: list[dict[str, Any]] = [
        {"study": s.external_id, "order": s.study_order, "age": s.age,
         "items": [{**summaries[i.id], "annotations": [annotation_dict(a) for a in anns.get(i.id, [])]}
                   for i in items if i.study_id == s.id]} for s in studies]
    # what the adapter reads to name things: the item's meta and volume shape (not part of the JSON's items)
    full = {i.id: {**summaries[i.id], "meta": i.meta or {}, "depth": i.depth, "spacing": i.spacing} for i in items}
    sections = page.sections([{**s, "items": [full[i["id"]] for i in s["items"]]} for s in out],
                             [full[i.id] for i in items if i.study_id is None])
    return {"dataset_id": ds.id, "patient": p.external_id, "sex": p.sex, "studies": out,
            "tracks": lesion_tracks(out) if page.followup else [],
            "summary": page.summary(p.sex, out, sections),
            "sections": [{"anchor": sec.anchor, "title": sec.title, "details": list(sec.details), "uid": sec.uid,
                          "study": sec.study,
                          "items": [{**summaries[e.item_id], "title": e.title, "details": list(e.details),
                                     "uid": e.uid} for e in sec.entries]}
                         for sec in sections]}
