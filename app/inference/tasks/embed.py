"""Embedding (issue 15): item image → one vector, stored in the vector files (`app.inference.vectors`), not as a
prediction row per item; similar-item search (`app.embeddings`) reads them.

Which pixels: the whole image, preprocessed per the card (CT windowed per `input.window`, with `input.slices`
neighbours) — except for items with box annotations (DeepLesion's RECIST boxes): there the crop around their
boxes, enlarged by CONTEXT of its size on each side (clipped to the image), so the vector describes the lesion
and its surroundings rather than the whole slice.

The `Result` carries the vector under outputs["vector"] (a numpy row); the job and the single-item predict
write it to the vector store, and return only its dimension.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import Image2D, View
from app.inference.card import ModelCard
from app.inference.ground_truth import ground_truth_boxes
from app.inference.preprocess import NeighbourFn, prepare_batch
from app.inference.runtime import InferenceRuntime
from app.inference.tasks.base import Prepared, Result, TaskContext, first_output
from app.inference.tasks.detect2d import neighbour_fn
from app.inference.vectors import append

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


class EmbedTask:
    name = "embed"

    def chunk(self, settings: Settings, card: ModelCard) -> int:
        return settings.inference_batch

    def prepare(self, session: Session, ctx: TaskContext, ids: list[int]) -> Prepared:
        targets = ctx.pixels.targets(session, ids, True)
        images = ctx.pixels.images_for(targets, View())
        crops = [crop_box(ground_truth_boxes(t, im.slice) or [], im.pixels.shape)
                 for t, im in zip(targets, images, strict=True)]
        neighbours = None
        if ctx.card.input.slices > 1:
            def cropping(fetch: NeighbourFn, box: tuple[int, int, int, int] | None) -> NeighbourFn:
                def get(offset: int) -> np.ndarray | None:  # the neighbour slices cropped as the key slice is
                    p = fetch(offset)
                    return p if p is None or box is None else p[box[1]:box[3], box[0]:box[2]]
                return get
            neighbours = [cropping(neighbour_fn(ctx.pixels, t, im.slice), box)
                          for t, im, box in zip(targets, images, crops, strict=True)]
        batch, _ = prepare_batch([_cropped(im, box) for im, box in zip(images, crops, strict=True)], ctx.card,
                                 neighbours)
        return Prepared(ids, batch)

    def infer(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]:
        out = np.asarray(first_output(runtime.run(prepared.batch)))
        if out.ndim != 2 or out.shape[0] != len(prepared.ids):
            raise ValueError(f"the embedder gave an output of shape {list(out.shape)} for {len(prepared.ids)} "
                             "images; it must output [batch, dimensions]")
        return [Result(item_id, {"vector": out[n]}, {}) for n, item_id in enumerate(prepared.ids)]


def store_results(settings: Settings, model_id: int, dataset_id: int, results: list[Result]) -> dict[str, int]:
    """Write a batch's vectors to the store; the outputs a caller may show (the vectors' dimension)."""
    if not results:
        return {}
    vectors = np.stack([np.asarray(r.outputs["vector"]) for r in results])
    append(settings, model_id, dataset_id, [r.item_id for r in results], vectors)
    return {"dimensions": int(vectors.shape[1])}
