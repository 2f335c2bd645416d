"""Registered models: add (card + file checked by loading them), list, get, and loaded runtimes per process.

A model is accepted only when its card is valid and its file loads in the runtime its suffix names and
agrees with the card (input shape, class count…): the same `open_model` that predictions use, so a model
that registers is one that runs. Files live under ``data_dir/models/<id>/<original name>``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit
from app.audit import Identified
from app.config import Settings
from app.db.lookup import get_or_404
from app.db.models import ItemMetric, Job, Model, Prediction
from app.errors import Conflict, InvalidInput
from app.inference.card import ModelCard, card_from_dict, card_from_text, load_card
from app.inference.runtime import RUNTIMES, InferenceRuntime, ModelLoadError, open_model
from app.inference.vectors import remove_vectors

log = logging.getLogger(__name__)

RUNTIME_NAMES = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}
ModelSource = bytes | Path | BinaryIO


def models_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "models"


def _safe_filename(filename: str) -> str:
    name = Path(filename.replace("\\", "/")).name
    if not name or name in (".", ".."):
        raise InvalidInput(f"model file name {filename!r} is not usable")
    suffix = Path(name).suffix.lower()
    if suffix not in RUNTIMES:
        raise ModelLoadError(f"unknown model file type {suffix or '(none)'!r}; expected one of {', '.join(RUNTIMES)}")
    return name


def _write(source: ModelSource, target: Path) -> None:
    if isinstance(source, bytes):
        target.write_bytes(source)
    elif isinstance(source, Path):
        try:
            shutil.copyfile(source, target)
        except OSError as exc:
            raise ModelLoadError(f"cannot read the model file {source}: {exc.strerror or exc}") from None
    else:
        with target.open("wb") as fh:
            shutil.copyfileobj(source, fh)


def parse_card(card_text: str | bytes | None = None, card_path: str | Path | None = None,
               card_filename: str | None = None) -> ModelCard:
    """A card from its text (format from `card_filename`'s suffix, else sniffed) or from a file."""
    if card_path is not None:
        return load_card(card_path)
    if card_text is None:
        raise InvalidInput("a model card is required (card)")
    suffix = Path(card_filename or "").suffix.lower()
    fmt = "json" if suffix == ".json" else "yaml" if suffix in (".yaml", ".yml") else None
    return card_from_text(card_text, fmt, source=card_filename or "model card")


def add_model(session: Session, settings: Settings, source: ModelSource, filename: str, *,
              card_text: str | bytes | None = None, card_path: str | Path | None = None,
              card_filename: str | None = None, actor: Identified | str | None = None,
              address: str | None = None) -> Model:
    """Validate card and file, store the file and register the model (with its `model.add` audit event). Raises
    ModelCardError, ModelLoadError, ModelCardMismatch (all InvalidInput) or Conflict for a name already registered.
    TorchScript files run code when loaded: refused unless MEDVIEW_ALLOW_TORCHSCRIPT is on."""
    card = parse_card(card_text, card_path, card_filename)
    name = _safe_filename(filename)
    if RUNTIME_NAMES.get(Path(name).suffix.lower()) == "torchscript" and not settings.allow_torchscript:
        raise InvalidInput(f"{name}: TorchScript models can run code when loaded and are refused here; an admin "
                           "may allow them with MEDVIEW_ALLOW_TORCHSCRIPT=true (or export the model to ONNX)")
    if session.scalar(select(Model.id).where(Model.name == card.name)) is not None:
        raise Conflict(f"a model named {card.name!r} is already registered")
    base = models_dir(settings)
    incoming = base / f".incoming-{uuid.uuid4().hex}"
    incoming.mkdir(parents=True, exist_ok=True)
    try:
        staged = incoming / name
        _write(source, staged)
        open_model(staged, card, settings.device)  # raises with the reason when file and card disagree
        model = Model(name=card.name, task=card.task, runtime=RUNTIME_NAMES[staged.suffix.lower()], path="",
                      card=card.model_dump(mode="json", exclude_none=True))
        session.add(model)
        session.flush()
        final_dir = base / str(model.id)
        if final_dir.exists():  # left over from a registration whose transaction was rolled back
            shutil.rmtree(final_dir)
        incoming.rename(final_dir)
        model.path = str(final_dir / name)
        audit.record(session, actor, "model.add", "model", model.id, after={
            "name": model.name, "task": model.task, "runtime": model.runtime, "file": name}, address=address)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            shutil.rmtree(final_dir, ignore_errors=True)
            raise Conflict(f"a model named {card.name!r} is already registered") from None
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    log.info("registered model %s (%s, %s) as id %d", model.name, model.task, model.runtime, model.id)
    return model


def delete_model(session: Session, settings: Settings, model_id: int, actor: Identified | str | None = None,
                 address: str | None = None) -> dict[str, Any]:
    """Remove a model, its predictions, per-item metrics and files (the model file, its predicted masks, its
    embedding vectors); the
    audit log keeps what it was. Refused (Conflict) while a job of it is queued or running."""
    model = get_model(session, model_id)
    active = session.scalars(select(Job.id).where(Job.status.in_(("queued", "running")))).all()
    for job_id in active:
        job = session.get(Job, job_id)
        if job is not None and (job.params or {}).get("model_id") == model_id:
            raise Conflict(f"model {model_id} has a {job.status} job ({job_id}); cancel it first")
    summary = {"name": model.name, "task": model.task, "runtime": model.runtime, "file": Path(model.path).name}
    result = cast(CursorResult[Any], session.execute(delete(Prediction).where(Prediction.model_id == model_id)))
    removed = result.rowcount
    session.execute(delete(ItemMetric).where(ItemMetric.model_id == model_id))
    session.delete(model)
    audit.record(session, actor, "model.delete", "model", model_id, before=summary,
                 after={"predictions_removed": removed}, address=address)
    session.commit()
    shutil.rmtree(models_dir(settings) / str(model_id), ignore_errors=True)
    shutil.rmtree(Path(settings.data_dir) / "predictions" / str(model_id), ignore_errors=True)
    remove_vectors(settings, model_id=model_id)  # its embeddings (item and lesion vectors, ANN indexes)
    return {**summary, "id": model_id, "predictions_removed": removed}


def model_card(model: Model) -> ModelCard:
    return card_from_dict(model.card, source=f"model {model.name}")


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.id)))


def get_model(session: Session, model_id: int) -> Model:
    return get_or_404(session, Model, model_id, "model")


def embedding_model(session: Session, model_id: int, use: str, field: str | None = None) -> tuple[Model, ModelCard]:
    """The model and its card when it is an embedder (card task `embed`): 404 for an unknown model, 400 for a
    model of another task, saying what needed the embedder (`use`, e.g. "the map") and, for a request body, which
    `field` named the model."""
    model = get_model(session, model_id)
    card = model_card(model)
    if card.task != "embed":
        raise InvalidInput(f"{field + ': ' if field else ''}model {model.name!r} is a {card.task} model, not an "
                           f"embedding model (card task: embed), which {use} needs")
    return model, card


def model_summary(model: Model) -> dict[str, Any]:
    return {"id": model.id, "name": model.name, "task": model.task, "runtime": model.runtime,
            "file": Path(model.path).name, "card": model.card,
            "applies_to": model.card.get("applies_to", []),
            "created_at": model.created_at.isoformat() if model.created_at else None}


class RuntimeCache:
    """Loaded runtimes of this process, keyed by model id and device setting (loading once per model)."""

    def __init__(self) -> None:
        self._runtimes: dict[tuple[int, str], InferenceRuntime] = {}
        self._lock = threading.Lock()

    def get(self, model: Model, device_setting: str, card: ModelCard | None = None) -> InferenceRuntime:
        """The model's runtime, loaded on first use; `card`: the model's card when the caller parsed it already."""
        key = (model.id, device_setting)
        with self._lock:
            runtime = self._runtimes.get(key)
            if runtime is None:
                runtime = open_model(model.path, card or model_card(model), device_setting)
                self._runtimes[key] = runtime
            return runtime

    def clear(self) -> None:
        with self._lock:
            self._runtimes.clear()


def applicable_models(session: Session, kind: str, task: str | None = "classify") -> list[dict[str, Any]]:
    """Summaries of the registered models whose card applies to datasets of `kind` (and of `task`)."""
    return [{**model_summary(m), "classes": card_classes(m)} for m in list_models(session)
            if kind in (m.card.get("applies_to") or []) and (task is None or m.task == task)]


def card_classes(model: Model) -> list[str]:
    return list((model.card.get("output") or {}).get("classes") or [])
