"""`GET /api/items/{id}/similar?model=&k=`: the k items of the item's dataset whose embedding (by an `embed`
model, `app.inference.vectors`) is nearest to the item's, by cosine, best first, the item itself left out —
and with `exclude_same_patient`, every item of its patient too (DeepLesion's retrieval protocol: a lesion's
nearest neighbours should not be the same lesion on another study of the same patient). Exact search up to
`EXACT_MAX` vectors (`app.embeddings.search`), a usearch HNSW index above (`app.embeddings.ann`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog.queries import get_item
from app.config import Settings
from app.db.models import Item
from app.embeddings.ann import EXACT_MAX, ann_top_k, index_if_ready
from app.embeddings.search import top_k
from app.errors import InvalidInput, NotFound
from app.inference.registry import embedding_model
from app.inference.vectors import load, store_dir

MAX_K = 200


def similar_items(session: Session, settings: Settings, item_id: int, model_id: int, k: int = 10,
                  exclude_same_patient: bool = False) -> dict[str, Any]:
    """`{model_id, k, items: [{id, score}]}`; 400 for a model that is not an embedder or a k out of range, 404
    for an unknown item or model or when the item has no vector from the model yet (saying how to make one)."""
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be between 1 and {MAX_K}, got {k}")
    item = get_item(session, item_id)
    model, _ = embedding_model(session, model_id, "a search for similar items")
    dataset_id, patient_id, mid, name = item.dataset_id, item.patient_id, model.id, model.name
    excluded_ids: list[int] = []
    if exclude_same_patient and patient_id is not None:
        excluded_ids = list(session.scalars(select(Item.id).where(Item.dataset_id == dataset_id,
                                                                  Item.patient_id == patient_id)))
    session.close()  # the rest reads vector files
    vectors = load(settings, mid, dataset_id)
    row = vectors.row_of(item_id) if vectors is not None else None
    if vectors is None or row is None:
        raise NotFound(f"item {item_id} has no embedding from model {name!r} yet: run a predict job of that "
                       "model over its dataset (medview predict or POST /api/jobs)")
    rows = [row]
    if excluded_ids:
        positions = np.searchsorted(vectors.ids, excluded_ids)
        rows += [int(p) for p, i in zip(positions, excluded_ids, strict=True)
                 if p < len(vectors) and int(vectors.ids[p]) == i]
    folder = store_dir(settings, mid, dataset_id)
    index = index_if_ready(folder, vectors) if len(vectors) > EXACT_MAX else None
    if index is not None:
        found = ann_top_k(folder, vectors, vectors.vectors[row], k, {int(vectors.ids[r]) for r in rows}, index)
    else:  # small enough, or the index is still being built: the exact scan
        found = top_k(vectors, vectors.vectors[row], k, rows)
    return {"model_id": mid, "k": k, "items": [{"id": int(vectors.ids[r]), "score": round(s, 6)}
                                                     for r, s in found]}
