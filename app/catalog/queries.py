"""Dataset, item and patient reads. Pages are keyset-paginated (id > cursor), never OFFSET."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.catalog.facets import COLUMN_FACETS, LINKS
from app.catalog.followup import lesion_tracks
from app.datasets.registry import get_adapter
from app.db.lookup import get_or_404
from app.db.models import Annotation, Dataset, Item, ItemFacet, Patient, Study
from app.errors import InvalidInput, NotFound

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
# Query parameters that are not filters.
RESERVED_PARAMS = ("limit", "cursor", "key", "format", "cols", "tile", "overlays")


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
    order = getattr(adapter, "facet_order", {})
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


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"i:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = text.split(":", 1)
        if kind != "i":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"cursor {cursor!r} is not valid (use next_cursor from the previous page)") from None


def _filtered(dataset: Dataset, filters: Mapping[str, Sequence[str]], key: str | None):
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
        link = getattr(adapter, "link_facets", {}).get(field_name, field_name)
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


def filtered_ids(dataset: Dataset, filters: Mapping[str, Sequence[str]]):
    """SELECT of the ids of a dataset's items matching the filters (InvalidInput for an unknown field)."""
    return _filtered(dataset, filters, None).with_only_columns(Item.id)


def list_items(session: Session, dataset_id: int, filters: Mapping[str, Sequence[str]], *,
               key: str | None = None, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict[str, Any]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    ds = get_dataset(session, dataset_id)
    base = _filtered(ds, filters, key)
    total = session.scalar(select(func.count()).select_from(base.with_only_columns(Item.id).subquery()))
    page = base
    if cursor:
        page = page.where(Item.id > decode_cursor(cursor))
    rows = session.scalars(page.order_by(Item.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [item_summary(i) for i in rows], "total": total,
            "next_cursor": encode_cursor(rows[-1].id) if more and rows else None}


def page_ids(session: Session, dataset_id: int, filters: Mapping[str, Sequence[str]], *, key: str | None = None,
             limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> tuple[list[int], str | None]:
    """Just the ids of one keyset page (and the next cursor): what a contact sheet needs, without
    building item objects or counting the whole selection."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    page = _filtered(get_dataset(session, dataset_id), filters, key).with_only_columns(Item.id)
    if cursor:
        page = page.where(Item.id > decode_cursor(cursor))
    ids = list(session.scalars(page.order_by(Item.id).limit(limit + 1)))
    more = len(ids) > limit
    ids = ids[:limit]
    return ids, encode_cursor(ids[-1]) if more and ids else None


def item_summary(item: Item) -> dict[str, Any]:
    return {"id": item.id, "key": item.key, "kind": item.kind, "split": item.split, "label": item.label,
            "sex": item.sex, "age": item.age, "width": item.width, "height": item.height,
            "review_status": item.review_status, "version": item.content_version,
            "thumbnail_url": thumbnail_url(item)}


def thumbnail_url(item: Item) -> str:
    """Grid thumbnail: 256 px JPEG with ground truth, in the item's default plane (e.g. sagittal for a spine)."""
    plane = (item.meta or {}).get("default_plane")
    extra = f"&plane={plane}" if plane and plane != "axial" else ""
    return f"/api/items/{item.id}/render?format=jpeg&size=256&overlays=gt{extra}&v={item.content_version}"


def get_item(session: Session, item_id: int) -> Item:
    return get_or_404(session, Item, item_id, "item")


def annotation_dict(a: Annotation) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind, "source": a.source, "label": a.label, "geometry": a.geometry,
            "meta": a.meta, "slice_index": a.slice_index, "version": a.version}


def item_annotations(session: Session, item_id: int) -> list[Annotation]:
    return list(session.scalars(select(Annotation).where(Annotation.item_id == item_id,
                                                         Annotation.superseded_by.is_(None))
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
        "predictions": item_predictions(session, item.id),
    }


def item_predictions(session: Session, item_id: int) -> list[dict[str, Any]]:
    """Every stored model prediction of an item (built by the inference layer, which owns its outputs)."""
    from app.inference.outputs import item_predictions as build

    return build(session, item_id)


def patient_timeline(session: Session, dataset_id: int, patient: str) -> dict[str, Any]:
    """Every study of a patient in order, each with its key slices and lesions (for follow-up)."""
    ds = get_dataset(session, dataset_id)
    p = session.scalar(select(Patient).where(Patient.dataset_id == ds.id, Patient.external_id == patient))
    if p is None:
        raise NotFound(f"patient {patient!r} not found in dataset {ds.name}")
    studies = session.scalars(select(Study).where(Study.patient_id == p.id)
                              .order_by(Study.study_order, Study.external_id)).all()
    items = session.scalars(select(Item).where(Item.patient_id == p.id).order_by(Item.key)).all()
    anns: dict[int, list[Annotation]] = {}
    ids = [i.id for i in items]
    if ids:
        for a in session.scalars(select(Annotation).where(Annotation.item_id.in_(ids),
                                                          Annotation.superseded_by.is_(None))
                                 .order_by(Annotation.id)):
            anns.setdefault(a.item_id, []).append(a)
    out = []
    for s in studies:
        s_items = [i for i in items if i.study_id == s.id]
        out.append({"study": s.external_id, "order": s.study_order, "age": s.age, "items": [
            {**item_summary(i), "annotations": [annotation_dict(a) for a in anns.get(i.id, [])]}
            for i in s_items]})
    return {"dataset_id": ds.id, "patient": p.external_id, "sex": p.sex, "studies": out,
            "tracks": lesion_tracks(out)}
