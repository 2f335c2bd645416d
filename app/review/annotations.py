"""Versioned annotations: create, edit (a new version supersedes the old), retire, history.

Versions are never overwritten. An edit inserts the new version, then claims the old one with one conditional
UPDATE (`… WHERE id = :id AND version = :N AND superseded_by IS NULL AND retired_at IS NULL`) and checks that it
changed exactly one row: of two people editing version N at once, exactly one wins (PostgreSQL re-checks the WHERE
after the first commit; SQLite serialises the writers), and the other gets a `StaleVersion` (409) naming who made
the current version, when, and carrying it. The read of the old row is committed before the write transaction
starts, so a SQLite writer never tries to upgrade a stale read snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from app import audit
from app.audit import Identified
from app.datasets import facets
from app.datasets.annotation_rules import AnnotationTarget
from app.datasets.base import DatasetAdapter
from app.datasets.registry import get_adapter
from app.db.base import utcnow
from app.db.lookup import get_or_404
from app.db.models import Annotation, Dataset, Item
from app.errors import Conflict, InvalidInput, NotFound
from app.review import masks


class StaleVersion(Conflict):
    """409: the version the client edited is no longer current; `extra` carries the current one."""

    def __init__(self, detail: str, extra: dict[str, Any]):
        super().__init__(detail)
        self.extra = extra  # rendered beside `detail` in the error body


@dataclass
class AnnotationInput:
    kind: str
    label: str | None
    geometry: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    slice: int | None = None


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def annotation_out(a: Annotation) -> dict[str, Any]:
    """One version as the API shows it (history entries, create/edit answers, conflicts)."""
    return {"id": a.id, "item_id": a.item_id, "kind": a.kind, "source": a.source, "label": a.label,
            "geometry": a.geometry, "meta": a.meta, "slice_index": a.slice_index, "version": a.version,
            "lineage_id": a.lineage_id or a.id, "created_by": a.created_by, "created_at": iso(a.created_at),
            "superseded_by": a.superseded_by, "retired_at": iso(a.retired_at), "retired_by": a.retired_by,
            "current": a.superseded_by is None and a.retired_at is None}


def _audit_view(a: Annotation) -> dict[str, Any]:
    return {"id": a.id, "version": a.version, "kind": a.kind, "label": a.label, "geometry": a.geometry,
            "meta": a.meta, "slice_index": a.slice_index, "source": a.source}


def _target(item: Item) -> AnnotationTarget:
    return AnnotationTarget(item.width, item.height, item.depth or 1,
                            tuple(item.spacing) if item.spacing else None)


def _checked(session: Session, item: Item, data: AnnotationInput) -> dict[str, Any]:
    """The validated annotation's meta (measurements recomputed); InvalidInput naming every problem."""
    ds = get_or_404(session, Dataset, item.dataset_id, "dataset")
    adapter: DatasetAdapter = get_adapter(ds.kind)
    classes = list((ds.facet_counts or {}).get(adapter.label_facet) or {})
    target = _target(item)
    problems = adapter.validate_annotation(data.kind, data.geometry, data.label, target, classes)
    if problems:
        raise InvalidInput("; ".join(problems))
    return adapter.derived_meta(data.kind, data.geometry, data.meta, target)


def lineage_of(a: Annotation) -> int:
    return a.lineage_id or a.id


def versions(session: Session, lineage: int) -> list[Annotation]:
    return list(session.scalars(select(Annotation).where(or_(Annotation.id == lineage,
                                                             Annotation.lineage_id == lineage))
                                .order_by(Annotation.version, Annotation.id)))


def latest(session: Session, lineage: int) -> Annotation:
    """The newest version of a lineage (current, or retired when the annotation was retired)."""
    return versions(session, lineage)[-1]


def _bump_item(session: Session, item_id: int) -> None:
    """Images drawn with ground truth change with it: the item's content version is part of their ETag."""
    session.execute(update(Item).where(Item.id == item_id).values(content_version=Item.content_version + 1))
    facets.touch(session, None, [item_id])  # the `edited` facet follows, live in every process


def create(session: Session, item_id: int, data: AnnotationInput, actor: Identified,
           address: str | None = None, queue_id: int | None = None) -> Annotation:
    """Version 1 of a new annotation. With `queue_id` it is that reader's queue reading (docs/review.md, blinded
    double reading): the caller has checked the reader may read the item in the queue
    (app.review.queues.check_reading); it is stored as meta["queue_id"] beside the client's meta["derived_from"]."""
    item = get_or_404(session, Item, item_id, "item")
    upload = _mask_upload(session, item, data, None)
    meta = _checked(session, item, data)
    meta.pop("queue_id", None)  # only the checked top-level queue_id makes a queue reading
    if queue_id is not None:
        meta["queue_id"] = queue_id
    with masks.stored(session, upload):
        return _insert(session, item, data, meta, actor, address)


def _mask_upload(session: Session, item: Item, data: AnnotationInput,
                 base: Annotation | None) -> masks.PreparedMask | None:
    """An uploaded mask PNG (geometry.png) checked and replaced by its stored reference (app.review.masks)."""
    upload = masks.prepare(session, item, data.kind, data.geometry, base)
    if upload is not None:
        data.geometry = upload.geometry
        data.meta = {**data.meta, **upload.meta}
    return upload


def _insert(session: Session, item: Item, data: AnnotationInput, meta: dict[str, Any], actor: Identified,
            address: str | None) -> Annotation:
    row = Annotation(item_id=item.id, dataset_id=item.dataset_id, kind=data.kind, label=data.label,
                     geometry=data.geometry, meta=meta, slice_index=data.slice, source=f"user:{actor.username}",
                     version=1, created_by=actor.username, created_at=utcnow())
    session.add(row)
    session.flush()
    _bump_item(session, item.id)
    audit.record(session, actor, "annotation.create", "annotation", row.id, after=_audit_view(row), address=address)
    session.commit()
    return row


def _stale(session: Session, annotation_id: int, asked: int) -> StaleVersion:
    session.rollback()
    row = get_or_404(session, Annotation, annotation_id, "annotation")
    current = latest(session, lineage_of(row))
    if current.retired_at is not None:
        who, when, what = current.retired_by, current.retired_at, "retired"
    else:
        who, when, what = current.created_by or current.source, current.created_at, f"now at version {current.version}"
    detail = (f"annotation {annotation_id} version {asked} is not current: {who} changed it at "
              f"{iso(when)} ({what}); reload it or apply your change to version {current.version}")
    return StaleVersion(detail, {"current": annotation_out(current), "changed_by": who, "changed_at": iso(when)})


def _claim(session: Session, annotation_id: int, version: int, **values: Any) -> bool:
    """The conditional UPDATE: True when this transaction changed the (still current) version `version`."""
    result = session.execute(
        update(Annotation)
        .where(Annotation.id == annotation_id, Annotation.version == version, Annotation.is_current())
        .values(**values).execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount == 1


def _merged_meta(old: Mapping[str, Any] | None, sent: Mapping[str, Any] | None) -> dict[str, Any]:
    """An edit's meta: the sent keys over the old ones, never dropping one; `queue_id` stays what it was."""
    out = {**(old or {}), **(sent or {})}
    out.pop("queue_id", None)
    if old and "queue_id" in old:
        out["queue_id"] = old["queue_id"]
    return out


def edit(session: Session, annotation_id: int, version: int, changes: Mapping[str, Any], actor: Identified,
         address: str | None = None) -> Annotation:
    """A new version with `changes` (label, geometry, meta, slice) applied to version `version`; the old one is
    superseded by it. Editing a `dataset` (or model) annotation makes a `user:<name>` version."""
    old = get_or_404(session, Annotation, annotation_id, "annotation")
    if old.version != version or old.superseded_by is not None or old.retired_at is not None:
        raise _stale(session, annotation_id, version)
    item = get_or_404(session, Item, old.item_id, "item")
    data = AnnotationInput(kind=old.kind, label=changes.get("label", old.label),
                           geometry=changes.get("geometry", old.geometry) or {},
                           meta=_merged_meta(old.meta, changes.get("meta")),
                           slice=changes.get("slice", old.slice_index))
    upload = _mask_upload(session, item, data, old)
    meta = _checked(session, item, data)
    before = _audit_view(old)
    session.commit()  # end the read: the write transaction below starts at its first statement
    with masks.stored(session, upload):
        return _supersede(session, old, version, data, meta, before, actor, address)


def _supersede(session: Session, old: Annotation, version: int, data: AnnotationInput, meta: dict[str, Any],
               before: dict[str, Any], actor: Identified, address: str | None) -> Annotation:
    annotation_id = old.id
    new = Annotation(item_id=old.item_id, dataset_id=old.dataset_id, kind=old.kind, label=data.label,
                     geometry=data.geometry, meta=meta, slice_index=data.slice, source=f"user:{actor.username}",
                     version=old.version + 1, lineage_id=lineage_of(old), created_by=actor.username,
                     created_at=utcnow())
    session.add(new)
    session.flush()
    if not _claim(session, annotation_id, version, superseded_by=new.id):
        raise _stale(session, annotation_id, version)
    _bump_item(session, old.item_id)
    audit.record(session, actor, "annotation.edit", "annotation", lineage_of(old), before=before,
                 after=_audit_view(new), address=address)
    session.commit()
    return new


def retire(session: Session, annotation_id: int, version: int, actor: Identified,
           address: str | None = None) -> Annotation:
    """Retire the current version `version`: kept in the history, no longer listed as current."""
    old = get_or_404(session, Annotation, annotation_id, "annotation")
    before = _audit_view(old)
    session.commit()
    now = utcnow()
    if not _claim(session, annotation_id, version, retired_at=now, retired_by=actor.username):
        raise _stale(session, annotation_id, version)
    _bump_item(session, old.item_id)
    audit.record(session, actor, "annotation.retire", "annotation", lineage_of(old), before=before,
                 after={"retired_at": now.isoformat(), "retired_by": actor.username}, address=address)
    session.commit()
    session.refresh(old)
    return old


def history(session: Session, annotation_id: int) -> list[Annotation]:
    """Every version of the annotation `annotation_id` belongs to (any of its versions' ids), oldest first."""
    row = session.get(Annotation, annotation_id)
    if row is None:
        raise NotFound(f"annotation {annotation_id} not found")
    return versions(session, lineage_of(row))
