from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.api.datasets import filters_from
from app.api.deps import CatalogDep, PixelsDep, RendererDep, SessionDep, SettingsDep, json_response
from app.api.imaging import image_response
from app.api.schemas.fields import PathId, QueryId
from app.api.schemas.items import ItemDetail
from app.api.schemas.responses import errors, media
from app.api.security import Principal, current_principal
from app.catalog import queries
from app.embeddings.similar import MAX_K as SIMILAR_MAX_K
from app.embeddings.similar_filter import similar_neighbours
from app.inference.outputs import item_with_predictions
from app.render.service import RenderParams
from app.review import queues

router = APIRouter(prefix="/api/items")


@router.get("/{item_id}", response_model=ItemDetail, responses=errors(400, 404, 422))
def get_item(item_id: PathId, request: Request, session: SessionDep, catalog: CatalogDep, settings: SettingsDep,
             principal: Annotated[Principal | None, Depends(current_principal)], queue: QueryId | None = None,
             neighbours: bool = False, sort: str | None = None, key: str | None = None,
             similar: QueryId | None = None, similar_model: QueryId | None = None,
             similar_k: Annotated[int, Query(ge=1, le=SIMILAR_MAX_K)] = SIMILAR_MAX_K) -> Response:
    """The item. With `queue=Q`, as a reader of queue Q sees it (blinded: in a 2-reader queue the other reader's
    queue readings are left out until both have read the item). With `neighbours=1`, every other query parameter
    is the grid's (its filters and `sort`): `neighbours` says the item's place in that list and the ids before and
    after it (null when the item is not in it), also in a similar list (`similar=`, app.embeddings.similar_filter)."""
    item = item_with_predictions(session, item_id)
    if queue is not None:
        item = queues.blinded(session, item, queue, principal.username if principal else None)
    if neighbours and similar is not None:
        item["neighbours"] = similar_neighbours(session, settings, item_id, filters_from(request), similar=similar,
                                                model_id=similar_model, k=similar_k, key=key)
    elif neighbours:
        item["neighbours"] = queries.item_neighbours(session, catalog, item_id, filters_from(request), key=key,
                                                         sort=sort)
    return json_response(item)


@router.get("/{item_id}/render", response_class=Response, responses={
    **media("The rendered image in the requested `format`", "image/png", "image/webp", "image/jpeg"),
    **errors(400, 403, 404, 422)})
def render(item_id: PathId, request: Request, session: SessionDep, renderer: RendererDep, pixels: PixelsDep,
           format: str = "png", window: str | None = None, preset: str | None = None,
           overlays: str = "none", size: int | None = None, slice: int | None = None,
           plane: Literal["axial", "sagittal", "coronal"] | None = None, opacity: float = 0.4,
           mask_mode: str = "fill") -> Response:
    target = pixels.target(session, item_id, overlays != "none")
    session.close()  # release the connection before CPU work
    params = RenderParams(format, window, preset, overlays, size, slice, plane, opacity, mask_mode)
    return image_response(request, renderer.render(target, params), target.version)


@router.get("/{item_id}/raw", response_class=Response, responses={
    **media("The stored values of one 2-D image, C order; `X-Shape` and `X-Dtype` say how to read them (CT as "
            "int16 HU, RGB as uint8)", "application/octet-stream"),
    **errors(400, 403, 404, 422)})
def raw(item_id: PathId, request: Request, session: SessionDep, renderer: RendererDep, pixels: PixelsDep,
        slice: int | None = None, plane: Literal["axial", "sagittal", "coronal"] | None = None) -> Response:
    target = pixels.target(session, item_id, False)
    session.close()
    return image_response(request, renderer.raw(target, slice, plane), target.version)


@router.get("/{item_id}/mask", response_class=Response, responses={
    **media("The ground-truth label PNG of one view (pixel value = label; palette in `X-Palette`)", "image/png"),
    **errors(400, 403, 404, 422)})
def mask(item_id: PathId, request: Request, session: SessionDep, renderer: RendererDep, pixels: PixelsDep,
         slice: int | None = None, plane: Literal["axial", "sagittal", "coronal"] | None = None) -> Response:
    """The ground-truth label PNG of one view (same size as `/raw` of that view); 404 naming why without one."""
    target = pixels.target(session, item_id, True)
    session.close()
    return image_response(request, renderer.labels(target, slice, plane), target.version)
