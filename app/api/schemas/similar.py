"""Similar items (issue 15): the answer of GET /api/items/{id}/similar."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SimilarItem(BaseModel):
    id: int = Field(description="Item id (same dataset as the queried item).")
    score: float = Field(description="Cosine similarity of the two items' embeddings, -1 to 1 (higher: nearer).")


class SimilarItems(BaseModel):
    model_id: int
    k: int = Field(description="How many were asked for (fewer come back when the dataset has fewer).")
    items: list[SimilarItem] = Field(description="Best first; the item itself (and with exclude_same_patient, "
                                                 "its patient's other items) left out.")
