"""Mask annotation versions as label images: `GET /api/annotations/{id}/mask[?plane=&slice=]`.

Any version (current or not) of a mask annotation, as the label PNG the viewer draws (app.imaging.labels: the
pixel value is the label; the size of `/raw` of the same view): the image of a 2-D item, one display plane of a
volume. The brush starts from it; a reader's mask can be compared with another's. Uploads go through the
annotation routes (app/api/review.py; app.review.masks turns the PNG into a stored mask).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.accounts.roles import at_least
from app.api.deps import SessionDep
from app.api.imaging import REVALIDATE, etag
from app.api.schemas.fields import PathId
from app.api.schemas.responses import errors, media
from app.catalog.urls import mask_url
from app.datasets.registry import get_adapter
from app.db.lookup import get_or_404
from app.db.models import Annotation, Item
from app.imaging.labels import encode_label_png
from app.review import masks

router = APIRouter(prefix="/api", tags=["review"])


@router.get("/annotations/{annotation_id}/mask", response_class=Response, responses={
    **media("The label PNG of this mask annotation version (pixel value = label), one plane of a volume",
            "image/png"),
    **errors(400, 403, 404, 422)})
def annotation_mask(annotation_id: PathId, request: Request, session: SessionDep,
                          plane: Literal["axial", "sagittal", "coronal"] | None = None,
                          slice: int | None = None) -> Response:
    """The label PNG of one version of a mask annotation (404 when it is not stored or cannot be read; 400 for
    another kind or a plane/slice the item does not have)."""

    row = get_or_404(session, Annotation, annotation_id, "annotation")
    item = get_or_404(session, Item, row.item_id, "item")  # a re-ingest (new dataset file) changes its version
    tag = etag(("annotation-mask", row.id, row.version, repr(sorted((row.geometry or {}).items())),
                item.content_version, plane, slice))
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": REVALIDATE})
    body = encode_label_png(masks.annotation_plane(session, annotation_id, plane, slice))
    session.close()
    headers = {"ETag": tag, "Cache-Control": REVALIDATE}
    return Response(body, media_type="image/png", headers=headers)


def brush_config(item: Mapping[str, Any], kind: str, principal: Any = None) -> dict[str, Any] | None:
    """What the viewer's brush (static/js/viewer/brush.js) needs on an item page, or None when the dataset kind
    takes no user masks or the signed-in user (`principal`) may not write them (below annotator): the current
    mask annotation (id, version), the labels it may paint, whether it edits one plane of a volume, and the URL
    templates it fills. A Jinja global of the item page (`mask_brush`)."""
    adapter = get_adapter(kind)
    role = getattr(principal, "role", None)
    if "mask" not in adapter.editable_annotations or not role or not at_least(role, "annotator"):
        return None
    masks = [a for a in item.get("annotations") or () if a.get("kind") == "mask"]
    # the shared mask (not a reader's own in a review queue) is the one the brush edits; a queue page may differ
    current = next((a for a in masks if "queue_id" not in (a.get("meta") or {})), masks[0] if masks else None)
    labels = [{"value": value, "name": name} for value, name in sorted(adapter.mask_labels.items())]
    return {"item_id": item["id"], "volume": bool(adapter.has_volumes and (item.get("depth") or 1) > 1),
            "annotation": ({"id": current["id"], "version": current.get("version", 1), "label": current.get("label"),
                            "lineage_id": current.get("lineage_id") or current["id"], "meta": current.get("meta") or {}}
                           if current else None),
            "labels": labels, "binary": sorted(adapter.mask_labels) == [1],
            "urls": {"annotation_mask": "/api/annotations/{id}/mask", "annotation": "/api/annotations/{id}",
                     "create": "/api/items/{id}/annotations", "item_mask": mask_url(item["id"])}}
