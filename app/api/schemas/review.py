"""Annotations (versioned), comments, review verdicts and review queues (docs/review.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Verdict = Literal["accept", "reject", "uncertain", "corrected"]


class AnnotationIn(BaseModel):
    kind: str = Field(min_length=1, max_length=16, description="recist, bbox, centroid, label, mask (geometry "
                                                                "{png: base64 label PNG[, plane, slice]}); the "
                                                                "dataset kind declares which it takes.")
    label: str | None = Field(None, max_length=128)
    geometry: dict[str, Any] = Field(default_factory=dict, description="Per kind (API.md, Annotation geometry).")
    meta: dict[str, Any] = Field(default_factory=dict)
    slice: int | None = Field(None, ge=0, description="The slice of a volume the annotation lies on.")
    plane: Literal["axial", "coronal", "sagittal"] | None = Field(None, description="Accepted; geometry is in the "
                                                                                      "item's canonical voxels.")


class AnnotationEdit(BaseModel):
    version: int = Field(ge=1, description="The version being edited: a stale one is a 409.")
    label: str | None = Field(None, max_length=128)
    geometry: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    slice: int | None = Field(None, ge=0)


class AnnotationVersion(BaseModel):
    id: int
    item_id: int
    kind: str
    source: str = Field(description="`dataset`, `model:<id>` or `user:<name>`.")
    label: str | None
    geometry: dict[str, Any]
    meta: dict[str, Any]
    slice_index: int | None
    version: int
    lineage_id: int = Field(description="The id of the annotation's first version, shared by every version.")
    created_by: str | None = Field(description="Who made this version (null for the dataset's own).")
    created_at: str | None
    superseded_by: int | None = Field(description="The id of the version that replaced this one.")
    retired_at: str | None
    retired_by: str | None
    current: bool = Field(description="Neither superseded nor retired.")


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)
    annotation_id: int | None = None


class CommentOut(BaseModel):
    id: int
    item_id: int
    annotation_id: int | None
    author: str
    text: str
    created_at: str


class ReviewIn(BaseModel):
    verdict: Verdict
    annotation_id: int | None = None
    comment: str | None = Field(None, max_length=4000)
    queue_id: int | None = None


class ReviewOut(BaseModel):
    id: int
    item_id: int
    queue_id: int | None
    annotation_id: int | None
    reviewer: str
    verdict: Verdict
    comment: str | None
    created_at: str


class ReviewCreated(BaseModel):
    review: ReviewOut
    review_status: str = Field(description="The item's status after this verdict.")
    readers: list[ReviewOut] | None = Field(description="In a queue, every reader's verdict once all the item's "
                                                        "readers have read it; null before (blinded).")


class QueueIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    dataset_id: int
    filters: dict[str, list[str] | str] = Field(default_factory=dict, description="The grid's filters.")
    sort: str | None = Field(None, max_length=128, description="The grid's `sort=`.")
    readers_per_item: Literal[1, 2] = 1
    assignees: list[str] = Field(default_factory=list, max_length=100,
                                 description="Readers (reviewer role) who work it; empty: any reviewer.")


class ReaderProgress(BaseModel):
    reader: str
    read: int


class QueueProgress(BaseModel):
    items: int
    complete: int = Field(description="Items read by all their readers.")
    reads_done: int
    reads_left: int
    left_for_me: int | None = Field(description="Items the signed-in user can still read here.")
    per_reader: list[ReaderProgress]


class QueueSummary(BaseModel):
    id: int
    name: str
    dataset_id: int
    filters: dict[str, list[str]]
    sort: str | None
    readers_per_item: int
    assignees: list[str]
    created_by: str
    created_at: str
    progress: QueueProgress


class Agreement(BaseModel):
    kappa: float | None = Field(description="Cohen's kappa of the two readers' verdicts (null when undefined).")
    n: int = Field(description="Items both readers have read.")
    observed: float | None
    expected: float | None
    categories: list[str]
    agree: int
    disputed_items: list[int]


class QueueDetail(QueueSummary):
    agreement: Agreement


class QueueItemRef(BaseModel):
    id: int
    key: str
    dataset_id: int


class NextItem(BaseModel):
    queue_id: int
    position: int
    items: int
    left_for_me: int
    item: QueueItemRef
    next_item_id: int | None = Field(description="The item after this one for me (to prefetch).")
