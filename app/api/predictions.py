"""Predicted masks for the viewer: `GET /api/items/{id}/predictions/{model_id}/mask[?plane=&slice=]` → a label
PNG (value = label, `app.imaging.labels`) of the same width × height as `/raw` for the same view."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.api.deps import SessionDep, SettingsDep
from app.api.schemas.responses import errors, media
from app.db.models import Item, Model, Prediction
from app.errors import InvalidInput, NotFound
from app.imaging.labels import encode_label_png
from app.inference.masks import mask_path, mask_plane

router = APIRouter(prefix="/api")


@router.get("/items/{item_id}/predictions/{model_id}/mask", response_class=Response, responses={
    **media("The predicted label PNG of one view (pixel value = label), the size of `/raw` for that view",
            "image/png"),
    **errors(400, 404, 422)})
def prediction_mask(item_id: int, model_id: int, request: Request, session: SessionDep, settings: SettingsDep,
                    plane: str | None = None, slice: int | None = None) -> Response:  # noqa: A002 - API name
    row = session.execute(select(Prediction.outputs, Model.task, Item.location_index)
                          .join(Model, Model.id == Prediction.model_id).join(Item, Item.id == Prediction.item_id)
                          .where(Prediction.item_id == item_id, Prediction.model_id == model_id)).first()
    session.close()  # the rest is file reading and slicing
    if row is None:
        raise NotFound(f"item {item_id} has no prediction from model {model_id}")
    outputs, task, item_slice = row
    if not isinstance(outputs, dict) or "mask" not in outputs:
        raise NotFound(f"the prediction of model {model_id} for item {item_id} is a {task} prediction, not a mask")
    three_d = task == "segment3d"
    if not three_d and slice is not None and slice != item_slice:
        raise InvalidInput(f"this prediction is a 2-D mask of the item's image (slice {item_slice}); "
                           f"slice {slice} has none")
    path = mask_path(settings, model_id, item_id, three_d)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise NotFound(f"the predicted mask file {path.name} is missing; predict the item again") from None
    key = repr((str(path), stat.st_mtime_ns, stat.st_size, plane or "axial", slice))
    etag = '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    labels, shown_plane, index = mask_plane(path, plane, None if not three_d else slice)
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Plane": shown_plane,
               "X-Slice": "" if (index if three_d else item_slice) is None else str(index if three_d else item_slice),
               "X-Shape": f"{labels.shape[0]},{labels.shape[1]}"}
    return Response(encode_label_png(labels), media_type="image/png", headers=headers)
