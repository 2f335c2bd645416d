"""Review over HTTP: versioned annotations (annotator), comments (annotator), verdicts (reviewer), review queues
(reviewer or admin). Thin: each route calls one app.review service, which writes the audit event; a verdict then
moves the item in this app's live facet index so `review_status` counts follow at once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.api.deps import CatalogDep, SessionDep, json_response
from app.api.schemas.responses import errors
from app.api.schemas.review import (
    AnnotationEdit,
    AnnotationIn,
    AnnotationVersion,
    CommentIn,
    CommentOut,
    NextItem,
    QueueDetail,
    QueueIn,
    QueueSummary,
    ReviewCreated,
    ReviewIn,
)
from app.api.security import Principal, RequireRole, client_address, current_principal
from app.catalog import queries
from app.review import annotations as versions
from app.review import comments, queues, verdicts

router = APIRouter(prefix="/api", tags=["review"])
Annotator = Annotated[Principal, Depends(RequireRole("annotator"))]
Reviewer = Annotated[Principal, Depends(RequireRole("reviewer"))]
Someone = Annotated[Principal | None, Depends(current_principal)]


@router.post("/items/{item_id}/annotations", status_code=201, response_model=AnnotationVersion,
             responses=errors(400, 401, 403, 404, 422))
def create_annotation(item_id: int, body: AnnotationIn, request: Request, session: SessionDep,
                      annotator: Annotator) -> Response:
    """A new annotation, version 1, `source` `user:<name>`; 400 naming the field when its geometry or label does
    not fit the item (the dataset kind's rules)."""
    data = versions.AnnotationInput(body.kind, body.label, body.geometry, body.meta, body.slice)
    row = versions.create(session, item_id, data, annotator, client_address(request))
    return json_response(versions.annotation_out(row), 201)


@router.put("/annotations/{annotation_id}", response_model=AnnotationVersion,
            responses=errors(400, 401, 403, 404, 409, 422))
def edit_annotation(annotation_id: int, body: AnnotationEdit, request: Request, session: SessionDep,
                    annotator: Annotator) -> Response:
    """The new version (the edited one is kept, `superseded_by` it). 409 when `version` is not the current one:
    the body names who changed it and when, and carries it as `current`."""
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    row = versions.edit(session, annotation_id, body.version, changes, annotator, client_address(request))
    return json_response(versions.annotation_out(row))


@router.delete("/annotations/{annotation_id}", response_model=AnnotationVersion,
               responses=errors(400, 401, 403, 404, 409, 422))
def retire_annotation(annotation_id: int, request: Request, session: SessionDep, annotator: Annotator,
                      version: Annotated[int, Query(ge=1)]) -> Response:
    """Retire the current version `version`: kept in the history, no longer current (409 when stale)."""
    row = versions.retire(session, annotation_id, version, annotator, client_address(request))
    return json_response(versions.annotation_out(row))


@router.get("/annotations/{annotation_id}/history", response_model=list[AnnotationVersion],
            responses=errors(404, 422))
def annotation_history(annotation_id: int, session: SessionDep) -> Response:
    return json_response([versions.annotation_out(a) for a in versions.history(session, annotation_id)])


@router.post("/items/{item_id}/comments", status_code=201, response_model=CommentOut,
             responses=errors(400, 401, 403, 404, 422))
def add_comment(item_id: int, body: CommentIn, request: Request, session: SessionDep,
                annotator: Annotator) -> Response:
    row = comments.add_comment(session, item_id, body.text, body.annotation_id, annotator, client_address(request))
    return json_response(comments.comment_out(row), 201)


@router.get("/items/{item_id}/comments", response_model=list[CommentOut], responses=errors(404, 422))
def list_comments(item_id: int, session: SessionDep) -> Response:
    return json_response([comments.comment_out(c) for c in comments.item_comments(session, item_id)])


@router.post("/items/{item_id}/reviews", status_code=201, response_model=ReviewCreated,
             responses=errors(400, 401, 403, 404, 422))
def add_review(item_id: int, body: ReviewIn, request: Request, session: SessionDep, catalog: CatalogDep,
               reviewer: Reviewer) -> Response:
    """A verdict; the item's `review_status` follows (docs/review.md) and so do the dataset's live facet counts."""
    result = verdicts.add_review(session, item_id, body.verdict, reviewer, annotation_id=body.annotation_id,
                                 comment=body.comment, queue_id=body.queue_id, address=client_address(request))
    return json_response({"review": verdicts.review_out(result.review), "review_status": result.after,
                          "readers": result.readers}, 201)


def _filters(raw: dict[str, list[str] | str]) -> dict[str, list[str]]:
    return {k: [v] if isinstance(v, str) else [str(x) for x in v] for k, v in raw.items()}


@router.post("/review/queues", status_code=201, response_model=QueueSummary,
             responses=errors(400, 401, 403, 404, 422))
def create_queue(body: QueueIn, request: Request, session: SessionDep, catalog: CatalogDep,
                 reviewer: Reviewer) -> Response:
    """A queue of the dataset's items matching `filters`, in the grid's `sort` order, fixed now."""
    filters = _filters(body.filters)
    dataset = queries.get_dataset(session, body.dataset_id)
    ids = queries.all_ids(session, catalog, dataset.id, filters, sort=body.sort, cap=queues.MAX_ITEMS)
    queue = queues.create_queue(session, name=body.name, dataset=dataset, filters=filters, sort=body.sort,
                                readers_per_item=body.readers_per_item, assignees=body.assignees, item_ids=ids,
                                actor=reviewer, address=client_address(request))
    return json_response(queues.summary(session, queue, reviewer.username), 201)


@router.get("/review/queues", response_model=list[QueueSummary], responses=errors(401))
def list_queues(session: SessionDep, principal: Someone) -> Response:
    """Every queue, newest first, with progress per reader and what is left for the signed-in user."""
    return json_response(queues.list_queues(session, principal.username if principal else None))


@router.get("/review/queues/{queue_id}", response_model=QueueDetail, responses=errors(404, 422))
def get_queue(queue_id: int, session: SessionDep, principal: Someone) -> Response:
    """Progress per reader and `agreement`: Cohen's kappa over the items both readers have read."""
    return json_response(queues.detail(session, queue_id, principal.username if principal else None))


@router.get("/review/queues/{queue_id}/next", response_model=NextItem,
            responses={204: {"description": "Nothing left for this reader in the queue"},
                       **errors(401, 403, 404, 422)})
def next_item(queue_id: int, session: SessionDep, reviewer: Reviewer) -> Response:
    """The signed-in reader's next item (204 when done). Blinded: never another reader's verdict."""
    found = queues.next_item(session, queue_id, reviewer)
    return Response(status_code=204) if found is None else json_response(found)
