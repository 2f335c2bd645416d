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

from app.config import Settings
from app.datasets.base import ItemRef, PixelError
from app.datasets.registry import get_adapter
from app.datasets.volumes import Volume
from app.errors import InvalidInput
from app.inference.card import ModelCard
from app.inference.masks import mask_path, mask_url, save_mask_3d
from app.inference.runtime import InferenceRuntime
from app.inference.tasks.base import Prepared, Result, TaskContext
from app.inference.volume3d import SlidingWindow, to_canonical_axes, to_model_axes
from app.metrics.vertebrae import identification_rate, label_centroids, per_label_dice
from app.render.service import PixelUnavailable, RenderTarget, load_targets

VOLUME_KINDS = ("verse", "dicom")


def item_volume(kind: str, ref: ItemRef) -> Volume:
    """The item's canonical CT volume as the viewer's planes are cut from it (per-process volume cache)."""
    adapter = get_adapter(kind)
    try:
        if hasattr(adapter, "volume"):
            return adapter.volume(ref)
        if kind == "verse":
            return adapter._volume(ref, ref.location, labels=False)  # noqa: SLF001 - the adapter's own loader
    except PixelError as exc:
        raise PixelUnavailable(str(exc)) from None
    raise InvalidInput(f"{kind} items are not volumes; segment3d models need {' or '.join(VOLUME_KINDS)} items")


def ground_truth_volume(target: RenderTarget, shape: tuple[int, ...]) -> np.ndarray | None:
    """The VerSe vertebra mask in the canonical frame, or None (no mask, unreadable, or another grid)."""
    if target.kind != "verse":
        return None
    for ann in target.annotations:
        rel = (ann.geometry or {}).get("mask") if ann.kind == "mask" else None
        if isinstance(rel, str):
            try:
                vol = get_adapter("verse")._volume(target.ref, rel, labels=True)  # noqa: SLF001
            except PixelError:
                return None
            return vol.data if vol.data.shape == shape else None
    return None


def ground_truth_centroids(target: RenderTarget) -> dict[int, list[float]]:
    """{label: canonical voxel point} of the item's centroid annotations."""
    out = {}
    for ann in target.annotations:
        point = (ann.geometry or {}).get("point")
        if ann.kind == "centroid" and point and str(ann.label).isdigit():
            out[int(ann.label)] = [float(v) for v in point]
    return out


def volume_metrics(pred: np.ndarray, truth: np.ndarray | None, centroids: dict[int, list[float]],
                   spacing: tuple[float, float, float]) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
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
        targets = load_targets(session, ids, True, ctx.settings.allowed_roots)
        volumes = [item_volume(t.kind, t.ref) for t in targets]
        extra = [(v, ground_truth_volume(t, v.data.shape), ground_truth_centroids(t))
                 for t, v in zip(targets, volumes, strict=True)]
        return Prepared(ids, None, extra)

    def infer(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]:
        window = SlidingWindow(runtime, ctx.card, ctx.settings.inference_batch)
        results = []
        for item_id, (vol, truth, centroids) in zip(prepared.ids, prepared.extra, strict=True):
            labels = np.ascontiguousarray(to_canonical_axes(window(to_model_axes(vol.data))))
            save_mask_3d(mask_path(ctx.settings, ctx.model_id, item_id, three_d=True), labels, vol.spacing)
            present = [int(v) for v in np.flatnonzero(np.bincount(labels.ravel().astype(np.int64))) if v > 0]
            outputs = {"mask": mask_url(item_id, ctx.model_id), "labels": present}
            results.append(Result(item_id, outputs, volume_metrics(labels, truth, centroids, vol.spacing)))
        return results
