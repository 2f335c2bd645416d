from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app import ingest_jobs
from app.api.deps import CatalogDep, QueueDep, RendererDep, SessionDep, SettingsDep, json_response
from app.api.schemas.charts import DatasetCharts
from app.api.schemas.datasets import DatasetDetail, DatasetSummary, LiveFacets
from app.api.schemas.fields import MAX_ID, DocOffset, PathId, bounds
from app.api.schemas.ingest import IngestCreated, IngestRequest
from app.api.schemas.items import ItemPage
from app.api.schemas.patients import PatientTimeline
from app.api.schemas.responses import errors, media
from app.api.security import Principal, RequireRole, client_address
from app.catalog import queries, readable, urls
from app.config import Settings
from app.datasets.roots import DataRoots
from app.embeddings.patient_tracks import with_lesion_tracks
from app.embeddings.similar import MAX_K as SIMILAR_MAX_K
from app.embeddings.similar_filter import similar_page
from app.errors import InvalidInput
from app.render.service import OVERLAY_CHOICES
from app.render.sheet import MAX_TILES, check_sheet_params, contact_sheet

router = APIRouter(prefix="/api/datasets")

# The services' dicts go out through orjson as they are (json_response: FastAPI does not re-validate them);
# `response_model` documents their shape, and tests/api/test_openapi_schemas.py holds them to it.


def filters_from(request: Request) -> dict[str, list[str]]:
    """Every query parameter that is not paging is a facet filter (repeat a field for OR)."""
    out: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        if name not in queries.RESERVED_PARAMS:
            out.setdefault(name, []).append(value)
    return out


def shown_root(root: str, request: Request, settings: Settings) -> str:
    """An admin sees a dataset's folder as it is on the server; everyone else relative to its data root (the
    server's folder layout is not theirs to see)."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.role == "admin":
        return root
    folder = Path(root)
    for data_root in settings.allowed_roots:
        if folder == data_root or folder.is_relative_to(data_root):
            return f"{data_root.name}/{folder.relative_to(data_root)}".rstrip("/.")
    return folder.name


def shown_job(summary: dict[str, Any], request: Request, settings: Settings) -> dict[str, Any]:
    """A job's JSON as this user may see it: an ingest job's folder (its `params.path`, and in its error text)
    is shown as `shown_root` shows a dataset's — as it is to admins, relative to its data root to others."""
    path = (summary.get("params") or {}).get("path") if summary.get("kind") == ingest_jobs.KIND else None
    if not path:
        return summary
    shown = shown_root(path, request, settings)
    if shown == path:
        return summary
    error = summary.get("error")
    return {**summary, "params": {**summary["params"], "path": shown},
            "error": error.replace(path, shown) if error else error}


@router.get("", response_model=list[DatasetSummary])
def list_datasets(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """`root`: the folder it was indexed from (relative to its data root, unless you are an admin)."""
    return json_response([{**d, "root": shown_root(d["root"], request, settings)}
                          for d in queries.list_datasets(session)])


@router.post("", status_code=202, response_model=IngestCreated, responses=errors(400, 401, 403, 409, 422))
def ingest_dataset(body: IngestRequest, request: Request, session: SessionDep, settings: SettingsDep,
                   queue: QueueDep, admin: Annotated[Principal, Depends(RequireRole("admin"))]) -> Response:
    """Index a folder under MEDVIEW_DATA_ROOTS as a job (kind `ingest`). Checked here, before any job is made:
    400 for a path that is not absolute, lies outside the data roots or is not a folder, an unknown kind or a
    folder of no kind MedView recognises; 409 when the name is another folder's dataset's, the folder is indexed
    as another kind, or an ingest of it is already queued or running."""
    job = ingest_jobs.create_ingest_job(session, settings, body, admin, client_address(request), submit=queue.submit)
    return json_response({"id": job.id, "kind": job.kind, "status": job.status, "params": job.params,
                          "links": {"job": urls.job_url(job.id), "cancel": urls.job_cancel_url(job.id)}}, 202)


@router.get("/{dataset_id}", response_model=DatasetDetail, responses=errors(404, 422))
def get_dataset(dataset_id: PathId, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """`files_warning`: why the server cannot read the dataset's files (its folder moved away or outside
    MEDVIEW_DATA_ROOTS, sampled item files missing), or null."""
    detail = queries.dataset_detail(session, dataset_id)
    shown = shown_root(detail["root"], request, settings)
    return json_response({**detail, "root": shown, "files_warning": dataset_files_warning(
        session, dataset_id, settings, shown)})


def dataset_files_warning(session, dataset_id: int, settings: Settings, shown: str) -> str | None:
    """app.catalog.readable's cached check of the dataset's folder and a few of its item files."""
    return readable.files_warning(session, queries.get_dataset(session, dataset_id),
                                  DataRoots(settings.allowed_roots), shown)


@router.get("/{dataset_id}/items", response_model=ItemPage, responses=errors(400, 404, 422))
def list_items(dataset_id: PathId, request: Request, session: SessionDep, catalog: CatalogDep, settings: SettingsDep,
               limit: Annotated[int, Query(json_schema_extra=bounds(1, queries.MAX_LIMIT))] = queries.DEFAULT_LIMIT,
               cursor: str | None = None, key: str | None = None, sort: str | None = None,
               offset: DocOffset | None = None, model: str | None = None,
               similar: Annotated[int | None, Query(ge=1, le=MAX_ID, description=(
                   "Only the items most similar to this one, by an embedding model's vectors, in similarity order "
                   "(each with its `similarity`); the other filters still apply."))] = None,
               similar_model: Annotated[int | None, Query(ge=1, le=MAX_ID, description=(
                   "The embedding model for `similar` (default: the newest with vectors for the dataset)."))] = None,
               similar_k: Annotated[int, Query(ge=1, le=SIMILAR_MAX_K, description=(
                   "How many nearest items `similar` takes (before the other filters)."))] = SIMILAR_MAX_K) -> Response:
    """A keyset page; `sort=FIELD|-FIELD`, `offset=N` starts at position N (a jump; then follow cursors);
    `model=ID` adds each item's `prediction` badge of that model (null when it has none). With `similar=ITEM`
    the list is ITEM's nearest items (at most `similar_k`) in similarity order, under the other filters; 404 when
    ITEM has no vector from the model (or no model has vectors for the dataset)."""
    if similar is not None:
        return json_response(similar_page(session, settings, dataset_id, filters_from(request), item_id=similar,
                                          model_id=similar_model, k=similar_k, key=key, limit=limit,
                                          cursor=cursor, offset=offset, sort=sort, badge_model=model or None))
    page = queries.list_items(session, catalog, dataset_id, filters_from(request), key=key, limit=limit,
                              cursor=cursor, sort=sort, offset=offset, model=model or None)
    return json_response(page)


@router.get("/{dataset_id}/facets", response_model=LiveFacets, responses=errors(400, 404, 422))
def facets(dataset_id: PathId, request: Request, session: SessionDep, catalog: CatalogDep,
           key: str | None = None) -> Response:
    """Live facet counts under the filters (disjunctive per field) and the total."""
    return json_response(queries.live_facet_counts(session, catalog, dataset_id, filters_from(request),
                                                   key=key or None))


@router.get("/{dataset_id}/charts", response_model=DatasetCharts, responses=errors(404, 422))
def charts(dataset_id: PathId, session: SessionDep, catalog: CatalogDep) -> Response:
    return json_response(queries.dataset_charts(session, catalog, dataset_id))


@router.get("/{dataset_id}/sheet", response_class=Response, responses={
    **media("The page's items as one JPEG contact sheet, left to right then down; `X-Item-Ids` lists their ids in "
            "that order, `X-Next-Cursor` continues the paging, `X-Unreadable-Ids` lists the items drawn as a grey ✕ "
            "tile because their pixels cannot be read", "image/jpeg", etag=False),
    **errors(400, 403, 404, 422)})
def sheet(dataset_id: PathId, request: Request, session: SessionDep, renderer: RendererDep,
          catalog: CatalogDep, limit: Annotated[int, Query(json_schema_extra=bounds(1, MAX_TILES))] = 64,
          cursor: str | None = None, key: str | None = None,
          cols: Annotated[int, Query(json_schema_extra=bounds(1, 32))] = 8,
          tile: Annotated[int, Query(json_schema_extra=bounds(16, 512))] = 96, overlays: str = "none",
          sort: str | None = None, offset: DocOffset | None = None) -> Response:
    """One page of items (same filters and keyset paging as /items) as a single JPEG contact sheet."""
    check_sheet_params(cols, tile, limit)
    if overlays not in OVERLAY_CHOICES:
        raise InvalidInput(f"overlays must be one of {', '.join(OVERLAY_CHOICES)}, not {overlays!r}")
    ids, next_cursor = queries.page_ids(session, catalog, dataset_id, filters_from(request), key=key,
                                        limit=limit, cursor=cursor, sort=sort, offset=offset)
    targets = renderer.pixels.targets(session, ids, overlays != "none")
    session.close()
    unreadable: list[int] = []
    body = contact_sheet(renderer, targets, cols=cols, tile=tile, overlays=overlays, unreadable=unreadable)
    return Response(body, media_type="image/jpeg", headers={
        "X-Item-Ids": ",".join(map(str, ids)), "X-Next-Cursor": next_cursor or "",
        "X-Unreadable-Ids": ",".join(map(str, unreadable)), "Cache-Control": "no-cache"})


@router.get("/{dataset_id}/patients/{patient}", response_model=PatientTimeline, responses=errors(404, 422))
def patient(dataset_id: PathId, patient: str, session: SessionDep, settings: SettingsDep) -> Response:
    """`tracks` matched by lesion embedding and location when an embedding model has lesion vectors for the
    dataset (`tracks_model` names the newest such model), else by type and location."""
    return json_response(with_lesion_tracks(session, settings, queries.patient_timeline(session, dataset_id,
                                                                                        patient)))
