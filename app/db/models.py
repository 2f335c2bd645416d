"""ORM models: the domain of ARCHITECTURE.md.

Facets live in `item_facets` (one row per item × field × value) rather than one column per facet:
every dataset kind has its own fields, some multi-valued (a DeepLesion key slice can hold lesions of
several types; a VerSe volume holds many vertebrae). One composite index
(dataset_id, field, value, item_id) serves both the counts and keyset-ordered filtered pages, on
SQLite and PostgreSQL alike. The common single-valued fields (split, label, sex, age) are also
plain columns on `items` so pages show them without a join.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from app.db.base import Base, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    root: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="indexing")  # indexing | ready | failed
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    annotation_count: Mapped[int] = mapped_column(Integer, default=0)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    facet_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ingest_generation: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("dataset_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    sex: Mapped[str | None] = mapped_column(String(8), nullable=True)


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("dataset_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(128))
    study_order: Mapped[int | None] = mapped_column(Integer, nullable=True)
    age: Mapped[float | None] = mapped_column(Float, nullable=True)


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("dataset_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    # a series may stand alone: a PCam whole-slide image groups patches but has no known study
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True,
                                                 nullable=True)
    external_id: Mapped[str] = mapped_column(String(128))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Item(Base):
    """One thing a user opens: a key slice, a patch, an image, a volume, a series."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("dataset_id", "key"),
        # partial: most items of patch/photo datasets have no patient, sex or series (cheaper bulk ingest)
        Index("ix_items_patient", "patient_id", sqlite_where=text("patient_id IS NOT NULL"),
              postgresql_where=text("patient_id IS NOT NULL")),
        Index("ix_items_series", "series_id", sqlite_where=text("series_id IS NOT NULL"),
              postgresql_where=text("series_id IS NOT NULL")),
        # column facets (app.catalog.facets): counts and keyset-ordered filtered pages
        Index("ix_items_split", "dataset_id", "split", "id"),
        Index("ix_items_label", "dataset_id", "label", "id"),
        Index("ix_items_sex", "dataset_id", "sex", "id", sqlite_where=text("sex IS NOT NULL"),
              postgresql_where=text("sex IS NOT NULL")),
        Index("ix_items_review_status", "dataset_id", "review_status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(32))  # key_slice | patch | image | volume | series
    split: Mapped[str | None] = mapped_column(String(32), nullable=True)
    label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sex: Mapped[str | None] = mapped_column(String(8), nullable=True)
    age: Mapped[float | None] = mapped_column(Float, nullable=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), nullable=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), nullable=True)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    depth: Mapped[int | None] = mapped_column(Integer, nullable=True)
    spacing: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    window: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    # relative to the root ("a.zip::member" inside a zip), or absolute for a copy in the data dir
    location: Mapped[str] = mapped_column(Text)
    location_index: Mapped[int | None] = mapped_column(Integer, nullable=True)  # HDF5 row, slice number
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64), default="")  # source content; re-ingest skips equal
    content_version: Mapped[int] = mapped_column(Integer, default=1)  # part of every cached image's ETag
    review_status: Mapped[str] = mapped_column(String(16), default="unreviewed")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ItemFacet(Base):
    """One facet value of an item; see the module docstring."""

    __tablename__ = "item_facets"
    __table_args__ = (Index("ix_item_facets_lookup", "dataset_id", "field", "value", "item_id"),)

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))


class Annotation(Base):
    """Ground truth or an edit of it. Ground truth is never overwritten: edits add versions.

    Every version of one annotation shares `lineage_id` (the id of its first version; NULL on a first version
    written before 0007, which is then its own lineage). The current version is the one with `superseded_by`
    and `retired_at` both NULL; a retired one stays in the history."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_lineage", "lineage_id", sqlite_where=text("lineage_id IS NOT NULL"),
                            postgresql_where=text("lineage_id IS NOT NULL")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # label | bbox | recist | mask | centroid | polygon
    label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    slice_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(64), default="dataset")  # dataset | model:<id> | user:<id>
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lineage_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    retired_by: Mapped[str | None] = mapped_column(String(128), nullable=True)

    @classmethod
    def is_current(cls) -> ColumnElement[bool]:
        """The WHERE clause of current versions: neither superseded nor retired."""
        return and_(cls.superseded_by.is_(None), cls.retired_at.is_(None))


class Comment(Base):
    """A note on an item (optionally on one of its annotations)."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id", ondelete="SET NULL"),
                                                      nullable=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ReviewQueue(Base):
    """A worklist: items materialised from a grid's filters and sort when it was made, read by 1 or 2 readers
    each; `assignees` (user names) may work it, empty = any reviewer."""

    __tablename__ = "review_queues"
    __table_args__ = (CheckConstraint("readers_per_item IN (1, 2)", name="readers_per_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sort: Mapped[str | None] = mapped_column(String(128), nullable=True)
    readers_per_item: Mapped[int] = mapped_column(Integer, default=1)
    assignees: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    signed_off_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the lead, once complete
    signed_off_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    source_queue_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # adjudication: the disputed queue


class QueueItem(Base):
    """One item of a queue, at its position in the queue's order."""

    __tablename__ = "review_queue_items"

    queue_id: Mapped[int] = mapped_column(ForeignKey("review_queues.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)


class Review(Base):
    """One reader's verdict on an item (optionally on one annotation, within a queue). Append-only: a reader's
    latest verdict on an item (per queue) counts."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("verdict IN ('accept', 'reject', 'uncertain', 'corrected')", name="verdict"),
        Index("ix_reviews_queue_reader", "queue_id", "reviewer_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("review_queues.id", ondelete="SET NULL"),
                                                 nullable=True)
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id", ondelete="SET NULL"),
                                                      nullable=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    reviewer: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed|cancelled
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Model(Base):
    """A registered model: its file under data_dir/models/<id>/ and its validated card (API.md, "Models")."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(32))  # classify | segment2d | segment3d | detect2d
    runtime: Mapped[str] = mapped_column(String(16))  # onnx | torchscript
    path: Mapped[str] = mapped_column(Text)
    card: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Prediction(Base):
    """One model's output for one item; predicting again replaces it (unique item × model)."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("item_id", "model_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ItemMetric(Base):
    """One per-item metric value of one model (Dice, correct, nll, …), indexed so that lists can filter
    and sort by it ("worst first") without reading predictions' JSON. Written with the prediction."""

    __tablename__ = "item_metrics"
    __table_args__ = (Index("ix_item_metrics_model_name_value", "model_id", "name", "value", "item_id"),)

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class User(Base):
    """A person who signs in (app.accounts). `username_key` is the lower-cased name, unique, so names are
    case-insensitive; `session_epoch` is bumped on disable and password change so signed session cookies
    that carry the old epoch stop working at once."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'annotator', 'reviewer', 'admin')", name="role"),
        CheckConstraint("username_key = lower(username)", name="username_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | annotator | reviewer | admin
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, app.accounts.passwords
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for scripts: only the SHA-256 of the token is stored; `prefix` (its first 8 characters)
    lets a person tell their tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AuditEvent(Base):
    """One change: who (`actor_name` is kept when the user is renamed or removed), what, on which target,
    before and after (never secrets), when and from where. Append-only: nothing updates or deletes rows."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    actor_name: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)  # auth.login, user.add, token.revoke, …
    target_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)


# -- 0009: live facet changes (app.datasets.facets.touch / app.catalog.counts) --------------------------------

class FacetChange(Base):
    """One item whose review facets (`review_status`, `reviewer`, `edited`) changed: appended in the writer's
    transaction; every process's facet index pulls the rows past the last id it has seen, so counts stay live
    across worker processes without a rebuild."""

    __tablename__ = "facet_changes"
    __table_args__ = (Index("ix_facet_changes_dataset", "dataset_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(Integer)  # no foreign key: a removed item's change is harmless
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# The `edited` facet's lookup: current user versions of annotations (few) per dataset, without scanning the
# dataset's own annotations.
Index("ix_annotations_user_current", Annotation.dataset_id, Annotation.item_id,
      sqlite_where=text("source LIKE 'user:%' AND superseded_by IS NULL AND retired_at IS NULL"),
      postgresql_where=text("source LIKE 'user:%' AND superseded_by IS NULL AND retired_at IS NULL"))
