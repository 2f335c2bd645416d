"""2-D detection (DeepLesion key slices, any 2-D kind): image (CT windowed per the card, with `input.slices`
neighbour slices stacked as channels) → boxes → the image's pixel coordinates.

Stored outputs: `boxes` = detections with score ≥ the card's `output.score_threshold` (default 0.5), best first,
as [x1, y1, x2, y2, score, label] with the label named from the card's classes; `candidates` = the ones below
it down to FROC_MIN_SCORE (0.05), kept so that the evaluation's FROC can sweep the threshold; and
`score_threshold`. Per-item metrics (when the item has ground-truth boxes): `tp`, `fp`, `fn`, `sensitivity` of
the shown boxes at IoU ≥ 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.datasets.base import View
from app.datasets.registry import get_adapter
from app.inference.card import ModelCard
from app.inference.ground_truth import ground_truth_boxes
from app.inference.postprocess import boxes_as_outputs, detections
from app.inference.preprocess import ImageGeometry, NeighbourFn, boxes_to_image, prepare_batch
from app.inference.runtime import InferenceRuntime
from app.inference.tasks.base import Prepared, Result, TaskContext, first_output
from app.metrics.detection import match_boxes
from app.pixels import ItemTarget, PixelStore

FROC_MIN_SCORE = 0.05
MATCH_IOU = 0.5


def neighbour_fn(pixels: PixelStore, target: ItemTarget, key: int | None) -> NeighbourFn:
    """Slices `offset` steps from the key slice (DeepLesion: the neighbouring PNGs of its series), through the
    pixels's decoded-image cache; None where the series has no such slice (preprocessing then repeats the
    nearest one)."""
    try:
        available = set(get_adapter(target.kind).slices(target.ref, "axial"))
    except ValueError:
        available = set()

    def fetch(offset: int) -> np.ndarray | None:
        if key is None or key + offset not in available:
            return None
        return pixels.image(target, View("axial", key + offset)).pixels

    return fetch


def split_by_score(boxes: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(shown, candidates); corners put in order first (a model may give x2 < x1)."""
    boxes = boxes.copy()
    boxes[:, [0, 2]] = np.sort(boxes[:, [0, 2]], axis=1)
    boxes[:, [1, 3]] = np.sort(boxes[:, [1, 3]], axis=1)
    keep = boxes[:, 4] >= threshold
    return boxes[keep], boxes[~keep]


class Detect2dTask:
    name = "detect2d"

    def chunk(self, settings: Settings, card: ModelCard) -> int:
        return settings.inference_batch

    def prepare(self, session: Session, ctx: TaskContext, ids: list[int]) -> Prepared:
        targets = ctx.pixels.targets(session, ids, True)
        images = ctx.pixels.images_for(targets, View())
        neighbours = None
        if ctx.card.input.slices > 1:
            neighbours = [neighbour_fn(ctx.pixels, t, im.slice) for t, im in zip(targets, images, strict=True)]
        batch, geometries = prepare_batch(images, ctx.card, neighbours)
        truths = [ground_truth_boxes(t, im.slice) for t, im in zip(targets, images, strict=True)]
        return Prepared(ids, batch, list(zip(geometries, truths, strict=True)))

    def infer(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]:
        threshold = ctx.card.output.score_threshold
        found = detections(first_output(runtime.run(prepared.batch)), min(FROC_MIN_SCORE, threshold))
        if len(found) == 1 and len(prepared.ids) > 1:
            raise ValueError(f"the detector gave one list of boxes for a batch of {len(prepared.ids)} images; "
                             "it must output [batch, N, 6]")
        results = []
        for n, item_id in enumerate(prepared.ids):
            geometry: ImageGeometry = prepared.extra[n][0]
            truth: list[list[float]] | None = prepared.extra[n][1]
            boxes = boxes_to_image(found[n], geometry)
            shown, low = split_by_score(boxes, threshold)
            outputs: dict[str, Any] = {
                "boxes": boxes_as_outputs(shown, ctx.card)["boxes"],
                "candidates": boxes_as_outputs(low, ctx.card)["boxes"],
                "score_threshold": threshold,
            }
            metrics: dict[str, Any] = {}
            if truth is not None:
                metrics = match_boxes(shown[:, :5].tolist(), truth, MATCH_IOU)
                if metrics["sensitivity"] is None:
                    del metrics["sensitivity"]
            results.append(Result(item_id, outputs, metrics))
        return results
