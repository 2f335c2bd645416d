"""Embedding (issue 15): item image → one vector, stored in the vector files (`app.inference.vectors`), not as a
prediction row per item; similar-item search (`app.embeddings`) reads them.

Which pixels: the whole image, preprocessed per the card (CT windowed per `input.window`, with `input.slices`
neighbours) — except for items with box annotations (DeepLesion's RECIST boxes): there the crop around their
boxes, enlarged by CONTEXT of its size on each side (clipped to the image), so the vector describes the lesion
and its surroundings rather than the whole slice.

Per lesion as well (DeepLesion): every box annotation on the shown slice also gets a vector of its own box
with CONTEXT around it, windowed per the card, stored in the `lesions` sub-store keyed by annotation id (what
lesion matching reads, app.embeddings.lesion_matching). The lesion crops ride in the same model batch as the
items' images (one `run` per chunk).

The `Result` carries the vector under outputs["vector"] (a numpy row) and the item's lesion vectors under
outputs["lesions"] ([(annotation id, row)]); the job and the single-item predict write them to the vector
stores (lesions first, so an item whose vector is stored has its lesions' too), and return only the dimension.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import Image2D, View
from app.db.models import Annotation, Item
from app.inference.card import ModelCard
from app.inference.ground_truth import ground_truth_boxes
from app.inference.preprocess import NeighbourFn, prepare_batch
from app.inference.runtime import InferenceRuntime
from app.inference.tasks.base import Prepared, Result, TaskContext, first_output
from app.inference.tasks.detect2d import neighbour_fn
from app.inference.vectors import LESIONS, append, stored_ids
from app.pixels import ItemTarget

BOX_KINDS = ("recist", "bbox")  # annotation kinds that get a lesion vector of their own
CONTEXT = 0.5  # context around a lesion box, as a fraction of the box's size on each side


def crop_box(boxes: list[list[float]], shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) in whole pixels around all the boxes plus CONTEXT, inside the image; None for none."""
    if not boxes:
        return None
    b = np.asarray(boxes, np.float64)[:, :4]
    x1, y1 = b[:, [0, 2]].min(), b[:, [1, 3]].min()
    x2, y2 = b[:, [0, 2]].max(), b[:, [1, 3]].max()
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    height, width = shape[0], shape[1]
    left, top = max(int(np.floor(x1 - CONTEXT * w)), 0), max(int(np.floor(y1 - CONTEXT * h)), 0)
    right, bottom = min(int(np.ceil(x2 + CONTEXT * w)), width), min(int(np.ceil(y2 + CONTEXT * h)), height)
    return (left, top, right, bottom) if right > left and bottom > top else None


def _cropped(image: Image2D, box: tuple[int, int, int, int] | None) -> Image2D:
    if box is None:
        return image
    x1, y1, x2, y2 = box
    return replace(image, pixels=image.pixels[y1:y2, x1:x2])


def lesion_boxes(target: ItemTarget, slice_number: int | None) -> list[tuple[int, list[float]]]:
    """(annotation id, [x1, y1, x2, y2]) of each box annotation on this slice (as `ground_truth_boxes` picks)."""
    return [(a.id, [float(v) for v in a.geometry["bbox"][:4]]) for a in target.annotations
            if isinstance((a.geometry or {}).get("bbox"), list)
            and (a.slice_index is None or slice_number is None or a.slice_index == slice_number)]


def _cropping(fetch: NeighbourFn, box: tuple[int, int, int, int] | None) -> NeighbourFn:
    def get(offset: int) -> np.ndarray | None:  # the neighbour slices cropped as the key slice is
        p = fetch(offset)
        return p if p is None or box is None else p[box[1]:box[3], box[0]:box[2]]
    return get


class EmbedTask:
    name = "embed"

    def chunk(self, settings: Settings, card: ModelCard) -> int:
        return settings.inference_batch

    def prepare(self, session: Session, ctx: TaskContext, ids: list[int]) -> Prepared:
        """The items' images (cropped around their boxes) then each lesion's crop, as one batch; `extra` =
        the lesions' annotation ids per item."""
        targets = ctx.pixels.targets(session, ids, True)
        images = ctx.pixels.images_for(targets, View())
        crops = [crop_box(ground_truth_boxes(t, im.slice) or [], im.pixels.shape)
                 for t, im in zip(targets, images, strict=True)]
        lesions = [lesion_boxes(t, im.slice) for t, im in zip(targets, images, strict=True)]
        # (item index, annotation id, crop) of each lesion with a usable crop, after the items in the batch
        lesion_rows = [(n, ann_id, crop) for n, (im, found) in enumerate(zip(images, lesions, strict=True))
                       for ann_id, box in found if (crop := crop_box([box], im.pixels.shape)) is not None]
        sources = [*zip(range(len(images)), crops, strict=True), *[(n, crop) for n, _, crop in lesion_rows]]
        neighbours = None
        if ctx.card.input.slices > 1:
            fetches = [neighbour_fn(ctx.pixels, t, im.slice) for t, im in zip(targets, images, strict=True)]
            neighbours = [_cropping(fetches[n], box) for n, box in sources]
        batch, _ = prepare_batch([_cropped(images[n], box) for n, box in sources], ctx.card, neighbours)
        extra: list[list[int]] = [[] for _ in ids]
        for n, ann_id, _ in lesion_rows:
            extra[n].append(ann_id)
        return Prepared(ids, batch, extra)

    def infer(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]:
        out = np.asarray(first_output(runtime.run(prepared.batch)))
        rows = len(prepared.batch)
        if out.ndim != 2 or out.shape[0] != rows:
            raise ValueError(f"the embedder gave an output of shape {list(out.shape)} for {rows} "
                             "images; it must output [batch, dimensions]")
        results, row = [], len(prepared.ids)
        for n, item_id in enumerate(prepared.ids):
            annotation_ids = prepared.extra[n] if prepared.extra else []
            results.append(Result(item_id, {"vector": out[n], "lesions": [
                (ann_id, out[row + i]) for i, ann_id in enumerate(annotation_ids)]}, {}))
            row += len(annotation_ids)
        return results


def store_results(settings: Settings, model_id: int, dataset_id: int, results: list[Result]) -> dict[str, int]:
    """Write a batch's vectors to the store; the outputs a caller may show (the vectors' dimension)."""
    if not results:
        return {}
    vectors = np.stack([np.asarray(r.outputs["vector"]) for r in results])
    lesions = [pair for r in results for pair in r.outputs.get("lesions", [])]
    if lesions:  # first: an item whose vector is stored (what a re-run skips) has its lesions' stored too
        append(settings, model_id, dataset_id, [a for a, _ in lesions], np.stack([np.asarray(v) for _, v in lesions]),
               LESIONS)
    append(settings, model_id, dataset_id, [r.item_id for r in results], vectors)
    return {"dimensions": int(vectors.shape[1])}


def embedded_ids(session: Session, settings: Settings, model_id: int, dataset_id: int) -> set[int]:
    """The items a job skips: those with a vector whose box annotations all have one too (an item embedded
    before lesion vectors existed, or whose RECIST was corrected since — a new annotation version — is done
    again)."""
    done = stored_ids(settings, model_id, dataset_id)
    if not done:
        return done
    boxes = session.execute(select(Annotation.id, Annotation.item_id).join(Item, Item.id == Annotation.item_id)
                            .where(Item.dataset_id == dataset_id, Annotation.kind.in_(BOX_KINDS),
                                   Annotation.is_current())).all()
    if not boxes:
        return done
    have = stored_ids(settings, model_id, dataset_id, LESIONS)
    return done - {item_id for ann_id, item_id in boxes if ann_id not in have}
