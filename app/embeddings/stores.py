"""Which embedding model's vectors to use for a dataset when none is named: the newest (highest id) `embed`
model with vectors there (item vectors, or a sub-store such as the lesions')."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Model
from app.inference.vectors import has_vectors


def newest_embedder(session: Session, settings: Settings, dataset_id: int, sub: str | None = None) -> Model | None:
    for model in session.scalars(select(Model).where(Model.task == "embed").order_by(Model.id.desc())):
        if has_vectors(settings, model.id, dataset_id, sub):
            return model
    return None
