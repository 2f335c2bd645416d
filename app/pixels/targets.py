"""`ItemTarget`: what the pixel layer reads of an item's database row to find, window and overlay its pixels.

Rows, not ORM objects (a grid page is 64+ items), loaded for a whole page in three queries (items, their
datasets, their current annotations), with the dataset root checked against the data roots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.datasets.base import ItemRef
from app.datasets.roots import DataRoots, DatasetFiles, Limits
from app.datasets.stored_masks import MaskStore
from app.db.models import Annotation, Dataset, Item
from app.errors import NotFound


class AnnotationView(NamedTuple):
    """A current (not superseded) annotation as adapters draw it."""

    id: int
    version: int
    kind: str
    label: str | None
    slice_index: int | None
    geometry: dict[str, Any]
    meta: dict[str, Any]


@dataclass(frozen=True)
class ItemTarget:
    """An item as the pixel layer knows it: where its pixels are (`ref`), its dataset kind (which adapter reads
    it), its own window (HU, or None), its content version (changes when the item is re-indexed) and its
    current annotations (empty unless asked for)."""

    ref: ItemRef
    kind: str
    window: tuple[float, float] | None
    version: int
    annotations: tuple[AnnotationView, ...]


# Built once: no per-call statement cache-key work on the grid's hot path.
_ITEM_ROWS = select(Item.id, Item.dataset_id, Item.location, Item.location_index, Item.meta, Item.width, Item.height,
                    Item.depth, Item.spacing, Item.window, Item.content_version, Item.label).where(
    Item.id.in_(bindparam("ids", expanding=True)))


def load_targets(session: Session, item_ids: Sequence[int], with_annotations: bool,
                 roots: DataRoots, limits: Limits | None = None, work: Path | None = None,
                 masks: MaskStore | None = None) -> list[ItemTarget]:
    """ItemTargets in the order of `item_ids`; NotFound for a missing id, Forbidden for a dataset outside the
    data roots. Each ref carries its dataset's `DatasetFiles` (these roots and `limits`; `work`: the app's folder
    of decompressed copies), through which the adapter opens every file (`ItemRef.file`), and `masks`, the app's
    store of user-edited masks (`ItemRef.masks`)."""
    items = {row.id: row for row in session.execute(_ITEM_ROWS, {"ids": list(item_ids)})}
    # the four columns used: not the dataset's JSON (facet counts, ingest problems), parsed on every pixel request
    datasets = {d.id: d for d in session.execute(select(Dataset.id, Dataset.name, Dataset.kind, Dataset.root).where(
        Dataset.id.in_({i.dataset_id for i in items.values()})))}
    anns: dict[int, list[AnnotationView]] = {}
    if with_annotations and items:
        for a in session.scalars(select(Annotation).where(Annotation.item_id.in_(list(items)),
                                                          Annotation.is_current()).order_by(Annotation.id)):
            anns.setdefault(a.item_id, []).append(
                AnnotationView(a.id, a.version, a.kind, a.label, a.slice_index, a.geometry or {}, a.meta or {}))
    dataset_roots = {ds.id: roots.require(Path(ds.root), f"dataset {ds.name!r}") for ds in datasets.values()}
    files = {ds_id: DatasetFiles(root, roots, limits, work) for ds_id, root in dataset_roots.items()}
    out = []
    for item_id in item_ids:
        item = items.get(item_id)
        if item is None:
            raise NotFound(f"item {item_id} not found")
        ds = datasets[item.dataset_id]
        ref = ItemRef(item.id, dataset_roots[ds.id], item.location, item.location_index, item.meta or {},
                      item.width or 0, item.height or 0, item.depth or 1,
                      tuple(item.spacing) if item.spacing else None, item.label, files[ds.id], masks)
        out.append(ItemTarget(ref, ds.kind, tuple(item.window) if item.window else None, item.content_version,
                              tuple(anns.get(item_id, ()))))
    return out
