"""Vertebra labelling metrics (VerSe challenge): per-label Dice and identification rate.

Label volumes are integer arrays with 0 = background and one label per vertebra (VerSe numbers 1-28).
Centroids are ``{label: (i, j, k)}`` in voxel coordinates of the same array; ``spacing_mm`` is the voxel
size along (i, j, k).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

ID_MAX_MM = 20.0


def _labels(volume: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(volume)
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
        raise ValueError(f"{what} must be an integer label volume, got {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{what} has negative labels")
    return arr.astype(np.int64)


def per_label_dice(pred_labels: ArrayLike, gt_labels: ArrayLike) -> dict[int, float]:
    """Dice 2|P_l ∩ G_l| / (|P_l| + |G_l|) for every label l > 0 present in either volume.

    A label only in the prediction scores 0.0 (a hallucinated vertebra), one only in the GT 0.0 (a missed one).
    """
    pred = _labels(pred_labels, "pred_labels")
    gt = _labels(gt_labels, "gt_labels")
    if pred.shape != gt.shape:
        raise ValueError(f"pred_labels shape {pred.shape} differs from gt_labels shape {gt.shape}")
    size = int(max(pred.max(initial=0), gt.max(initial=0))) + 1
    pred_count = np.bincount(pred.ravel(), minlength=size)
    gt_count = np.bincount(gt.ravel(), minlength=size)
    inter = np.bincount(gt[gt == pred], minlength=size)
    return {
        label: 2.0 * int(inter[label]) / int(pred_count[label] + gt_count[label])
        for label in range(1, size)
        if pred_count[label] + gt_count[label] > 0
    }


def label_centroids(labels: ArrayLike) -> dict[int, tuple[float, ...]]:
    """Centre of mass (voxel coordinates) of every label > 0 in an integer label volume.

    Summed one slab (first-axis index) at a time, so memory stays at a few planes rather than the 3 × voxels
    × 8 bytes of a full coordinate grid (1.5 GB for a 512 × 512 × 240 CT)."""
    arr = _labels(labels, "labels")
    if arr.size == 0 or arr.max(initial=0) == 0:
        return {}
    size = int(arr.max()) + 1
    if arr.ndim == 1:
        counts = np.bincount(arr, minlength=size).astype(float)
        sums: np.ndarray = np.bincount(arr, weights=np.arange(arr.size), minlength=size)[None]  # float64 (weighted)
    else:
        counts = np.zeros(size)
        sums = np.zeros((arr.ndim, size))
        rest = np.indices(arr.shape[1:]).reshape(arr.ndim - 1, -1)
        for first in range(arr.shape[0]):
            flat = arr[first].ravel()
            if not flat.any():
                continue
            plane_counts = np.bincount(flat, minlength=size)
            counts += plane_counts
            sums[0] += plane_counts * first
            for axis, coords in enumerate(rest, 1):
                sums[axis] += np.bincount(flat, weights=coords, minlength=size)
    present = [int(v) for v in np.flatnonzero(counts) if v > 0]
    return {label: tuple(float(s[label] / counts[label]) for s in sums) for label in present}


def identification_rate(
    pred_centroids: Mapping[int, Sequence[float]],
    gt_centroids: Mapping[int, Sequence[float]],
    spacing_mm: Sequence[float],
    max_mm: float = ID_MAX_MM,
) -> dict[str, Any]:
    """Identification rate as in VerSe (Sekuboyina et al. 2021, after Glocker et al. 2013).

    A GT vertebra with label l is identified when the prediction has a centroid for l, that centroid lies within
    ``max_mm`` (20 mm) of GT centroid l, and GT centroid l is the closest of all GT centroids to it (a tie
    with another label's GT centroid counts as closest). Distances are Euclidean in mm (voxel offsets times
    ``spacing_mm``). rate = identified / number of GT vertebrae (None without GT); predicted labels absent from
    the GT do not change the rate. Also returns ``per_label`` (identified or not) and ``distance_mm``
    (localisation error of each GT label that was predicted).
    """
    spacing = np.asarray(spacing_mm, dtype=float)
    gt_ids = sorted(int(k) for k in gt_centroids)
    if gt_ids:
        gt_xyz = np.array([gt_centroids[k] for k in gt_ids], dtype=float) * spacing
        if gt_xyz.shape[1] != spacing.size:
            raise ValueError(f"centroids have {gt_xyz.shape[1]} coordinates, spacing_mm has {spacing.size}")
    per_label: dict[int, bool] = {}
    distance: dict[int, float] = {}
    for row, label in enumerate(gt_ids):
        if label not in pred_centroids:
            per_label[label] = False
            continue
        p = np.asarray(pred_centroids[label], dtype=float) * spacing
        dists = np.sqrt(((gt_xyz - p) ** 2).sum(axis=1))
        distance[label] = float(dists[row])
        per_label[label] = bool(dists[row] <= max_mm and dists[row] <= dists.min())
    identified = sum(per_label.values())
    return {
        "n": len(gt_ids),
        "identified": identified,
        "rate": identified / len(gt_ids) if gt_ids else None,
        "per_label": per_label,
        "distance_mm": distance,
    }


def vertebrae_metrics(cases: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics over scans. Each case may hold ``pred_labels`` / ``gt_labels`` (label volumes),
    ``pred_centroids`` / ``gt_centroids`` (default: centres of mass of the label volumes) and ``spacing_mm``
    (needed for identification).

    dice_per_label: {"label": mean Dice over the cases whose GT contains the label}, keys as strings (JSON).
    identification_rate: mean over scans of each scan's rate (VerSe reports per-scan id.rate statistics);
    None when no case has GT centroids and a spacing.
    """
    dice_sums: dict[int, float] = {}
    dice_counts: dict[int, int] = {}
    rates: list[float] = []
    n = 0
    for case in cases:
        n += 1
        pred_l, gt_l = case.get("pred_labels"), case.get("gt_labels")
        if pred_l is not None and gt_l is not None:
            gt_present = {int(v) for v in np.unique(np.asarray(gt_l)) if v > 0}
            for label, value in per_label_dice(pred_l, gt_l).items():
                if label in gt_present:
                    dice_sums[label] = dice_sums.get(label, 0.0) + value
                    dice_counts[label] = dice_counts.get(label, 0) + 1
        gt_c = case.get("gt_centroids")
        if gt_c is None and gt_l is not None:
            gt_c = label_centroids(gt_l)
        pred_c = case.get("pred_centroids")
        if pred_c is None and pred_l is not None:
            pred_c = label_centroids(pred_l)
        spacing = case.get("spacing_mm")
        if gt_c and spacing is not None:
            rate = identification_rate(pred_c or {}, gt_c, spacing)["rate"]
            if rate is not None:
                rates.append(rate)
    return {
        "n": n,
        "dice_per_label": {str(k): dice_sums[k] / dice_counts[k] for k in sorted(dice_sums)},
        "identification_rate": float(np.mean(rates)) if rates else None,
    }
