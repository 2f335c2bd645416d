"""Few-shot classifiers on an embedding model's stored vectors (issue 15): train one from N labelled items per
class and register it as an ordinary classify model; the label curve (balanced accuracy against labels per class).

Labels (`source`):
- `labels`: every embedded item's ground truth label, read as the evaluation reads it (the item's label or its
  label annotation; a user's corrected label annotation wins);
- `verdicts`: only the items reviewers confirmed — `review_status` `accepted` (their label as it is) or
  `corrected` (the corrected label) — the others are left out (a `reject` says the label is wrong, not which
  one is right).
Coded labels become the dataset kind's class names (PCam "0"/"1" → normal/tumor), so the card's classes are the
names the evaluation pages already use.

The model: the embedder's ONNX graph + the linear head (app.embeddings.fewshot_head), with a classify card whose
`input` is the embedder's and whose classes are the dataset's, registered through `registry.add_model` like an
upload (so predict jobs, the single-item predict and the evaluation pages take it as any classifier). Its
predictions for the dataset's other embedded items (the pool: all but the training items, so the evaluation
pages measure held-out items) are computed from the stored vectors — no image is read — and written as a classify
job writes them (`{"probabilities", "label"}`, metrics `correct`/`nll`). What it was trained on is kept beside the
model file (`fewshot.json`). Any failure after the registration removes the model again: no half-made model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import Identified
from app.catalog.queries import get_dataset
from app.config import Settings
from app.datasets.registry import get_adapter
from app.db.models import Dataset, Item, Model
from app.errors import InvalidInput
from app.inference import registry, vectors
from app.inference.card import card_from_dict
from app.inference.ground_truth import ground_truth_labels
from app.inference.postprocess import classify
from app.inference.predict import check_applies
from app.inference.store import insert_batch
from app.inference.tasks.base import Result
from app.inference.tasks.classify import item_metrics

from .fewshot_head import CURVE_SIZES, METHODS, Head, balanced_accuracy, compose_onnx, draw, fit_head, label_curve

SOURCES = ("labels", "verdicts")
CONFIRMED = ("accepted", "corrected")
SIDECAR = "fewshot.json"
_IDS_PER_QUERY = 5000
_ROWS_PER_INSERT = 2000


@dataclass(frozen=True)
class Labelled:
    """The embedded items with a label of the chosen source: `rows` into the vector set, `y` their class index."""

    embed: Model
    dataset: Dataset
    stored: vectors.Vectors
    classes: list[str]
    rows: np.ndarray
    y: np.ndarray
    truth: dict[int, str | None]  # every embedded item's ground-truth label (for the predictions' metrics)

    def pool(self, exclude: np.ndarray) -> np.ndarray:
        """Rows of the vectors of the dataset's items (a removed item's vector may linger), but `exclude`."""
        present = np.asarray([int(i) in self.truth for i in self.stored.ids], bool)
        present[exclude] = False
        return np.flatnonzero(present)

    def counts(self) -> dict[str, int]:
        return {c: int(n) for c, n in zip(self.classes, np.bincount(self.y, minlength=len(self.classes)),
                                          strict=True)}


def _label_order(value: str) -> tuple[int, float, str]:
    return (0, float(value), value) if re.fullmatch(r"-?\d+(\.\d+)?", value) else (1, 0.0, value)


def load_labelled(session: Session, settings: Settings, embed_model_id: int, dataset_id: int,
                  source: str = "labels") -> Labelled:
    """The embed model's vectors of the dataset and their labels; 404 unknown model/dataset, 400 a model that is
    not an embedder (or not for this dataset's kind), no vectors yet, fewer than two labelled classes."""
    if source not in SOURCES:
        raise InvalidInput(f"source: {source!r} is not one of {', '.join(SOURCES)}")
    embed, card = registry.embedding_model(session, embed_model_id, "a few-shot classifier", field="embed_model_id")
    dataset = get_dataset(session, dataset_id)
    check_applies(embed, card, dataset.kind)
    stored = vectors.load(settings, embed.id, dataset.id)
    if stored is None or not len(stored):
        raise InvalidInput(f"embed_model_id: model {embed.name!r} has no vectors of dataset {dataset.name!r} yet; "
                           f"compute them first (medview predict --model {embed.name} --dataset {dataset.name}, "
                           "or POST /api/jobs)")
    ids = [int(i) for i in stored.ids]
    truth: dict[int, str | None] = {}
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start:start + _IDS_PER_QUERY]
        known: dict[int, str | None] = {item_id: label for item_id, label in session.execute(
            select(Item.id, Item.label).where(Item.id.in_(chunk), Item.dataset_id == dataset.id))}
        truth.update(ground_truth_labels(session, list(known), known))  # vectors of removed items are skipped
    eligible = set(ids)
    if source == "verdicts":
        eligible = set(session.scalars(select(Item.id).where(Item.dataset_id == dataset.id,
                                                             Item.review_status.in_(CONFIRMED))))
    names = get_adapter(dataset.kind).facet_labels.get("label", {})
    raw = sorted({v for i, v in truth.items() if v is not None and i in eligible}, key=_label_order)
    classes = list(dict.fromkeys(names.get(v, v) for v in raw))
    if len(classes) < 2:
        what = "reviewer-confirmed (accepted or corrected)" if source == "verdicts" else "labelled"
        raise InvalidInput(f"source: dataset {dataset.name!r} has {what} embedded items of "
                           f"{len(classes)} class{'' if len(classes) == 1 else 'es'}; a classifier needs at least 2")
    index = {c: k for k, c in enumerate(classes)}
    rows, y = [], []
    for row, item_id in enumerate(ids):
        label = truth.get(item_id)
        if label is not None and item_id in eligible:
            rows.append(row)
            y.append(index[names.get(label, label)])
    return Labelled(embed, dataset, stored, classes, np.asarray(rows, np.int64), np.asarray(y, np.int64), truth)


def curve(session: Session, settings: Settings, embed_model_id: int, dataset_id: int, *, source: str = "labels",
          method: str = "logistic", draws: int = 5, seed: int = 0,
          sizes: Sequence[int] = CURVE_SIZES) -> dict[str, Any]:
    """The label curve: balanced accuracy on the held-out labelled items (mean ± sd over `draws` draws) at each
    number of labels per class in `sizes` that leaves every class a held-out item."""
    if method not in METHODS:
        raise InvalidInput(f"method: {method!r} is not one of {', '.join(METHODS)}")
    data = load_labelled(session, settings, embed_model_id, dataset_id, source)
    session.commit()  # no transaction held while fitting
    counts = data.counts()
    if min(counts.values()) < 2:
        small = min(counts, key=lambda c: counts[c])
        raise InvalidInput(f"source: class {small!r} has {counts[small]} labelled item with a vector; the curve "
                           "needs at least 2 per class (one to train on, one to test)")
    points = label_curve(data.stored.vectors[data.rows], data.y, len(data.classes),
                         method=method, sizes=sizes, draws=draws, seed=seed, class_names=data.classes)
    return {"embed_model_id": data.embed.id, "dataset_id": data.dataset.id, "source": source, "method": method,
            "draws": draws, "seed": seed, "classes": data.classes, "labelled": counts, "points": points}


def default_name(embed: Model, method: str, per_class: int, source: str) -> str:
    return f"{embed.name}-fewshot-{method}-{per_class}" + ("-verdicts" if source == "verdicts" else "")


def train(session: Session, settings: Settings, *, embed_model_id: int, dataset_id: int, per_class: int,
          source: str = "labels", method: str = "logistic", seed: int = 0, name: str | None = None,
          actor: Identified | str | None = None, address: str | None = None) -> dict[str, Any]:
    """Train, register and fill the predictions of a few-shot classifier; returns what was made."""
    if method not in METHODS:
        raise InvalidInput(f"method: {method!r} is not one of {', '.join(METHODS)}")
    if per_class < 1:
        raise InvalidInput(f"per_class: at least 1, got {per_class}")
    data = load_labelled(session, settings, embed_model_id, dataset_id, source)
    if data.embed.runtime != "onnx":
        raise InvalidInput(f"embed_model_id: model {data.embed.name!r} is a {data.embed.runtime} model; a few-shot "
                           "classifier is built onto an ONNX embedder's graph (its label curve works for any)")
    k = len(data.classes)
    picked = draw(data.y, per_class, k, np.random.default_rng(seed), data.classes)
    head = fit_head(data.stored.vectors[data.rows[picked]], data.y[picked], k, method, seed)
    held = np.setdiff1d(np.arange(len(data.rows)), picked, assume_unique=True)
    predicted = np.concatenate([head.predict(data.stored.vectors[data.rows[held[s:s + _ROWS_PER_INSERT]]])
                                for s in range(0, len(held), _ROWS_PER_INSERT)] or [np.zeros(0, np.int64)])
    heldout = {"items": int(len(held)),
               "balanced_accuracy": balanced_accuracy(data.y[held], predicted) if len(held) else None}
    train_ids = [int(data.stored.ids[data.rows[i]]) for i in picked]
    embed, dataset = data.embed, data.dataset
    model_name = name or default_name(embed, method, per_class, source)
    confirmed = "reviewer-confirmed labels" if source == "verdicts" else "dataset labels"
    score = f"{heldout['balanced_accuracy']:.3f}" if heldout["balanced_accuracy"] is not None else "n/a"
    card = {"name": model_name, "task": "classify",
            "description": f"few-shot {method} on {embed.name} vectors: {per_class} labelled items per class "
                           f"({confirmed}) of dataset {dataset.name}, seed {seed}; held-out balanced accuracy "
                           f"{score} on {heldout['items']} items",
            "input": embed.card["input"], "output": {"kind": "probabilities", "classes": data.classes},
            "applies_to": [dataset.kind]}
    card_from_dict(card, source="few-shot card")  # a bad name says so before any file is written
    onnx_bytes = compose_onnx(embed.path, head)
    pool_rows = data.pool(data.rows[picked])
    session.commit()
    model = registry.add_model(session, settings, onnx_bytes, "fewshot.onnx", card_text=json.dumps(card),
                               card_filename="card.json", actor=actor, address=address)
    training = {"embed_model_id": embed.id, "embed_model": embed.name, "dataset_id": dataset.id,
                "method": method, "source": source, "per_class": per_class, "seed": seed, "classes": data.classes,
                "labelled": data.counts(), "train_item_ids": sorted(train_ids), "heldout": heldout,
                "predicted": int(len(pool_rows))}
    try:
        (registry.models_dir(settings) / str(model.id) / SIDECAR).write_text(json.dumps(training, indent=1))
        _store_predictions(session, model, data, head, pool_rows)
    except BaseException:
        session.rollback()
        registry.delete_model(session, settings, model.id, actor, address)
        raise
    return {"model": registry.model_summary(model), **training}


def _store_predictions(session: Session, model: Model, data: Labelled, head: Head, rows: np.ndarray) -> None:
    """The pool's predictions, written like a classify job's (one transaction)."""
    card = registry.model_card(model)
    kind = data.dataset.kind
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[start:start + _ROWS_PER_INSERT]
        probabilities = head.probabilities(data.stored.vectors[part])
        results = []
        for row, prediction in zip(part, classify(probabilities, card), strict=True):
            item_id = int(data.stored.ids[row])
            truth = data.truth.get(item_id)
            results.append(Result(item_id, prediction.as_outputs(),
                                  item_metrics(prediction, truth, card, kind) if truth is not None else {}))
        insert_batch(session, model.id, results)
    session.commit()


def training_of(settings: Settings, model: Model) -> dict[str, Any] | None:
    """What a few-shot model was trained on (its `fewshot.json`), or None for another model."""
    path = registry.models_dir(settings) / str(model.id) / SIDECAR
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data
