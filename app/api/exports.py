"""Exports: start one (a job), list them, follow one, download its file. Reviewers and admins only — an export
carries a dataset's annotations out of the tool; the server picks where the file is kept (under the data dir)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response

from app.api.deps import QueueDep, SessionDep, SettingsDep, json_response
from app.api.schemas.exports import ExportCreated, ExportRequest, ExportSummary
from app.api.schemas.fields import PathId, bounds
from app.api.schemas.responses import errors
from app.api.security import Principal, RequireRole, client_address
from app.export import jobs as export_jobs

router = APIRouter(prefix="/api/exports")
Reviewer = Annotated[Principal, Depends(RequireRole("reviewer"))]


@router.post("", status_code=202, response_model=ExportCreated, responses=errors(400, 401, 403, 404, 422, 503))
def create_export(body: ExportRequest, request: Request, session: SessionDep, queue: QueueDep,
                  reviewer: Reviewer) -> Response:
    """Checked once here: 404 for a missing dataset; 400 for an unknown format, one that does not fit the
    dataset's kind (or is not built yet), an unknown filter field, or a selection with no item. 503 when the
    job queue cannot be reached (nothing stored)."""
    job = export_jobs.create_export_job(session, body, reviewer, client_address(request), submit=queue.submit)
    return json_response(ExportCreated(id=job.id).model_dump(), 202)


@router.get("", response_model=list[ExportSummary], responses=errors(400, 401, 403, 422))
def list_exports(session: SessionDep, reviewer: Reviewer,
                 limit: Annotated[int, Query(json_schema_extra=bounds(1, 200))] = 50) -> Response:
    """The newest exports (any user's), with their progress and, once done, the download link."""
    return json_response(export_jobs.list_exports(session, limit))


@router.get("/{export_id}", response_model=ExportSummary, responses=errors(401, 403, 404, 422))
def get_export(export_id: PathId, session: SessionDep, reviewer: Reviewer) -> Response:
    return json_response(export_jobs.get_export(session, export_id))


@router.get("/{export_id}/download", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, **errors(401, 403, 404, 409, 422)})
def download_export(export_id: PathId, session: SessionDep, settings: SettingsDep, reviewer: Reviewer) -> Response:
    """The finished export's file (409 while it is queued or running)."""
    path, name = export_jobs.result_file(session, settings, export_id)
    session.close()
    return FileResponse(path, filename=name, media_type="application/octet-stream")
