"""Jobs: create (predict over a dataset's filtered items), read status and progress, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.deps import QueueDep, SessionDep, json_response
from app.inference import jobs

router = APIRouter(prefix="/api/jobs")


class JobRequest(BaseModel):
    kind: str
    model_id: int
    dataset_id: int
    filters: dict[str, Any] = {}


@router.post("")
def create_job(body: JobRequest, session: SessionDep, queue: QueueDep) -> Response:
    job = jobs.create_job(session, body.kind, body.model_dump())
    queue.submit(job.id)
    return json_response({"id": job.id}, 202)


@router.get("")
def list_jobs(session: SessionDep, dataset_id: int | None = None, limit: int = 20) -> Response:
    """The newest jobs, optionally of one dataset (the dataset page's live job list)."""
    return json_response(jobs.list_jobs(session, dataset_id, limit))


@router.get("/{job_id}")
def get_job(job_id: int, session: SessionDep) -> Response:
    return json_response(jobs.job_summary(jobs.get_job(session, job_id)))


@router.post("/{job_id}/cancel")
def cancel_job(job_id: int, session: SessionDep) -> Response:
    return json_response(jobs.job_summary(jobs.cancel_job(session, job_id)))
