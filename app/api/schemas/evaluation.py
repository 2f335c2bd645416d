"""GET /api/models/{id}/evaluation: a model's metrics over a dataset selection, one shape per task."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field


class WorstFirst(BaseModel):
    """The per-item metric whose order lists the worst items first (for the items list's `sort=`)."""

    metric: str
    descending: bool
    sort: str = Field(description="The `sort=` value, e.g. `-metric:3:nll`.")


class EvaluationHead(BaseModel):
    model_id: int
    dataset_id: int
    predicted: int = Field(description="Items of the selection with a prediction from the model.")
    worst_first: WorstFirst
    n: int = Field(description="Items with both a prediction and usable ground truth.")
    annotations: Literal["current", "dataset"] = Field(
        description="The ground truth: the current (corrected) annotation versions, or the dataset's own.")


class RocCurve(BaseModel):
    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]


class ClassifyEvaluation(EvaluationHead):
    task: Literal["classify"]
    classes: list[str]
    accuracy: float | None
    auc: float | None = Field(description="ROC AUC (binary) or macro one-vs-rest AUC; null with one class present.")
    nll: float | None = Field(description="Mean negative log-likelihood of the true class.")
    balanced_accuracy: float | None
    confusion_matrix: list[list[int]] | None = Field(description="Rows = truth, columns = predicted class.")
    roc: RocCurve | None = Field(description="Binary classification only, at most 200 points.")


class DiceHistogram(BaseModel):
    edges: list[float]
    counts: list[int]


class Segment2dEvaluation(EvaluationHead):
    """Means over images of the per-image scores (the segmentation toolkits' convention)."""

    task: Literal["segment2d"]
    dice: float | None
    iou: float | None
    wfm: float | None = Field(description="Weighted F-measure.")
    s_measure: float | None
    e_measure: float | None
    mae: float | None
    dice_histogram: DiceHistogram
    excluded_edited: int = Field(description="Items left out: their stored per-item metrics were scored against "
                                 "other ground truth than `annotations` (edited after, or corrected before, "
                                 "the prediction).")


class FrocCurve(BaseModel):
    fps_per_image: list[float]
    sensitivity: list[float] | None
    thresholds: list[float]


class Detect2dEvaluation(EvaluationHead):
    task: Literal["detect2d"]
    n_gt: int = Field(description="Ground-truth boxes.")
    sensitivity_at_fp: dict[str, float | None] = Field(description="Sensitivity at 0.5, 1, 2, 4, 8 false positives "
                                                                   "per image (keys as text: `\"0.5\"`, `\"1\"`, …).")
    froc: FrocCurve


class Segment3dEvaluation(EvaluationHead):
    task: Literal["segment3d"]
    dice_per_label: dict[str, float] = Field(description="Mean Dice per vertebra label, over the scans having it.")
    dice_mean: float | None
    identification_rate: float | None = Field(description="Mean of the per-scan vertebra identification rates.")
    dice_foreground: float | None = Field(None, description="A model of one output channel (a mask without vertebra "
                                          "numbers): mean Dice of its foreground against every labelled voxel; "
                                          "`dice_mean` is the same and `dice_per_label` is empty.")
    excluded_edited: int = Field(description="Items left out: their stored per-item metrics were scored against "
                                 "other ground truth than `annotations` (edited after, or corrected before, "
                                 "the prediction).")


Evaluation = Annotated[ClassifyEvaluation | Segment2dEvaluation | Detect2dEvaluation | Segment3dEvaluation,
                       Field(discriminator="task")]
