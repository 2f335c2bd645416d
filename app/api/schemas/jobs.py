"""Jobs: the request that makes one, and a job's state and progress."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas.exports import StoredExportParams
from app.api.schemas.fields import Id, RequestBody, Timestamp
from app.api.schemas.ingest import StoredIngestParams
from app.inference.job_params import PredictJobParams


class JobRequest(RequestBody, PredictJobParams):
    """POST /api/jobs: the job's kind and its parameters (validated and bounded here, once)."""

    model_id: Id = Field(description="Registered model (GET /api/models).")
    dataset_id: Id = Field(description="Dataset whose items are predicted.")
    kind: str = Field(description="Job kind; `predict` (an unknown kind is refused with 400).")


class JobCreated(BaseModel):
    id: int = Field(description="Job id; follow it with GET /api/jobs/{id}.")


class JobSummary(BaseModel):
    id: int
    kind: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    done: int = Field(description="Items processed.")
    total: int = Field(description="Items the job covers.")
    error: str | None = Field(description="Why the job failed.")
    params: PredictJobParams | StoredExportParams | StoredIngestParams = Field(
        description="The parameters as stored (filter values as strings): a predict job's, an export's, or an "
                    "ingest's (with its `phase`).")
    created_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None


class JobListEntry(JobSummary):
    model_name: str | None = Field(description="Name of the job's model (null when it is gone).")
