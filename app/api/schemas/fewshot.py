"""Few-shot classifiers on embeddings (issue 15): the training request and answer, the label curve."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas.fields import Id, RequestBody
from app.api.schemas.models import ModelSummary

Source = Literal["labels", "verdicts"]
Method = Literal["logistic", "svm"]


class FewshotIn(RequestBody):
    embed_model_id: Id = Field(description="The embedding model (task embed) whose stored vectors are trained on.")
    dataset_id: Id
    per_class: int = Field(5, ge=1, le=10_000, description="Labelled items drawn per class to train on.")
    source: Source = Field("labels", description="`labels`: the items' ground truth labels; `verdicts`: only the "
                                                 "items reviewers accepted or corrected.")
    method: Method = Field("logistic", description="`logistic` regression, or a linear `svm` with Platt-scaled "
                                                   "probabilities.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds the draw of the training items and the fit.")
    name: str | None = Field(None, min_length=1, max_length=200, description="The new model's name (default "
                                                                             "EMBEDDER-fewshot-METHOD-N).")


class Heldout(BaseModel):
    items: int = Field(description="Labelled items not trained on.")
    balanced_accuracy: float | None = Field(description="On those items (None when there are none).")


class FewshotTraining(BaseModel):
    embed_model_id: int
    embed_model: str
    dataset_id: int
    method: Method
    source: Source
    per_class: int
    seed: int
    classes: list[str] = Field(description="The new model's classes, in output order.")
    labelled: dict[str, int] = Field(description="Labelled embedded items per class (of the source).")
    train_item_ids: list[int]
    heldout: Heldout
    predicted: int = Field(description="Predictions written from the stored vectors: every embedded item of the "
                                       "dataset but the training items.")


class FewshotOut(FewshotTraining):
    model: ModelSummary = Field(description="The registered classify model.")


class CurvePoint(BaseModel):
    per_class: int
    mean: float = Field(description="Mean balanced accuracy over the draws.")
    sd: float = Field(description="Its sample standard deviation.")
    draws: list[float]
    train: int = Field(description="Training items per draw.")
    test: int = Field(description="Held-out items each draw is tested on.")


class FewshotCurve(BaseModel):
    embed_model_id: int
    dataset_id: int
    source: Source
    method: Method
    draws: int
    seed: int
    classes: list[str]
    labelled: dict[str, int]
    points: list[CurvePoint] = Field(description="One per labels-per-class size of 1, 5, 10, 25, 50, 100, 250 "
                                                 "that leaves every class a held-out item.")
