"""Exports: the request that starts one, and an export job's state, progress and result."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas.fields import Id, RequestBody, Timestamp
from app.export.params import MAX_MODELS, ExportParams


class ExportRequest(RequestBody, ExportParams):
    """POST /api/exports: what to export (validated and bounded here; the dataset, format and selection are then
    checked once: 404 / 400 naming what is wrong). The server decides where the file goes."""

    dataset_id: Id = Field(description="Dataset whose items are exported.")
    models: list[Id] | None = Field(
        None, max_length=MAX_MODELS,
        description="`csv`: the models whose predictions and per-item metrics become columns (default: every "
                    "model with predictions on the exported items).")


class ExportResult(BaseModel):
    file: str = Field(description="Name of the result file.")
    bytes: int = Field(description="Its size.")
    files: int = Field(description="How many files the format wrote (several are delivered as one .zip).")


class StoredExportParams(ExportParams):
    """An export job's parameters as stored: the request's, and once done its `result`."""

    result: ExportResult | None = Field(None, description="The result file, once the export is done.")


class ExportCreated(BaseModel):
    id: int = Field(description="Export (job) id; follow it with GET /api/exports/{id} or GET /api/jobs/{id}.")


class ExportSummary(BaseModel):
    id: int
    kind: Literal["export"]
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    done: int = Field(description="Items written.")
    total: int = Field(description="Items the export covers.")
    error: str | None = Field(description="Why the export failed.")
    params: StoredExportParams = Field(description="The parameters as stored.")
    created_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    dataset_id: int | None
    dataset_name: str | None = Field(description="Name of the dataset (null when it is gone).")
    format: str | None
    annotations: Literal["current", "dataset"]
    filters: dict[str, list[str]]
    file: str | None = Field(description="Name of the result file (a .zip when the format writes several files).")
    bytes: int | None = Field(description="Size of the result file.")
    download_url: str | None = Field(description="Where the finished file is downloaded (null until done).")
