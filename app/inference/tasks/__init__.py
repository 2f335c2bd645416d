"""The prediction tasks by card task name, and which dataset kinds each can run on."""

from __future__ import annotations

from app.datasets.registry import adapters, get_adapter
from app.errors import InvalidInput
from app.inference.card import ModelCard
from app.inference.tasks.base import Prepared, Result, Task, TaskContext
from app.inference.tasks.classify import ClassifyTask
from app.inference.tasks.detect2d import Detect2dTask
from app.inference.tasks.embed import EmbedTask
from app.inference.tasks.segment2d import Segment2dTask
from app.inference.tasks.segment3d import Segment3dTask

TASKS: dict[str, Task] = {t.name: t for t in (ClassifyTask(), Segment2dTask(), Detect2dTask(), Segment3dTask(),
                                               EmbedTask())}


def get_task(card: ModelCard) -> Task:
    return TASKS[card.task]


def task_misfit(card: ModelCard, dataset_kind: str) -> str | None:
    """Why a model of this task cannot run on items of this kind, or None when it can (from what the kind's adapter
    declares: `has_volumes`, `volume_only`)."""
    adapter = get_adapter(dataset_kind)
    if card.task == "segment3d" and not adapter.has_volumes:
        volume_kinds = [k for k, a in adapters().items() if a.has_volumes]
        return (f"a segment3d model segments volumes, but {dataset_kind} items are 2-D images "
                f"(segment3d runs on {', '.join(volume_kinds)} items)")
    if card.task in ("segment2d", "detect2d", "embed") and adapter.volume_only:
        return f"a {card.task} model takes 2-D images, but {dataset_kind} items are volumes; use a segment3d model"
    return None


def check_task_fits(card: ModelCard, dataset_kind: str, model_name: str) -> None:
    reason = task_misfit(card, dataset_kind)
    if reason:
        raise InvalidInput(f"model {model_name!r} cannot run on {dataset_kind} items: {reason}")


__all__ = ["TASKS", "Prepared", "Result", "Task", "TaskContext", "check_task_fits", "get_task", "task_misfit"]
