"""Ingest jobs: the request of POST /api/datasets, its 202 answer, and the parameters an ingest job stores."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.datasets import Problem
from app.api.schemas.fields import RequestBody
from app.ingest_jobs import IngestParams


class IngestRequest(IngestParams, RequestBody):
    """POST /api/datasets: the folder to index (checked here: 400 / 409 naming what is wrong, before any job)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class IngestResult(BaseModel):
    dataset_id: int = Field(description="The dataset indexed (new, or the folder's existing one).")
    name: str
    kind: str
    items: int = Field(description="Items the dataset holds now.")
    annotations: int
    added: int
    updated: int
    unchanged: int
    removed: int
    problems: int = Field(description="How many files or rows were skipped (all listed on the dataset).")
    seconds: float


class StoredIngestParams(IngestParams):
    """An ingest job's parameters as stored: the folder resolved, the kind and name decided; its progress phase;
    once finished its result, or the problems that stopped it."""

    phase: str | None = Field(None, description="What the job is doing: `queued`, `starting`, an ingest phase "
                                                "(`reading image headers`, `writing items`, …), then `done`, "
                                                "`failed` or `cancelled`. `done`/`total` count within the phase.")
    result: IngestResult | None = Field(None, description="Once done: the dataset and the ingest's counts.")
    problems: list[Problem] | None = Field(None, description="Once finished: the first 20 problems (when it failed: "
                                                             "why nothing could be indexed).")
    problem_count: int | None = Field(None, description="Once finished: how many problems there were.")


class JobLinks(BaseModel):
    job: str = Field(description="GET: the job's state and progress.")
    cancel: str = Field(description="POST: cancel it.")


class IngestCreated(BaseModel):
    id: int = Field(description="Job id; follow it with GET /api/jobs/{id}.")
    kind: Literal["ingest"]
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    params: StoredIngestParams = Field(description="What will be indexed: the folder resolved, the kind and name "
                                                   "decided.")
    links: JobLinks
