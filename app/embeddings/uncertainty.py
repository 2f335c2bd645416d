"""Uncertainty-first ordering for active learning (issue 15): a classifier's stored predictions on a dataset's
items, the least certain first, the unreviewed items before the reviewed ones — the order a review queue made
with `uncertainty` lists its items in (POST /api/review/queues).

- `margin`: p(top class) − p(second class); smallest first (0 = a tie between the two likeliest classes);
- `entropy`: −Σ p log p; largest first.
Ties keep the item ids' order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.catalog.queries import filtered_ids
from app.db.models import Dataset, Item, Prediction
from app.errors import InvalidInput
from app.inference import registry

MEASURES = ("margin", "entropy")


def margins(probabilities: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row."""
    p = np.sort(np.asarray(probabilities, np.float64), axis=1)
    return p[:, -1] - p[:, -2]


def entropies(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=1)


def uncertainty_order(session: Session, model_id: int, dataset: Dataset, filters: Mapping[str, Sequence[str]],
                      measure: str = "margin", field: str = "uncertainty") -> list[int]:
    """Ids of the dataset's items matching `filters` that the classifier `model_id` predicted: unreviewed first,
    each group least certain first. 404 unknown model; 400 (naming `field`) for a model that is not a
    classifier, an unknown measure, or no prediction of the model on those items."""
    if measure not in MEASURES:
        raise InvalidInput(f"{field}.measure: {measure!r} is not one of {', '.join(MEASURES)}")
    model = registry.get_model(session, model_id)
    if model.task != "classify":
        raise InvalidInput(f"{field}.model_id: model {model.name!r} is a {model.task} model; an uncertainty order "
                           "needs a classifier's probabilities")
    rows = session.execute(select(Prediction.item_id, Prediction.outputs, Item.review_status)
                           .join(Item, Item.id == Prediction.item_id)
                           .where(Prediction.model_id == model.id, Item.dataset_id == dataset.id,
                                  Prediction.item_id.in_(filtered_ids(dataset, filters)))).all()
    usable: list[tuple[int, list[float], str]] = []
    for item_id, outputs, status in rows:
        p = (outputs or {}).get("probabilities")
        if isinstance(p, list) and len(p) >= 2:
            usable.append((item_id, p, status))
    if not usable:
        raise InvalidInput(f"{field}.model_id: model {model.name!r} has no prediction on the items of dataset "
                           f"{dataset.name!r} this queue would take; predict them first")
    ids = np.asarray([r[0] for r in usable], np.int64)
    width = max(len(r[1]) for r in usable)
    probabilities = np.zeros((len(usable), width))
    for n, r in enumerate(usable):
        probabilities[n, :len(r[1])] = r[1]
    key = margins(probabilities) if measure == "margin" else -entropies(probabilities)
    reviewed = np.asarray([r[2] != "unreviewed" for r in usable])
    order = np.lexsort((ids, key, reviewed))  # the last key sorts first
    return [int(i) for i in ids[order]]
