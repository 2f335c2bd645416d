"""Predicted masks for the viewer: `GET /api/items/{id}/predictions/{model_id}/mask[?plane=&slice=]` → a label
PNG (value = label, `app.imaging.labels`) of the same width × height as `/raw` for the same view."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import PixelsDep, SessionDep, SettingsDep
from app.api.imaging import etag
from app.api.schemas.fields import PathId
from app.api.schemas.responses import errors, media
from app.imaging.labels import encode_label_png
from app.inference.mask_views import find_predicted_mask

router = APIRouter(prefix="/api")


@router.get("/items/{item_id}/predictions/{model_id}/mask", response_class=Response, responses={
    **media("The predicted label PNG of one view (pixel value = label), the size of `/raw` for that view",
            "image/png"),
    **errors(400, 403, 404, 422)})
def prediction_mask(item_id: PathId, model_id: PathId, request: Request, session: SessionDep, settings: SettingsDep,
                    pixels: PixelsDep, plane: str | None = None,
                    slice: int | None = None) -> Response:  # noqa: A002 - API name
    found = find_predicted_mask(session, settings, item_id, model_id, plane, slice)
    session.close()  # the rest is file reading and slicing
    tag = etag(found.key)
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag})
    labels, shown_plane, index = found.read(pixels.volumes)
    headers = {"ETag": tag, "Cache-Control": "no-cache", "X-Plane": shown_plane,
               "X-Slice": "" if index is None else str(index), "X-Shape": f"{labels.shape[0]},{labels.shape[1]}"}
    return Response(encode_label_png(labels), media_type="image/png", headers=headers)
