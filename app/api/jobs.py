"""Jobs: create (predict over a dataset's filtered items), read status and progress, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, json_response
from app.api.schemas.jobs import JobCreated, JobListEntry, JobRequest, JobSummary
from app.api.schemas.responses import errors
from app.inference import jobs

router = APIRouter(prefix="/api/jobs")


@router.post("", status_code=202, response_model=JobCreated, responses=errors(400, 404, 422))
def create_job(body: JobRequest, request: Request, session: SessionDep) -> Response:
    """The body is validated and bounded here (422 naming the field); the model and dataset are then resolved
    once (404 naming the missing one, 400 when the model does not apply to the dataset or a filter field is
    unknown) and the worker runs the stored parameters as they are."""
    job = jobs.create_job(session, body.kind, body)
    request.app.state.queue.submit(job.id)
    return json_response(JobCreated(id=job.id).model_dump(), 202)


@router.get("", response_model=list[JobListEntry], responses=errors(400, 422))
def list_jobs(session: SessionDep, dataset_id: int | None = None, limit: int = 20) -> Response:
    """The newest jobs, optionally of one dataset (the dataset page's live job list)."""
    return json_response(jobs.list_jobs(session, dataset_id, limit))


@router.get("/{job_id}", response_model=JobSummary, responses=errors(404, 422))
def get_job(job_id: int, session: SessionDep) -> Response:
    return json_response(jobs.job_summary(jobs.get_job(session, job_id)))


@router.post("/{job_id}/cancel", response_model=JobSummary, responses=errors(404, 409, 422))
def cancel_job(job_id: int, session: SessionDep) -> Response:
    return json_response(jobs.job_summary(jobs.cancel_job(session, job_id)))
