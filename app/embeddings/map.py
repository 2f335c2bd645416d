"""The embedding map's data (issue 15): a dataset's points in 2-D for one embedding model
(`app.embeddings.projection`) and a colour value per point for a chosen field.

Colours never query the items one by one: facet fields (label, split, review status, reviewer, slide, lesion
type…) come from the dataset's in-memory facet index (`app.catalog.counts`: every item's cell, the tuple of its
facet values), so 262,144 points are coloured with one binary search over its id array; `pred:MODEL_ID` (a
classifier's predicted class) and `verdict:MODEL_ID` (its right / wrong, a segmenter's Dice good / fair / poor,
as the grid's badges) are one indexed query each. The values are
categories, most frequent first, each point holding the number of its category (MAX_CATEGORIES at most; the
rest are folded into "other"), NO_VALUE for a point without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog.listing import PRED_PREFIX
from app.catalog.predicted import DICE_FAIR, DICE_GOOD
from app.catalog.queries import get_dataset
from app.catalog.state import Catalog
from app.config import Settings
from app.datasets.registry import get_adapter
from app.db.models import Dataset, Item, ItemMetric, Model, Prediction
from app.embeddings.ann import signature
from app.embeddings.projection import Projection, projection
from app.errors import InvalidInput, NotFound
from app.inference.registry import embedding_model, get_model
from app.inference.vectors import Vectors, load, store_dir

MAX_CATEGORIES = 24
VERDICT_PREFIX = "verdict:"  # `verdict:MODEL_ID`: a model's right / wrong (classifier) or Dice band (segmenter)
OTHER = "other"
NO_VALUE = 0xFFFF


@dataclass(frozen=True)
class MapSource:
    dataset: Dataset
    model: Model
    vectors: Vectors


def source(session: Session, settings: Settings, dataset_id: int, model_id: int) -> MapSource:
    """The dataset, the embedding model and its vectors for the dataset: 404 for an unknown dataset or model or
    when there are no vectors yet (saying how to make them), 400 for a model that is not an embedder."""
    dataset = get_dataset(session, dataset_id)
    model, _ = embedding_model(session, model_id, "the map")
    vectors = load(settings, model.id, dataset.id)
    if vectors is None:
        raise NotFound(f"dataset {dataset.name!r} has no embeddings from model {model.name!r} yet: run a predict "
                       "job of that model over the dataset (medview predict or POST /api/jobs)")
    return MapSource(dataset, model, vectors)


def points(settings: Settings, src: MapSource, method: str) -> Projection:
    """The dataset's map by `method` (pca|umap); raises projection.Computing while UMAP is being computed."""
    return projection(store_dir(settings, src.model.id, src.dataset.id), src.vectors, method)


def colour_fields(session: Session, dataset: Dataset) -> list[dict[str, str]]:
    """[{field, label}] a map of this dataset can be coloured by: its facets, then each classifier's prediction
    (`pred:MODEL_ID`) that applies to its kind."""
    out = [{"field": f, "label": f.replace("_", " ")} for f in get_adapter(dataset.kind).facet_fields]
    for model in session.scalars(select(Model).where(Model.task != "embed").order_by(Model.id)):
        if dataset.kind not in (model.card.get("applies_to") or []):
            continue
        if model.task == "classify":
            out.append({"field": f"{PRED_PREFIX}{model.id}", "label": f"predicted by {model.name}"})
        if model.task in ("classify", "segment2d", "segment3d"):
            out.append({"field": f"{VERDICT_PREFIX}{model.id}", "label": f"{model.name}: right / wrong"
                        if model.task == "classify" else f"{model.name}: Dice good / fair / poor"})
    return out


def colours(session: Session, catalog: Catalog, src: MapSource, field: str) -> dict[str, Any]:
    """{field, values: [{value, label, count}], codes: uint16 per point in the vectors' id order}."""
    ds, ids = src.dataset, src.vectors.ids
    if field.startswith(PRED_PREFIX):
        raw = _predicted(session, ds, field, ids)
    elif field.startswith(VERDICT_PREFIX):
        raw = _verdicts(session, ds, field, ids)
    else:
        fields = get_adapter(ds.kind).facet_fields
        if field not in fields:
            choices = ", ".join([*fields, f"{PRED_PREFIX}MODEL_ID", f"{VERDICT_PREFIX}MODEL_ID"])
            raise InvalidInput(f"field {field!r} is not a facet of {ds.kind} items; colour by one of {choices}")
        index = catalog.indexes.get(session, ds)
        if index is None:
            raise InvalidInput(f"dataset {ds.name!r} is still indexing; its facet values are not ready yet")
        k = index.fields.index(field)
        cells, _ = index.snapshot()
        cell_values = np.array([", ".join(sig[k]) if sig[k] else None for sig in cells] + [None], object)
        pos = np.minimum(np.searchsorted(index.ids, ids), max(index.ids.size - 1, 0))
        held = (index.ids[pos] == ids) if index.ids.size else np.zeros(ids.size, bool)
        cell = np.where(held, index.cell_of[pos] if index.ids.size else 0, len(cells))
        cell[cell > len(cells)] = len(cells)  # an item moved to a cell made after the snapshot: no value for now
        raw = cell_values[cell]
    labels = get_adapter(ds.kind).facet_labels.get(field, {})
    return encode(raw, labels, field)


def _predicted(session: Session, ds: Dataset, field: str, ids: np.ndarray) -> np.ndarray:
    model_id = field[len(PRED_PREFIX):]
    if not model_id.isdigit():
        raise InvalidInput(f"field {field!r}: a prediction field is pred:MODEL_ID, e.g. pred:1")
    model = get_model(session, int(model_id))
    if model.task != "classify":
        raise InvalidInput(f"field {field!r}: model {model.name!r} is a {model.task} model; colour by a "
                           "classifier's predicted class")
    rows = session.execute(select(Prediction.item_id, Prediction.outputs["label"].as_string())
                           .join(Item, Item.id == Prediction.item_id)
                           .where(Prediction.model_id == model.id, Item.dataset_id == ds.id)).all()
    found = {int(i): label for i, label in rows if label is not None}
    return np.array([found.get(int(i)) for i in ids.tolist()] if found else [None] * ids.size, object)


def _verdicts(session: Session, ds: Dataset, field: str, ids: np.ndarray) -> np.ndarray:
    """The grid badges' verdicts (app.catalog.predicted): a classifier's right / wrong from its `correct` item
    metric, a segmenter's good / fair / poor from its Dice; no value without ground truth or prediction."""
    model_id = field[len(VERDICT_PREFIX):]
    if not model_id.isdigit():
        raise InvalidInput(f"field {field!r}: a verdict field is verdict:MODEL_ID, e.g. verdict:1")
    model = get_model(session, int(model_id))
    if model.task not in ("classify", "segment2d", "segment3d"):
        raise InvalidInput(f"field {field!r}: model {model.name!r} is a {model.task} model; verdicts are a "
                           "classifier's right / wrong or a segmenter's Dice")
    name = "correct" if model.task == "classify" else "dice"
    rows = session.execute(select(ItemMetric.item_id, ItemMetric.value).join(Item, Item.id == ItemMetric.item_id)
                           .where(ItemMetric.model_id == model.id, ItemMetric.name == name,
                                  Item.dataset_id == ds.id)).all()

    def verdict(v: float) -> str:
        if name == "correct":
            return "right" if v >= 0.5 else "wrong"
        return "good" if v >= DICE_GOOD else "fair" if v >= DICE_FAIR else "poor"

    found = {int(i): verdict(float(v)) for i, v in rows if v is not None}
    return np.array([found.get(int(i)) for i in ids.tolist()], object)


def encode(raw: np.ndarray, labels: Mapping[str, str], field: str) -> dict[str, Any]:
    """Categories by frequency (ties by value), the tail past MAX_CATEGORIES - 1 folded into "other"."""
    present = np.array([v is not None for v in raw.tolist()], bool)
    values, inverse, counts = np.unique(raw[present].astype(str), return_inverse=True, return_counts=True)
    order = sorted(range(len(values)), key=lambda n: (-int(counts[n]), str(values[n])))
    if len(order) > MAX_CATEGORIES:
        kept, folded = order[:MAX_CATEGORIES - 1], order[MAX_CATEGORIES - 1:]
    else:
        kept, folded = order, []
    number = np.full(len(values), len(kept), np.uint16)  # folded values → "other"
    number[kept] = np.arange(len(kept), dtype=np.uint16)
    codes = np.full(raw.size, NO_VALUE, np.uint16)
    codes[present] = number[inverse]
    legend = [{"value": str(values[n]), "label": labels.get(str(values[n]), str(values[n])), "count": int(counts[n])}
              for n in kept]
    if folded:
        legend.append({"value": OTHER, "label": f"{len(folded)} other values",
                       "count": int(sum(int(counts[n]) for n in folded))})
    return {"field": field, "values": legend, "missing": int(raw.size - present.sum()), "codes": codes}


def signature_of(src: MapSource) -> str:
    """Names the vector set (the colours' header carries it, so a page can tell they belong to its points)."""
    return signature(src.vectors)


def embedders_with_vectors(session: Session, settings: Settings, dataset: Dataset) -> list[dict[str, Any]]:
    """{id, name} of each embedding model with vectors for the dataset (a look at its folder, not a load)."""
    out = []
    for model in session.scalars(select(Model).where(Model.task == "embed").order_by(Model.id)):
        folder = store_dir(settings, model.id, dataset.id)
        if folder.is_dir() and any(folder.glob("chunk-*.npz")):
            out.append({"id": model.id, "name": model.name})
    return out
