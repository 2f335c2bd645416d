"""An export's parameters as one typed, bounded model: validated once where the export is asked for (`POST
/api/exports` through its request body, `medview export` through `parse_export_params`), stored in `jobs.params`
and read back by the worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from app.errors import InvalidInput
from app.inference.job_params import JobFilters, bounded_filters, validation_message

FORMATS = ("csv", "coco", "deeplesion-csv", "masks-png", "nifti", "dicom-seg", "dicom-sr")
MAX_MODELS = 50

FormatName = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class ExportParams(BaseModel):
    """What an export writes: one dataset's items matching `filters`, in `format`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    dataset_id: int = Field(description="Dataset whose items are exported.")
    format: FormatName = Field(description=f"One of {', '.join(FORMATS)}; it must fit the dataset's kind "
                                           "(docs/export.md has the table).")
    filters: JobFilters = Field(
        default_factory=dict,
        description="Any grid filter `{field: value or [values]}` (values OR-ed; `review_status` also takes "
                    "`accepted,corrected`), plus a grid selection: `id` (only these item ids) or `exclude_id`.")
    annotations: Literal["current", "dataset"] = Field(
        "current", description="`current`: the current version of every annotation (edits included); `dataset`: "
                               "the dataset's own annotations as ingested, whatever was edited since.")
    models: list[int] | None = Field(
        None, max_length=MAX_MODELS,
        description="`csv`: the models whose predictions and per-item metrics become columns (default: every "
                    "model with predictions on the exported items).")

    @field_validator("filters")
    @classmethod
    def _bounded(cls, filters: dict[str, list[str]]) -> dict[str, list[str]]:
        return bounded_filters(filters)

    def to_row(self) -> dict[str, Any]:
        return self.model_dump(include=set(ExportParams.model_fields))


def parse_export_params(data: Mapping[str, Any]) -> ExportParams:
    """Parameters from a mapping (the CLI, stored rows): InvalidInput (400) naming the field."""
    try:
        return ExportParams.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_message(exc)) from None
