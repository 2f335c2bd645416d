"""Review over HTTP: versioned annotations (annotator), comments (annotator), verdicts (reviewer), review queues
(reviewer or admin). Thin: each route calls one app.review service, which writes the audit event; a verdict then
moves the item in this app's live facet index so `review_status` counts follow at once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.accounts.roles import at_least
from app.api.deps import CatalogDep, SessionDep, json_response
from app.api.schemas.fields import MAX_ID, PathId, QueryId
from app.api.schemas.responses import errors
from app.api.schemas.review import (
    AdjudicationIn,
    AnnotationEdit,
    AnnotationIn,
    AnnotationVersion,
    CommentIn,
    CommentOut,
    NextItem,
    QueueDetail,
    QueueIn,
    QueueSuggestionOut,
    QueueSummary,
    ReaderState,
    ReviewCreated,
    ReviewIn,
    UndoOut,
)
from app.api.security import Principal, RequireRole, client_address, current_principal
from app.catalog import queries, sorting
from app.catalog.listing import ID_FIELD, id_filter
from app.datasets.registry import get_adapter
from app.db.models import Dataset
from app.embeddings.uncertainty import uncertainty_order
from app.errors import Forbidden
from app.review import annotations as versions
from app.review import comments, queues, suggestions, verdicts

router = APIRouter(prefix="/api", tags=["review"])
Annotator = Annotated[Principal, Depends(RequireRole("annotator"))]
Reviewer = Annotated[Principal, Depends(RequireRole("reviewer"))]
Someone = Annotated[Principal | None, Depends(current_principal)]


@router.post("/items/{item_id}/annotations", status_code=201, response_model=AnnotationVersion,
             responses=errors(400, 401, 403, 404, 422))
def create_annotation(item_id: PathId, body: AnnotationIn, request: Request, session: SessionDep,
                      annotator: Annotator) -> Response:
    """A new annotation, version 1, `source` `user:<name>`; 400 naming the field when its geometry or label does
    not fit the item (the dataset kind's rules). With `queue_id` it is the reader's queue reading (reviewer role;
    hidden from the item's other reader in a 2-reader queue until both have read it)."""
    if body.queue_id is not None:
        if not at_least(annotator.role, "reviewer"):
            raise Forbidden(f"a queue reading needs the reviewer role; {annotator.username} is {annotator.role}")
        queues.check_reading(session, body.queue_id, item_id, annotator)
    data = versions.AnnotationInput(body.kind, body.label, body.geometry, body.meta, body.slice)
    row = versions.create(session, item_id, data, annotator, client_address(request), queue_id=body.queue_id)
    return json_response(versions.annotation_out(row), 201)


@router.put("/annotations/{annotation_id}", response_model=AnnotationVersion,
            responses=errors(400, 401, 403, 404, 409, 422))
def edit_annotation(annotation_id: PathId, body: AnnotationEdit, request: Request, session: SessionDep,
                    annotator: Annotator) -> Response:
    """The new version (the edited one is kept, `superseded_by` it). 409 when `version` is not the current one:
    the body names who changed it and when, and carries it as `current`."""
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    row = versions.edit(session, annotation_id, body.version, changes, annotator, client_address(request))
    return json_response(versions.annotation_out(row))


@router.delete("/annotations/{annotation_id}", response_model=AnnotationVersion,
               responses=errors(400, 401, 403, 404, 409, 422))
def retire_annotation(annotation_id: PathId, request: Request, session: SessionDep, annotator: Annotator,
                      version: Annotated[int, Query(ge=1, le=MAX_ID)]) -> Response:
    """Retire the current version `version`: kept in the history, no longer current (409 when stale)."""
    row = versions.retire(session, annotation_id, version, annotator, client_address(request))
    return json_response(versions.annotation_out(row))


@router.get("/annotations/{annotation_id}/history", response_model=list[AnnotationVersion],
            responses=errors(404, 422))
def annotation_history(annotation_id: PathId, session: SessionDep) -> Response:
    return json_response([versions.annotation_out(a) for a in versions.history(session, annotation_id)])


@router.post("/items/{item_id}/comments", status_code=201, response_model=CommentOut,
             responses=errors(400, 401, 403, 404, 422))
def add_comment(item_id: PathId, body: CommentIn, request: Request, session: SessionDep,
                annotator: Annotator) -> Response:
    row = comments.add_comment(session, item_id, body.text, body.annotation_id, annotator, client_address(request))
    return json_response(comments.comment_out(row), 201)


@router.get("/items/{item_id}/comments", response_model=list[CommentOut], responses=errors(404, 422))
def list_comments(item_id: PathId, session: SessionDep) -> Response:
    return json_response([comments.comment_out(c) for c in comments.item_comments(session, item_id)])


@router.post("/items/{item_id}/reviews", status_code=201, response_model=ReviewCreated,
             responses=errors(400, 401, 403, 404, 422))
def add_review(item_id: PathId, body: ReviewIn, request: Request, session: SessionDep, reviewer: Reviewer) -> Response:
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
    """A queue of the dataset's items matching `filters`, in the grid's `sort` order, fixed now; with
    `uncertainty`, the items a classifier predicted, unreviewed first and least certain first (its `sort` then
    reads `uncertainty:MODEL_ID:MEASURE`)."""
    filters = _filters(body.filters)
    dataset = queries.get_dataset(session, body.dataset_id)
    sort = body.sort
    ids: list[int]
    if body.uncertainty is not None:  # active learning: least certain first (app.embeddings.uncertainty)
        ids = uncertainty_order(session, body.uncertainty.model_id, dataset, filters, body.uncertainty.measure)
        if body.item_ids is not None:
            chosen = set(body.item_ids)
            ids = [i for i in ids if i in chosen]
        ids = ids[:body.limit or queues.MAX_ITEMS]
        sort = f"uncertainty:{body.uncertainty.model_id}:{body.uncertainty.measure}"
    elif body.limit is not None and body.item_ids is None:  # the first `limit` in the grid's order
        ids = []
        cursor: str | None = None
        while len(ids) < body.limit:
            page, cursor = queries.page_ids(session, catalog, dataset.id, filters, sort=body.sort, cursor=cursor,
                                            limit=min(queries.MAX_LIMIT, body.limit - len(ids)))
            ids += page
            if cursor is None:
                break
    else:
        # a selection narrows the listing to its ids first, so it may come from a dataset of any size
        narrowed = filters
        if body.item_ids:
            allowed = set(id_filter(filters[ID_FIELD])) if ID_FIELD in filters else None
            picked = [i for i in body.item_ids if allowed is None or i in allowed]
            narrowed = {**filters, ID_FIELD: [str(i) for i in picked] or ["0"]}
        ids = queries.all_ids(session, catalog, dataset.id, narrowed, sort=body.sort, cap=queues.MAX_ITEMS)
        if body.item_ids is not None:  # the grid's selection, kept in the grid's order
            chosen = set(body.item_ids)
            ids = [i for i in ids if i in chosen][:body.limit]
    queue = queues.create_queue(session, name=body.name, dataset=dataset, filters=filters, sort=sort,
                                readers_per_item=body.readers_per_item, assignees=body.assignees, item_ids=ids,
                                actor=reviewer, address=client_address(request))
    return json_response(queues.summary(session, queue, reviewer.username), 201)


@router.get("/review/queues", response_model=list[QueueSummary], responses=errors(401))
def list_queues(session: SessionDep, principal: Someone) -> Response:
    """Every queue, newest first, with progress per reader and what is left for the signed-in user."""
    return json_response(queues.list_queues(session, principal.username if principal else None))


@router.get("/review/queues/{queue_id}", response_model=QueueDetail, responses=errors(404, 422))
def get_queue(queue_id: PathId, session: SessionDep, principal: Someone) -> Response:
    """Progress per reader and `agreement` over the items both readers have read: Cohen's kappa on the verdicts,
    the long-axis difference of their RECIST readings (Bland–Altman), Dice of their masks (`mask_dice`)."""
    return json_response(queues.detail(session, queue_id, principal.username if principal else None))


@router.get("/review/queues/{queue_id}/next", response_model=NextItem,
            responses={204: {"description": "Nothing left for this reader in the queue"},
                       **errors(401, 403, 404, 422)})
def next_item(queue_id: PathId, session: SessionDep, reviewer: Reviewer) -> Response:
    """The signed-in reader's next item (204 when done). Blinded: never another reader's verdict."""
    found = queues.next_item(session, queue_id, reviewer)
    return Response(status_code=204) if found is None else json_response(found)


@router.get("/review/queues/{queue_id}/reader", response_model=ReaderState, responses=errors(401, 403, 404, 422))
def reader_state(queue_id: PathId, session: SessionDep, reviewer: Reviewer) -> Response:
    """Review mode's state for the signed-in reader: the queue, my reads in order with my verdicts (blinded: never
    another reader's), my counts, my next item, and whether I may sign the queue off."""
    return json_response(queues.reader_state(session, queue_id, reviewer, at_least(reviewer.role, "admin")))


@router.post("/review/queues/{queue_id}/undo", response_model=UndoOut, responses=errors(400, 401, 403, 404, 409, 422))
def undo_verdict(queue_id: PathId, request: Request, session: SessionDep, reviewer: Reviewer) -> Response:
    """Undo my newest verdict in the queue. Append-only: records my verdict before it on that item again, else
    `uncertain` (commented "undo of …")."""
    out = queues.undo_last(session, queue_id, reviewer, client_address(request))  # facet counts follow (touch)
    out.pop("before_status")
    out.pop("dataset_id")
    return json_response(out)


@router.post("/review/queues/{queue_id}/sign-off", response_model=QueueSummary,
             responses=errors(401, 403, 404, 409, 422))
def sign_off(queue_id: PathId, request: Request, session: SessionDep, reviewer: Reviewer) -> Response:
    """The lead (an admin or the queue's creator) signs a complete queue off: 409 while items still need a
    reader or when already signed; afterwards the queue takes no verdicts (409)."""
    queue = queues.sign_off(session, queue_id, reviewer, at_least(reviewer.role, "admin"), client_address(request))
    return json_response(queues.summary(session, queue, reviewer.username))


@router.post("/review/queues/{queue_id}/adjudication", status_code=201, response_model=QueueSummary,
             responses=errors(400, 401, 403, 404, 422))
def adjudication(queue_id: PathId, body: AdjudicationIn, request: Request, session: SessionDep,
                 reviewer: Reviewer) -> Response:
    """A new 1-reader queue of this queue's disputed items (400 when there is none)."""
    queue = queues.adjudication_queue(session, queue_id, reviewer, name=body.name, assignees=body.assignees,
                                      address=client_address(request))
    return json_response(queues.summary(session, queue, reviewer.username), 201)


@router.get("/review/suggestions", response_model=list[QueueSuggestionOut], responses=errors(404, 422))
def queue_suggestions(dataset_id: QueryId, session: SessionDep) -> Response:
    """The built-in queues that apply to the dataset (its kind's suggestions whose facet values it has, those
    ordered by a model metric once per model with that metric here)."""
    return json_response(suggestions_for(session, queries.get_dataset(session, dataset_id)))


def suggestions_for(session: SessionDep, dataset: Dataset) -> list[dict[str, object]]:
    adapter = get_adapter(dataset.kind)
    return suggestions.applicable(adapter.queue_suggestions, dataset.facet_counts or {},
                                  sorting.metric_sorts(session, dataset.id))
