"""`/datasets/{id}/map`: the embedding map page (issue 15) — every embedded item of the dataset as a point (WebGL,
static/js/map.js), coloured by a facet or a classifier's prediction, with hover, click-through, and a lasso whose
selection opens in the grid (`id=` filter) or becomes a review queue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import SessionDep
from app.catalog import queries, urls
from app.catalog.listing import ID_FIELD, MAX_ID_FILTER
from app.datasets.registry import get_adapter
from app.embeddings import map as embedding_map
from app.embeddings.projection import METHODS
from app.errors import NotFound

router = APIRouter(include_in_schema=False)
GRID_URL_IDS = 1_000  # ids an "Open in grid" link may carry (`id=N&` each: ~10 kB of URL, under a 16 kB line limit)


@router.get("/datasets/{dataset_id}/map", name="map_page")
def map_page(dataset_id: int, request: Request, session: SessionDep, model: int | None = None,
             method: str = "pca", field: str | None = None) -> Response:
    dataset = queries.get_dataset(session, dataset_id)
    settings = request.app.state.settings
    models = embedding_map.embedders_with_vectors(session, settings, dataset)
    if not models:
        raise NotFound(f"dataset {dataset.name!r} has no embeddings yet: run a predict job of an embedding model "
                       "over it (medview predict or POST /api/jobs)")
    chosen = next((m for m in models if m["id"] == model), models[0])
    principal = getattr(request.state, "principal", None)
    can_review = principal is not None and principal.role in ("reviewer", "admin")
    fields = embedding_map.colour_fields(session, dataset)
    names = {f["field"] for f in fields}
    data: dict[str, Any] = {
        "dataset_id": dataset.id, "dataset_name": dataset.name, "model_id": chosen["id"], "models": models,
        "method": method if method in METHODS else "pca", "methods": list(METHODS),
        "fields": fields, "field": field if field in names else "label" if field is None and "label" in names else "",
        "can_review": can_review,
        "label_names": dict(get_adapter(dataset.kind).label_names()),
        "max_grid_ids": GRID_URL_IDS, "max_queue_ids": MAX_ID_FILTER, "id_field": ID_FIELD,
        "urls": {"map": f"/api/datasets/{dataset.id}/map", "colors": f"/api/datasets/{dataset.id}/map/colors",
                 "grid": urls.dataset_page_url(dataset.id), "queues": "/api/review/queues",
                 "queue_page": "/review/queues/{id}", "item_page": urls.item_page_url("{id}"),
                 "item": urls.item_url("{id}"), "render": urls.render_url("{id}", {"format": "jpeg", "size": 128})},
    }
    return request.app.state.templates.TemplateResponse(request, "map.html", {
        "dataset": {"id": dataset.id, "name": dataset.name, "kind": dataset.kind}, "map_data": data})
