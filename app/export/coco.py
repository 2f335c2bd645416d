"""`coco`: one COCO JSON (`annotations.json`) of the exported items.

- `images`: one per 2-D item (`id` = the item id, `file_name` = its key, width, height, plus `split`,
  `review_status` and, where the item's own label is a class, `category_id`); a volume gives one image per axial
  slice that holds mask labels (`file_name` = `<key>#axial=<k>`, `item_id`, `slice`), in the viewer's display
  orientation of that plane.
- `categories`: the dataset's class names (its label facet's values, named as the grid names them), plus any
  other label the exported annotations carry; RECIST categories list the keypoints and skeleton below.
- `annotations`: boxes `[x, y, w, h]`; a RECIST as 4 keypoints (long axis a, b, short axis a, b, each visible)
  with skeleton long/short, its box (the stored one, or for an edited RECIST the extent ± 5 px as DeepLesion
  defines it) and its outline as a polygon through the four end points (`segmentation`); masks as RLE (pycocotools'
  compressed counts), one annotation per label value per image. Centroids and item-level label annotations are
  not COCO objects and are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pycocotools import mask as mask_utils

from app.db.models import Item
from app.export.context import ExportContext
from app.export.geometry import recist_box
from app.export.masks import MaskUnavailable, is_volume_mask, mask_array
from app.export.selection import annotations_of, item_chunks
from app.export.writer import atomic_binary
from app.imaging.volume import display_plane

FILE_NAME = "annotations.json"
KEYPOINTS = ["long_a", "long_b", "short_a", "short_b"]
SKELETON = [[1, 2], [3, 4]]
ITEM_COLUMNS = (Item.id, Item.key, Item.width, Item.height, Item.depth, Item.split, Item.label, Item.review_status)


class Categories:
    """Label text → COCO category id (1, 2, … in the dataset's class order, then in order of first use)."""

    def __init__(self, names: dict[str, str], known: list[str]):
        self.names = names
        self.ids: dict[str, int] = {}
        self.recist: set[int] = set()
        for label in known:
            self.id(label)

    def id(self, label: str | None, recist: bool = False) -> int:
        text = label if label is not None else "object"
        if text not in self.ids:
            self.ids[text] = len(self.ids) + 1
        if recist:
            self.recist.add(self.ids[text])
        return self.ids[text]

    def as_list(self) -> list[dict[str, Any]]:
        out = []
        for label, cid in self.ids.items():
            entry: dict[str, Any] = {"id": cid, "name": self.names.get(label, label), "label": label,
                                     "supercategory": "object"}
            if cid in self.recist:
                entry.update(keypoints=KEYPOINTS, skeleton=SKELETON)
            out.append(entry)
        return out


def _rle(binary: np.ndarray) -> tuple[dict[str, Any], float, list[float]]:
    rle = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
    area = float(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return rle, area, bbox


def _label_layers(labels: np.ndarray) -> list[int]:
    return [int(v) for v in np.unique(labels) if v]


def write(ctx: ExportContext) -> list[Path]:
    adapter = ctx.adapter
    # class names: the label facet's (the grid's wording), then the mask labels' (VerSe: vertebra names C1…L6)
    names = {**{str(k): v for k, v in adapter.mask_labels.items()}, **dict(adapter.label_names())}
    known = list((ctx.dataset.facet_counts or {}).get(adapter.label_facet) or {})
    known.sort(key=lambda v: (0, float(v)) if v.lstrip("-").replace(".", "", 1).isdigit() else (1, v))
    item_classes = adapter.label_facet == "label"  # the item's own label is a class (not a list of them)
    cats = Categories(names, known)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    next_image = [0]

    def add_annotation(image_id: int, category: int, source: Any, **fields: Any) -> None:
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                            "iscrowd": 0, **fields,
                            "attributes": {"annotation_id": source.id, "version": source.version,
                                           "source": source.source}})

    for rows in item_chunks(ctx.session, ctx.selection, ITEM_COLUMNS):
        ids = [r[0] for r in rows]
        anns = annotations_of(ctx.session, ids, ctx.mode)
        with_masks = [i for i in ids if any(a.kind == "mask" for a in anns.get(i, ()))]
        refs = {t.ref.id: t.ref for t in ctx.pixels.targets(ctx.session, with_masks, False)} if with_masks else {}
        for item_id, key, width, height, depth, split, label, status in rows:
            mine = anns.get(item_id, [])
            volume_masks = [a for a in mine if a.kind == "mask" and is_volume_mask(a)]
            if (depth or 1) > 1 or volume_masks:
                _volume_images(item_id, key, split, status, volume_masks, refs, images, add_annotation, cats,
                               next_image)
                continue
            image: dict[str, Any] = {"id": item_id, "file_name": key, "width": width, "height": height,
                                     "split": split, "review_status": status}
            if item_classes and label is not None:
                image["category_id"] = cats.id(label)
            images.append(image)
            for a in mine:
                _annotation_2d(a, item_id, refs.get(item_id), cats, add_annotation)
        ctx.advance(len(rows))
    document = {
        "info": {"description": f"MedView export of dataset {ctx.dataset.name}", "version": "1.0",
                 "annotations": ctx.mode},
        "images": images, "annotations": annotations, "categories": cats.as_list(),
    }
    path = ctx.out / FILE_NAME
    with atomic_binary(path) as fh:
        fh.write(orjson.dumps(document))
    return [ctx.wrote(path)]


def _annotation_2d(a: Any, image_id: int, ref: Any, cats: Categories, add: Any) -> None:
    geometry = a.geometry or {}
    if a.kind == "recist" and "long" in geometry and "short" in geometry:
        (la, lb), (sa, sb) = geometry["long"], geometry["short"]
        stored = geometry.get("bbox")
        x1, y1, x2, y2 = stored if stored and a.source == "dataset" else recist_box(geometry)
        outline = [la[0], la[1], sa[0], sa[1], lb[0], lb[1], sb[0], sb[1]]  # geometry.quad, inlined (hot)
        # the quadrilateral's area: half the cross product of its diagonals (= geometry.polygon_area)
        area = abs((lb[0] - la[0]) * (sb[1] - sa[1]) - (lb[1] - la[1]) * (sb[0] - sa[0])) / 2
        add(image_id, cats.id(a.label, recist=True), a, bbox=[x1, y1, x2 - x1, y2 - y1],
            area=area, segmentation=[outline],
            keypoints=[la[0], la[1], 2, lb[0], lb[1], 2, sa[0], sa[1], 2, sb[0], sb[1], 2], num_keypoints=4)
    elif a.kind == "bbox" and isinstance(geometry.get("bbox"), list):
        x1, y1, x2, y2 = geometry["bbox"]
        add(image_id, cats.id(a.label), a, bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1))
    elif a.kind == "mask" and ref is not None:
        try:
            labels = mask_array(ref, a)
        except MaskUnavailable:
            return
        for value in _label_layers(labels):
            rle, area, bbox = _rle(labels == value)
            add(image_id, cats.id(a.label if a.label is not None else str(value)), a, segmentation=rle,
                area=area, bbox=bbox)


def _volume_images(item_id: int, key: str, split: Any, status: str, masks: list[Any], refs: dict[int, Any],
                   images: list[dict[str, Any]], add: Any, cats: Categories, next_image: list[int]) -> None:
    """One image per axial slice with labels (ids after every 2-D item id: a running number from 1e9)."""
    ref = refs.get(item_id)
    for a in masks:
        if ref is None:
            continue
        try:
            labels = mask_array(ref, a)
        except MaskUnavailable:
            continue
        spacing = ref.spacing or (1.0, 1.0, 1.0)
        for k in np.flatnonzero(labels.any(axis=(0, 1))):
            plane, _ = display_plane(labels, spacing, "axial", int(k), labels=True)
            next_image[0] += 1
            image_id = 1_000_000_000 + next_image[0]
            images.append({"id": image_id, "file_name": f"{key}#axial={int(k)}", "width": int(plane.shape[1]),
                           "height": int(plane.shape[0]), "item_id": item_id, "slice": int(k), "split": split,
                           "review_status": status})
            for value in _label_layers(plane):
                rle, area, bbox = _rle(plane == value)
                add(image_id, cats.id(str(value)), a, segmentation=rle, area=area, bbox=bbox)
