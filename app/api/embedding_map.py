"""The embedding map (issue 15): `GET /api/datasets/{id}/map?model=&method=pca|umap` — every embedded item of the
dataset as a 2-D point — and `GET /api/datasets/{id}/map/colors?model=&field=` — a category per point. Reads.

Both answer compact binary, not JSON objects (262,144 points are 3 MB this way): a little-endian uint32 N, N bytes
of JSON header (padded with spaces to a multiple of 8 bytes after the length), then the arrays the header's
`arrays` list names, each at its `offset` from the end of the header, `length` elements of its `dtype`:
- map: `ids` (int32, or int64 when an id needs it) and `xy` (float32, x0 y0 x1 y1 …, in [-1, 1]);
- colors: `codes` (uint16 per point, in the map's id order: the index of the point's value in the header's
  `values`, 65535 when it has none).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.api.deps import CatalogDep, SessionDep, SettingsDep, json_response
from app.api.schemas.fields import PathId, QueryId
from app.api.schemas.responses import errors, media
from app.embeddings import map as embedding_map
from app.embeddings.projection import METHODS, Computing
from app.errors import InvalidInput

router = APIRouter(prefix="/api/datasets")
MEDIA = "application/octet-stream"


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """The header (with each array's dtype, offset and length added) and the arrays, each 8-byte aligned."""
    described, offset = [], 0
    for name, array in arrays.items():
        described.append({"name": name, "dtype": str(array.dtype), "offset": offset, "length": int(array.size)})
        offset += -(-array.nbytes // 8) * 8
    text = orjson.dumps({**header, "arrays": described})
    text += b" " * (-(len(text) + 4) % 8)
    parts = [len(text).to_bytes(4, "little"), text]
    for array in arrays.values():
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        parts += [data, b"\0" * (-len(data) % 8)]
    return b"".join(parts)


def _binary(request: Request, body_of: Any, etag: str) -> Response:
    tag = f'"{etag}"'
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(body_of(), media_type=MEDIA, headers=headers)


@router.get("/{dataset_id}/map", response_class=Response, responses={
    **media("The map's points: a uint32 header length, a JSON header `{dataset_id, model_id, method, count, "
            "signature, arrays}`, then `ids` (int32 or int64) and `xy` (float32 pairs in [-1, 1]); docs/api.md",
            MEDIA),
    202: {
        "description": "UMAP is being computed in the background (minutes for 100k+ points): ask again later; "
                       "`{detail, method, status: \"computing\", started_s_ago}`",
        "content": {"application/json": {"schema": {"type": "object", "properties": {
            "detail": {"type": "string"}, "method": {"type": "string"}, "status": {"type": "string"},
            "started_s_ago": {"type": "integer"}}, "required": ["detail", "method", "status"]}}}},
    **errors(400, 404, 422)})
def dataset_map(dataset_id: PathId, model: QueryId, request: Request, session: SessionDep, settings: SettingsDep,
                method: Annotated[str, Query(description=f"One of {', '.join(METHODS)}.")] = "pca") -> Response:
    """The 2-D map of the dataset's embeddings by the model: PCA at once, UMAP computed in the background (202
    until it is ready); 400 for an unknown method or a model that is not an embedder, 404 when there are no
    vectors."""
    if method not in METHODS:
        raise InvalidInput(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    src = embedding_map.source(session, settings, dataset_id, model)
    session.close()  # the rest reads vector files
    try:
        found = embedding_map.points(settings, src, method)
    except Computing as busy:
        return json_response({"detail": str(busy), "method": method, "status": "computing",
                              "started_s_ago": max(0, round(time.time() - busy.started))}, 202)
    ids = found.ids.astype(np.int32) if found.ids.size == 0 or int(found.ids[-1]) < 2**31 else found.ids
    header = {"dataset_id": src.dataset.id, "model_id": src.model.id, "method": method, "count": int(ids.size),
              "signature": found.signature}
    return _binary(request, lambda: pack(header, {"ids": ids, "xy": found.xy.reshape(-1)}),
                   f"{method}-{found.signature}")


@router.get("/{dataset_id}/map/colors", response_class=Response, responses={
    **media("A colour category per point of the map, in its id order: a uint32 header length, a JSON header "
            "`{field, values: [{value, label, count}], missing, count, signature, arrays}`, then `codes` (uint16; "
            "65535 = no value); docs/api.md", MEDIA, etag=False),
    **errors(400, 404, 422)})
def dataset_map_colors(dataset_id: PathId, model: QueryId, field: str, session: SessionDep, catalog: CatalogDep,
                       settings: SettingsDep) -> Response:
    """Each point's value of `field`: a facet of the dataset (label, split, review_status, …) or `pred:MODEL_ID`
    (a classifier's predicted class); 400 for a field the dataset cannot be coloured by."""
    src = embedding_map.source(session, settings, dataset_id, model)
    found = embedding_map.colours(session, catalog, src, field)
    codes = found.pop("codes")
    header = {**found, "count": int(codes.size), "signature": embedding_map.signature_of(src)}
    return Response(pack(header, {"codes": codes}), media_type=MEDIA, headers={"Cache-Control": "no-store"})
