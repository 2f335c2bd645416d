"""2-D segmentation (BIS5k and any 2-D kind): image → resized to the card's input.size → label mask → back to
the image's full size by nearest neighbour; stored as a label PNG.

Per-item metrics against the ground-truth mask (foreground = any label > 0), the BIS5k toolkit's set:
Dice and IoU of the stored (displayed) mask; MAE, weighted F-measure, S-measure and E-measure of the
foreground probability map resized bilinearly to full size (the toolkits score continuous maps; for a
softmax model the foreground probability is 1 − p(background); a model that outputs labels gives a 0/1 map).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.catalog.urls import prediction_mask_url
from app.config import Settings
from app.datasets.base import View
from app.inference import tiles2d
from app.inference.card import ModelCard
from app.inference.ground_truth import ground_truth_mask
from app.inference.masks import mask_path, save_mask_2d
from app.inference.postprocess import mask_probabilities, segment
from app.inference.preprocess import ImageGeometry, labels_to_image, prepare_batch, scores_to_image
from app.inference.runtime import InferenceRuntime
from app.inference.tasks.base import Prepared, Result, TaskContext, first_output
from app.metrics.segmentation import dice, e_measure, iou, mae, s_measure, weighted_f_measure


def foreground_probability(output: np.ndarray, card: ModelCard, labels: np.ndarray) -> np.ndarray:
    """(N, H, W) foreground probability at model size."""
    if card.output.kind == "mask":
        return (labels > 0).astype(np.float32)
    p = mask_probabilities(output, card)
    fg = p[:, 0] if p.shape[1] == 1 else 1.0 - p[:, 0]
    return np.clip(fg, 0.0, 1.0).astype(np.float32)


def mask_metrics(labels: np.ndarray, probability: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The segmentation metrics of one image (full size) against its ground truth."""
    gt = truth > 0
    binary = labels > 0
    probability = np.clip(probability, 0.0, 1.0)  # bilinear resizing may step a rounding error past 1
    return {"dice": dice(binary, gt), "iou": iou(binary, gt), "mae": mae(probability, gt),
            "wfm": weighted_f_measure(probability, gt), "s_measure": s_measure(probability, gt),
            "e_measure": e_measure(probability, gt)}


def mask_outputs(item_id: int, model_id: int, labels: np.ndarray) -> dict[str, Any]:
    present = [int(v) for v in np.flatnonzero(np.bincount(labels.ravel().astype(np.int64))) if v > 0]
    return {"mask": prediction_mask_url(item_id, model_id), "labels": present,
            "area_fraction": float(np.count_nonzero(labels)) / labels.size if labels.size else 0.0}


TILES_PER_IMAGE = 16  # a typical BIS5k image at 256-pixel tiles with half overlap


class Segment2dTask:
    name = "segment2d"

    def chunk(self, settings: Settings, card: ModelCard) -> int:
        # tiled models see many tiles per image: fewer images per chunk keeps a chunk's tiles in memory bounds
        return settings.inference_batch if not card.input.tile else max(1, settings.inference_batch // TILES_PER_IMAGE)

    def prepare(self, session: Session, ctx: TaskContext, ids: list[int]) -> Prepared:
        targets = ctx.pixels.targets(session, ids, True)
        images = ctx.pixels.images_for(targets, View())
        truths = [ground_truth_mask(ctx.pixels, t, im) for t, im in zip(targets, images, strict=True)]
        if ctx.card.input.tile:
            batch, tilings = tiles2d.tile_batch(images, ctx.card)
            return Prepared(ids, batch, list(zip(tilings, truths, strict=True)))
        batch, geometries = prepare_batch(images, ctx.card)
        return Prepared(ids, batch, list(zip(geometries, truths, strict=True)))

    def infer(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]:
        if ctx.card.input.tile:
            return self._infer_tiled(runtime, ctx, prepared)
        output = first_output(runtime.run(prepared.batch))
        labels = segment(output, ctx.card)
        probability = foreground_probability(output, ctx.card, labels)
        results = []
        for n, item_id in enumerate(prepared.ids):
            geometry: ImageGeometry = prepared.extra[n][0]
            truth: np.ndarray | None = prepared.extra[n][1]
            full = labels_to_image(labels[n], geometry)
            save_mask_2d(mask_path(ctx.settings, ctx.model_id, item_id, three_d=False), full)
            metrics: dict[str, Any] = {}
            if truth is not None:
                metrics = mask_metrics(full, scores_to_image(probability[n], geometry), truth)
            results.append(Result(item_id, mask_outputs(item_id, ctx.model_id, full), metrics))
        return results

    def _infer_tiled(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]:
        """Tiles through the model `inference_batch` at a time, blended back into each image."""
        step = ctx.settings.inference_batch
        parts = [tiles2d.class_probabilities(first_output(runtime.run(prepared.batch[n:n + step])), ctx.card)
                 for n in range(0, len(prepared.batch), step)]
        maps = tiles2d.stitch(np.concatenate(parts), [extra[0] for extra in prepared.extra])
        results = []
        for item_id, probability, (_, truth) in zip(prepared.ids, maps, prepared.extra, strict=True):
            full = tiles2d.labels_of(probability)
            save_mask_2d(mask_path(ctx.settings, ctx.model_id, item_id, three_d=False), full)
            metrics = mask_metrics(full, tiles2d.foreground(probability), truth) if truth is not None else {}
            results.append(Result(item_id, mask_outputs(item_id, ctx.model_id, full), metrics))
        return results
