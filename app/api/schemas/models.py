"""Registered models, and one item's prediction made on demand."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.schemas.fields import Id, RequestBody, Timestamp
from app.inference.card import ModelCard, Task


class ModelSummary(BaseModel):
    id: int
    name: str
    task: Task
    runtime: Literal["onnx", "torchscript"]
    file: str = Field(description="The model file's name.")
    card: ModelCard = Field(description="The validated model card (API.md, Models).")
    applies_to: list[str] = Field(description="Dataset kinds the card names.")
    created_at: Timestamp | None


class ModelDetail(ModelSummary):
    device: str = Field(description="Where this process runs the model (`cpu`, `cuda:0`).")


class PredictRequest(RequestBody):
    model_id: Id


class PredictionResult(BaseModel):
    """The prediction, stored (GET /api/items/{id} lists it too)."""

    model_id: int
    model_name: str
    task: Task
    outputs: dict[str, Any] = Field(description="Per task, as in the item's `predictions`.")
    metrics: dict[str, Any] | None = Field(description="Per-item metrics against the ground truth, when it exists.")


class PredictionPending(BaseModel):
    """The prediction outlasted MEDVIEW_PREDICT_WAIT_SECONDS: it goes on and is stored when done."""

    status: Literal["running"]
    item_id: int
    model_id: int
    detail: str
