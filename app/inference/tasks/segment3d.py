"""3-D segmentation of whole volumes (VerSe, DICOM series): the canonical volume through the sliding window
of `app.inference.volume3d`, the label volume stored as .npz in the canonical frame.

Per-item metrics against the VerSe ground truth: `dice_per_label` {"label": Dice} over the labels of the GT
mask, their mean `dice_mean`, and `identification_rate` (VerSe's: predicted centroid within 20 mm of the GT
centroid of the same label, and closest to it) from the GT centroid annotations (or the GT mask's centres of
mass when there are none), in mm of the canonical voxel spacing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.catalog.urls import prediction_mask_url
from app.config import Settings
from app.inference.card import ModelCard
from app.inference.masks import mask_path, save_mask_3d
from app.inference.runtime import InferenceRuntime
from app.inference.tasks.base import Prepared, Result, TaskContext
from app.inference.volume3d import SlidingWindow, to_canonical_axes, to_model_axes
from app.metrics.vertebrae import identification_rate, label_centroids, per_label_dice
from app.pixels import ItemTarget, PixelStore


def ground_truth_volume(pixels: PixelStore, target: ItemTarget, shape: tuple[int, ...]) -> np.ndarray | None:
    """The ground-truth label volume in the canonical frame, or None (no mask, unreadable, or another grid)."""
    vol = pixels.label_volume(target)
    return vol.data if vol is not None and vol.data.shape == shape else None


def ground_truth_centroids(target: ItemTarget) -> dict[int, list[float]]:
    """{label: canonical voxel point} of the item's centroid annotations."""
    out = {}
    for ann in target.annotations:
        point = (ann.geometry or {}).get("point")
        if ann.kind == "centroid" and point and ann.label is not None and ann.label.isdigit():
            out[int(ann.label)] = [float(v) for v in point]
    return out


def volume_metrics(pred: np.ndarray, truth: np.ndarray | None, centroids: dict[int, list[float]],
                   spacing: tuple[float, float, float], foreground_only: bool = False) -> dict[str, Any]:
    """Per-label Dice, their mean and the identification rate; for a model of one foreground channel
    (`foreground_only`: a bone mask without vertebra numbers) the Dice of foreground against every labelled voxel
    instead (`dice_foreground`, also the `dice_mean` the worst-first sort uses), since its label 1 is not vertebra 1."""
    metrics: dict[str, Any] = {}
    if foreground_only:  # no numbers: neither per-label Dice nor identification mean anything
        if truth is None:
            return {}
        fg_pred, fg_truth = pred > 0, truth > 0
        total = int(fg_pred.sum()) + int(fg_truth.sum())
        dice = 2.0 * int(np.logical_and(fg_pred, fg_truth).sum()) / total if total else 1.0
        return {"dice_foreground": dice, "dice_mean": dice}
    if truth is not None:
        gt_labels = {int(v) for v in np.flatnonzero(np.bincount(truth.ravel().astype(np.int64))) if v > 0}
        per_label = {k: v for k, v in per_label_dice(pred, truth).items() if k in gt_labels}
        metrics["dice_per_label"] = {str(k): per_label[k] for k in sorted(per_label)}
        metrics["dice_mean"] = float(np.mean(list(per_label.values()))) if per_label else None
        if not centroids:
            centroids = {k: list(v) for k, v in label_centroids(truth).items()}
    if centroids:
        metrics["identification_rate"] = identification_rate(label_centroids(pred), centroids, spacing)["rate"]
    return {k: v for k, v in metrics.items() if v is not None}


class Segment3dTask:
    name = "segment3d"

    def chunk(self, settings: Settings, card: ModelCard) -> int:
        return 1  # one volume at a time; its tiles are batched

    def prepare(self, session: Session, ctx: TaskContext, ids: list[int]) -> Prepared:
        targets = ctx.pixels.targets(session, ids, True)
        volumes = [ctx.pixels.volume(t) for t in targets]
        extra = [(v, ground_truth_volume(ctx.pixels, t, v.data.shape), ground_truth_centroids(t))
                 for t, v in zip(targets, volumes, strict=True)]
        return Prepared(ids, None, extra)

    def infer(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]:
        window = SlidingWindow(runtime, ctx.card, ctx.settings.inference_batch)
        results = []
        for item_id, (vol, truth, centroids) in zip(prepared.ids, prepared.extra, strict=True):
            labels = np.ascontiguousarray(to_canonical_axes(window(to_model_axes(vol.data))))
            save_mask_3d(mask_path(ctx.settings, ctx.model_id, item_id, three_d=True), labels, vol.spacing)
            present = [int(v) for v in np.flatnonzero(np.bincount(labels.ravel().astype(np.int64))) if v > 0]
            outputs = {"mask": prediction_mask_url(item_id, ctx.model_id), "labels": present}
            results.append(Result(item_id, outputs, volume_metrics(labels, truth, centroids, vol.spacing,
                                                                        window.foreground_only)))
        return results
