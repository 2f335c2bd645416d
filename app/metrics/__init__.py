"""Evaluation metrics as pure functions on numpy arrays (classification, segmentation, detection, vertebrae).

This layer imports nothing of ours. Every function documents the definition it implements; results are plain
Python floats / ints / lists / dicts so they can be stored as JSON.
"""

from app.metrics.classification import classification_metrics, item_correct, item_nll
from app.metrics.detection import froc
from app.metrics.segmentation import (
    dice,
    e_measure,
    iou,
    mae,
    s_measure,
    segmentation_metrics,
    weighted_f_measure,
)
from app.metrics.vertebrae import identification_rate, label_centroids, per_label_dice, vertebrae_metrics

__all__ = [
    "classification_metrics",
    "dice",
    "e_measure",
    "froc",
    "identification_rate",
    "iou",
    "item_correct",
    "item_nll",
    "label_centroids",
    "mae",
    "per_label_dice",
    "s_measure",
    "segmentation_metrics",
    "vertebrae_metrics",
    "weighted_f_measure",
]
