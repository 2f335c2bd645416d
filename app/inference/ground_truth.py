"""Ground truth a prediction is scored against, read the way the viewer shows it.

- Labels (classify): the item's label or, failing that, its newest current `label` annotation; coded labels
  (PCam "0"/"1") match either the class names the dataset kind gives them ("normal"/"tumor") or, as numbers,
  the class index.
- Masks (segment2d): the label mask the dataset adapter's `overlay` draws for the item's image (BIS5k: its
  mask annotation), so the ground truth is in the same pixel grid as the image and the predicted mask.
- Boxes (detect2d): every current annotation whose geometry has a `bbox` [x1, y1, x2, y2] on the shown slice
  (DeepLesion: the RECIST measurements' boxes on the key slice).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.datasets.base import Image2D, View
from app.datasets.registry import get_adapter
from app.db.models import Annotation, Item
from app.inference.card import ModelCard
from app.pixels import ItemTarget, PixelStore


def ground_truth_label(session: Session, item: Item) -> str | None:
    """The item's label, else its newest current `label` annotation's."""
    if item.label is not None:
        return item.label
    return session.scalar(select(Annotation.label).where(
        Annotation.item_id == item.id, Annotation.kind == "label", Annotation.is_current(),
        Annotation.label.is_not(None)).order_by(Annotation.id.desc()).limit(1))


ANNOTATION_SETS = ("current", "dataset")  # ground truth: the current (corrected) versions, or the dataset's own


def annotation_filter(annotations: str) -> ColumnElement[bool]:
    """WHERE clause of the annotation versions that are the ground truth: `current` = neither superseded nor
    retired (user corrections included); `dataset` = the dataset's own versions, superseded or not."""
    return Annotation.is_current() if annotations == "current" else Annotation.source == "dataset"


def ground_truth_labels(session: Session, item_ids: Sequence[int],
                        known: dict[int, str | None] | None = None,
                        annotations: str = "current") -> dict[int, str | None]:
    """`ground_truth_label` of many items in at most three queries; `known` = the items' own labels when the
    caller has already read them (a job's render targets), which saves the first. With the `current`
    annotations a user's corrected `label` annotation (a current `user:*` version) overrides the item's label."""
    ids = list(item_ids)
    if known is None:
        known = dict(session.execute(select(Item.id, Item.label).where(Item.id.in_(ids))).all())
    labels: dict[int, str | None] = dict(known)
    unlabelled = [i for i, label in labels.items() if label is None]
    if unlabelled:
        for item_id, label in session.execute(select(Annotation.item_id, Annotation.label).where(
                Annotation.item_id.in_(unlabelled), Annotation.kind == "label", annotation_filter(annotations),
                Annotation.label.is_not(None)).order_by(Annotation.id)):
            labels[item_id] = label  # ascending ids: the newest wins
    if annotations == "current" and ids:
        for item_id, label in session.execute(select(Annotation.item_id, Annotation.label).where(
                Annotation.item_id.in_(ids), Annotation.kind == "label", Annotation.source.like("user:%"),
                Annotation.is_current(), Annotation.label.is_not(None)).order_by(Annotation.id)):
            labels[item_id] = label
    return labels


def class_index(label: str, card: ModelCard, dataset_kind: str) -> int | None:
    """The card's class index for a dataset label, or None when the classes cannot name it."""
    classes = card.output.classes or []
    if label in classes:
        return classes.index(label)
    names = get_adapter(dataset_kind).facet_labels.get("label", {})
    if names.get(label) in classes:
        return classes.index(names[label])
    if label.isdigit() and int(label) < len(classes):
        return int(label)
    return None


def ground_truth_mask(pixels: PixelStore, target: ItemTarget, image: Image2D) -> np.ndarray | None:
    """The item's ground-truth label mask in its image's pixel grid, or None when it has none (or the mask
    file went bad: the adapter then draws a note instead of a mask)."""
    if not any(a.kind == "mask" for a in target.annotations):
        return None
    layer = pixels.overlay(target, View(), image)
    if layer.mask is None or layer.mask.shape != image.pixels.shape[:2]:
        return None
    return layer.mask


def ground_truth_boxes(target: ItemTarget, slice_number: int | None) -> list[list[float]] | None:
    """[x1, y1, x2, y2] of every annotation box on this slice; None when the item has no box annotations at
    all (no ground truth), [] when it has some but none on this slice."""
    boxes = [a for a in target.annotations if isinstance((a.geometry or {}).get("bbox"), list)]
    if not boxes:
        return None
    return [[float(v) for v in a.geometry["bbox"][:4]] for a in boxes
            if a.slice_index is None or slice_number is None or a.slice_index == slice_number]
