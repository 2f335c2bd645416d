from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import RendererDep, SessionDep, SettingsDep, json_response
from app.api.schemas.items import ItemDetail
from app.api.schemas.responses import errors, media
from app.catalog import queries
from app.render.service import Rendered, RenderParams, load_target

router = APIRouter(prefix="/api/items")

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def image_response(request: Request, rendered: Rendered, version: int) -> Response:
    """Bytes with an ETag; immutable caching when the URL names the item's current version (`v=`)."""
    pinned = request.query_params.get("v") == str(version)
    headers = {"ETag": rendered.etag, "Cache-Control": IMMUTABLE if pinned else REVALIDATE,
               **(rendered.headers or {})}
    if request.headers.get("if-none-match") == rendered.etag:
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Encoding"})
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)


@router.get("/{item_id}", response_model=ItemDetail, responses=errors(404, 422))
def get_item(item_id: int, session: SessionDep) -> Response:
    return json_response(queries.item_detail(session, item_id))


@router.get("/{item_id}/render", response_class=Response, responses={
    **media("The rendered image in the requested `format`", "image/png", "image/webp", "image/jpeg"),
    **errors(400, 404, 422)})
def render(item_id: int, request: Request, session: SessionDep, renderer: RendererDep, settings: SettingsDep,
           format: str = "png", window: str | None = None, preset: str | None = None,
           overlays: str = "none", size: int | None = None, slice: int | None = None,
           plane: Literal["axial", "sagittal", "coronal"] | None = None, opacity: float = 0.4,
           mask_mode: str = "fill") -> Response:
    target = load_target(session, item_id, overlays != "none", settings.allowed_roots)
    session.close()  # release the connection before CPU work
    params = RenderParams(format, window, preset, overlays, size, slice, plane, opacity, mask_mode)
    return image_response(request, renderer.render(target, params), target.version)


@router.get("/{item_id}/raw", response_class=Response, responses={
    **media("The stored values of one 2-D image, C order; `X-Shape` and `X-Dtype` say how to read them (CT as "
            "int16 HU, RGB as uint8)", "application/octet-stream"),
    **errors(400, 404, 422)})
def raw(item_id: int, request: Request, session: SessionDep, renderer: RendererDep, settings: SettingsDep,
        slice: int | None = None, plane: Literal["axial", "sagittal", "coronal"] | None = None) -> Response:
    target = load_target(session, item_id, False, settings.allowed_roots)
    session.close()
    return image_response(request, renderer.raw(target, slice, plane), target.version)


@router.get("/{item_id}/mask", response_class=Response, responses={
    **media("The ground-truth label PNG of one view (pixel value = label; palette in `X-Palette`)", "image/png"),
    **errors(400, 404, 422)})
def mask(item_id: int, request: Request, session: SessionDep, renderer: RendererDep, settings: SettingsDep,
         slice: int | None = None, plane: Literal["axial", "sagittal", "coronal"] | None = None) -> Response:
    """The ground-truth label PNG of one view (same size as `/raw` of that view); 404 naming why without one."""
    target = load_target(session, item_id, True, settings.allowed_roots)
    session.close()
    return image_response(request, renderer.labels(target, slice, plane), target.version)
