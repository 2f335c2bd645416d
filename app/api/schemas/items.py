"""Items: a listing page, and one item with its annotations and stored predictions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.fields import Timestamp
from app.inference.card import Task


class PredictionBadge(BaseModel):
    """A model's stored prediction for one item, as the grid's card badge shows it."""

    model_id: int
    label: str | None = Field(description="Predicted class (classifiers).")
    probability: float | None = Field(description="The predicted class's probability (classifiers).")
    dice: float | None = Field(description="Dice against the ground truth (segmenters with ground truth).")
    verdict: Literal["right", "wrong", "good", "fair", "poor"] | None = Field(
        description="right/wrong: the class against the ground truth; good/fair/poor: Dice ≥ 0.7, ≥ 0.5, below; "
                    "null without ground truth.")


class ItemSummary(BaseModel):
    id: int
    key: str = Field(description="Stable, human-readable key within the dataset (API.md, Item keys).")
    title: str | None = Field(None, description="Present only where the kind's keys are not readable: a DICOM "
                                                "series as `AX ABD 5mm · 2019-03-01 · #2` (description or "
                                                "modality, study date, series number), not its UID.")
    kind: str = Field(description="key_slice, patch, image, volume or series.")
    split: str | None
    label: str | None = Field(description="The dataset's own label value, as text.")
    sex: str | None
    age: float | None = Field(description="Years.")
    width: int | None = Field(description="Pixels.")
    height: int | None = Field(description="Pixels.")
    review_status: str
    version: int = Field(description="Content version; part of every image URL's cache key (`v=`).")
    thumbnail_url: str
    sort_value: float | str | None = Field(None, description="Present only with a value sort (`sort=` a numeric "
                                                             "field or `metric:MODEL:NAME`): the item's value.")
    prediction: PredictionBadge | None = Field(None, description="Present only with `model=ID`: that model's "
                                                                 "prediction for the item (null when none).")
    similarity: float | None = Field(None, description="Present only with `similar=ITEM`: the cosine similarity "
                                                       "of the item's embedding to ITEM's.")


class SimilarFilter(BaseModel):
    item_id: int = Field(description="The item the list is similar to.")
    model_id: int = Field(description="The embedding model whose vectors were compared.")
    model_name: str
    k: int = Field(description="How many nearest items were asked for (before the other filters).")


class ItemPage(BaseModel):
    items: list[ItemSummary]
    total: int = Field(description="Items matching the filters.")
    next_cursor: str | None = Field(description="Opaque; pass as `cursor=` for the next page; null on the last.")
    sort: str = Field(description="The order applied (`id` unless `sort=` was given; `similar` with `similar=`).")
    similar: SimilarFilter | None = Field(None, description="Present only with `similar=ITEM`: what the list is "
                                                            "similar to.")


class AnnotationOut(BaseModel):
    id: int
    kind: str = Field(description="label, bbox, recist, mask, centroid or polygon.")
    source: str = Field(description="`dataset`, `model:<id>` or `user:<id>`.")
    label: str | None
    geometry: dict[str, Any] = Field(description="Per kind, in the item's pixel coordinates (API.md, Geometry).")
    meta: dict[str, Any] = Field(description="Per dataset kind (e.g. RECIST `long_mm`, `short_mm`).")
    slice_index: int | None = Field(description="Slice of a volume the annotation lies on.")
    version: int


class ItemPrediction(BaseModel):
    model_id: int
    model_name: str
    task: Task
    outputs: dict[str, Any] = Field(description="Per task: classify `{probabilities, label}`; segment2d `{mask: URL, "
                                                "labels, area_fraction}`; segment3d `{mask: URL, labels}`; detect2d "
                                                "`{boxes: [[x1, y1, x2, y2, score, label]…], candidates, "
                                                "score_threshold}`.")
    metrics: dict[str, Any] | None = Field(description="Per-item metrics against the ground truth, when it exists.")
    created_at: Timestamp | None


class ItemNeighbours(BaseModel):
    position: int = Field(description="1-based place of the item in the grid's filtered, sorted list.")
    total: int = Field(description="Items in that list.")
    previous: int | None = Field(description="The id before it (null at the start).")
    next: int | None = Field(description="The id after it (null at the end).")


class ItemComment(BaseModel):
    id: int
    annotation_id: int | None = Field(description="The annotation it is about, if any.")
    author: str
    text: str
    created_at: str = Field(description="ISO 8601, UTC.")


class ItemDetail(BaseModel):
    id: int
    dataset_id: int
    key: str
    kind: str
    split: str | None
    label: str | None
    sex: str | None
    age: float | None
    width: int | None = Field(description="Pixels.")
    height: int | None = Field(description="Pixels.")
    depth: int | None = Field(description="Slices of a volume (1 for a 2-D image).")
    spacing: list[float] | None = Field(description="Voxel size in mm.")
    window: list[float] | None = Field(description="The item's own display window [low, high] (HU for CT).")
    meta: dict[str, Any] = Field(description="Per dataset kind.")
    slice: int | None = Field(description="The key slice's index within its series, when it has one.")
    version: int
    review_status: str
    patient: str | None = Field(description="The dataset's patient id.")
    study: str | None = Field(description="The dataset's study id.")
    annotations: list[AnnotationOut] = Field(description="The current versions (neither superseded nor retired).")
    comments: int = Field(description="How many comments the item has (`GET /api/items/{item_id}/comments`).")
    recent_comments: list[ItemComment] = Field(
        default_factory=list,
        description="The newest 20 comments, oldest first (all of them: `GET /api/items/{item_id}/comments`).")
    predictions: list[ItemPrediction]
    neighbours: ItemNeighbours | None = Field(None, description="With `neighbours=1` only: the item's place in "
                                              "the grid's list (its filters and `sort` as query parameters).")
