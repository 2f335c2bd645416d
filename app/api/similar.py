"""Similar items (issue 15): `GET /api/items/{id}/similar?model=MODEL_ID&k=N[&exclude_same_patient=1]` → the k
nearest items by an embedding model's vectors (cosine), best first. A read: open to every signed-in reader."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep, json_response
from app.api.schemas.fields import PathId, QueryId
from app.api.schemas.responses import errors
from app.api.schemas.similar import SimilarItems
from app.embeddings.similar import MAX_K, similar_items

router = APIRouter(prefix="/api/items")


@router.get("/{item_id}/similar", response_model=SimilarItems, responses=errors(400, 404, 422))
def similar(item_id: PathId, model: QueryId, session: SessionDep, settings: SettingsDep,
            k: Annotated[int, Query(ge=1, le=MAX_K)] = 10, exclude_same_patient: bool = False) -> Response:
    """The k items nearest to this one by the embedding model's vectors; 400 when the model is not an embedding
    model, 404 when the item has no vector from it yet."""
    return json_response(similar_items(session, settings, item_id, model, k, exclude_same_patient))
