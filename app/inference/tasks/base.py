"""What every task (classify, segment2d, detect2d, segment3d) provides to the one prediction path.

A task turns item ids into a prepared model input (`prepare`: read pixels and ground truth, preprocess —
runs on the job's prefetch thread with its own session) and a prepared input into stored results
(`infer`: run the model, postprocess, map back to the item's pixels, write mask files, compute per-item
metrics). The synchronous endpoint and jobs call the same two functions, so a prediction made either way is
the same. `chunk` is how many items one `prepare` takes: a job's batch for 2-D tasks, one volume for 3-D
(its tiles are then batched `inference_batch` at a time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.inference.card import ModelCard
from app.inference.runtime import InferenceRuntime
from app.pixels import PixelStore


@dataclass
class TaskContext:
    """Everything a task needs besides the items (the session is replaced on the prefetch thread)."""

    settings: Settings
    pixels: PixelStore
    card: ModelCard
    model_id: int
    dataset_kind: str


@dataclass
class Prepared:
    """A chunk of items read and preprocessed, ready for the model; `extra` holds per-item task state
    (geometries, ground truth…), aligned with `ids`."""

    ids: list[int]
    batch: Any
    extra: list[Any] = field(default_factory=list)


@dataclass
class Result:
    item_id: int
    outputs: dict[str, Any]
    metrics: dict[str, Any]


class Task(Protocol):
    name: str

    def chunk(self, settings: Settings, card: ModelCard) -> int:
        """Items per `prepare` call in a job."""
        ...

    def prepare(self, session: Session, ctx: TaskContext, ids: list[int]) -> Prepared: ...

    def infer(self, runtime: InferenceRuntime, ctx: TaskContext, prepared: Prepared) -> list[Result]: ...


def first_output(output: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    """The model's first output (MedView reads one)."""
    return output[0] if isinstance(output, tuple) else output


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The per-item metrics that go to the item_metrics table: finite numbers (booleans as 0/1); nested
    values such as per-label Dice stay in the prediction's JSON only."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, int | float) and math.isfinite(float(value)):  # bool is an int: 0/1
            out[name] = float(value)
    return out
