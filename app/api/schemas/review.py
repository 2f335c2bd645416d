"""Annotations (versioned), comments, review verdicts and review queues (docs/review.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.fields import MAX_ID, Id, RequestBody

Verdict = Literal["accept", "reject", "uncertain", "corrected"]


class AnnotationIn(RequestBody):
    kind: str = Field(min_length=1, max_length=16, description="recist, bbox, line, centroid, label, mask (geometry "
                                                                "{png: base64 label PNG[, plane, slice]}); the "
                                                                "dataset kind declares which it takes.")
    label: str | None = Field(None, max_length=128)
    geometry: dict[str, Any] = Field(default_factory=dict, description="Per kind (API.md, Annotation geometry).")
    meta: dict[str, Any] = Field(default_factory=dict)
    slice: int | None = Field(None, ge=0, le=MAX_ID, description="The slice of a volume the annotation lies on.")
    plane: Literal["axial", "coronal", "sagittal"] | None = Field(None, description="Accepted; geometry is in the "
                                                                                      "item's canonical voxels.")
    queue_id: Id | None = Field(None, description="A queue reading (blinded double reading): stored as "
                                                   "meta.queue_id; the reader must be able to read the item there.")


class AnnotationEdit(RequestBody):
    version: int = Field(ge=1, le=MAX_ID, description="The version being edited: a stale one is a 409.")
    label: str | None = Field(None, max_length=128)
    geometry: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    slice: int | None = Field(None, ge=0, le=MAX_ID)


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


class CommentIn(RequestBody):
    text: str = Field(min_length=1, max_length=4000)
    annotation_id: Id | None = None


class CommentOut(BaseModel):
    id: int
    item_id: int
    annotation_id: int | None
    author: str
    text: str
    created_at: str


class ReviewIn(RequestBody):
    verdict: Verdict
    annotation_id: Id | None = None
    comment: str | None = Field(None, max_length=4000)
    queue_id: Id | None = None


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


class UncertaintyOrder(BaseModel):
    model_id: Id = Field(description="A classifier whose stored probabilities order the queue.")
    measure: Literal["margin", "entropy"] = Field("margin", description="`margin`: top-1 − top-2 probability, "
                                                  "smallest first; `entropy`: largest first.")


class QueueIn(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    dataset_id: Id
    filters: dict[str, list[str] | str] = Field(default_factory=dict, description="The grid's filters.")
    sort: str | None = Field(None, max_length=128, description="The grid's `sort=`.")
    readers_per_item: Literal[1, 2] = 1
    assignees: list[str] = Field(default_factory=list, max_length=100,
                                 description="Readers (reviewer role) who work it; empty: any reviewer.")
    limit: int | None = Field(None, ge=1, le=10_000, description="Only the first `limit` items in `sort` order "
                                                                 "(e.g. the 100 lowest Dice).")
    item_ids: list[Id] | None = Field(None, max_length=10_000, description="A selection of the grid: only these "
                                                                            "of the matching items, in sort order.")
    uncertainty: UncertaintyOrder | None = Field(None, description="Active learning: instead of `sort`, the "
                                                 "items the classifier predicted, unreviewed first, least certain "
                                                 "first (docs/embeddings.md).")


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
    source_queue_id: int | None = Field(description="An adjudication queue: the queue whose disputes it holds.")
    signed_off_by: str | None
    signed_off_at: str | None
    progress: QueueProgress


class LongAxisPair(BaseModel):
    item_id: int
    first_mm: float
    second_mm: float
    mean_mm: float
    diff_mm: float = Field(description="first − second reader")


class LongAxisAgreement(BaseModel):
    n: int = Field(description="Paired RECIST queue readings (both readers measured the lesion).")
    bias_mm: float | None = Field(description="Mean difference (first − second reader).")
    sd_mm: float | None = Field(description="Sample SD of the differences (null below two pairs).")
    limits_mm: list[float] | None = Field(description="Bland–Altman limits of agreement: bias ± 1.96 SD.")
    pairs: list[LongAxisPair]


class MaskDicePair(BaseModel):
    item_id: int
    dice: float


class MaskDice(BaseModel):
    n: int
    mean: float | None
    pairs: list[MaskDicePair]


class Agreement(BaseModel):
    kappa: float | None = Field(description="Cohen's kappa of the two readers' verdicts (null when undefined).")
    n: int = Field(description="Items both readers have read.")
    observed: float | None
    expected: float | None
    categories: list[str]
    agree: int
    disputed_items: list[int] = Field(description="Items the two readers gave different verdicts, in queue order.")
    long_axis: LongAxisAgreement
    mask_dice: MaskDice | None = Field(description="Foreground Dice between the two readers' mask readings of each "
                                                   "item (paired by `meta.derived_from`), and their mean.")


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


class AdjudicationIn(RequestBody):
    name: str | None = Field(None, min_length=1, max_length=200)
    assignees: list[str] = Field(default_factory=list, max_length=100)


class MyRead(BaseModel):
    position: int
    item_id: int
    verdict: Verdict


class ReaderState(BaseModel):
    queue: QueueSummary
    mine: list[MyRead] = Field(description="My reads in queue order, my latest verdict on each (never another's).")
    counts: dict[str, int] = Field(description="My verdicts by kind.")
    next: NextItem | None = Field(description="My next item; null when nothing is left for me.")
    can_sign_off: bool = Field(description="I lead this queue, it is complete and not yet signed off.")


class UndoOut(BaseModel):
    item_id: int
    undone: ReviewOut
    review: ReviewOut = Field(description="The verdict recorded by the undo (the earlier one again, or uncertain).")
    review_status: str


class QueueSuggestionOut(BaseModel):
    name: str
    filters: dict[str, list[str]]
    sort: str | None
    limit: int | None
    readers_per_item: int
    model: str | None = Field(description="The model whose metric orders it, if any.")
