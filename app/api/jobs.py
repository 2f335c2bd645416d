"""Jobs: create (predict over a dataset's filtered items), read status and progress, cancel.

Starting a job needs the reviewer role; cancelling it, the one who started it or an admin. Both are in the
audit log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.api.datasets import shown_job
from app.api.deps import QueueDep, SessionDep, SettingsDep, json_response
from app.api.schemas.fields import PathId, QueryId, bounds
from app.api.schemas.jobs import JobCreated, JobListEntry, JobRequest, JobSummary
from app.api.schemas.responses import errors
from app.api.security import Principal, RequireRole, client_address
from app.errors import Forbidden
from app.inference import jobs

router = APIRouter(prefix="/api/jobs")
Reviewer = Annotated[Principal, Depends(RequireRole("reviewer"))]


@router.post("", status_code=202, response_model=JobCreated, responses=errors(400, 401, 403, 404, 422, 503))
def create_job(body: JobRequest, request: Request, session: SessionDep, queue: QueueDep,
               reviewer: Reviewer) -> Response:
    """The body is validated and bounded here (422 naming the field); the model and dataset are then resolved
    once (404 naming the missing one, 400 when the model does not apply to the dataset or a filter field is
    unknown) and the worker runs the stored parameters as they are. The job is enqueued before it is
    committed: 503 when the queue cannot be reached, and then nothing was stored."""
    job = jobs.create_job(session, body.kind, body, reviewer, client_address(request), submit=queue.submit)
    return json_response(JobCreated(id=job.id).model_dump(), 202)


@router.get("", response_model=list[JobListEntry], responses=errors(400, 422))
def list_jobs(request: Request, session: SessionDep, settings: SettingsDep, dataset_id: QueryId | None = None,
              limit: Annotated[int, Query(json_schema_extra=bounds(1, 200))] = 20) -> Response:
    """The newest jobs, optionally of one dataset (the dataset page's live job list)."""
    return json_response([shown_job(j, request, settings) for j in jobs.list_jobs(session, dataset_id, limit)])


@router.get("/{job_id}", response_model=JobSummary, responses=errors(404, 422))
def get_job(job_id: PathId, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """An ingest job's folder is shown to non-admins as datasets show theirs (relative to its data root)."""
    return json_response(shown_job(jobs.job_summary(jobs.get_job(session, job_id)), request, settings))


@router.post("/{job_id}/cancel", response_model=JobSummary, responses=errors(401, 403, 404, 409, 422))
def cancel_job(job_id: PathId, request: Request, session: SessionDep, reviewer: Reviewer) -> Response:
    jobs.get_job(session, job_id)  # 404 first
    if reviewer.role != "admin" and jobs.job_starter(session, job_id) != reviewer.id:
        raise Forbidden(f"job {job_id} was started by someone else; only they or an admin may cancel it")
    return json_response(jobs.job_summary(jobs.cancel_job(session, job_id, reviewer, client_address(request))))


@router.delete("/{job_id}", status_code=204, responses=errors(401, 403, 404, 409, 422))
def delete_job(job_id: PathId, request: Request, session: SessionDep,
               admin: Annotated[Principal, Depends(RequireRole("admin"))]) -> Response:
    """Remove a finished or cancelled job's row (admin; its predictions stay); the audit log keeps it."""
    jobs.delete_job(session, job_id, admin, client_address(request))
    return Response(status_code=204)
